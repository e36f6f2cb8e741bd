#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "rdino/nn.h"
#include "rdino/rng.h"

static void fill_normal(float *x, size_t n, uint64_t index, float scale) {
    rd_rng r;
    rd_rng_init(&r, 1234, RD_RNG_TEST, 0, index, 0);
    for (size_t i = 0; i < n; i++) x[i] = scale * (float)rd_rng_normal(&r);
}

enum { N = 5, C = 7, OC = 6 };

typedef struct linear_case {
    float inp[N * C], weight[OC * C], bias[OC], out[N * OC], probe[N * OC];
} linear_case;

/* Scalar loss sum(out * probe), accumulated in double. */
static double linear_loss(void *ctx) {
    linear_case *c = ctx;
    rd_linear_forward(c->out, c->inp, c->weight, c->bias, N, C, OC);
    double s = 0;
    for (int i = 0; i < N * OC; i++) s += (double)c->out[i] * c->probe[i];
    return s;
}

static void linear_forward_matches_naive(rd_test *t) {
    linear_case c;
    memset(&c, 0, sizeof c);
    fill_normal(c.inp, N * C, 1, 1.0f);
    fill_normal(c.weight, OC * C, 2, 0.5f);
    fill_normal(c.bias, OC, 3, 0.1f);
    rd_linear_forward(c.out, c.inp, c.weight, c.bias, N, C, OC);
    float want[N * OC];
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double s = c.bias[o];
            for (int k = 0; k < C; k++) s += (double)c.inp[n * C + k] * c.weight[o * C + k];
            want[n * OC + o] = (float)s;
        }
    CHECK_CLOSE("out", c.out, want, N * OC, 1e-6, 1e-6);
    rd_linear_forward(c.out, c.inp, c.weight, NULL, N, C, OC);
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) want[n * OC + o] -= c.bias[o];
    CHECK_CLOSE("out without bias", c.out, want, N * OC, 1e-5, 1e-6);
}

static void linear_backward_matches_finite_differences(rd_test *t) {
    linear_case c;
    memset(&c, 0, sizeof c);
    fill_normal(c.inp, N * C, 1, 1.0f);
    fill_normal(c.weight, OC * C, 2, 0.5f);
    fill_normal(c.bias, OC, 3, 0.1f);
    fill_normal(c.probe, N * OC, 4, 1.0f);
    float dinp[N * C] = {0}, dweight[OC * C] = {0}, dbias[OC] = {0};
    rd_linear_backward(dinp, dweight, dbias, c.probe, c.inp, c.weight, N, C, OC);
    CHECK_GRAD("dinp", c.inp, dinp, N * C, linear_loss, &c, 1e-2, 1e-3, 1e-4);
    CHECK_GRAD("dweight", c.weight, dweight, OC * C, linear_loss, &c, 1e-2, 1e-3, 1e-4);
    CHECK_GRAD("dbias", c.bias, dbias, OC, linear_loss, &c, 1e-2, 1e-3, 1e-4);
    /* Backward accumulates: a second call doubles the gradients. */
    float once[OC * C];
    memcpy(once, dweight, sizeof once);
    rd_linear_backward(NULL, dweight, NULL, c.probe, c.inp, c.weight, N, C, OC);
    for (int i = 0; i < OC * C; i++) once[i] *= 2.0f;
    CHECK_CLOSE("accumulated dweight", dweight, once, OC * C, 1e-6, 1e-7);
}

typedef struct gelu_case {
    float x[64], y[64], probe[64];
} gelu_case;

static double gelu_loss(void *ctx) {
    gelu_case *c = ctx;
    rd_gelu_forward(c->y, c->x, 64);
    double s = 0;
    for (int i = 0; i < 64; i++) s += (double)c->y[i] * c->probe[i];
    return s;
}

static void gelu_values_and_gradient(rd_test *t) {
    gelu_case c;
    fill_normal(c.x, 64, 5, 2.0f);
    fill_normal(c.probe, 64, 6, 1.0f);
    c.x[0] = 0.0f;
    c.x[1] = 1.0f;
    c.x[2] = -1.0f;
    rd_gelu_forward(c.y, c.x, 64);
    /* GELU(1) = Phi(1) = 0.841344746..., GELU(-1) = -(1 - Phi(1)). */
    CHECK_NEAR(c.y[0], 0.0, 0);
    CHECK_NEAR(c.y[1], 0.8413447460685429, 1e-7);
    CHECK_NEAR(c.y[2], -0.15865525393145707, 1e-7);
    float dx[64] = {0};
    rd_gelu_backward(dx, c.x, c.probe, 64);
    CHECK_GRAD("dgelu", c.x, dx, 64, gelu_loss, &c, 1e-3, 2e-3, 1e-4);
}

/* The vectorised Phi against erf in double on a dense grid: |GELU error| <= 1.5e-7 max(1,|x|)
 * and |GELU' error| <= 1.5e-7 max(1, |x|) (measured 1.1e-7: about 2 ulp). */
static void gelu_accuracy_on_a_dense_grid(rd_test *t) {
    enum { NG = 24001 };
    static float x[NG], y[NG], dy[NG], ones[NG];
    for (int i = 0; i < NG; i++) {
        x[i] = -12.0f + 24.0f * (float)i / (NG - 1);
        ones[i] = 1.0f;
        dy[i] = 0.0f;
    }
    rd_gelu_forward(y, x, NG);
    rd_gelu_backward(dy, x, ones, NG);
    double worst = 0, worst_d = 0;
    for (int i = 0; i < NG; i++) {
        double xd = x[i], cdf = 0.5 * (1 + erf(xd / sqrt(2.0)));
        double pdf = exp(-0.5 * xd * xd) / sqrt(2 * M_PI);
        double scale = fmax(1.0, fabs(xd));
        worst = fmax(worst, fabs(y[i] - xd * cdf) / scale);
        worst_d = fmax(worst_d, fabs(dy[i] - (cdf + xd * pdf)) / scale);
    }
    CHECK_MSG(worst <= 1.5e-7, "GELU error %.3g > 1.5e-7", worst);
    CHECK_MSG(worst_d <= 1.5e-7, "GELU' error %.3g > 1.5e-7", worst_d);
}

static const rd_test_case cases[] = {
    {"gelu_accuracy_on_a_dense_grid", gelu_accuracy_on_a_dense_grid},
    {"linear_forward_matches_naive", linear_forward_matches_naive},
    {"linear_backward_matches_finite_differences", linear_backward_matches_finite_differences},
    {"gelu_values_and_gradient", gelu_values_and_gradient},
};
RD_TEST_MAIN("nn/linear_gelu", cases)
