/* The attention forward with bf16 products (rd_attention_forward_bf16) against a double
 * reference computed from the same bf16-rounded operands: the scaled q, k and v rounded to bf16
 * as the kernels round them, then s = q k^T, softmax and P v in double. What the reference
 * leaves out is the rounding of the probabilities to bf16 before P v (relative error <= 2^-9
 * each, so |out - ref| <= 2^-9 max|v| per head) and the fp32 sums (~T 2^-24); the bound checked,
 * per element, is 2^-8 max|v| + 1e-5 |ref|. The log-sum-exp is exact up to fp32 sums: 1e-5.
 * A wrong pair order, a stale key tile or a missed rescale is off by O(0.1..1).
 *
 * Then the properties: the emulated path gives the AVX512-BF16 path's bits (skipped, with the
 * reason, on a CPU without it), 1 and 2 threads give the same bits, the fp32 path is
 * rd_attention_forward exactly, and the output is close to fp32 attention (cosine per row).
 *
 * The backward (rd_attention_backward_bf16) against the fp32 backward (tests/nn/test_attention.c
 * checks that one against a double reference and finite differences) on the same q, k, v and
 * dout, each after its own forward: each of dq, dk, dv of every head within 2^-5 of that
 * head's largest fp32 value of it and within 2 % in relative 2-norm. The bf16 roundings of q, k,
 * v, dout, P and dS (~2^-9 each) gave at most 1.3 % of the largest and 1.1 % in norm over these
 * shapes (the most at hd 4, where few products average them out; 0.7 % and 0.6 % at hd 64, T
 * 1370); a missing query or key pair is off by 30-100 %. Then the same bit rules. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "attention_shapes.h"
#include "harness.h"
#include "rdino/gemm_bf16.h"
#include "rdino/nn.h"
#include "rdino/rng.h"

static float *random_floats(size_t n, double sigma, uint64_t seed) {
    float *x = malloc(n * sizeof(float));
    rd_rng r;
    rd_rng_init(&r, seed, RD_RNG_TEST, 0, 0, 0);
    for (size_t i = 0; i < n; i++) x[i] = (float)(sigma * rd_rng_normal(&r));
    return x;
}

static float *random_qkv(shape s, double sigma, uint64_t seed) {
    return random_floats(n_qkv(s), sigma, seed);
}

static float *scratch_for(shape s) {
    int threads = omp_get_max_threads() > 2 ? omp_get_max_threads() : 2; /* thread test: 2 */
    return malloc((size_t)threads * rd_attention_bf16_scratch_floats(s.T, s.D / s.H) *
                  sizeof(float));
}

static double bf16(float x) {
    return rd_bf16_to_float(rd_bf16_from_float(x));
}

/* out and lse in double from bf16(q * scale), bf16(k), bf16(v), as described above. */
static void reference(double *out, double *lse, const float *qkv, shape s) {
    int T = s.T, D = s.D, H = s.H, hd = D / H, ld = 3 * D;
    float scale = 1.0f / sqrtf((float)hd);
    double *p = malloc((size_t)T * sizeof(double));
    for (int i = 0; i < s.b; i++)
        for (int h = 0; h < H; h++) {
            const float *q = qkv + (size_t)i * T * ld + h * hd, *k = q + D, *v = q + 2 * D;
            for (int r = 0; r < T; r++) {
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j < T; j++) {
                    double dot = 0;
                    for (int d = 0; d < hd; d++)
                        dot += bf16(scale * q[r * ld + d]) * bf16(k[j * ld + d]);
                    p[j] = dot;
                    mx = fmax(mx, dot);
                }
                for (int j = 0; j < T; j++) sum += p[j] = exp(p[j] - mx);
                lse[((size_t)i * H + h) * 2 * T + r] = mx;
                // cppcheck-suppress invalidFunctionArg
                lse[((size_t)i * H + h) * 2 * T + T + r] = log(sum); /* sum >= 1 */
                for (int d = 0; d < hd; d++) {
                    double o = 0;
                    for (int j = 0; j < T; j++) o += p[j] * bf16(v[j * ld + d]);
                    out[((size_t)i * T + r) * D + h * hd + d] = o / sum;
                }
            }
        }
    free(p);
}

/* Largest |v| of each (image, head), the scale of the probabilities' rounding error. */
static double max_v(const float *qkv, shape s, int i, int h) {
    int hd = s.D / s.H;
    double m = 0;
    for (int t = 0; t < s.T; t++)
        for (int d = 0; d < hd; d++)
            m = fmax(m, fabs(qkv[((size_t)i * s.T + t) * 3 * s.D + 2 * s.D + h * hd + d]));
    return m;
}

static void check_case(rd_test *t, shape s, rd_bf16_path path, uint64_t seed) {
    float *qkv = random_qkv(s, 1.5, seed), *scratch = scratch_for(s);
    float *out = malloc(n_out(s) * sizeof(float)), *lse = malloc(n_lse(s) * sizeof(float));
    double *want = malloc(n_out(s) * sizeof(double)), *want_lse = malloc(n_lse(s) * sizeof(double));
    reference(want, want_lse, qkv, s);
    rd_attention_forward_bf16(out, lse, scratch, qkv, s.b, s.T, s.D, s.H, path);
    int hd = s.D / s.H, bad = 0;
    double worst = 0;
    for (int i = 0; i < s.b; i++)
        for (int h = 0; h < s.H; h++) {
            double bound_v = 0x1p-8 * max_v(qkv, s, i, h);
            for (int r = 0; r < s.T; r++)
                for (int d = 0; d < hd; d++) {
                    size_t at = ((size_t)i * s.T + r) * s.D + h * hd + d;
                    double err = fabs(out[at] - want[at]), bound = bound_v + 1e-5 * fabs(want[at]);
                    worst = fmax(worst, err / bound);
                    bad += !(err <= bound);
                }
        }
    for (size_t n = 0; n < n_lse(s); n++) {
        double err = fabs(lse[n] - want_lse[n]), bound = 1e-5 * (1 + fabs(want_lse[n]));
        bad += !(err <= bound);
    }
    if (bad)
        rd_test_fail(t, __FILE__, __LINE__,
                     "b %d T %d D %d H %d (%s): %d values outside the bound (worst out error "
                     "%.2f x its bound)",
                     s.b, s.T, s.D, s.H, rd_bf16_path_name(path), bad, worst);
    free(qkv), free(scratch), free(out), free(lse), free(want), free(want_lse);
}

/* Tiles: 64 queries by 128 keys (src/nn/attention.c); pairs along hd and along the keys. */
static const shape edge_shapes[] = {
    {2, 5, 12, 3},    /* hd 4: fewer channels than a vector; T odd: a key pair padded */
    {3, 1, 64, 2},    /* T = 1 */
    {2, 17, 42, 2},   /* hd 21: odd, a channel pair padded */
    {2, 64, 64, 2},   /* exactly one query tile */
    {3, 50, 96, 3},   /* hd 32 */
    {1, 131, 128, 2}, /* 3 query tiles (64, 64, 3), 2 key tiles (128, 3 = one pair and a half) */
    {1, 257, 32, 2},  /* hd 16, ViT at 224 px: 257 tokens */
    {1, 200, 256, 2}, /* hd 128 */
};

typedef void check_fn(rd_test *t, shape s, rd_bf16_path path, uint64_t seed);

/* check at every edge shape, then (AVX512-BF16 only: the emulated path is slow there) at a
 * ViT-B/14 head at 518 px */
static void check_edges(rd_test *t, check_fn *check, rd_bf16_path path, uint64_t seed) {
    for (size_t n = 0; n < sizeof edge_shapes / sizeof edge_shapes[0]; n++)
        check(t, edge_shapes[n], path, seed + n);
    if (path == RD_BF16_PATH_AVX512) check(t, (shape){1, 1370, 64, 1}, path, seed + 99);
}

static void emulated_matches_reference_at_tile_edges(rd_test *t) {
    check_edges(t, check_case, RD_BF16_PATH_EMULATED, 10);
}

static void avx512_matches_reference_at_tile_edges(rd_test *t) {
    if (!rd_bf16_cpu_has()) SKIP("this CPU has no AVX512-BF16 (the emulated path is checked)");
    check_edges(t, check_case, RD_BF16_PATH_AVX512, 10);
}

/* out and lse of the 2-thread, with-lse emulated call, against another call's. */
static void check_same_bits(rd_test *t, shape s, const float *qkv, float *scratch, int threads,
                            int with_lse, rd_bf16_path path) {
    float *base = malloc(n_out(s) * sizeof(float)), *base_lse = malloc(n_lse(s) * sizeof(float));
    float *out = malloc(n_out(s) * sizeof(float)), *lse = calloc(n_lse(s), sizeof(float));
    int saved = omp_get_max_threads();
    omp_set_num_threads(2);
    rd_attention_forward_bf16(base, base_lse, scratch, qkv, s.b, s.T, s.D, s.H,
                              RD_BF16_PATH_EMULATED);
    omp_set_num_threads(threads);
    rd_attention_forward_bf16(out, with_lse ? lse : NULL, scratch, qkv, s.b, s.T, s.D, s.H, path);
    omp_set_num_threads(saved);
    CHECK(memcmp(base, out, n_out(s) * sizeof(float)) == 0);
    if (with_lse) CHECK(memcmp(base_lse, lse, n_lse(s) * sizeof(float)) == 0);
    free(base), free(base_lse), free(out), free(lse);
}

static const shape bits_shape = {2, 131, 128, 2};

static void same_bits_on_1_and_2_threads(rd_test *t) {
    float *qkv = random_qkv(bits_shape, 1.5, 30), *scratch = scratch_for(bits_shape);
    check_same_bits(t, bits_shape, qkv, scratch, 1, 1, RD_BF16_PATH_EMULATED);
    check_same_bits(t, bits_shape, qkv, scratch, 1, 0, RD_BF16_PATH_EMULATED);
    free(qkv), free(scratch);
}

static void avx512_gives_the_emulated_bits(rd_test *t) {
    if (!rd_bf16_cpu_has()) SKIP("this CPU has no AVX512-BF16 (the emulated path is checked)");
    float *qkv = random_qkv(bits_shape, 1.5, 31), *scratch = scratch_for(bits_shape);
    for (int threads = 1; threads <= 2; threads++)
        check_same_bits(t, bits_shape, qkv, scratch, threads, threads == 2, RD_BF16_PATH_AVX512);
    free(qkv), free(scratch);
}

/* The fp32 path is rd_attention_forward, bit for bit; bf16 stays close to it (cosine of every
 * output row of every head >= 0.999, as the embeddings' bound). */
static void fp32_path_is_fp32_attention_and_bf16_is_close(rd_test *t) {
    shape s = {2, 200, 128, 2};
    float *qkv = random_qkv(s, 1.0, 40), *scratch = scratch_for(s);
    float *fp32 = malloc(n_out(s) * sizeof(float)), *out = malloc(n_out(s) * sizeof(float));
    rd_attention_forward(fp32, NULL, scratch, qkv, s.b, s.T, s.D, s.H);
    rd_attention_forward_bf16(out, NULL, scratch, qkv, s.b, s.T, s.D, s.H, RD_BF16_PATH_FP32);
    CHECK(memcmp(fp32, out, n_out(s) * sizeof(float)) == 0);
    rd_attention_forward_bf16(out, NULL, scratch, qkv, s.b, s.T, s.D, s.H, RD_BF16_PATH_EMULATED);
    int hd = s.D / s.H;
    double worst = 1;
    for (size_t row = 0; row < (size_t)s.b * s.T * s.H; row++) {
        const float *a = fp32 + row * hd, *b = out + row * hd;
        double ab = 0, aa = 0, bb = 0;
        for (int d = 0; d < hd; d++)
            ab += (double)a[d] * b[d], aa += (double)a[d] * a[d], bb += (double)b[d] * b[d];
        worst = fmin(worst, ab / sqrt(aa * bb));
    }
    CHECK_NEAR(worst, 1.0, 1e-3);
    free(qkv), free(scratch), free(fp32), free(out);
}

/* ---- the backward ----------------------------------------------------------------------- */

typedef struct grads {
    float *dqkv, *out, *lse;
} grads;

/* dqkv of the path (RD_BF16_PATH_FP32: rd_attention_forward and rd_attention_backward) for
 * dout, each path after its own forward; dqkv starts at 0.25 to check that it is added to. */
static grads backward_of(shape s, const float *qkv, const float *dout, float *scratch,
                         rd_bf16_path path) {
    grads g = {malloc(n_qkv(s) * sizeof(float)), malloc(n_out(s) * sizeof(float)),
               malloc(n_lse(s) * sizeof(float))};
    for (size_t n = 0; n < n_qkv(s); n++) g.dqkv[n] = 0.25f;
    if (path == RD_BF16_PATH_FP32) {
        rd_attention_forward(g.out, g.lse, scratch, qkv, s.b, s.T, s.D, s.H);
        rd_attention_backward(g.dqkv, scratch, dout, g.out, qkv, g.lse, s.b, s.T, s.D, s.H);
    } else {
        rd_attention_forward_bf16(g.out, g.lse, scratch, qkv, s.b, s.T, s.D, s.H, path);
        rd_attention_backward_bf16(g.dqkv, scratch, dout, g.out, qkv, g.lse, s.b, s.T, s.D, s.H,
                                   path);
    }
    return g;
}

static void grads_free(grads g) {
    free(g.dqkv), free(g.out), free(g.lse);
}

static void check_backward_case(rd_test *t, shape s, rd_bf16_path path, uint64_t seed) {
    float *qkv = random_qkv(s, 1.5, seed), *dout = random_floats(n_out(s), 1.0, seed + 100);
    float *scratch = scratch_for(s);
    grads want = backward_of(s, qkv, dout, scratch, RD_BF16_PATH_FP32);
    grads got = backward_of(s, qkv, dout, scratch, path);
    int hd = s.D / s.H, bad = 0;
    double worst_max = 0, worst_norm = 0;
    for (int i = 0; i < s.b; i++)
        for (int h = 0; h < s.H; h++) {
            double top[3] = {0}, err_max[3] = {0}, err2[3] = {0}, norm2[3] = {0};
            for (int part = 0; part < 3; part++) /* dq, dk, dv of head h */
                for (int r = 0; r < s.T; r++)
                    for (int d = 0; d < hd; d++) {
                        size_t at = ((size_t)i * s.T + r) * 3 * s.D + (size_t)part * s.D +
                                    (size_t)h * hd + d;
                        double w = want.dqkv[at] - 0.25, e = got.dqkv[at] - want.dqkv[at];
                        top[part] = fmax(top[part], fabs(w));
                        err_max[part] = fmax(err_max[part], fabs(e));
                        err2[part] += e * e, norm2[part] += w * w;
                    }
            for (int part = 0; part < 3; part++) {
                /* one key: P = 1 whatever the scores, so dq = dk = 0; measured against dv */
                double scale = s.T == 1 ? top[2] : top[part];
                double norm = s.T == 1 ? norm2[2] : norm2[part];
                worst_max = fmax(worst_max, err_max[part] / scale);
                worst_norm = fmax(worst_norm, sqrt(err2[part] / norm));
                bad += !(err_max[part] <= 0x1p-5 * scale) + !(err2[part] <= 4e-4 * norm);
            }
        }
    if (bad)
        rd_test_fail(
            t, __FILE__, __LINE__,
            "b %d T %d D %d H %d (%s): %d gradients off fp32 (worst: max error %.4f of the "
            "largest, relative 2-norm %.4f)",
            s.b, s.T, s.D, s.H, rd_bf16_path_name(path), bad, worst_max, worst_norm);
    grads_free(want), grads_free(got);
    free(qkv), free(dout), free(scratch);
}

static void backward_emulated_close_to_fp32_at_tile_edges(rd_test *t) {
    check_edges(t, check_backward_case, RD_BF16_PATH_EMULATED, 50);
}

static void backward_avx512_close_to_fp32_at_tile_edges(rd_test *t) {
    if (!rd_bf16_cpu_has()) SKIP("this CPU has no AVX512-BF16 (the emulated path is checked)");
    check_edges(t, check_backward_case, RD_BF16_PATH_AVX512, 50);
}

/* The 2-thread emulated backward's dqkv against the path's on threads. */
static void check_backward_bits(rd_test *t, const float *qkv, const float *dout, float *scratch,
                                int threads, rd_bf16_path path) {
    shape s = bits_shape;
    int saved = omp_get_max_threads();
    omp_set_num_threads(2);
    grads base = backward_of(s, qkv, dout, scratch, RD_BF16_PATH_EMULATED);
    omp_set_num_threads(threads);
    grads got = backward_of(s, qkv, dout, scratch, path);
    omp_set_num_threads(saved);
    CHECK(memcmp(base.dqkv, got.dqkv, n_qkv(s) * sizeof(float)) == 0);
    grads_free(base), grads_free(got);
}

static void backward_same_bits_on_threads_and_paths(rd_test *t) {
    float *qkv = random_qkv(bits_shape, 1.5, 60), *scratch = scratch_for(bits_shape);
    float *dout = random_floats(n_out(bits_shape), 1.0, 61);
    check_backward_bits(t, qkv, dout, scratch, 1, RD_BF16_PATH_EMULATED);
    if (rd_bf16_cpu_has())
        for (int threads = 1; threads <= 2; threads++)
            check_backward_bits(t, qkv, dout, scratch, threads, RD_BF16_PATH_AVX512);
    /* the fp32 path is rd_attention_backward, bit for bit */
    grads fp32 = backward_of(bits_shape, qkv, dout, scratch, RD_BF16_PATH_FP32);
    grads g = {malloc(n_qkv(bits_shape) * sizeof(float)), NULL, NULL};
    for (size_t n = 0; n < n_qkv(bits_shape); n++) g.dqkv[n] = 0.25f;
    rd_attention_backward_bf16(g.dqkv, scratch, dout, fp32.out, qkv, fp32.lse, bits_shape.b,
                               bits_shape.T, bits_shape.D, bits_shape.H, RD_BF16_PATH_FP32);
    CHECK(memcmp(fp32.dqkv, g.dqkv, n_qkv(bits_shape) * sizeof(float)) == 0);
    grads_free(fp32), grads_free(g);
    free(qkv), free(dout), free(scratch);
}

static const rd_test_case cases[] = {
    {"emulated_matches_reference_at_tile_edges", emulated_matches_reference_at_tile_edges},
    {"avx512_matches_reference_at_tile_edges", avx512_matches_reference_at_tile_edges},
    {"same_bits_on_1_and_2_threads", same_bits_on_1_and_2_threads},
    {"avx512_gives_the_emulated_bits", avx512_gives_the_emulated_bits},
    {"fp32_path_is_fp32_attention_and_bf16_is_close",
     fp32_path_is_fp32_attention_and_bf16_is_close},
    {"backward_emulated_close_to_fp32_at_tile_edges",
     backward_emulated_close_to_fp32_at_tile_edges},
    {"backward_avx512_close_to_fp32_at_tile_edges", backward_avx512_close_to_fp32_at_tile_edges},
    {"backward_same_bits_on_threads_and_paths", backward_same_bits_on_threads_and_paths},
};
RD_TEST_MAIN("nn/attention_bf16", cases)
