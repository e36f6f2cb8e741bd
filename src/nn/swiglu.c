#include "rdino/nn.h"

#include "vecmath.h"

void rd_swiglu_forward(float *out, const float *inp, int N, int h) {
#pragma omp parallel for schedule(static) if ((long)N * h > RD_PARALLEL_MIN)
    for (int n = 0; n < N; n++) {
        const float *a1 = inp + (size_t)n * 2 * h, *a2 = a1 + h;
        float *o = out + (size_t)n * h;
#pragma omp simd
        for (int k = 0; k < h; k++) o[k] = a1[k] / (1.0f + rd_vexpf(-a1[k])) * a2[k];
    }
}

void rd_swiglu_backward(float *dinp, const float *dout, const float *inp, int N, int h) {
    /* silu(a) = a sig(a),  silu'(a) = sig(a) (1 + a (1 - sig(a))) */
#pragma omp parallel for schedule(static) if ((long)N * h > RD_PARALLEL_MIN)
    for (int n = 0; n < N; n++) {
        const float *a1 = inp + (size_t)n * 2 * h, *a2 = a1 + h;
        float *d1 = dinp + (size_t)n * 2 * h, *d2 = d1 + h;
        const float *g = dout + (size_t)n * h;
#pragma omp simd
        for (int k = 0; k < h; k++) {
            float sig = 1.0f / (1.0f + rd_vexpf(-a1[k]));
            float silu = a1[k] * sig;
            d1[k] += g[k] * a2[k] * sig * (1.0f + a1[k] * (1.0f - sig));
            d2[k] += g[k] * silu;
        }
    }
}
