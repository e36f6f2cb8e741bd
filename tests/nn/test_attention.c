/* Multi-head self-attention core (tiled, online softmax): forward output, log-sum-exp and the
 * backward's dqkv against a double-precision softmax(q k^T/sqrt(hd)) v per head, at shapes that
 * cover every tile case (T = 1, T below, equal to and not a multiple of the tile sizes, several
 * key tiles, hd 4..128, T = 1370 as in ViT-B/14 at 518 px), scores large enough to overflow exp
 * without the max subtraction, finite differences, and identical results on 1 and 2 threads.
 *
 * Tolerance against the double reference: |got - want| <= 1e-5 |want| + 1e-5 max|want| per
 * array (max|want| floors the elements that cancel to ~0, where a relative bound says nothing).
 * Every case here passes at 1e-6 (fp32 rounding of sums over up to 1370 terms); a wrong tile or
 * a missed rescale is off by O(1e-2..1). Keeping the log-sum-exp as one float instead of max and
 * log-sum fails the large-score case at 1e-5 (2.4e-5 in dq). */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "attention_shapes.h"
#include "harness.h"
#include "rdino/nn.h"
#include "rdino/rng.h"

typedef struct att_case {
    shape s;
    float *qkv, *dout, *out, *lse, *dqkv, *scratch;
} att_case;

/* Inputs of standard deviation sigma (q, k, v) and 1 (dout); dqkv starts random so that the
 * backward's += is checked too. */
static att_case make_case(shape s, double sigma, uint64_t seed) {
    att_case c = {.s = s};
    c.qkv = malloc(n_qkv(s) * sizeof(float));
    c.dqkv = malloc(n_qkv(s) * sizeof(float));
    c.dout = malloc(n_out(s) * sizeof(float));
    c.out = malloc(n_out(s) * sizeof(float));
    c.lse = malloc(n_lse(s) * sizeof(float));
    int threads = omp_get_max_threads() > 2 ? omp_get_max_threads() : 2; /* thread test: 2 */
    c.scratch =
        malloc((size_t)threads * rd_attention_scratch_floats(s.T, s.D / s.H) * sizeof(float));
    rd_rng r;
    rd_rng_init(&r, seed, RD_RNG_TEST, 0, 0, 0);
    for (size_t i = 0; i < n_qkv(s); i++) c.qkv[i] = (float)(sigma * rd_rng_normal(&r));
    for (size_t i = 0; i < n_qkv(s); i++) c.dqkv[i] = (float)rd_rng_normal(&r);
    for (size_t i = 0; i < n_out(s); i++) c.dout[i] = (float)rd_rng_normal(&r);
    return c;
}

static void free_case(att_case *c) {
    free(c->qkv), free(c->dqkv), free(c->dout), free(c->out), free(c->lse), free(c->scratch);
}

/* In double, head by head: out = P v, lse = (max_j s_ij, log sum_j exp(s_ij - max)), and the
 * gradients of
 * sum(out * dout): dv = P^T dO, dS = P (dO v^T - rowsum(P dO v^T)), dq = scale dS k,
 * dk = scale dS^T q, added to the starting dqkv. Results rounded to float for CHECK_CLOSE. */
static void reference(float *out, float *lse, float *dqkv, const att_case *c) {
    int b = c->s.b, T = c->s.T, D = c->s.D, H = c->s.H, hd = D / H, ld = 3 * D;
    double scale = 1.0 / sqrt((double)hd);
    double *p = malloc((size_t)T * T * sizeof(double)), *ds = malloc((size_t)T * sizeof(double));
    double *grad = calloc(n_qkv(c->s), sizeof(double));
    for (int i = 0; i < b; i++)
        for (int h = 0; h < H; h++) {
            const float *q = c->qkv + (size_t)i * T * ld + h * hd, *k = q + D, *v = q + 2 * D;
            const float *dO = c->dout + (size_t)i * T * D + h * hd;
            double *dq = grad + (size_t)i * T * ld + h * hd, *dk = dq + D, *dv = dq + 2 * D;
            for (int r = 0; r < T; r++) {
                double *pr = p + (size_t)r * T, mx = -INFINITY, sum = 0;
                for (int j = 0; j < T; j++) {
                    double s = 0;
                    for (int d = 0; d < hd; d++) s += (double)q[r * ld + d] * k[j * ld + d];
                    pr[j] = s * scale;
                    mx = fmax(mx, pr[j]);
                }
                for (int j = 0; j < T; j++) sum += pr[j] = exp(pr[j] - mx);
                for (int j = 0; j < T; j++) pr[j] /= sum;
                lse[((size_t)i * H + h) * 2 * T + r] = (float)mx;
                /* sum >= 1: the maximum contributes exp(0) */
                // cppcheck-suppress invalidFunctionArg
                lse[((size_t)i * H + h) * 2 * T + T + r] = (float)log(sum);
                for (int d = 0; d < hd; d++) {
                    double o = 0;
                    for (int j = 0; j < T; j++) o += pr[j] * v[j * ld + d];
                    out[((size_t)i * T + r) * D + h * hd + d] = (float)o;
                }
                /* ds = P (dP - rowsum(P dP)), dP = dO v^T */
                double dot = 0;
                for (int j = 0; j < T; j++) {
                    double g = 0;
                    for (int d = 0; d < hd; d++) g += (double)dO[r * D + d] * v[j * ld + d];
                    ds[j] = g;
                    dot += pr[j] * g;
                }
                for (int j = 0; j < T; j++) {
                    ds[j] = pr[j] * (ds[j] - dot);
                    for (int d = 0; d < hd; d++) {
                        dv[j * ld + d] += pr[j] * dO[r * D + d];
                        dq[r * ld + d] += scale * ds[j] * k[j * ld + d];
                        dk[j * ld + d] += scale * ds[j] * q[r * ld + d];
                    }
                }
            }
        }
    for (size_t n = 0; n < n_qkv(c->s); n++) dqkv[n] = (float)(c->dqkv[n] + grad[n]);
    free(p), free(ds), free(grad);
}

static double max_abs(const float *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(x[i]));
    return m;
}

#define CHECK_ARRAY(what, got, want, n)                                                            \
    CHECK_CLOSE(what, got, want, n, 1e-5, 1e-5 * max_abs(want, n))

/* Forward, log-sum-exp and backward of one case against the double reference. */
static void check_against_reference(rd_test *t, att_case *c) {
    shape s = c->s;
    float *out = malloc(n_out(s) * sizeof(float)), *lse = malloc(n_lse(s) * sizeof(float));
    float *dqkv = malloc(n_qkv(s) * sizeof(float));
    reference(out, lse, dqkv, c);
    rd_attention_forward(c->out, c->lse, c->scratch, c->qkv, s.b, s.T, s.D, s.H);
    rd_attention_backward(c->dqkv, c->scratch, c->dout, c->out, c->qkv, c->lse, s.b, s.T, s.D, s.H);
    CHECK_ARRAY("out", c->out, out, n_out(s));
    CHECK_ARRAY("lse", c->lse, lse, n_lse(s));
    CHECK_ARRAY("dq", c->dqkv, dqkv, n_qkv(s)); /* q, k and v blocks together */
    free(out), free(lse), free(dqkv);
}

static void matches_double_reference_at_tile_edges(rd_test *t) {
    /* tiles: 64 queries by 128 keys (src/nn/attention.c) */
    static const shape shapes[] = {
        {2, 5, 12, 3},    /* hd 4: fewer channels than a vector */
        {3, 1, 64, 2},    /* T = 1 */
        {2, 17, 48, 2},   /* hd 24: not a whole number of 16-float vectors */
        {2, 64, 64, 2},   /* exactly one query tile */
        {3, 50, 96, 3},   /* hd 32 */
        {1, 130, 128, 2}, /* 3 query tiles (64, 64, 2), 2 key tiles (128, 2) */
        {1, 257, 32, 2},  /* hd 16, ViT at 224 px: 257 tokens */
        {1, 200, 256, 2}, /* hd 128 */
    };
    for (size_t n = 0; n < sizeof shapes / sizeof shapes[0]; n++) {
        att_case c = make_case(shapes[n], 1.5, 10 + n);
        check_against_reference(t, &c);
        free_case(&c);
    }
}

static void matches_double_reference_at_518px(rd_test *t) {
    att_case c = make_case((shape){1, 1370, 64, 1}, 1.5, 3); /* one ViT-B/14 head at 518 px */
    check_against_reference(t, &c);
    free_case(&c);
}

/* Scores of 512, where exp(s) overflows fp32 (beyond 88): tokens in groups of 3 share one
 * vector u_g of +-8 entries as both query and key (hd 64), so each query scores 64 * 64 / 8 =
 * 512 against the 3 keys of its group and u_g . u_g' / 8 ~ N(0, 64^2) against the others. Every
 * score is an exact multiple of 8 in fp32, so only the softmax's own rounding is compared; the
 * rows are not one-hot (about 1/3 on each key of the group), so the gradients are not ~0. */
static void large_scores_do_not_overflow(rd_test *t) {
    shape s = {2, 150, 128, 2};
    att_case c = make_case(s, 1.0, 4);
    rd_rng r;
    rd_rng_init(&r, 4, RD_RNG_TEST, 1, 0, 0);
    for (int i = 0; i < s.b * s.T; i++) {
        float *q = c.qkv + (size_t)i * 3 * s.D, *k = q + s.D;
        const float *lead = c.qkv + (size_t)(i - i % 3) * 3 * s.D; /* first of the group */
        for (int ch = 0; ch < s.D; ch++)
            q[ch] = k[ch] = i % 3 ? lead[ch] : (rd_rng_u32(&r) & 1 ? 8.0f : -8.0f);
    }
    check_against_reference(t, &c);
    free_case(&c);
}

static double att_loss(void *p) {
    att_case *c = p;
    shape s = c->s;
    rd_attention_forward(c->out, NULL, c->scratch, c->qkv, s.b, s.T, s.D, s.H);
    double sum = 0;
    for (size_t i = 0; i < n_out(s); i++) sum += (double)c->out[i] * c->dout[i];
    return sum;
}

/* Central differences, step 1e-2 on inputs of size ~1.5: |fd - g| <= 1e-4 + 1e-3 |fd|. Both the
 * truncation error of the step (h^2 f''' / 6) and the fp32 rounding of the loss over n outputs
 * (~sqrt(n) 6e-8 / 2h) stay below. The second case spans 3 query and 2 key tiles; its loss reads
 * 6 query rows, one at each tile edge, to keep n small (with all 140 rows the rounding reaches
 * 2.5e-4); k and v still get gradients through every key tile. */
static void backward_matches_finite_differences(rd_test *t) {
    static const shape shapes[] = {{2, 5, 12, 3}, {1, 140, 32, 1}};
    for (size_t n = 0; n < 2; n++) {
        att_case c = make_case(shapes[n], 1.5, 20 + n);
        shape s = c.s;
        if (s.T > 64)
            for (int r = 0; r < s.T; r++)
                if (r != 0 && r != 63 && r != 64 && r != 127 && r != 128 && r != s.T - 1)
                    memset(c.dout + (size_t)r * s.D, 0, (size_t)s.D * sizeof(float));
        memset(c.dqkv, 0, n_qkv(s) * sizeof(float));
        rd_attention_forward(c.out, c.lse, c.scratch, c.qkv, s.b, s.T, s.D, s.H);
        rd_attention_backward(c.dqkv, c.scratch, c.dout, c.out, c.qkv, c.lse, s.b, s.T, s.D, s.H);
        CHECK_GRAD("dqkv", c.qkv, c.dqkv, n_qkv(s), att_loss, &c, 1e-2, 1e-3, 1e-4);
        /* adding one vector to every key changes no softmax: the key gradients sum to 0 */
        for (int d = 0; d < s.D; d++) {
            double sum = 0;
            for (int i = 0; i < s.b * s.T; i++) sum += c.dqkv[(size_t)i * 3 * s.D + s.D + d];
            CHECK_NEAR(sum, 0.0, 1e-4);
        }
        free_case(&c);
    }
}

/* The same bits on 1 and 2 threads (each head's sums run in one fixed order), and the
 * inference call (no log-sum-exp) gives the training call's output. */
static void threads_and_inference_give_identical_results(rd_test *t) {
    shape s = {2, 130, 128, 2};
    att_case one = make_case(s, 1.5, 30), two = make_case(s, 1.5, 30);
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    rd_attention_forward(one.out, one.lse, one.scratch, one.qkv, s.b, s.T, s.D, s.H);
    rd_attention_backward(one.dqkv, one.scratch, one.dout, one.out, one.qkv, one.lse, s.b, s.T, s.D,
                          s.H);
    omp_set_num_threads(2);
    rd_attention_forward(two.out, two.lse, two.scratch, two.qkv, s.b, s.T, s.D, s.H);
    rd_attention_backward(two.dqkv, two.scratch, two.dout, two.out, two.qkv, two.lse, s.b, s.T, s.D,
                          s.H);
    CHECK(memcmp(one.out, two.out, n_out(s) * sizeof(float)) == 0);
    CHECK(memcmp(one.lse, two.lse, n_lse(s) * sizeof(float)) == 0);
    CHECK(memcmp(one.dqkv, two.dqkv, n_qkv(s) * sizeof(float)) == 0);
    rd_attention_forward(two.out, NULL, two.scratch, two.qkv, s.b, s.T, s.D, s.H);
    CHECK(memcmp(one.out, two.out, n_out(s) * sizeof(float)) == 0);
    omp_set_num_threads(saved);
    free_case(&one), free_case(&two);
}

static const rd_test_case cases[] = {
    {"matches_double_reference_at_tile_edges", matches_double_reference_at_tile_edges},
    {"matches_double_reference_at_518px", matches_double_reference_at_518px},
    {"large_scores_do_not_overflow", large_scores_do_not_overflow},
    {"backward_matches_finite_differences", backward_matches_finite_differences},
    {"threads_and_inference_give_identical_results", threads_and_inference_give_identical_results},
};
RD_TEST_MAIN("nn/attention", cases)
