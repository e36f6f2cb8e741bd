#include "rdino/nn.h"

#include <math.h>

void rd_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                          const float *weight, const float *bias, int N, int C) {
#pragma omp parallel for schedule(static) if ((long)N * C > RD_PARALLEL_MIN)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *y = out + (size_t)n * C;
        float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
        for (int c = 0; c < C; c++) sum += x[c];
        float m = sum / (float)C;
        float sq = 0.0f; /* two passes: the variance of centred values does not cancel */
#pragma omp simd reduction(+ : sq)
        for (int c = 0; c < C; c++) sq += (x[c] - m) * (x[c] - m);
        float s = 1.0f / sqrtf(sq / (float)C + RD_LAYERNORM_EPS);
#pragma omp simd
        for (int c = 0; c < C; c++) y[c] = (x[c] - m) * s * weight[c] + bias[c];
        if (mean) mean[n] = m;
        if (rstd) rstd[n] = s;
    }
}

void rd_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                           const float *inp, const float *mean, const float *rstd,
                           const float *weight, int N, int C) {
    /* dinp = rstd * (g - mean(g) - xhat * mean(g * xhat)),  g = dout * weight */
    if (dinp) {
#pragma omp parallel for schedule(static) if ((long)N * C > RD_PARALLEL_MIN)
        for (int n = 0; n < N; n++) {
            const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
            float *dx = dinp + (size_t)n * C;
            float m = mean[n], s = rstd[n];
            float g_sum = 0.0f, gx_sum = 0.0f;
#pragma omp simd reduction(+ : g_sum, gx_sum)
            for (int c = 0; c < C; c++) {
                float g = dy[c] * weight[c];
                g_sum += g;
                gx_sum += g * (x[c] - m) * s;
            }
            float g_mean = g_sum / (float)C, gx_mean = gx_sum / (float)C;
#pragma omp simd
            for (int c = 0; c < C; c++) {
                float xhat = (x[c] - m) * s;
                dx[c] += s * (dy[c] * weight[c] - g_mean - xhat * gx_mean);
            }
        }
    }
    if (!dweight && !dbias) return;
        /* Parameter gradients: threads own column blocks, rows are added in order. */
#pragma omp parallel for schedule(static) if ((long)N * C > RD_PARALLEL_MIN)
    for (int c0 = 0; c0 < C; c0 += 64) {
        int c1 = c0 + 64 < C ? c0 + 64 : C;
        float dw[64] = {0}, db[64] = {0};
        for (int n = 0; n < N; n++) {
            const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
            float m = mean[n], s = rstd[n];
#pragma omp simd
            for (int c = c0; c < c1; c++) {
                dw[c - c0] += dy[c] * (x[c] - m) * s;
                db[c - c0] += dy[c];
            }
        }
        for (int c = c0; c < c1; c++) {
            if (dweight) dweight[c] += dw[c - c0];
            if (dbias) dbias[c] += db[c - c0];
        }
    }
}
