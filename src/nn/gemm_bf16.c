/* bf16 matrix products with fp32 accumulation (contract in include/rdino/gemm_bf16.h).
 *
 * C[M, N] (+)= A[M, K] B[K, N] in the loop order of Goto and van de Geijn, "Anatomy of
 * high-performance matrix multiplication" (ACM TOMS 34(3), 2008): for blocks of NC columns, for
 * blocks of KC k values, B's block is converted to bf16 panels (unless pre-packed: the weights);
 * for blocks of MC rows, A's block is converted to bf16 strips; an MR x NR micro-kernel then
 * multiplies one strip by one panel with VDPBF16PS. Both operands are stored as 32-bit words
 * holding a pair of consecutive k values (k even in the low half), the layout VDPBF16PS reads:
 *   A strip [pairs][MR] words (MR rows side by side), B panel [pairs][NR] words.
 * Each output element is summed in k order starting from its initial value (bias, zero, or the
 * old C), whatever the blocking and the thread split, so results do not depend on the thread
 * count; the emulated path sums in the same order as the instruction, so it gives the same bits
 * (checked by tests/nn/test_gemm_bf16.c). */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "rdino/gemm_bf16.h"
#include "rdino/nn.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define RD_BF16_X86 1
#include <immintrin.h>
/* Only these functions use AVX-512; they run after rd_bf16_cpu_has() said yes. */
#define AVX512_BF16 __attribute__((target("avx512bf16,avx512f,avx512bw,avx512vl,avx512dq")))
#else
#define RD_BF16_X86 0
#endif

enum {
    MR = 8,    /* micro-kernel rows */
    NR = 48,   /* micro-kernel columns: 3 vectors of 16 floats, 8 x 3 accumulators */
    KC = 256,  /* k values per block (even, so pairs never straddle blocks) */
    MC = 192,  /* rows of A converted per block (MC x KC bf16 = 96 KiB, in L2) */
    NC = 1536, /* columns of B converted per block when B is not pre-packed (768 KiB) */
    SCRATCH_A_BYTES = MC * KC * 2,
    SCRATCH_B_BYTES = NC * KC * 2,
};

/* Below this many multiply-adds a product runs on the calling thread (as rd_sgemm). */
#define PARALLEL_MIN_MACS (1 << 18)

static int min_int(int a, int b) {
    return a < b ? a : b;
}

static size_t pairs_of(int K) {
    return ((size_t)K + 1) / 2;
}

/* ---- conversion ------------------------------------------------------------------------------ */

rd_bf16 rd_bf16_from_float(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (rd_bf16)((u >> 16) | 0x0040u); /* quiet NaN */
    /* adding 0x7fff plus the kept part's lowest bit rounds half-way cases to even */
    return (rd_bf16)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

float rd_bf16_to_float(rd_bf16 x) {
    uint32_t u = (uint32_t)x << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* A pair of bf16 as the kernels read it: k even in the low half. */
static uint32_t bf16_pair(float even, float odd) {
    return rd_bf16_from_float(even) | (uint32_t)rd_bf16_from_float(odd) << 16;
}

/* ---- path selection ------------------------------------------------------------------------ */

static int mode_override = -1; /* an rd_bf16_mode set by rd_bf16_set_mode, -1: RDINO_BF16 */

void rd_bf16_set_mode(rd_bf16_mode mode) {
    mode_override = mode == RD_BF16_FROM_ENV ? -1 : (int)mode;
}

int rd_bf16_cpu_has(void) {
#if RD_BF16_X86
    /* libgcc's checks include the OS having enabled the AVX-512 register state (XGETBV) */
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
#else
    return 0;
#endif
}

static rd_status mode_from_env(rd_bf16_mode *mode, rd_error *err) {
    const char *s = getenv("RDINO_BF16");
    if (!s || !*s || !strcmp(s, "auto"))
        *mode = RD_BF16_AUTO;
    else if (!strcmp(s, "off"))
        *mode = RD_BF16_OFF;
    else if (!strcmp(s, "force"))
        *mode = RD_BF16_FORCE;
    else if (!strcmp(s, "emulate"))
        *mode = RD_BF16_EMULATE;
    else
        return rd_fail(err, RD_EINVAL, "RDINO_BF16=%s: expected auto, off, force or emulate", s);
    return RD_OK;
}

rd_status rd_bf16_select_path(rd_bf16_path *path, rd_error *err) {
    rd_bf16_mode mode = (rd_bf16_mode)mode_override;
    if (mode_override < 0) {
        rd_status st = mode_from_env(&mode, err);
        if (st) return st;
    }
    int cpu = rd_bf16_cpu_has();
    switch (mode) {
    case RD_BF16_OFF:
        *path = RD_BF16_PATH_FP32;
        break;
    case RD_BF16_FORCE:
        *path = cpu ? RD_BF16_PATH_AVX512 : RD_BF16_PATH_EMULATED;
        break;
    case RD_BF16_EMULATE:
        *path = RD_BF16_PATH_EMULATED;
        break;
    default:
        *path = cpu ? RD_BF16_PATH_AVX512 : RD_BF16_PATH_FP32;
        break;
    }
    return RD_OK;
}

int rd_bf16_available(void) {
    rd_bf16_path path;
    return rd_bf16_select_path(&path, NULL) == RD_OK && path != RD_BF16_PATH_FP32;
}

const char *rd_bf16_path_name(rd_bf16_path path) {
    switch (path) {
    case RD_BF16_PATH_AVX512:
        return "avx512-bf16";
    case RD_BF16_PATH_EMULATED:
        return "emulated-bf16";
    default:
        return "fp32";
    }
}

/* ---- operands and packing -------------------------------------------------------------------- */

/* A matrix read in place: element (r, k) at x[r * rs + k * cs], k < K; r counts rows of A or
 * columns of B, k the summed index. One of rs, cs is 1. */
typedef struct operand {
    const float *x;
    size_t rs, cs;
    int K;
} operand;

/* dst[p * w + r] = bf16 pair (x(r0 + r, k0 + 2p), x(r0 + r, k0 + 2p + 1)) for p < pairs, r < w;
 * rows r >= rows and k >= K give 0. */
typedef void pack_fn(uint32_t *dst, int w, const operand *o, int r0, int rows, int k0, int pairs);
/* c[mr, nr] (ldc) = init + a strip [pairs][MR] times b panel [pairs][NR]; init is c itself when
 * load_c, else bias[nr] on every row (NULL: zero). */
typedef void kernel_fn(int pairs, const uint32_t *a, const uint32_t *b, float *c, size_t ldc,
                       int mr, int nr, const float *bias, int load_c);

static void pack_portable(uint32_t *dst, int w, const operand *o, int r0, int rows, int k0,
                          int pairs) {
    for (int p = 0; p < pairs; p++)
        for (int r = 0; r < w; r++) {
            int k = k0 + 2 * p;
            const float *x = o->x + (size_t)(r0 + r) * o->rs;
            float even = r < rows && k < o->K ? x[(size_t)k * o->cs] : 0.0f;
            float odd = r < rows && k + 1 < o->K ? x[(size_t)(k + 1) * o->cs] : 0.0f;
            dst[(size_t)p * w + r] = bf16_pair(even, odd);
        }
}

/* VDPBF16PS per lane: acc += odd products, then += even products, each rounded to fp32 (the
 * products themselves are exact: 8-bit significands). Subnormals are not flushed here, unlike
 * the instruction: the two differ only below 1.2e-38. */
static void kernel_portable(int pairs, const uint32_t *a, const uint32_t *b, float *c, size_t ldc,
                            int mr, int nr, const float *bias, int load_c) {
    float acc[MR][NR];
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < NR; j++)
            acc[i][j] = load_c && i < mr && j < nr ? c[(size_t)i * ldc + j]
                        : bias && j < nr           ? bias[j]
                                                   : 0.0f;
    for (int p = 0; p < pairs; p++)
        for (int i = 0; i < MR; i++) {
            uint32_t ai = a[(size_t)p * MR + i];
            float a_even = rd_bf16_to_float((rd_bf16)ai), a_odd = rd_bf16_to_float(ai >> 16);
            for (int j = 0; j < NR; j++) {
                uint32_t bj = b[(size_t)p * NR + j];
                acc[i][j] += a_odd * rd_bf16_to_float(bj >> 16);
                acc[i][j] += a_even * rd_bf16_to_float((rd_bf16)bj);
            }
        }
    for (int i = 0; i < mr; i++) memcpy(c + (size_t)i * ldc, acc[i], (size_t)nr * sizeof(float));
}

#if RD_BF16_X86
/* Lanes [0, n) of 16. */
static __mmask16 lanes(int n) {
    return n <= 0 ? 0 : n >= 16 ? 0xffff : (__mmask16)((1u << n) - 1);
}

/* 16 floats to 16 bf16, rounded as rd_bf16_from_float. */
AVX512_BF16 static __m256i bf16_16(__m512 x) {
    __m512i u = _mm512_castps_si512(x);
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff)));
    __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(u, _mm512_set1_epi32(0x00400000)));
    return _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16));
}

AVX512_BF16 static void from_floats_avx512(rd_bf16 *dst, const float *src, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(dst + i), bf16_16(_mm512_loadu_ps(src + i)));
    if (i < n) {
        __mmask16 m = lanes((int)(n - i));
        _mm256_mask_storeu_epi16(dst + i, m, bf16_16(_mm512_maskz_loadu_ps(m, src + i)));
    }
}

/* pack_fn with AVX-512: k contiguous (cs == 1): each row's 32 floats become 16 pairs in place,
 * scattered w words apart; r contiguous (rs == 1): two k rows interleave into 16 pairs. */
AVX512_BF16 static void pack_avx512(uint32_t *dst, int w, const operand *o, int r0, int rows,
                                    int k0, int pairs) {
    if (o->cs == 1) {
        const __m512i stride = _mm512_mullo_epi32(
            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
            _mm512_set1_epi32(w));
        for (int r = 0; r < w; r++) {
            const float *x = r < rows ? o->x + (size_t)(r0 + r) * o->rs : NULL;
            for (int p = 0; p < pairs; p += 16) {
                int k = k0 + 2 * p, left = x ? o->K - k : 0; /* floats left in the row */
                __m512 lo =
                    left > 0 ? _mm512_maskz_loadu_ps(lanes(left), x + k) : _mm512_setzero_ps();
                __m512 hi = left > 16 ? _mm512_maskz_loadu_ps(lanes(left - 16), x + k + 16)
                                      : _mm512_setzero_ps();
                __m512i words =
                    _mm512_inserti64x4(_mm512_castsi256_si512(bf16_16(lo)), bf16_16(hi), 1);
                _mm512_mask_i32scatter_epi32(dst + (size_t)p * w + r, lanes(pairs - p), stride,
                                             words, 4);
            }
        }
        return;
    }
    for (int p = 0; p < pairs; p++) {
        int k = k0 + 2 * p;
        const float *even = k < o->K ? o->x + (size_t)k * o->cs + r0 : NULL;
        const float *odd = k + 1 < o->K ? o->x + (size_t)(k + 1) * o->cs + r0 : NULL;
        for (int r = 0; r < w; r += 16) {
            __mmask16 m = lanes(rows - r);
            __m512 e = even && m ? _mm512_maskz_loadu_ps(m, even + r) : _mm512_setzero_ps();
            __m512 d = odd && m ? _mm512_maskz_loadu_ps(m, odd + r) : _mm512_setzero_ps();
            __m512i words =
                _mm512_or_si512(_mm512_cvtepu16_epi32(bf16_16(e)),
                                _mm512_slli_epi32(_mm512_cvtepu16_epi32(bf16_16(d)), 16));
            _mm512_mask_storeu_epi32(dst + (size_t)p * w + r, lanes(w - r), words);
        }
    }
}

/* kernel_fn: 24 accumulators; per pair, 3 panel loads, 8 broadcasts, 24 VDPBF16PS. */
AVX512_BF16 static void kernel_avx512(int pairs, const uint32_t *a, const uint32_t *b, float *c,
                                      size_t ldc, int mr, int nr, const float *bias, int load_c) {
    const __mmask16 m[3] = {lanes(nr), lanes(nr - 16), lanes(nr - 32)};
    __m512 acc[MR][3];
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++)
#pragma GCC unroll 3
        for (int v = 0; v < 3; v++)
            acc[i][v] = load_c && i < mr ? _mm512_maskz_loadu_ps(m[v], c + (size_t)i * ldc + 16 * v)
                        : bias           ? _mm512_maskz_loadu_ps(m[v], bias + 16 * v)
                                         : _mm512_setzero_ps();
    for (int p = 0; p < pairs; p++) {
        const uint32_t *bp = b + (size_t)p * NR;
        __m512bh b0 = (__m512bh)_mm512_loadu_si512(bp);
        __m512bh b1 = (__m512bh)_mm512_loadu_si512(bp + 16);
        __m512bh b2 = (__m512bh)_mm512_loadu_si512(bp + 32);
#pragma GCC unroll 8
        for (int i = 0; i < MR; i++) {
            __m512bh ai = (__m512bh)_mm512_set1_epi32((int)a[(size_t)p * MR + i]);
            acc[i][0] = _mm512_dpbf16_ps(acc[i][0], ai, b0);
            acc[i][1] = _mm512_dpbf16_ps(acc[i][1], ai, b1);
            acc[i][2] = _mm512_dpbf16_ps(acc[i][2], ai, b2);
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++)
        if (i < mr)
#pragma GCC unroll 3
            for (int v = 0; v < 3; v++)
                _mm512_mask_storeu_ps(c + (size_t)i * ldc + 16 * v, m[v], acc[i][v]);
}
#endif

void rd_bf16_from_floats(rd_bf16 *dst, const float *src, size_t n) {
#if RD_BF16_X86
    if (rd_bf16_cpu_has()) {
        from_floats_avx512(dst, src, n);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++) dst[i] = rd_bf16_from_float(src[i]);
}

typedef struct path_ops {
    pack_fn *pack;
    kernel_fn *kernel;
} path_ops;

static const path_ops portable_ops = {pack_portable, kernel_portable};
#if RD_BF16_X86
static const path_ops avx512_ops = {pack_avx512, kernel_avx512};
#endif

static const path_ops *ops_for(rd_bf16_path path) {
#if RD_BF16_X86
    if (path == RD_BF16_PATH_AVX512) return &avx512_ops;
#endif
    (void)path;
    return &portable_ops;
}

/* ---- the blocked product --------------------------------------------------------------------- */

/* B pre-packed: panels of NR columns, each [pairs_of(K)][NR] words (panel_words), for all K. */
typedef struct panels {
    const uint32_t *words;
    size_t panel_words;
} panels;

typedef struct product {
    const path_ops *ops;
    int M, N;
    operand A, B;  /* B unused when packed.words is set */
    panels packed; /* B pre-packed, or {NULL, 0} to convert B per block */
    float *c;      /* [M, N], row stride ldc */
    size_t ldc;
    const float *bias; /* [N] or NULL; ignored when accumulating */
    int accumulate;    /* C += A B instead of C = bias + A B */
} product;

/* The rows [r0, r0 + m) and columns [j0, j0 + n) of C on one thread, with its scratch. */
static void product_block(const product *pr, int r0, int m, int j0, int n, unsigned char *scratch) {
    uint32_t *a_buf = (uint32_t *)scratch, *b_buf = (uint32_t *)(scratch + SCRATCH_A_BYTES);
    const path_ops *ops = pr->ops;
    int K = pr->A.K; /* K == 0 occurs only when accumulating (dweight over 0 rows): nothing to do */
    int block_cols = pr->packed.words ? n : NC;
    for (int jc = 0; jc < n; jc += block_cols) {
        int nc = min_int(block_cols, n - jc);
        for (int pc = 0; pc < K; pc += KC) {
            int pairs = (int)pairs_of(min_int(KC, K - pc));
            const uint32_t *b = b_buf;
            size_t b_stride = (size_t)pairs * NR;
            if (pr->packed.words) {
                b_stride = pr->packed.panel_words;
                b = pr->packed.words + (size_t)((j0 + jc) / NR) * b_stride + (size_t)(pc / 2) * NR;
            } else {
                for (int jr = 0; jr < nc; jr += NR)
                    ops->pack(b_buf + (size_t)(jr / NR) * b_stride, NR, &pr->B, j0 + jc + jr,
                              min_int(NR, nc - jr), pc, pairs);
            }
            int load_c = pr->accumulate || pc > 0;
            for (int ic = 0; ic < m; ic += MC) {
                int mc = min_int(MC, m - ic);
                for (int ir = 0; ir < mc; ir += MR)
                    ops->pack(a_buf + (size_t)ir * pairs, MR, &pr->A, r0 + ic + ir,
                              min_int(MR, mc - ir), pc, pairs);
                for (int jr = 0; jr < nc; jr += NR) {
                    int col = j0 + jc + jr;
                    const float *bias = !load_c && pr->bias ? pr->bias + col : NULL;
                    for (int ir = 0; ir < mc; ir += MR)
                        ops->kernel(pairs, a_buf + (size_t)ir * pairs,
                                    b + (size_t)(jr / NR) * b_stride,
                                    pr->c + (size_t)(r0 + ic + ir) * pr->ldc + col, pr->ldc,
                                    min_int(MR, mc - ir), min_int(NR, nc - jr), bias, load_c);
                }
            }
        }
    }
}

/* [begin, end) of part `part` of `parts` for n items, boundaries on multiples of align. */
static void split(int n, int parts, int part, int align, int *begin, int *end) {
    int units = (n + align - 1) / align;
    *begin = min_int((int)((long)units * part / parts) * align, n);
    *end = min_int((int)((long)units * (part + 1) / parts) * align, n);
}

/* Threads split the longer side of C (whole MR rows or NR columns each). */
static void product_run(const product *pr, void *scratch) {
    if (pr->M <= 0 || pr->N <= 0) return;
    unsigned char *base = scratch;
    size_t per_thread = rd_bf16_scratch_bytes();
    int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
    if ((double)pr->M * pr->N * pr->A.K < PARALLEL_MIN_MACS) threads = 1;
    if (threads == 1) {
        product_block(pr, 0, pr->M, 0, pr->N, base + (size_t)omp_get_thread_num() * per_thread);
        return;
    }
    int by_rows = pr->M >= pr->N;
#pragma omp parallel num_threads(threads)
    {
        int part = omp_get_thread_num(), begin, end;
        unsigned char *mine = base + (size_t)part * per_thread;
        if (by_rows) {
            split(pr->M, omp_get_num_threads(), part, MR, &begin, &end);
            if (end > begin) product_block(pr, begin, end - begin, 0, pr->N, mine);
        } else {
            split(pr->N, omp_get_num_threads(), part, NR, &begin, &end);
            if (end > begin) product_block(pr, 0, pr->M, begin, end - begin, mine);
        }
    }
}

size_t rd_bf16_scratch_bytes(void) {
    return SCRATCH_A_BYTES + SCRATCH_B_BYTES;
}

/* ---- weights --------------------------------------------------------------------------------- */

/* Words of the panels of a B with `cols` columns summed over K. */
static size_t panel_words(int K) {
    return pairs_of(K) * NR;
}
static size_t panels_bytes(int cols, int K) {
    size_t n = (size_t)((cols + NR - 1) / NR) * panel_words(K) * sizeof(uint32_t);
    return (n + 63) & ~(size_t)63;
}

size_t rd_bf16_weight_bytes(int OC, int C, int training) {
    if (OC <= 0 || C <= 0) return 0;
    return panels_bytes(OC, C) + (training ? panels_bytes(C, OC) : 0);
}

/* Packs all panels of B (cols columns, K summed) from operand o. */
static void pack_panels(const path_ops *ops, uint32_t *dst, const operand *o, int cols) {
    int count = (cols + NR - 1) / NR;
#pragma omp parallel for schedule(static) if ((long)cols * o->K > RD_PARALLEL_MIN)
    for (int j = 0; j < count; j++)
        ops->pack(dst + (size_t)j * panel_words(o->K), NR, o, j * NR, min_int(NR, cols - j * NR), 0,
                  (int)pairs_of(o->K));
}

void rd_bf16_weight_refresh(rd_bf16_weight *w) {
    if (w->path == RD_BF16_PATH_FP32) return;
    const path_ops *ops = ops_for(w->path);
    /* out = x W^T: B(k = c, j = oc) = W[oc, c], k contiguous */
    operand fwd = {w->master, (size_t)w->C, 1, w->C};
    pack_panels(ops, w->forward, &fwd, w->OC);
    if (w->backward) { /* dx = dy W: B(k = oc, j = c) = W[oc, c], j contiguous */
        operand bwd = {w->master, 1, (size_t)w->C, w->OC};
        pack_panels(ops, w->backward, &bwd, w->C);
    }
}

rd_status rd_bf16_weight_init(rd_bf16_weight *w, void *buffer, const float *master, int OC, int C,
                              int training, rd_error *err) {
    memset(w, 0, sizeof *w);
    if (OC <= 0 || C <= 0 || !master)
        return rd_fail(err, RD_EINVAL, "bf16 weight [%d, %d]: sizes must be positive, master set",
                       OC, C);
    rd_bf16_path path;
    rd_status st = rd_bf16_select_path(&path, err);
    if (st) return st;
    if (path != RD_BF16_PATH_FP32 && !buffer)
        return rd_fail(err, RD_EINVAL, "bf16 weight [%d, %d]: no buffer for the %s copies", OC, C,
                       rd_bf16_path_name(path));
    w->master = master;
    w->OC = OC;
    w->C = C;
    w->path = path;
    if (path != RD_BF16_PATH_FP32) {
        w->forward = buffer;
        if (training) w->backward = (uint32_t *)((unsigned char *)buffer + panels_bytes(OC, C));
    }
    rd_bf16_weight_refresh(w);
    return RD_OK;
}

rd_status rd_bf16_weight_create(rd_bf16_weight *w, const float *master, int OC, int C,
                                rd_error *err) {
    memset(w, 0, sizeof *w);
    rd_bf16_path path;
    rd_status st = rd_bf16_select_path(&path, err);
    if (st) return st;
    void *buffer = NULL;
    size_t bytes = rd_bf16_weight_bytes(OC, C, 0);
    if (path != RD_BF16_PATH_FP32 && bytes > 0) {
        buffer = aligned_alloc(64, bytes);
        if (!buffer)
            return rd_fail(err, RD_ENOMEM, "bf16 weight [%d, %d]: cannot allocate %zu bytes", OC, C,
                           bytes);
    }
    st = rd_bf16_weight_init(w, buffer, master, OC, C, 0, err);
    if (st) {
        free(buffer);
        return st;
    }
    w->owned = buffer;
    return RD_OK;
}

void rd_bf16_weight_free(rd_bf16_weight *w) {
    free(w->owned);
    memset(w, 0, sizeof *w);
}

/* ---- the linear layer ------------------------------------------------------------------------ */

void rd_bf16_linear_forward(float *out, const float *inp, const rd_bf16_weight *w,
                            const float *bias, int N, void *scratch) {
    int C = w->C, OC = w->OC;
    if (w->path == RD_BF16_PATH_FP32) {
        rd_linear_forward(out, inp, w->master, bias, N, C, OC);
        return;
    }
    /* out[N, OC] = inp[N, C] W^T: A = inp (k contiguous), B = the forward panels */
    product pr = {ops_for(w->path),
                  N,
                  OC,
                  {inp, (size_t)C, 1, C},
                  {NULL, 0, 0, 0},
                  {w->forward, panel_words(C)},
                  out,
                  (size_t)OC,
                  bias,
                  0};
    product_run(&pr, scratch);
}

void rd_bf16_linear_backward(float *dinp, int dinp_add, float *dweight, float *dbias,
                             const float *dout, const float *inp, const rd_bf16_weight *w, int N,
                             void *scratch) {
    int C = w->C, OC = w->OC;
    if (dinp) {
        if (w->backward) { /* dinp[N, C] (+)= dout[N, OC] W[OC, C] */
            product pr = {ops_for(w->path),
                          N,
                          C,
                          {dout, (size_t)OC, 1, OC},
                          {NULL, 0, 0, 0},
                          {w->backward, panel_words(OC)},
                          dinp,
                          (size_t)C,
                          NULL,
                          dinp_add};
            product_run(&pr, scratch);
        } else {
            rd_sgemm(0, 0, N, C, OC, 1.0f, dout, OC, w->master, C, dinp_add ? 1.0f : 0.0f, dinp, C,
                     NULL);
        }
    }
    if (w->path == RD_BF16_PATH_FP32) {
        rd_linear_backward(NULL, dweight, dbias, dout, inp, w->master, N, C, OC);
        return;
    }
    if (dweight) { /* dweight[OC, C] += dout^T[OC, N] inp[N, C]: both summed over rows */
        product pr = {ops_for(w->path),
                      OC,
                      C,
                      {dout, 1, (size_t)OC, N},
                      {inp, 1, (size_t)C, N},
                      {NULL, 0},
                      dweight,
                      (size_t)C,
                      NULL,
                      1};
        product_run(&pr, scratch);
    }
    if (dbias) rd_column_sums_add(dbias, dout, N, OC);
}
