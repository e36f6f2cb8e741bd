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
