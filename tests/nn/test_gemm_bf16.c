/* bf16 products (src/nn/gemm_bf16.c): rounding, the three linear products on both bf16 paths
 * against a double reference, thread-count independence, the fp32 path, mode selection.
 *
 * Reference: double sums of the products of the SAME bf16-rounded inputs, so the only error left
 * is the fp32 summation. The kernels add K exact products (bf16 x bf16 fits in fp32) one at a
 * time onto an fp32 initial value, so each output obeys the recursive-summation bound
 * |got - exact| <= gamma_K * (|init| + sum_k |a_k b_k|), gamma_K = K u / (1 - K u), u = 2^-24
 * (Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., eq. 4.4): checked per
 * element with that bound (x 1.01 for the double reference's own rounding). */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "harness.h"
#include "rdino/gemm_bf16.h"
#include "rdino/nn.h"
#include "rdino/rng.h"

static float *random_floats(size_t n, uint64_t index) {
    float *x = malloc(n * sizeof(float));
    rd_rng r;
    rd_rng_init(&r, 11, RD_RNG_TEST, 0, index, 0);
    for (size_t i = 0; i < n; i++) x[i] = (float)rd_rng_normal(&r);
    return x;
}

static float *copy_floats(const float *x, size_t n) {
    float *y = malloc(n * sizeof(float));
    memcpy(y, x, n * sizeof(float));
    return y;
}

static double rounded(float x) {
    return rd_bf16_to_float(rd_bf16_from_float(x));
}

static uint32_t bits(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static float from_bits(uint32_t u) {
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* Scratch for up to max(2, omp_get_max_threads()) threads. */
static void *scratch_for_threads(void) {
    int threads = omp_get_max_threads() > 2 ? omp_get_max_threads() : 2;
    return malloc(rd_bf16_scratch_bytes() * (size_t)threads);
}

/* ---- rounding -------------------------------------------------------------------------------- */

/* Independent oracle: the two bf16 neighbours of |x| compared in double; 2^128 stands for inf
 * (IEEE 754 rounds to inf past the midpoint between the largest finite value and 2^128). */
static uint16_t oracle_bf16(float x) {
    uint32_t u = bits(x), sign = u & 0x80000000u, mag = u & 0x7fffffffu;
    if (mag > 0x7f800000u) return 0; /* NaN: checked separately */
    uint32_t down = mag >> 16, up = down + 1;
    double ax = fabs((double)x), vd = from_bits(down << 16);
    double vu = up >= 0x7f80u ? ldexp(1.0, 128) : (double)from_bits(up << 16);
    if (mag == 0x7f800000u) return (uint16_t)((sign | mag) >> 16); /* inf */
    uint32_t pick = ax - vd < vu - ax ? down : ax - vd > vu - ax ? up : (down & 1u) ? up : down;
    return (uint16_t)((sign >> 16) | pick);
}

static int is_bf16_nan(uint16_t h) {
    return (h & 0x7f80u) == 0x7f80u && (h & 0x007fu) != 0;
}

static void conversion_rounds_to_nearest_even(rd_test *t) {
    static const uint32_t edges[] = {
        0x00000000u, 0x80000000u, /* +-0 */
        0x3f808000u, 0x3f818000u, /* ties: to even down (0x3f80), to even up (0x3f82) */
        0x3f807fffu, 0x3f808001u, /* just below / above a tie */
        0x00000001u, 0x80000001u, /* smallest subnormals: round to zero */
        0x00008000u, 0x00018000u, /* subnormal ties: to 0, to 2 */
        0x00008001u, 0x007fffffu, /* subnormal above a tie; largest subnormal rounds to FLT_MIN */
        0x00800000u, 0x7f7f0000u, /* FLT_MIN, largest bf16 */
        0x7f7f7fffu, 0x7f7f8000u, /* below the overflow midpoint; the midpoint: to inf (even) */
        0x7f7fffffu, 0xff7fffffu, /* FLT_MAX: +-inf */
        0x7f800000u, 0xff800000u, /* +-inf */
        0x7f800001u, 0xff800001u, /* NaNs whose payload is only in the dropped bits */
        0x7fc00000u, 0x7fa00000u, /* quiet NaN, signalling NaN */
    };
    size_t n_edges = sizeof edges / sizeof edges[0];
    for (size_t i = 0; i < n_edges; i++) {
        float x = from_bits(edges[i]);
        uint16_t got = rd_bf16_from_float(x);
        if (isnan(x)) {
            CHECK_MSG(is_bf16_nan(got) && (got & 0x8000u) == ((edges[i] >> 16) & 0x8000u),
                      "NaN 0x%08x gave 0x%04x", edges[i], got);
        } else {
            CHECK_MSG(got == oracle_bf16(x), "0x%08x gave 0x%04x, want 0x%04x", edges[i], got,
                      oracle_bf16(x));
        }
    }
    CHECK(rd_bf16_from_float(from_bits(0x3f808000u)) == 0x3f80u);
    CHECK(rd_bf16_from_float(from_bits(0x3f818000u)) == 0x3f82u);
    CHECK(rd_bf16_from_float(from_bits(0x00018000u)) == 0x0002u);
    CHECK(rd_bf16_from_float(from_bits(0x7f7fffffu)) == 0x7f80u);
    /* random bit patterns, every exponent */
    rd_rng r;
    rd_rng_init(&r, 3, RD_RNG_TEST, 0, 0, 0);
    size_t n = 1 << 20, bad = 0;
    float *x = malloc((n + n_edges) * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = from_bits(rd_rng_u32(&r));
    for (size_t i = 0; i < n_edges; i++) x[n + i] = from_bits(edges[i]);
    n += n_edges;
    for (size_t i = 0; i < n; i++) {
        uint16_t got = rd_bf16_from_float(x[i]);
        if (isnan(x[i]) ? !is_bf16_nan(got) : got != oracle_bf16(x[i])) bad++;
    }
    CHECK_MSG(bad == 0, "%zu of %zu random floats rounded wrongly", bad, n);
    /* the bulk (vectorised) conversion gives the same bits, tails included */
    rd_bf16 *bulk = malloc(n * sizeof(rd_bf16));
    size_t lengths[] = {n, n - 1, 17, 15, 1};
    for (size_t l = 0; l < 5; l++) {
        size_t len = lengths[l], off = n - len, differ = 0;
        rd_bf16_from_floats(bulk, x + off, len);
        for (size_t i = 0; i < len; i++) differ += bulk[i] != rd_bf16_from_float(x[off + i]);
        CHECK_MSG(differ == 0, "bulk conversion of %zu floats: %zu differ", len, differ);
    }
    free(x), free(bulk);
}

/* ---- products against the reference --------------------------------------------------------- */

/* got[n] within the summation bound of want, mag = |init| + sum |products|, terms = K. */
static void check_bound(rd_test *t, const char *what, const float *got, const double *want,
                        const double *mag, size_t n, int terms) {
    double u = ldexp(1.0, -24), gamma = terms * u / (1 - terms * u) * 1.01;
    size_t worst = 0;
    double worst_ratio = 0;
    for (size_t i = 0; i < n; i++) {
        double err = fabs((double)got[i] - want[i]), bound = gamma * mag[i] + 1e-30;
        if (!(err <= bound) && (isnan(err) || err / bound > worst_ratio)) {
            worst_ratio = isnan(err) ? INFINITY : err / bound;
            worst = i;
        }
    }
    CHECK_MSG(worst_ratio == 0, "%s: element %zu = %.9g, reference %.9g, error %.3g > bound %.3g",
              what, worst, got[worst], want[worst], fabs(got[worst] - want[worst]),
              gamma * mag[worst]);
}

typedef struct shape {
    int N, OC, C;
} shape;

/* Shapes around the blocking (MR 8, NR 48, KC 768, MC 192, NC 768): ragged tails, odd K for the
 * pairs, K over several KC blocks in each product (C for forward, OC for dinp, N for dweight),
 * rows over MC, columns over NC. */
static const shape odd_shapes[] = {{1, 1, 1},     {3, 5, 7},      {13, 50, 3},   {37, 101, 129},
                                   {9, 97, 1543}, {20, 1601, 33}, {1700, 7, 13}, {203, 60, 40},
                                   {5, 3, 1600},  {2, 49, 2}};

/* Runs the three products of one shape on weights initialised in `mode` and checks them. */
static void check_products(rd_test *t, rd_bf16_mode mode, shape s, uint64_t seed) {
    int N = s.N, OC = s.OC, C = s.C;
    size_t nin = (size_t)N * C, nout = (size_t)N * OC, nw = (size_t)OC * C;
    float *inp = random_floats(nin, seed), *W = random_floats(nw, seed + 1);
    float *bias = random_floats((size_t)OC, seed + 2), *dout = random_floats(nout, seed + 3);
    float *dinp0 = random_floats(nin, seed + 4), *dW0 = random_floats(nw, seed + 5);
    float *out = malloc(nout * sizeof(float)), *dinp = malloc(nin * sizeof(float));
    float *dW = copy_floats(dW0, nw), *db = calloc((size_t)OC, sizeof(float));
    size_t nmax = nout > nin ? nout : nin;
    nmax = nmax > nw ? nmax : nw;
    double *want = malloc(nmax * sizeof(double)), *mag = malloc(nmax * sizeof(double));
    void *buf = aligned_alloc(64, rd_bf16_weight_bytes(OC, C, 1)), *scratch = scratch_for_threads();
    rd_error err;
    rd_bf16_weight w;
    rd_bf16_set_mode(mode);
    CHECK_OK(rd_bf16_weight_init(&w, buf, W, OC, C, 1, &err), &err);
    char what[96];

    for (int with_bias = 0; with_bias < 2; with_bias++) { /* out = inp W^T (+ bias) */
        const float *b = with_bias ? bias : NULL;
        rd_bf16_linear_forward(out, inp, &w, b, N, scratch);
        for (int i = 0; i < N; i++)
            for (int j = 0; j < OC; j++) {
                double s0 = b ? b[j] : 0, sum = s0, m = fabs(s0);
                for (int k = 0; k < C; k++) {
                    double p = rounded(inp[(size_t)i * C + k]) * rounded(W[(size_t)j * C + k]);
                    sum += p, m += fabs(p);
                }
                want[(size_t)i * OC + j] = sum, mag[(size_t)i * OC + j] = m;
            }
        snprintf(what, sizeof what, "forward %dx%dx%d bias %d", N, OC, C, with_bias);
        check_bound(t, what, out, want, mag, nout, C);
    }
    for (int add = 0; add < 2; add++) { /* dinp (+)= dout W */
        memcpy(dinp, dinp0, nin * sizeof(float));
        rd_bf16_linear_backward(dinp, add, NULL, NULL, dout, inp, &w, N, scratch);
        for (int i = 0; i < N; i++)
            for (int c = 0; c < C; c++) {
                double s0 = add ? dinp0[(size_t)i * C + c] : 0, sum = s0, m = fabs(s0);
                for (int o = 0; o < OC; o++) {
                    double p = rounded(dout[(size_t)i * OC + o]) * rounded(W[(size_t)o * C + c]);
                    sum += p, m += fabs(p);
                }
                want[(size_t)i * C + c] = sum, mag[(size_t)i * C + c] = m;
            }
        snprintf(what, sizeof what, "dinp %dx%dx%d add %d", N, OC, C, add);
        check_bound(t, what, dinp, want, mag, nin, OC);
    }
    /* dweight += dout^T inp, dbias += column sums (fp32, as rd_column_sums_add) */
    rd_bf16_linear_backward(NULL, 0, dW, db, dout, inp, &w, N, scratch);
    for (int o = 0; o < OC; o++)
        for (int c = 0; c < C; c++) {
            double s0 = dW0[(size_t)o * C + c], sum = s0, m = fabs(s0);
            for (int i = 0; i < N; i++) {
                double p = rounded(dout[(size_t)i * OC + o]) * rounded(inp[(size_t)i * C + c]);
                sum += p, m += fabs(p);
            }
            want[(size_t)o * C + c] = sum, mag[(size_t)o * C + c] = m;
        }
    snprintf(what, sizeof what, "dweight %dx%dx%d", N, OC, C);
    check_bound(t, what, dW, want, mag, nw, N);
    float *db_want = calloc((size_t)OC, sizeof(float));
    rd_column_sums_add(db_want, dout, N, OC);
    CHECK(memcmp(db, db_want, (size_t)OC * sizeof(float)) == 0);

    rd_bf16_set_mode(RD_BF16_FROM_ENV);
    free(inp), free(W), free(bias), free(dout), free(dinp0), free(dW0), free(out), free(dinp);
    free(dW), free(db), free(db_want), free(want), free(mag), free(buf), free(scratch);
}

static void products_match_reference_emulated(rd_test *t) {
    for (size_t i = 0; i < sizeof odd_shapes / sizeof odd_shapes[0]; i++)
        check_products(t, RD_BF16_EMULATE, odd_shapes[i], 10 * i);
}

static void products_match_reference_avx512(rd_test *t) {
    if (!rd_bf16_cpu_has()) SKIP("this CPU has no AVX512-BF16 (the emulated case covers the path)");
    for (size_t i = 0; i < sizeof odd_shapes / sizeof odd_shapes[0]; i++)
        check_products(t, RD_BF16_FORCE, odd_shapes[i], 10 * i);
}

/* ---- bit-level agreements ----------------------------------------------------------------------
 */

typedef struct outputs {
    float *out, *dinp, *dW;
} outputs;

/* Forward, dinp (overwritten) and dweight (from zero) of one shape in `mode` on `threads`. */
static outputs run_products(rd_bf16_mode mode, int threads, shape s, rd_test *t) {
    int N = s.N, OC = s.OC, C = s.C;
    float *inp = random_floats((size_t)N * C, 100), *W = random_floats((size_t)OC * C, 101);
    float *bias = random_floats((size_t)OC, 102), *dout = random_floats((size_t)N * OC, 103);
    outputs o = {malloc((size_t)N * OC * sizeof(float)), malloc((size_t)N * C * sizeof(float)),
                 calloc((size_t)OC * C, sizeof(float))};
    void *buf = aligned_alloc(64, rd_bf16_weight_bytes(OC, C, 1)), *scratch = scratch_for_threads();
    int saved = omp_get_max_threads();
    rd_error err;
    rd_bf16_weight w;
    rd_bf16_set_mode(mode);
    CHECK_OK(rd_bf16_weight_init(&w, buf, W, OC, C, 1, &err), &err);
    omp_set_num_threads(threads);
    rd_bf16_linear_forward(o.out, inp, &w, bias, N, scratch);
    rd_bf16_linear_backward(o.dinp, 0, o.dW, NULL, dout, inp, &w, N, scratch);
    omp_set_num_threads(saved);
    rd_bf16_set_mode(RD_BF16_FROM_ENV);
    free(inp), free(W), free(bias), free(dout), free(buf), free(scratch);
    return o;
}

static void free_outputs(outputs o) {
    free(o.out), free(o.dinp), free(o.dW);
}

static void check_same_bits(rd_test *t, const char *what, outputs a, outputs b, shape s) {
    CHECK_MSG(!memcmp(a.out, b.out, (size_t)s.N * s.OC * sizeof(float)), "%s: forward", what);
    CHECK_MSG(!memcmp(a.dinp, b.dinp, (size_t)s.N * s.C * sizeof(float)), "%s: dinp", what);
    CHECK_MSG(!memcmp(a.dW, b.dW, (size_t)s.OC * s.C * sizeof(float)), "%s: dweight", what);
}

/* Tall shapes split rows across threads, wide ones columns (over the serial threshold). */
static const shape thread_shapes[] = {{300, 200, 150}, {40, 500, 100}, {97, 61, 1700}};

static void same_bits_on_one_and_two_threads(rd_test *t) {
    rd_bf16_mode mode = rd_bf16_cpu_has() ? RD_BF16_FORCE : RD_BF16_EMULATE;
    for (size_t i = 0; i < sizeof thread_shapes / sizeof thread_shapes[0]; i++) {
        outputs one = run_products(mode, 1, thread_shapes[i], t);
        outputs two = run_products(mode, 2, thread_shapes[i], t);
        check_same_bits(t, rd_bf16_cpu_has() ? "avx512 1 vs 2 threads" : "emulated 1 vs 2 threads",
                        one, two, thread_shapes[i]);
        free_outputs(one), free_outputs(two);
    }
}

/* The emulation follows VDPBF16PS's order (odd product, then even, each rounded), so with normal
 * (non-subnormal) values the two paths give the same bits. */
static void avx512_equals_emulation(rd_test *t) {
    if (!rd_bf16_cpu_has()) SKIP("this CPU has no AVX512-BF16 to compare the emulation with");
    for (size_t i = 0; i < sizeof odd_shapes / sizeof odd_shapes[0]; i++) {
        outputs hw = run_products(RD_BF16_FORCE, 2, odd_shapes[i], t);
        outputs emu = run_products(RD_BF16_EMULATE, 2, odd_shapes[i], t);
        check_same_bits(t, "avx512 vs emulated", hw, emu, odd_shapes[i]);
        free_outputs(hw), free_outputs(emu);
    }
}

/* ---- memory safety of the vector code ---------------------------------------------------------
 */

/* `bytes` placed against an inaccessible page (after the end, or before the start): any access
 * outside [p, p + bytes) faults. The sanitizers do not see inside AVX-512 intrinsics; this does
 * (masked-off lanes do not fault, so only real over-reads and over-writes crash the test). */
typedef struct guarded {
    void *map, *p;
    size_t map_bytes;
} guarded;

static guarded guarded_alloc(size_t bytes, int guard_before) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE), span = (bytes + page - 1) / page * page;
    guarded g = {NULL, NULL, span + page};
    unsigned char *m =
        mmap(NULL, g.map_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return g;
    g.map = m;
    if (guard_before) {
        mprotect(m, page, PROT_NONE);
        g.p = m + page;
    } else {
        mprotect(m + span, page, PROT_NONE);
        g.p = m + span - bytes;
    }
    return g;
}

static float *guarded_floats(guarded *g, size_t n, int guard_before, const float *init) {
    *g = guarded_alloc(n * sizeof(float), guard_before);
    if (g->p && init) memcpy(g->p, init, n * sizeof(float));
    return g->p;
}

/* Every product with each operand, output and the scratch against a guard page (after, then
 * before), on one thread so the scratch slot in use is the last one; the results must also match
 * an unguarded run. Full blocks ({800, 50, 800}: KC and NC filled) reach the scratch's end. */
static void no_access_outside_the_arrays(rd_test *t) {
    static const shape shapes[] = {{1, 1, 1},      {3, 5, 7},      {13, 50, 3},
                                   {37, 101, 129}, {800, 50, 800}, {5, 3, 1600}};
    rd_bf16_mode mode = rd_bf16_cpu_has() ? RD_BF16_FORCE : RD_BF16_EMULATE;
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        shape s = shapes[i];
        size_t nin = (size_t)s.N * s.C, nout = (size_t)s.N * s.OC, nw = (size_t)s.OC * s.C;
        outputs want = run_products(mode, 1, s, t);
        float *inp0 = random_floats(nin, 100), *W0 = random_floats(nw, 101);
        float *bias0 = random_floats((size_t)s.OC, 102), *dout0 = random_floats(nout, 103);
        for (int before = 0; before < 2; before++) {
            guarded g[9];
            float *inp = guarded_floats(&g[0], nin, before, inp0);
            float *W = guarded_floats(&g[1], nw, before, W0);
            float *bias = guarded_floats(&g[2], (size_t)s.OC, before, bias0);
            float *dout = guarded_floats(&g[3], nout, before, dout0);
            float *out = guarded_floats(&g[4], nout, before, NULL);
            float *dinp = guarded_floats(&g[5], nin, before, NULL);
            float *dW = guarded_floats(&g[6], nw, before, NULL);
            g[7] = guarded_alloc(rd_bf16_weight_bytes(s.OC, s.C, 1), before);
            g[8] = guarded_alloc(rd_bf16_scratch_bytes(), before);
            int mapped = 1;
            for (int j = 0; j < 9; j++) mapped &= g[j].p != NULL;
            CHECK_MSG(mapped, "mmap failed");
            if (mapped) {
                rd_error err;
                rd_bf16_weight w;
                rd_bf16_set_mode(mode);
                CHECK_OK(rd_bf16_weight_init(&w, g[7].p, W, s.OC, s.C, 1, &err), &err);
                rd_bf16_linear_forward(out, inp, &w, bias, s.N, g[8].p);
                rd_bf16_linear_backward(dinp, 0, dW, NULL, dout, inp, &w, s.N, g[8].p);
                rd_bf16_set_mode(RD_BF16_FROM_ENV);
                outputs got = {out, dinp, dW};
                check_same_bits(t, before ? "guard before" : "guard after", got, want, s);
            }
            for (int j = 0; j < 9; j++)
                if (g[j].map) munmap(g[j].map, g[j].map_bytes);
        }
        free_outputs(want);
        free(inp0), free(W0), free(bias0), free(dout0);
    }
    omp_set_num_threads(saved);
}

/* The fp32 path is rd_linear_forward / rd_linear_backward (vit.c's overwrite form for dinp). */
static void fp32_path_equals_fp32_layers(rd_test *t) {
    shape s = {57, 70, 90};
    int N = s.N, OC = s.OC, C = s.C;
    float *inp = random_floats((size_t)N * C, 200), *W = random_floats((size_t)OC * C, 201);
    float *bias = random_floats((size_t)OC, 202), *dout = random_floats((size_t)N * OC, 203);
    float *base = random_floats((size_t)N * C, 204), *base_w = random_floats((size_t)OC * C, 205);
    float *got = malloc((size_t)N * OC * sizeof(float)),
          *want = malloc((size_t)N * OC * sizeof(float));
    float *gd = copy_floats(base, (size_t)N * C), *wd = copy_floats(base, (size_t)N * C);
    float *gw = copy_floats(base_w, (size_t)OC * C), *ww = copy_floats(base_w, (size_t)OC * C);
    float *gb = calloc((size_t)OC, sizeof(float)), *wb = calloc((size_t)OC, sizeof(float));
    rd_error err;
    rd_bf16_weight w;
    rd_bf16_set_mode(RD_BF16_OFF);
    CHECK(!rd_bf16_available());
    CHECK_OK(rd_bf16_weight_init(&w, NULL, W, OC, C, 1, &err), &err);
    CHECK(w.path == RD_BF16_PATH_FP32 && !w.forward && !w.backward);
    rd_bf16_linear_forward(got, inp, &w, bias, N, NULL);
    rd_linear_forward(want, inp, W, bias, N, C, OC);
    CHECK_MSG(!memcmp(got, want, (size_t)N * OC * sizeof(float)), "forward differs from fp32");
    rd_bf16_linear_backward(gd, 1, gw, gb, dout, inp, &w, N, NULL);
    rd_linear_backward(wd, ww, wb, dout, inp, W, N, C, OC);
    CHECK_MSG(!memcmp(gd, wd, (size_t)N * C * sizeof(float)), "dinp += differs from fp32");
    CHECK_MSG(!memcmp(gw, ww, (size_t)OC * C * sizeof(float)), "dweight differs from fp32");
    CHECK_MSG(!memcmp(gb, wb, (size_t)OC * sizeof(float)), "dbias differs from fp32");
    rd_bf16_linear_backward(gd, 0, NULL, NULL, dout, inp, &w, N, NULL);
    rd_sgemm(0, 0, N, C, OC, 1.0f, dout, OC, W, C, 0.0f, wd, C, NULL);
    CHECK_MSG(!memcmp(gd, wd, (size_t)N * C * sizeof(float)), "dinp = differs from fp32");
    rd_bf16_set_mode(RD_BF16_FROM_ENV);
    free(inp), free(W), free(bias), free(dout), free(base), free(base_w), free(got), free(want);
    free(gd), free(wd), free(gw), free(ww), free(gb), free(wb);
}

/* Refresh re-reads the master: after an update the products use the new weights. */
static void refresh_follows_the_master(rd_test *t) {
    int N = 9, OC = 50, C = 20;
    float *inp = random_floats((size_t)N * C, 300), *W = random_floats((size_t)OC * C, 301);
    float *out = malloc((size_t)N * OC * sizeof(float)),
          *want = malloc((size_t)N * OC * sizeof(float));
    void *buf = aligned_alloc(64, rd_bf16_weight_bytes(OC, C, 0)), *scratch = scratch_for_threads();
    rd_error err;
    rd_bf16_weight w;
    rd_bf16_set_mode(RD_BF16_FORCE);
    CHECK_OK(rd_bf16_weight_init(&w, buf, W, OC, C, 0, &err), &err);
    for (size_t i = 0; i < (size_t)OC * C; i++) W[i] = 2.0f * W[i]; /* exact in bf16 too */
    rd_bf16_linear_forward(want, inp, &w, NULL, N, scratch);
    rd_bf16_weight_refresh(&w);
    rd_bf16_linear_forward(out, inp, &w, NULL, N, scratch);
    size_t doubled = 0;
    for (size_t i = 0; i < (size_t)N * OC; i++) doubled += out[i] == 2.0f * want[i];
    CHECK_MSG(doubled == (size_t)N * OC, "%zu of %d outputs doubled after refresh", doubled,
              N * OC);
    rd_bf16_set_mode(RD_BF16_FROM_ENV);
    free(inp), free(W), free(out), free(want), free(buf), free(scratch);
}

/* ---- modes and errors --------------------------------------------------------------------------
 */

static rd_bf16_path path_for_env(const char *value) {
    setenv("RDINO_BF16", value, 1);
    rd_bf16_path path = (rd_bf16_path)-1;
    rd_bf16_select_path(&path, NULL);
    return path;
}

static void modes_select_paths(rd_test *t) {
    const char *saved = getenv("RDINO_BF16");
    char *keep = saved ? strdup(saved) : NULL;
    int cpu = rd_bf16_cpu_has();
    rd_bf16_set_mode(RD_BF16_FROM_ENV);
    CHECK(path_for_env("off") == RD_BF16_PATH_FP32);
    CHECK(path_for_env("emulate") == RD_BF16_PATH_EMULATED);
    CHECK(path_for_env("force") == (cpu ? RD_BF16_PATH_AVX512 : RD_BF16_PATH_EMULATED));
    CHECK(path_for_env("auto") == (cpu ? RD_BF16_PATH_AVX512 : RD_BF16_PATH_FP32));
    CHECK(path_for_env("") == (cpu ? RD_BF16_PATH_AVX512 : RD_BF16_PATH_FP32));
    CHECK(rd_bf16_available() == cpu);
    /* the function overrides the environment until reset */
    rd_bf16_set_mode(RD_BF16_OFF);
    CHECK(path_for_env("force") == RD_BF16_PATH_FP32);
    rd_bf16_set_mode(RD_BF16_FROM_ENV);
    CHECK(path_for_env("force") != RD_BF16_PATH_FP32);
    /* a bad value is an error that names the variable, not a silent default */
    setenv("RDINO_BF16", "fast", 1);
    float W[6] = {0};
    rd_bf16_weight w;
    rd_error err;
    CHECK(rd_bf16_weight_init(&w, NULL, W, 2, 3, 0, &err) == RD_EINVAL);
    CHECK_MSG(strstr(err.msg, "RDINO_BF16=fast") != NULL, "message: %s", err.msg);
    CHECK(!rd_bf16_available());
    if (keep)
        setenv("RDINO_BF16", keep, 1);
    else
        unsetenv("RDINO_BF16");
    free(keep);
    /* bad sizes, and a bf16 path without a buffer */
    rd_bf16_set_mode(RD_BF16_EMULATE);
    CHECK(rd_bf16_weight_init(&w, NULL, W, 2, 3, 0, &err) == RD_EINVAL);
    CHECK_MSG(strstr(err.msg, "no buffer") != NULL, "message: %s", err.msg);
    CHECK(rd_bf16_weight_init(&w, W, W, 0, 3, 0, &err) == RD_EINVAL);
    CHECK(rd_bf16_weight_create(&w, W, 2, -1, &err) == RD_EINVAL);
    CHECK_OK(rd_bf16_weight_create(&w, W, 2, 3, &err), &err);
    CHECK(w.owned != NULL && w.forward == w.owned && w.backward == NULL);
    rd_bf16_weight_free(&w);
    rd_bf16_set_mode(RD_BF16_FROM_ENV);
}

static const rd_test_case cases[] = {
    {"conversion_rounds_to_nearest_even", conversion_rounds_to_nearest_even},
    {"products_match_reference_emulated", products_match_reference_emulated},
    {"products_match_reference_avx512", products_match_reference_avx512},
    {"same_bits_on_one_and_two_threads", same_bits_on_one_and_two_threads},
    {"avx512_equals_emulation", avx512_equals_emulation},
    {"no_access_outside_the_arrays", no_access_outside_the_arrays},
    {"fp32_path_equals_fp32_layers", fp32_path_equals_fp32_layers},
    {"refresh_follows_the_master", refresh_follows_the_master},
    {"modes_select_paths", modes_select_paths},
};
RD_TEST_MAIN("nn/gemm_bf16", cases)
