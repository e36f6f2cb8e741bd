/* Helpers shared by the probe tests (probe_test_util.h). */
#include "probe_test_util.h"

#include <math.h>
#include <stdlib.h>

void fill_normal_d(double *x, size_t n, uint64_t index, double scale) {
    rd_rng r;
    rd_rng_init(&r, 99, RD_RNG_TEST, 0, index, 0);
    for (size_t i = 0; i < n; i++) x[i] = scale * rd_rng_normal(&r);
}

double *fixture_doubles(hid_t file, const char *path, size_t *n) {
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

void synth_study_make(synth_study *s, int npatients, int d, double signal, uint64_t seed) {
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

void synth_study_free(synth_study *s) {
    free(s->x);
    free(s->age);
    free(s->sex);
    free(s->group);
}
