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
 * rd_attention_forward exactly, and the output is close to fp32 attention (cosine per row). */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "attention_shapes.h"
#include "harness.h"
#include "rdino/gemm_bf16.h"
#include "rdino/nn.h"
#include "rdino/rng.h"

static float *random_qkv(shape s, double sigma, uint64_t seed) {
    float *qkv = malloc(n_qkv(s) * sizeof(float));
    rd_rng r;
    rd_rng_init(&r, seed, RD_RNG_TEST, 0, 0, 0);
    for (size_t i = 0; i < n_qkv(s); i++) qkv[i] = (float)(sigma * rd_rng_normal(&r));
    return qkv;
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

static void emulated_matches_reference_at_tile_edges(rd_test *t) {
    for (size_t n = 0; n < sizeof edge_shapes / sizeof edge_shapes[0]; n++)
        check_case(t, edge_shapes[n], RD_BF16_PATH_EMULATED, 10 + n);
}

static void avx512_matches_reference_at_tile_edges(rd_test *t) {
    if (!rd_bf16_cpu_has()) SKIP("this CPU has no AVX512-BF16 (the emulated path is checked)");
    for (size_t n = 0; n < sizeof edge_shapes / sizeof edge_shapes[0]; n++)
        check_case(t, edge_shapes[n], RD_BF16_PATH_AVX512, 10 + n);
    check_case(t, (shape){1, 1370, 64, 1}, RD_BF16_PATH_AVX512, 3); /* ViT-B/14 head, 518 px */
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

static const rd_test_case cases[] = {
    {"emulated_matches_reference_at_tile_edges", emulated_matches_reference_at_tile_edges},
    {"avx512_matches_reference_at_tile_edges", avx512_matches_reference_at_tile_edges},
    {"same_bits_on_1_and_2_threads", same_bits_on_1_and_2_threads},
    {"avx512_gives_the_emulated_bits", avx512_gives_the_emulated_bits},
    {"fp32_path_is_fp32_attention_and_bf16_is_close",
     fp32_path_is_fp32_attention_and_bf16_is_close},
};
RD_TEST_MAIN("nn/attention_bf16", cases)
