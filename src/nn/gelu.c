#include "rdino/nn.h"

#include "vecmath.h"

#define INV_SQRT_2PI 0.39894228040143267794f

/* Elementwise loops: threads split the array, each slice is a vectorised loop. */

void rd_gelu_forward(float *out, const float *inp, size_t n) {
#pragma omp parallel for simd schedule(static) if (n > RD_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) {
        float gauss;
        float x = inp[i];
        out[i] = x * rd_vnormcdf(x, &gauss);
    }
}

void rd_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n) {
#pragma omp parallel for simd schedule(static) if (n > RD_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) {
        float gauss;
        float x = inp[i];
        float cdf = rd_vnormcdf(x, &gauss);
        dinp[i] += dout[i] * fmaf(x * INV_SQRT_2PI, gauss, cdf);
    }
}
