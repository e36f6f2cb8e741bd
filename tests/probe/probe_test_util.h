/* Helpers shared by the probe tests: random data and the scikit-learn fixture. */
#ifndef RDINO_PROBE_TEST_UTIL_H
#define RDINO_PROBE_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "fixture.h"
#include "rdino/rng.h"

/* Standard normal draws from the RD_RNG_TEST stream `index`, times scale. */
void fill_normal_d(double *x, size_t n, uint64_t index, double scale);

/* A float64 dataset of the probe fixture (malloc'd), NULL if missing. */
double *fixture_doubles(hid_t file, const char *path, size_t *n);

/* A synthetic embedding study: patients with 1-4 images, age and sex written into the
 * features with strength `signal` (0 = features independent of both), plus a patient effect
 * shared by a patient's images and image noise. About 5% of ages and sexes are unknown. */
typedef struct synth_study {
    int n, d, npatients;
    float *x;    /* [n, d] */
    double *age; /* [n] NaN unknown */
    double *sex; /* [n] 0/1, NaN unknown */
    int *group;  /* [n] */
} synth_study;

void synth_study_make(synth_study *s, int npatients, int d, double signal, uint64_t seed);
void synth_study_free(synth_study *s);

#endif
