/* SwiGLU gate of DINOv2's "swiglufused" FFN: silu(a1) * a2 against double (rtol 1e-6, atol
 * 1e-7), backward against central finite differences (step 1e-2, |fd - g| <= 1e-4 + 1e-3 |fd|). */
#include <math.h>

#include "harness.h"
#include "rdino/nn.h"
#include "rdino/rng.h"

enum { N = 6, H = 9 };

typedef struct sw_case {
    float in[N * 2 * H], out[N * H], probe[N * H];
} sw_case;

static double sw_loss(void *p) {
    sw_case *c = p;
    rd_swiglu_forward(c->out, c->in, N, H);
    double s = 0;
    for (int i = 0; i < N * H; i++) s += (double)c->out[i] * c->probe[i];
    return s;
}

static void swiglu_values_and_gradient(rd_test *t) {
    sw_case c;
    rd_rng r;
    rd_rng_init(&r, 29, RD_RNG_TEST, 0, 0, 0);
    for (int i = 0; i < N * 2 * H; i++) c.in[i] = (float)(3 * rd_rng_normal(&r));
    for (int i = 0; i < N * H; i++) c.probe[i] = (float)rd_rng_normal(&r);
    sw_loss(&c);
    float want[N * H];
    for (int n = 0; n < N; n++)
        for (int k = 0; k < H; k++) {
            double a = c.in[n * 2 * H + k], b = c.in[n * 2 * H + H + k];
            want[n * H + k] = (float)(a / (1 + exp(-a)) * b);
        }
    CHECK_CLOSE("swiglu", c.out, want, N * H, 1e-6, 1e-7);
    float din[N * 2 * H] = {0};
    rd_swiglu_backward(din, c.probe, c.in, N, H);
    CHECK_GRAD("dinp", c.in, din, N * 2 * H, sw_loss, &c, 1e-2, 1e-3, 1e-4);
}

static const rd_test_case cases[] = {
    {"swiglu_values_and_gradient", swiglu_values_and_gradient},
};
RD_TEST_MAIN("nn/swiglu", cases)
