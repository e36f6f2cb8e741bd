#include "rdino/nn.h"

void rd_linear_forward(float *out, const float *inp, const float *weight, const float *bias, int N,
                       int C, int OC) {
    /* out[N,OC] = inp[N,C] * weight[OC,C]^T + bias */
    rd_sgemm(0, 1, N, OC, C, 1.0f, inp, C, weight, C, 0.0f, out, OC, bias);
}

void rd_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, int N, int C, int OC) {
    if (dinp) /* dinp[N,C] += dout[N,OC] * weight[OC,C] */
        rd_sgemm(0, 0, N, C, OC, 1.0f, dout, OC, weight, C, 1.0f, dinp, C, NULL);
    if (dweight) /* dweight[OC,C] += dout^T[OC,N] * inp[N,C] */
        rd_sgemm(1, 0, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dweight, C, NULL);
    if (dbias) rd_column_sums_add(dbias, dout, N, OC);
}

void rd_column_sums_add(float *sums, const float *x, int N, int C) {
    /* Threads own column blocks and add rows in order: the result does not depend on the
     * thread count. */
#pragma omp parallel for schedule(static) if ((long)N * C > RD_PARALLEL_MIN)
    for (int c0 = 0; c0 < C; c0 += 64) {
        int c1 = c0 + 64 < C ? c0 + 64 : C;
        float acc[64] = {0};
        for (int n = 0; n < N; n++) {
            const float *row = x + (size_t)n * C;
#pragma omp simd
            for (int c = c0; c < c1; c++) acc[c - c0] += row[c];
        }
        for (int c = c0; c < c1; c++) sums[c] += acc[c - c0];
    }
}
