#include "rdino/nn.h"

#include <string.h>

void rd_gather_samples(float *rows, const float *x, const int *S, int keep, size_t size) {
#pragma omp parallel for schedule(static) if ((size_t)keep * size > RD_PARALLEL_MIN)
    for (int j = 0; j < keep; j++)
        memcpy(rows + (size_t)j * size, x + (size_t)(S ? S[j] : j) * size, size * sizeof(float));
}

void rd_scatter_add_samples(float *x, const float *rows, const int *S, int keep, size_t size) {
#pragma omp parallel for schedule(static) if ((size_t)keep * size > RD_PARALLEL_MIN)
    for (int j = 0; j < keep; j++) {
        float *dst = x + (size_t)(S ? S[j] : j) * size;
        const float *src = rows + (size_t)j * size;
#pragma omp simd
        for (size_t k = 0; k < size; k++) dst[k] += src[k];
    }
}

void rd_residual_forward(float *x, const float *y, const float *gamma, const int *S, int keep,
                         int T, int D, float scale) {
#pragma omp parallel for collapse(2) schedule(static) if ((long)keep * T * D > RD_PARALLEL_MIN)
    for (int j = 0; j < keep; j++)
        for (int t = 0; t < T; t++) {
            float *dst = x + ((size_t)(S ? S[j] : j) * T + t) * D;
            const float *src = y + ((size_t)j * T + t) * D;
            if (gamma) {
#pragma omp simd
                for (int c = 0; c < D; c++) dst[c] += scale * (gamma[c] * src[c]); /* as torch */
            } else {
#pragma omp simd
                for (int c = 0; c < D; c++) dst[c] += scale * src[c];
            }
        }
}

void rd_residual_backward(float *dy, float *dgamma, const float *dx, const float *y,
                          const float *gamma, const int *S, int keep, int T, int D, float scale) {
    long rows = (long)keep * T;
#pragma omp parallel for schedule(static) if (rows * D > RD_PARALLEL_MIN)
    for (long r = 0; r < rows; r++) {
        const float *g = dx + ((size_t)(S ? S[r / T] : r / T) * T + r % T) * D;
        float *d = dy + (size_t)r * D;
#pragma omp simd
        for (int c = 0; c < D; c++) d[c] += scale * (gamma ? gamma[c] : 1.0f) * g[c];
    }
    if (!dgamma) return;
        /* Column blocks per thread, rows in order (thread-count independent). */
#pragma omp parallel for schedule(static) if (rows * D > RD_PARALLEL_MIN)
    for (int c0 = 0; c0 < D; c0 += 64) {
        int c1 = c0 + 64 < D ? c0 + 64 : D;
        float acc[64] = {0};
        for (long r = 0; r < rows; r++) {
            const float *g = dx + ((size_t)(S ? S[r / T] : r / T) * T + r % T) * D;
            const float *v = y + (size_t)r * D;
#pragma omp simd
            for (int c = c0; c < c1; c++) acc[c - c0] += g[c] * v[c];
        }
        for (int c = c0; c < c1; c++) dgamma[c] += scale * acc[c - c0];
    }
}
