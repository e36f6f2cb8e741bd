#include "rdino/nn.h"

#include <math.h>
#include <string.h>

#define BICUBIC_A (-0.75) /* PyTorch's Keys cubic */

static double cubic_near(double x) { /* |x| <= 1 */
    return ((BICUBIC_A + 2.0) * x - (BICUBIC_A + 3.0)) * x * x + 1.0;
}
static double cubic_far(double x) { /* 1 < |x| < 2 */
    return ((BICUBIC_A * x - 5.0 * BICUBIC_A) * x + 8.0 * BICUBIC_A) * x - 4.0 * BICUBIC_A;
}

void rd_bicubic_weights(float *w, int M, int g, double scale) {
    memset(w, 0, (size_t)g * M * sizeof(float));
    for (int o = 0; o < g; o++) {
        double src = scale > 0 ? (o + 0.5) / scale - 0.5 : (o + 0.5) * ((double)M / g) - 0.5;
        double i0 = floor(src), t = src - i0;
        double taps[4] = {cubic_far(t + 1.0), cubic_near(t), cubic_near(1.0 - t),
                          cubic_far(2.0 - t)};
        for (int k = 0; k < 4; k++) {
            int idx = (int)i0 - 1 + k; /* taps beyond the border read the edge value */
            idx = idx < 0 ? 0 : idx > M - 1 ? M - 1 : idx;
            w[(size_t)o * M + idx] += (float)taps[k];
        }
    }
}

/* Keys' cubic with a = -0.5 in float, as aten's HelperInterpCubic::aa_filter (UpSampleKernel.cpp)
 * evaluates it for float tensors (cubic_convolution1 / cubic_convolution2 of UpSample.h). */
static float aa_cubic(float x) {
    const float a = -0.5f;
    x = fabsf(x);
    if (x < 1.0f) return ((a + 2.0f) * x - (a + 3.0f)) * x * x + 1.0f;
    if (x < 2.0f) return ((a * x - 5.0f * a) * x + 8.0f * a) * x - 4.0f * a;
    return 0.0f;
}

void rd_bicubic_aa_weights(float *w, int M, int g, double scale) {
    memset(w, 0, (size_t)g * M * sizeof(float));
    /* aten _compute_indices_weights_aa (UpSampleKernel.cpp) with scalar_t = float, term by term:
     * the source step is 1 / scale_factor, else M / g; when shrinking, the kernel is widened by
     * that step (support 2 * step taps each side, arguments divided by it); taps beyond the
     * border are dropped and the rest renormalised (no clamping onto the edge). */
    float step = scale > 0 ? (float)(1.0 / scale) : (float)M / (float)g;
    float support = step >= 1.0f ? (float)(2.0 * step) : 2.0f;
    float invstep = step >= 1.0f ? (float)(1.0 / step) : 1.0f;
    for (int o = 0; o < g; o++) {
        float center = (float)(step * (o + 0.5));
        int lo = (int)((double)(center - support) + 0.5),
            hi = (int)((double)(center + support) + 0.5);
        lo = lo < 0 ? 0 : lo;
        hi = hi > M ? M : hi;
        float *row = w + (size_t)o * M, total = 0.0f;
        for (int j = lo; j < hi; j++) {
            row[j] = aa_cubic((float)(((double)((float)j - center) + 0.5) * invstep));
            total += row[j];
        }
        if (total != 0.0f)
            for (int j = lo; j < hi; j++) row[j] /= total;
    }
}

void rd_resample_forward(float *out, float *tmp, const float *grid, const float *wrow,
                         const float *wcol, int M, int g0, int g1, int C) {
    /* tmp[g0, M*C] = wrow[g0, M] @ grid[M, M*C]: resample along rows */
    rd_sgemm(0, 0, g0, M * C, M, 1.0f, wrow, M, grid, M * C, 0.0f, tmp, M * C, NULL);
    /* out[i] [g1, C] = wcol[g1, M] @ tmp[i] [M, C]: then along columns */
    for (int i = 0; i < g0; i++)
        rd_sgemm(0, 0, g1, C, M, 1.0f, wcol, M, tmp + (size_t)i * M * C, C, 0.0f,
                 out + (size_t)i * g1 * C, C, NULL);
}

void rd_resample_backward(float *dgrid, float *dtmp, const float *dout, const float *wrow,
                          const float *wcol, int M, int g0, int g1, int C) {
    /* dtmp[i] [M, C] = wcol^T [M, g1] @ dout[i] [g1, C] */
    for (int i = 0; i < g0; i++)
        rd_sgemm(1, 0, M, C, g1, 1.0f, wcol, M, dout + (size_t)i * g1 * C, C, 0.0f,
                 dtmp + (size_t)i * M * C, C, NULL);
    /* dgrid[M, M*C] += wrow^T [M, g0] @ dtmp[g0, M*C] */
    rd_sgemm(1, 0, M, M * C, g0, 1.0f, wrow, M, dtmp, M * C, 1.0f, dgrid, M * C, NULL);
}
