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
#include "rdino/gemm_bf16.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "bf16_simd.h"
#include "rdino/nn.h"

enum {
    MR = 8,   /* micro-kernel rows */
    NR = 48,  /* micro-kernel columns: 3 vectors of 16 floats, 8 x 3 accumulators */
    KC = 768, /* k values per block (even: pairs never straddle blocks). C is loaded and stored
                 once per block: KC 256 and 512 were 10-25 % slower on one Zen core (CPU time of
                 each product at 5480 rows, docs/BF16.md) */
    MC = 192, /* rows of A converted per block (MC x KC bf16 = 288 KiB, in L2) */
    NC = 768, /* columns of B converted per block when B is not pre-packed (1.1 MiB) */
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

/* Rows [r0, r0 + rows) of o as strips of w rows (the last padded with zero rows), strip s at
 * dst + s * pairs * w: dst[s][p][r] = bf16 pair (x(r0 + s w + r, k0 + 2p), x(.., k0 + 2p + 1)),
 * with 0 for k >= K. */
typedef void pack_fn(uint32_t *dst, int w, const operand *o, int r0, int rows, int k0, int pairs);
/* c[mr, nr] (ldc) = init + a strip [pairs][MR] times b panel [pairs][NR]; init is c itself when
 * load_c, else bias[nr] on every row (NULL: zero). */
typedef void kernel_fn(int pairs, const uint32_t *a, const uint32_t *b, float *c, size_t ldc,
                       int mr, int nr, const float *bias, int load_c);

static void pack_portable(uint32_t *dst, int w, const operand *o, int r0, int rows, int k0,
                          int pairs) {
    for (int s = 0; s * w < rows; s++)
        for (int p = 0; p < pairs; p++)
            for (int r = s * w; r < (s + 1) * w; r++) {
                int k = k0 + 2 * p;
                const float *x = o->x + (size_t)(r0 + r) * o->rs;
                float even = r < rows && k < o->K ? x[(size_t)k * o->cs] : 0.0f;
                float odd = r < rows && k + 1 < o->K ? x[(size_t)(k + 1) * o->cs] : 0.0f;
                dst[((size_t)s * pairs + p) * w + r - s * w] = bf16_pair(even, odd);
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
AVX512_BF16 static void from_floats_avx512(rd_bf16 *dst, const float *src, size_t n) {
    size_t i = 0;
    for (; i + 32 <= n; i += 32)
        _mm512_storeu_si512(dst + i,
                            bf16_32(_mm512_loadu_ps(src + i), _mm512_loadu_ps(src + i + 16)));
    if (i < n) {
        int left = (int)(n - i);
        __m512 lo = _mm512_maskz_loadu_ps(lanes(left), src + i);
        __m512 hi =
            left > 16 ? _mm512_maskz_loadu_ps(lanes(left - 16), src + i + 16) : _mm512_setzero_ps();
        _mm512_mask_storeu_epi16(dst + i, left >= 32 ? ~0u : (1u << left) - 1, bf16_32(lo, hi));
    }
}

/* Floats [k, k + 32) of a row (zeros past K, or when row is NULL) as 16 pairs. */
AVX512_BF16 static __m512i row_pairs(const float *row, int k, int K) {
    int left = row ? K - k : 0;
    __m512 lo = left > 0 ? _mm512_maskz_loadu_ps(lanes(left), row + k) : _mm512_setzero_ps();
    __m512 hi =
        left > 16 ? _mm512_maskz_loadu_ps(lanes(left - 16), row + k + 16) : _mm512_setzero_ps();
    return bf16_32(lo, hi);
}

/* v[r] = 16 pairs of row r (r < 8) -> out[q] = pair q of rows 0..7, as 8 words in the low half
 * of t[q % 8 ...]: stored by the caller. A 3-stage transpose (32-bit, 64-bit, 128-bit lanes). */
AVX512_BF16 static void store_transposed_8x16(uint32_t *dst, int w, const __m512i v[8], int n) {
    __m512i a[8], b[8];
    for (int i = 0; i < 4; i++) { /* a[2i]: rows 2i, 2i+1 interleaved, elements 0, 1 of lanes */
        a[2 * i] = _mm512_unpacklo_epi32(v[2 * i], v[2 * i + 1]);
        a[2 * i + 1] = _mm512_unpackhi_epi32(v[2 * i], v[2 * i + 1]);
    }
    for (int h = 0; h < 2; h++) /* b[4h + j]: rows 4h..4h+3 of pair j in each 128-bit lane */
        for (int lo = 0; lo < 2; lo++) {
            __m512i x = a[4 * h + lo], y = a[4 * h + 2 + lo];
            b[4 * h + 2 * lo] = _mm512_unpacklo_epi64(x, y);
            b[4 * h + 2 * lo + 1] = _mm512_unpackhi_epi64(x, y);
        }
    for (int j = 0; j < 4; j++) { /* lane L of b[j] and b[4 + j]: pair 4L + j, rows 0..7 */
        __m512i first = _mm512_shuffle_i32x4(b[j], b[4 + j], 0x44);  /* b0 l0 l1, b4 l0 l1 */
        __m512i second = _mm512_shuffle_i32x4(b[j], b[4 + j], 0xee); /* b0 l2 l3, b4 l2 l3 */
        __m512i q0 = _mm512_shuffle_i32x4(first, first, 0xd8);       /* pairs j, 4 + j */
        __m512i q1 = _mm512_shuffle_i32x4(second, second, 0xd8);     /* pairs 8 + j, 12 + j */
        const __m512i *halves[2] = {&q0, &q1};
        for (int s = 0; s < 2; s++)
            for (int hi = 0; hi < 2; hi++) {
                int q = 8 * s + 4 * hi + j;
                if (q < n)
                    _mm256_storeu_si256((__m256i *)(dst + (size_t)q * w),
                                        hi ? _mm512_extracti64x4_epi64(*halves[s], 1)
                                           : _mm512_castsi512_si256(*halves[s]));
            }
    }
}

/* pack_fn with AVX-512 (w a multiple of 8). k contiguous (cs == 1): 8 rows at a time become 16
 * pairs each, transposed in registers. r contiguous (rs == 1): rows k and k + 1 interleave, read
 * across all strips before the next pair (whole cache lines). */
AVX512_BF16 static void pack_avx512(uint32_t *dst, int w, const operand *o, int r0, int rows,
                                    int k0, int pairs) {
    size_t strip_words = (size_t)pairs * w;
    int strips = (rows + w - 1) / w;
    if (o->cs == 1) {
        for (int r = 0; r < strips * w; r += 8)
            for (int p = 0; p < pairs; p += 16) {
                __m512i v[8];
                for (int i = 0; i < 8; i++)
                    v[i] = row_pairs(r + i < rows ? o->x + (size_t)(r0 + r + i) * o->rs : NULL,
                                     k0 + 2 * p, o->K);
                store_transposed_8x16(dst + (r / w) * strip_words + (size_t)p * w + r % w, w, v,
                                      pairs - p);
            }
        return;
    }
    const float *base = o->x + r0;
    if (w == 8) { /* two pairs per vector: rows k, k + 2 side by side, and k + 1, k + 3 */
        for (int p = 0; p < pairs; p += 2) {
            const float *row[4];
            for (int j = 0; j < 4; j++) {
                int k = k0 + 2 * p + j, used = k < o->K && (j < 2 || p + 1 < pairs);
                row[j] = used ? base + (size_t)k * o->cs : NULL;
            }
            for (int s = 0; s < strips; s++) {
                __mmask8 m = (__mmask8)lanes(rows - 8 * s);
                __m256 x[4];
                for (int j = 0; j < 4; j++)
                    x[j] = row[j] ? _mm256_maskz_loadu_ps(m, row[j] + 8 * s) : _mm256_setzero_ps();
                __m512 e = _mm512_insertf32x8(_mm512_castps256_ps512(x[0]), x[2], 1);
                __m512 d = _mm512_insertf32x8(_mm512_castps256_ps512(x[1]), x[3], 1);
                _mm512_mask_storeu_epi32(dst + s * strip_words + (size_t)p * 8,
                                         p + 1 < pairs ? 0xffff : 0x00ff, bf16_pairs(e, d));
            }
        }
        return;
    }
    for (int p = 0; p < pairs; p++) {
        int k = k0 + 2 * p;
        const float *even = k < o->K ? base + (size_t)k * o->cs : NULL;
        const float *odd = k + 1 < o->K ? base + (size_t)(k + 1) * o->cs : NULL;
        for (int r = 0; r < strips * w; r += 16) {
            __mmask16 m = lanes(rows - r);
            __m512 e = even && m ? _mm512_maskz_loadu_ps(m, even + r) : _mm512_setzero_ps();
            __m512 d = odd && m ? _mm512_maskz_loadu_ps(m, odd + r) : _mm512_setzero_ps();
            _mm512_mask_storeu_epi32(dst + (r / w) * strip_words + (size_t)p * w + r % w,
                                     lanes(w - r % w), bf16_pairs(e, d));
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
                ops->pack(b_buf, NR, &pr->B, j0 + jc, nc, pc, pairs);
            }
            int load_c = pr->accumulate || pc > 0;
            for (int ic = 0; ic < m; ic += MC) {
                int mc = min_int(MC, m - ic);
                ops->pack(a_buf, MR, &pr->A, r0 + ic, mc, pc, pairs);
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

/* Packs all panels of B (cols columns, K summed) from operand o, threads over panels. */
static void pack_panels(const path_ops *ops, uint32_t *dst, const operand *o, int cols) {
#pragma omp parallel if ((long)cols * o->K > RD_PARALLEL_MIN)
    {
        int begin, end;
        split(cols, omp_get_num_threads(), omp_get_thread_num(), NR, &begin, &end);
        if (end > begin)
            ops->pack(dst + (size_t)(begin / NR) * panel_words(o->K), NR, o, begin, end - begin, 0,
                      (int)pairs_of(o->K));
    }
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
