/* LayerNorm (eps 1e-6, biased variance): forward against a double-precision reference
 * (rtol 1e-5, atol 1e-6), mean/rstd saved for backward, and the backward of input, weight and
 * bias against central finite differences (step 1e-2, |fd - g| <= 1e-4 + 1e-3 |fd|, loss
 * accumulated in double). */
#include <math.h>
#include <string.h>

#include "harness.h"
#include "rdino/nn.h"
#include "rdino/rng.h"

enum { N = 7, C = 33 };

typedef struct ln_case {
    float x[N * C], w[C], b[C], out[N * C], mean[N], rstd[N], probe[N * C];
} ln_case;

static void fill(float *x, size_t n, uint64_t index, double mean, double std) {
    rd_rng r;
    rd_rng_init(&r, 11, RD_RNG_TEST, 0, index, 0);
    for (size_t i = 0; i < n; i++) x[i] = (float)(mean + std * rd_rng_normal(&r));
}

static void setup(ln_case *c) {
    fill(c->x, N * C, 1, 0.3, 2.0);
    fill(c->w, C, 2, 1.0, 0.3);
    fill(c->b, C, 3, 0.0, 0.2);
    fill(c->probe, N * C, 4, 0.0, 1.0);
    c->x[5] = 40.0f; /* one outlier: row 0 is far from unit scale */
}

static double ln_loss(void *p) {
    ln_case *c = p;
    rd_layernorm_forward(c->out, c->mean, c->rstd, c->x, c->w, c->b, N, C);
    double s = 0;
    for (int i = 0; i < N * C; i++) s += (double)c->out[i] * c->probe[i];
    return s;
}

static void forward_matches_double_reference(rd_test *t) {
    ln_case c;
    setup(&c);
    rd_layernorm_forward(c.out, c.mean, c.rstd, c.x, c.w, c.b, N, C);
    float want[N * C];
    for (int n = 0; n < N; n++) {
        double m = 0, v = 0;
        for (int k = 0; k < C; k++) m += c.x[n * C + k];
        m /= C;
        for (int k = 0; k < C; k++) v += (c.x[n * C + k] - m) * (c.x[n * C + k] - m);
        v /= C;
        CHECK_NEAR(c.mean[n], m, 1e-6 * (1 + fabs(m)));
        CHECK_NEAR(c.rstd[n], 1 / sqrt(v + 1e-6), 1e-6 / sqrt(v + 1e-6));
        for (int k = 0; k < C; k++)
            want[n * C + k] = (float)((c.x[n * C + k] - m) / sqrt(v + 1e-6) * c.w[k] + c.b[k]);
    }
    CHECK_CLOSE("layernorm", c.out, want, N * C, 1e-5, 1e-6);
}

static void backward_matches_finite_differences(rd_test *t) {
    ln_case c;
    setup(&c);
    float dx[N * C] = {0}, dw[C] = {0}, db[C] = {0};
    ln_loss(&c);
    rd_layernorm_backward(dx, dw, db, c.probe, c.x, c.mean, c.rstd, c.w, N, C);
    CHECK_GRAD("dx", c.x, dx, N * C, ln_loss, &c, 1e-2, 1e-3, 1e-4);
    CHECK_GRAD("dweight", c.w, dw, C, ln_loss, &c, 1e-2, 1e-3, 1e-4);
    CHECK_GRAD("dbias", c.b, db, C, ln_loss, &c, 1e-2, 1e-3, 1e-4);
    /* gradients accumulate */
    float dx2[N * C];
    memcpy(dx2, dx, sizeof dx);
    rd_layernorm_backward(dx2, NULL, NULL, c.probe, c.x, c.mean, c.rstd, c.w, N, C);
    for (int i = 0; i < N * C; i++) dx[i] *= 2.0f;
    CHECK_CLOSE("accumulated dx", dx2, dx, N * C, 1e-6, 1e-7);
}

static const rd_test_case cases[] = {
    {"forward_matches_double_reference", forward_matches_double_reference},
    {"backward_matches_finite_differences", backward_matches_finite_differences},
};
RD_TEST_MAIN("nn/layernorm", cases)
