/* Helpers shared by the probe tests: random data and the scikit-learn fixture. */
#ifndef RDINO_PROBE_TEST_UTIL_H
#define RDINO_PROBE_TEST_UTIL_H

#include <hdf5.h>
#include <stdlib.h>

#include "fixture.h"
#include "rdino/rng.h"

/* Standard normal draws from the RD_RNG_TEST stream `index`, times scale. */
static inline void fill_normal_d(double *x, size_t n, uint64_t index, double scale) {
    rd_rng r;
    rd_rng_init(&r, 99, RD_RNG_TEST, 0, index, 0);
    for (size_t i = 0; i < n; i++) x[i] = scale * rd_rng_normal(&r);
}

/* A float64 dataset of the probe fixture (malloc'd), NULL if missing. */
static inline double *fixture_doubles(hid_t file, const char *path, size_t *n) {
    if (!rd_fixture_exists(file, path)) return NULL;
    int64_t dims[8];
    int rank = rd_fixture_shape(file, path, dims, 8);
    size_t count = 1;
    for (int i = 0; i < rank; i++) count *= (size_t)dims[i];
    double *buf = malloc((count ? count : 1) * sizeof *buf);
    hid_t ds = H5Dopen2(file, path, H5P_DEFAULT);
    if (!buf || ds < 0 || H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        free(buf);
        buf = NULL;
    }
    if (ds >= 0) H5Dclose(ds);
    if (n) *n = buf ? count : 0;
    return buf;
}

#endif

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

static inline void synth_study_make(synth_study *s, int npatients, int d, double signal,
                                    uint64_t seed) {
    rd_rng r;
    rd_rng_init(&r, seed, RD_RNG_TEST, 1, 0, 0);
    int cap = npatients * 4;
    s->d = d;
    s->npatients = npatients;
    s->x = malloc(sizeof(float) * cap * d);
    s->age = malloc(sizeof(double) * cap);
    s->sex = malloc(sizeof(double) * cap);
    s->group = malloc(sizeof(int) * cap);
    double *load_age = malloc(sizeof(double) * d), *load_sex = malloc(sizeof(double) * d);
    double *effect = malloc(sizeof(double) * d);
    for (int j = 0; j < d; j++) load_age[j] = rd_rng_normal(&r), load_sex[j] = rd_rng_normal(&r);
    int n = 0;
    for (int p = 0; p < npatients; p++) {
        int count = 1 + (int)rd_rng_randint(&r, 0, 3);
        double age = rd_rng_range(&r, 20, 85), sex = rd_rng_uniform(&r) < 0.5;
        for (int j = 0; j < d; j++) effect[j] = 0.5 * rd_rng_normal(&r);
        for (int k = 0; k < count; k++, n++) {
            double a = age + 0.7 * k; /* follow-up visits */
            for (int j = 0; j < d; j++)
                s->x[(size_t)n * d + j] =
                    (float)(signal * (load_age[j] * (a - 50) / 20 + load_sex[j] * (sex - 0.5)) +
                            effect[j] + rd_rng_normal(&r));
            s->age[n] = rd_rng_uniform(&r) < 0.05 ? NAN : a;
            s->sex[n] = rd_rng_uniform(&r) < 0.05 ? NAN : sex;
            s->group[n] = 1000 + 7 * p; /* arbitrary non-contiguous ids */
        }
    }
    s->n = n;
    free(load_age);
    free(load_sex);
    free(effect);
}

static inline void synth_study_free(synth_study *s) {
    free(s->x);
    free(s->age);
    free(s->sex);
    free(s->group);
}
