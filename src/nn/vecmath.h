/* Branch-free exp and normal CDF that the compiler vectorises inside `#pragma omp simd` loops
 * (libm's expf/erff are scalar calls and would dominate softmax and GELU). Always inlined: a
 * call left inside an outlined OpenMP loop body blocks vectorisation. Private to src/nn. */
#ifndef RDINO_NN_VECMATH_H
#define RDINO_NN_VECMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* e^x for x in [-87, 88] (clamped outside), relative error < 2e-7: x = n ln2 + r with
 * |r| <= ln2/2 (n rounded to nearest), degree-7 Taylor polynomial for e^r (truncation 7e-9), 2^n
 * from the exponent bits. Below -87 it returns e^-87 ~ 1.6e-38 instead of a denormal or 0. */
static inline __attribute__((always_inline)) float rd_vexpf(float x) {
    x = x > -87.0f ? x : -87.0f; /* comparisons, not fminf/fmaxf: those are libm calls */
    x = x < 88.0f ? x : 88.0f;
    /* n = round(x / ln2) by the 1.5 * 2^23 shift (floorf does not vectorise) */
    float n = fmaf(x, 1.44269504088896341f, 12582912.0f) - 12582912.0f;
    float r = fmaf(n, -0.693359375f, x); /* ln2 split in a short high part and the rest */
    r = fmaf(n, 2.12194440e-4f, r);
    float p = 1.98412698e-4f; /* 1/5040 */
    p = fmaf(p, r, 1.38888889e-3f);
    p = fmaf(p, r, 8.33333333e-3f);
    p = fmaf(p, r, 4.16666667e-2f);
    p = fmaf(p, r, 1.66666667e-1f);
    p = fmaf(p, r, 0.5f);
    p = fmaf(p, r, 1.0f);
    p = fmaf(p, r, 1.0f);
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* Standard normal CDF Phi(x) and e^(-x^2/2) (the unnormalised density), absolute error of
 * Phi < 1e-7. With t = |x|/sqrt2: for t < 1, Phi = 1/2 + x/(2 sqrt2) P(t^2) (P: minimax fit of
 * erf(t)/t); for t >= 1 the tail 1/2 erfc(t) = 1/2 e^(-t^2) Q(1/t) (Q: fit of erfc(t) e^(t^2)
 * on t in [1, 4]; beyond t = 4 the tail is below 1e-8 and Q(1/4) is used). Coefficients fitted
 * with a Lawson-weighted least squares against mpmath (relative error 1.2e-9 and 1.5e-8). */
static inline __attribute__((always_inline)) float rd_vnormcdf(float x, float *gauss) {
    float t = fabsf(x) * 0.70710678118654752f;
    /* e^(-t^2) with t^2 = x^2/2 split exactly: s + s_lo (fma recovers the rounding error). */
    float hx = 0.5f * x;
    float s = x * hx;
    float s_lo = fmaf(x, hx, -s);
    float e = rd_vexpf(-s) * (1.0f - s_lo);
    *gauss = e;

    float u = s < 1.0f ? s : 1.0f; /* t^2 on the small branch */
    float ps = 7.853956777e-05f;
    ps = fmaf(ps, u, -8.010225138e-04f);
    ps = fmaf(ps, u, 5.188331474e-03f);
    ps = fmaf(ps, u, -2.685381472e-02f);
    ps = fmaf(ps, u, 1.128358543e-01f);
    ps = fmaf(ps, u, -3.761262596e-01f);
    ps = fmaf(ps, u, 1.128379107e+00f);
    float small = fmaf(0.5f * x * 0.70710678118654752f, ps, 0.5f);

    float tc = t > 1.0f ? t : 1.0f;
    tc = tc < 4.0f ? tc : 4.0f;
    float v = (1.0f / tc - 0.625f) * 2.66666667f;
    float q = 4.504148819e-06f;
    q = fmaf(q, v, -2.716581321e-06f);
    q = fmaf(q, v, -2.962551298e-05f);
    q = fmaf(q, v, 1.240841812e-04f);
    q = fmaf(q, v, -3.469545045e-04f);
    q = fmaf(q, v, 4.600147658e-04f);
    q = fmaf(q, v, 2.307698596e-03f);
    q = fmaf(q, v, -2.424285002e-02f);
    q = fmaf(q, v, 1.433564425e-01f);
    q = fmaf(q, v, 3.059529960e-01f);
    float tail = 0.5f * e * q;
    float large = x < 0.0f ? tail : 1.0f - tail;
    return t < 1.0f ? small : large;
}

#endif
