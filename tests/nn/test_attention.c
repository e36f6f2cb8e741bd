/* Multi-head self-attention core: forward against a double-precision softmax(q k^T/sqrt(hd)) v
 * per head (rtol 1e-5, atol 1e-6), the inference path (no kept probabilities) equal to the
 * training path, probabilities summing to 1, and the backward against central finite
 * differences (step 1e-2, |fd - g| <= 1e-4 + 1e-3 |fd|). */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "rdino/nn.h"
#include "rdino/rng.h"

enum { B = 2, T = 5, D = 12, H = 3, HD = D / H };

typedef struct att_case {
    float qkv[B * T * 3 * D], out[B * T * D], att[B * H * T * T], probe[B * T * D];
    float *scratch;
} att_case;

static void setup(att_case *c) {
    rd_rng r;
    rd_rng_init(&r, 13, RD_RNG_TEST, 0, 0, 0);
    for (int i = 0; i < B * T * 3 * D; i++) c->qkv[i] = (float)(1.5 * rd_rng_normal(&r));
    for (int i = 0; i < B * T * D; i++) c->probe[i] = (float)rd_rng_normal(&r);
    c->scratch =
        malloc((size_t)omp_get_max_threads() * rd_attention_scratch_floats(T) * sizeof(float));
}

static double att_loss(void *p) {
    att_case *c = p;
    rd_attention_forward(c->out, c->att, c->scratch, c->qkv, B, T, D, H);
    double s = 0;
    for (int i = 0; i < B * T * D; i++) s += (double)c->out[i] * c->probe[i];
    return s;
}

static void forward_matches_double_reference(rd_test *t) {
    att_case c;
    setup(&c);
    rd_attention_forward(c.out, c.att, c.scratch, c.qkv, B, T, D, H);
    float want[B * T * D];
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < T; i++) {
                const float *q = c.qkv + (b * T + i) * 3 * D + h * HD;
                double s[T], mx = -INFINITY, sum = 0, rowsum = 0;
                for (int j = 0; j < T; j++) {
                    const float *k = c.qkv + (b * T + j) * 3 * D + D + h * HD;
                    s[j] = 0;
                    for (int d = 0; d < HD; d++) s[j] += (double)q[d] * k[d];
                    s[j] /= sqrt((double)HD);
                    mx = fmax(mx, s[j]);
                }
                for (int j = 0; j < T; j++) sum += s[j] = exp(s[j] - mx);
                for (int j = 0; j < T; j++) rowsum += c.att[((b * H + h) * T + i) * T + j];
                CHECK_NEAR(rowsum, 1.0, 1e-6);
                for (int d = 0; d < HD; d++) {
                    double o = 0;
                    for (int j = 0; j < T; j++)
                        o += s[j] / sum * c.qkv[(b * T + j) * 3 * D + 2 * D + h * HD + d];
                    want[(b * T + i) * D + h * HD + d] = (float)o;
                }
            }
    CHECK_CLOSE("attention", c.out, want, B * T * D, 1e-5, 1e-6);
    float infer[B * T * D];
    rd_attention_forward(infer, NULL, c.scratch, c.qkv, B, T, D, H);
    CHECK(memcmp(infer, c.out, sizeof infer) == 0);
    free(c.scratch);
}

static void backward_matches_finite_differences(rd_test *t) {
    att_case c;
    setup(&c);
    float dqkv[B * T * 3 * D] = {0};
    att_loss(&c);
    rd_attention_backward(dqkv, c.scratch, c.probe, c.qkv, c.att, B, T, D, H);
    CHECK_GRAD("dqkv", c.qkv, dqkv, B * T * 3 * D, att_loss, &c, 1e-2, 1e-3, 1e-4);
    /* the key bias direction: adding a constant vector to every key changes nothing */
    double kmean = 0;
    for (int b = 0; b < B; b++)
        for (int i = 0; i < T; i++) kmean += dqkv[(b * T + i) * 3 * D + D];
    CHECK_NEAR(kmean, 0.0, 1e-5);
    free(c.scratch);
}

static const rd_test_case cases[] = {
    {"forward_matches_double_reference", forward_matches_double_reference},
    {"backward_matches_finite_differences", backward_matches_finite_differences},
};
RD_TEST_MAIN("nn/attention", cases)
