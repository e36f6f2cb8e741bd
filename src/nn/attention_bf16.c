/* The attention's two products from bf16 operands with fp32 sums (rd_attention_forward_bf16,
 * docs/BF16.md). Per head, k and v are rounded to bf16 once and packed as pairs along the
 * summed index (k along hd, v along the keys); per query tile, the scaled q is packed as pairs
 * along hd, and after each key tile's softmax the probabilities as pairs along the keys. The
 * online softmax, the running sums and the output stay fp32 (attention.c's tile loop).
 *
 * Both products have the transposed tiles' shape C[M, w] (+)= A(M, pairs) B[pairs][w], queries
 * along w: A is read one pair at a time and broadcast (a key's or a channel's pair), B a row of
 * pairs per vector; VDPBF16PS adds each lane's two products to its fp32 sum. The emulated path
 * sums in the same order as the instruction (the odd product first), so it gives the same bits
 * (tests/nn/test_attention_bf16.c). */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "attention_internal.h"
#include "bf16_simd.h"
#include "rdino/nn.h"

/* ---- products ---------------------------------------------------------------------------- */

/* dst[p * ldd + j] = pair(x[2p][j], x[2p + 1][j]) for p < pairs, j < width; rows of x are ldx
 * apart and rows >= rows_x read as 0. */
typedef void pack_pairs_fn(uint32_t *dst, size_t ldd, const float *x, size_t ldx, int rows_x,
                           int pairs, int width);
/* c[M, N] (ldc) (+)= A(M, pairs) B: A(m, p) = a[m * sam + p * sak], B[p][n] = b[p * ldb + n]. */
typedef void product_fn(float *c, long ldc, const uint32_t *a, long sam, long sak,
                        const uint32_t *b, long ldb, int M, int N, int pairs, int accumulate);

static void pack_pairs_portable(uint32_t *dst, size_t ldd, const float *x, size_t ldx, int rows_x,
                                int pairs, int width) {
    for (int p = 0; p < pairs; p++)
        for (int j = 0; j < width; j++) {
            float even = 2 * p < rows_x ? x[(size_t)2 * p * ldx + j] : 0.0f;
            float odd = 2 * p + 1 < rows_x ? x[(size_t)(2 * p + 1) * ldx + j] : 0.0f;
            dst[(size_t)p * ldd + j] = bf16_pair(even, odd);
        }
}

/* VDPBF16PS per lane, as gemm_bf16.c's emulation: += the odd products, then the even ones. */
static void product_portable(float *c, long ldc, const uint32_t *a, long sam, long sak,
                             const uint32_t *b, long ldb, int M, int N, int pairs, int accumulate) {
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            float acc = accumulate ? c[m * ldc + n] : 0.0f;
            for (int p = 0; p < pairs; p++) {
                uint32_t ap = a[m * sam + p * sak], bp = b[p * ldb + n];
                acc += rd_bf16_to_float(ap >> 16) * rd_bf16_to_float(bp >> 16);
                acc += rd_bf16_to_float((rd_bf16)ap) * rd_bf16_to_float((rd_bf16)bp);
            }
            c[m * ldc + n] = acc;
        }
}

#if RD_BF16_X86
AVX512_BF16 static void pack_pairs_avx512(uint32_t *dst, size_t ldd, const float *x, size_t ldx,
                                          int rows_x, int pairs, int width) {
    for (int p = 0; p < pairs; p++) {
        const float *even = 2 * p < rows_x ? x + (size_t)2 * p * ldx : NULL;
        const float *odd = 2 * p + 1 < rows_x ? x + (size_t)(2 * p + 1) * ldx : NULL;
        for (int j = 0; j < width; j += 16) {
            __mmask16 m = lanes(width - j);
            __m512 e = even ? _mm512_maskz_loadu_ps(m, even + j) : _mm512_setzero_ps();
            __m512 o = odd ? _mm512_maskz_loadu_ps(m, odd + j) : _mm512_setzero_ps();
            _mm512_mask_storeu_epi32(dst + (size_t)p * ldd + j, m, bf16_pairs(e, o));
        }
    }
}

/* Register blocks of MR rows by up to NV vectors of 16 columns (24 accumulators), the last
 * vector masked to N. */
enum { MR = 6, NV = 4 };

AVX512_BF16 static inline __attribute__((always_inline)) void
block_avx512(float *c, long ldc, const uint32_t *a, long sam, long sak, const uint32_t *b, long ldb,
             int pairs, int accumulate, int mr, int nv, __mmask16 last) {
    __m512 acc[MR][NV];
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 8
        for (int v = 0; v < nv; v++)
            acc[i][v] = accumulate ? _mm512_maskz_loadu_ps(v == nv - 1 ? last : 0xffff,
                                                           c + i * ldc + 16 * v)
                                   : _mm512_setzero_ps();
    for (int p = 0; p < pairs; p++) {
        const uint32_t *bp = b + p * ldb, *ap = a + p * sak;
        __m512bh bv[NV];
#pragma GCC unroll 8
        for (int v = 0; v < nv; v++)
            bv[v] = (__m512bh)_mm512_maskz_loadu_epi32(v == nv - 1 ? last : 0xffff, bp + 16 * v);
#pragma GCC unroll 8
        for (int i = 0; i < mr; i++) {
            __m512bh ai = (__m512bh)_mm512_set1_epi32((int)ap[i * sam]);
#pragma GCC unroll 8
            for (int v = 0; v < nv; v++) acc[i][v] = _mm512_dpbf16_ps(acc[i][v], ai, bv[v]);
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 8
        for (int v = 0; v < nv; v++)
            _mm512_mask_storeu_ps(c + i * ldc + 16 * v, v == nv - 1 ? last : 0xffff, acc[i][v]);
}

#define BLOCK(mr, nv)                                                                              \
    case (mr)*8 + (nv):                                                                            \
        block_avx512(cm, ldc, am, sam, sak, bn, ldb, pairs, accumulate, mr, nv, last);             \
        break;
#define BLOCKS(mr) BLOCK(mr, 1) BLOCK(mr, 2) BLOCK(mr, 3) BLOCK(mr, 4)

AVX512_BF16 static void product_avx512(float *c, long ldc, const uint32_t *a, long sam, long sak,
                                       const uint32_t *b, long ldb, int M, int N, int pairs,
                                       int accumulate) {
    for (int n0 = 0; n0 < N; n0 += NV * 16) {
        int left = N - n0, nv = left >= NV * 16 ? NV : (left + 15) / 16;
        __mmask16 last = lanes(left - 16 * (nv - 1));
        const uint32_t *bn = b + n0;
        for (int m0 = 0; m0 < M; m0 += MR) {
            int mr = M - m0 < MR ? M - m0 : MR;
            float *cm = c + m0 * ldc + n0;
            const uint32_t *am = a + m0 * sam;
            switch (mr * 8 + nv) { BLOCKS(1) BLOCKS(2) BLOCKS(3) BLOCKS(4) BLOCKS(5) BLOCKS(6) }
        }
    }
}
#endif

/* ---- the tile's products, per path --------------------------------------------------------- */

/* The products below read pack and product from one of these, chosen per call of
 * rd_attention_forward_bf16 (one path per process in practice: rd_bf16_select_path). */
typedef struct bf16_path_ops {
    pack_pairs_fn *pack;
    product_fn *product;
} bf16_path_ops;

static const bf16_path_ops portable_ops = {pack_pairs_portable, product_portable};
#if RD_BF16_X86
static const bf16_path_ops avx512_ops = {pack_pairs_avx512, product_avx512};
#endif

/* The attention_products callbacks carry no state, so each path gets its own three functions
 * around the shared bodies. */
static void pack_query(const bf16_path_ops *ops, uint32_t *qp, const float *qt, int hd, int w) {
    ops->pack(qp, (size_t)w, qt, (size_t)w, hd, (hd + 1) / 2, w);
}
/* st[cols, w] = sum over hd pairs of k's pair (broadcast) times the query tile's pairs */
static void scores(const bf16_path_ops *ops, float *st, const attention_head *h, const void *q,
                   int j0, int cols, int w) {
    int hp = (h->hd + 1) / 2;
    ops->product(st, w, h->kp + (size_t)j0 * hp, hp, 1, q, w, cols, w, hp, 0);
}
/* ot[hd, w] (+)= sum over key pairs of v's pair (broadcast) times the probabilities' pairs */
static void values(const bf16_path_ops *ops, float *ot, const attention_head *h, const float *st,
                   uint32_t *pairs, int j0, int cols, int w, int accumulate) {
    int kp = (cols + 1) / 2;
    ops->pack(pairs, (size_t)w, st, (size_t)w, cols, kp, w);
    ops->product(ot, w, h->vp + (size_t)j0 / 2 * h->hd, 1, h->hd, pairs, w, h->hd, w, kp,
                 accumulate);
}

#define PATH_PRODUCTS(name, ops)                                                                   \
    static void name##_pack_query(uint32_t *qp, const float *qt, int hd, int w) {                  \
        pack_query(ops, qp, qt, hd, w);                                                            \
    }                                                                                              \
    static void name##_scores(float *st, const attention_head *h, const void *q, int j0, int cols, \
                              int w) {                                                             \
        scores(ops, st, h, q, j0, cols, w);                                                        \
    }                                                                                              \
    static void name##_values(float *ot, const attention_head *h, const float *st,                 \
                              uint32_t *pairs, int j0, int cols, int w, int accumulate) {          \
        values(ops, ot, h, st, pairs, j0, cols, w, accumulate);                                    \
    }                                                                                              \
    static const attention_products name##_products = {name##_pack_query, name##_scores,           \
                                                       name##_values};

PATH_PRODUCTS(emulated, &portable_ops)
#if RD_BF16_X86
PATH_PRODUCTS(avx512, &avx512_ops)
#endif

/* ---- the forward --------------------------------------------------------------------------- */

static size_t packed_head_words(int T, int hd) {
    return (size_t)T * ((hd + 1) / 2) + (size_t)(T + 1) / 2 * hd;
}

size_t rd_attention_bf16_scratch_floats(int T, int hd) {
    return rd_attention_scratch_floats(T, hd) + ((packed_head_words(T, hd) + 15) & ~(size_t)15);
}

void rd_attention_forward_bf16(float *out, float *lse, float *scratch, const float *qkv, int b,
                               int T, int D, int H, rd_bf16_path path) {
    const attention_products *products = &emulated_products;
    const bf16_path_ops *ops = &portable_ops;
#if RD_BF16_X86
    if (path == RD_BF16_PATH_AVX512) {
        products = &avx512_products;
        ops = &avx512_ops;
    }
#endif
    if (path == RD_BF16_PATH_FP32) {
        rd_attention_forward(out, lse, scratch, qkv, b, T, D, H);
        return;
    }
    int hd = D / H, hp = (hd + 1) / 2;
    long ld = 3 * (long)D;
    float scale = 1.0f / sqrtf((float)hd);
    size_t tile = rd_attention_scratch_floats(T, hd),
           per_thread = rd_attention_bf16_scratch_floats(T, hd);
#pragma omp parallel for collapse(2) schedule(dynamic) if ((long)b * H * T * T > RD_PARALLEL_MIN)
    for (int i = 0; i < b; i++)
        for (int h = 0; h < H; h++) {
            float *work = scratch + (size_t)omp_get_thread_num() * per_thread;
            uint32_t *kp = (void *)(work + tile), *vp = kp + (size_t)T * hp;
            const float *q = qkv + (size_t)i * T * ld + (size_t)h * hd, *k = q + D, *v = k + D;
            /* k [T][hp]: each row's hd values in order are its pairs (hd odd: a zero after) */
            for (int t = 0; t < T; t++) {
                rd_bf16 *row = (rd_bf16 *)(kp + (size_t)t * hp);
                rd_bf16_from_floats(row, k + t * ld, (size_t)hd);
                if (hd % 2) row[hd] = 0;
            }
            ops->pack(vp, (size_t)hd, v, (size_t)ld, T, (T + 1) / 2, hd);
            attention_head head = {k, v, ld, kp, vp, T, hd};
            rd_attention_head_forward(out + (size_t)i * T * D + (size_t)h * hd,
                                      lse ? lse + ((size_t)i * H + h) * 2 * T : NULL, work,
                                      products, &head, q, D, scale);
        }
}
