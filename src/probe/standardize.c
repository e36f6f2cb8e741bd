/* Feature standardisation fitted on training rows only. */
#include "probe_internal.h"

#include <math.h>
#include <stdlib.h>

static inline int row_at(const int *rows, int k) {
    return rows ? rows[k] : k;
}

void rd_probe_standardize_fit(const float *x, int d, const int *rows, int nrows, double *mean,
                              double *inv_std) {
    for (int j = 0; j < d; j++) mean[j] = inv_std[j] = 0.0;
    if (nrows <= 0) return;
    for (int k = 0; k < nrows; k++) {
        const float *xr = x + (size_t)row_at(rows, k) * d;
        for (int j = 0; j < d; j++) mean[j] += xr[j];
    }
    for (int j = 0; j < d; j++) mean[j] /= nrows;
    /* Two passes: squared deviations from the mean, not E[x^2] - E[x]^2, which cancels. */
    double *var = inv_std;
    for (int k = 0; k < nrows; k++) {
        const float *xr = x + (size_t)row_at(rows, k) * d;
        for (int j = 0; j < d; j++) {
            double dev = xr[j] - mean[j];
            var[j] += dev * dev;
        }
    }
    for (int j = 0; j < d; j++) {
        double sd = sqrt(var[j] / nrows);
        /* A constant float column can show a std of ~1e-17 |mean| from rounding the mean. */
        inv_std[j] = (sd > 0.0 && sd > 1e-7 * fabs(mean[j])) ? 1.0 / sd : 0.0;
    }
}

void rd_probe_standardize_apply(const float *x, int d, const int *rows, int nrows,
                                const double *mean, const double *inv_std, double *z) {
    for (int k = 0; k < nrows; k++) {
        const float *xr = x + (size_t)row_at(rows, k) * d;
        double *zr = z + (size_t)k * d;
        for (int j = 0; j < d; j++) zr[j] = (xr[j] - mean[j]) * inv_std[j];
    }
}

void probe_center(const double *x, int n, int d, double *mean, double *z) {
    for (int j = 0; j < d; j++) mean[j] = 0.0;
    for (size_t i = 0; i < (size_t)n; i++)
        for (int j = 0; j < d; j++) mean[j] += x[i * d + j];
    for (int j = 0; j < d; j++) mean[j] /= n;
    for (size_t i = 0; i < (size_t)n; i++)
        for (int j = 0; j < d; j++) z[i * d + j] = x[i * d + j] - mean[j];
}

rd_status probe_check_finite(const double *v, size_t n, const char *what, rd_error *err) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return rd_fail(err, RD_ENUMERIC, "probe: %s %zu is not finite (%g)", what, i, v[i]);
    return RD_OK;
}
