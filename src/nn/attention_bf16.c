/* The attention's products from bf16 operands with fp32 sums (rd_attention_forward_bf16 and
 * rd_attention_backward_bf16, docs/BF16.md). Per head, k and v are rounded to bf16 once and
 * packed as pairs along the summed index (k along hd, v along the keys; the backward also v
 * along hd and k along the keys); per query tile, the scaled q is packed as pairs along hd, and
 * after each key tile's softmax the probabilities as pairs along the keys. The online softmax,
 * the running sums, the output and the gradients stay fp32 (attention.c's tile loops). The
 * backward's products over the queries (dv += P^T dO, dk += scale dS^T q) read a tile's rows as
 * consecutive pairs and q and dO packed as pairs along the queries.
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

/* dst[c * ldd + p] = pair(alpha x[c][2p], alpha x[c][2p + 1]) for c < rows, p < pairs, x's rows
 * ldx apart; x[c][n] and beyond read as 0. */
typedef void pack_consecutive_fn(uint32_t *dst, size_t ldd, const float *x, size_t ldx, int rows,
                                 int n, int pairs, float alpha);

static void pack_consecutive_portable(uint32_t *dst, size_t ldd, const float *x, size_t ldx,
                                      int rows, int n, int pairs, float alpha) {
    for (int c = 0; c < rows; c++) {
        const float *xc = x + (size_t)c * ldx;
        for (int p = 0; p < pairs; p++)
            dst[(size_t)c * ldd + p] = bf16_pair(2 * p < n ? alpha * xc[2 * p] : 0.0f,
                                                 2 * p + 1 < n ? alpha * xc[2 * p + 1] : 0.0f);
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

AVX512_BF16 static void pack_consecutive_avx512(uint32_t *dst, size_t ldd, const float *x,
                                                size_t ldx, int rows, int n, int pairs,
                                                float alpha) {
    const __m512 a = _mm512_set1_ps(alpha);
    for (int c = 0; c < rows; c++) {
        const float *xc = x + (size_t)c * ldx;
        for (int p = 0; p < pairs; p += 16) {
            int j = 2 * p;
            __m512 lo = _mm512_mul_ps(a, _mm512_maskz_loadu_ps(lanes(n - j), xc + j));
            __m512 hi = _mm512_mul_ps(a, _mm512_maskz_loadu_ps(lanes(n - j - 16), xc + j + 16));
            _mm512_mask_storeu_epi32(dst + (size_t)c * ldd + p, lanes(pairs - p), bf16_32(lo, hi));
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
    pack_consecutive_fn *pack_consecutive;
    product_fn *product;
} bf16_path_ops;

static const bf16_path_ops portable_ops = {pack_pairs_portable, pack_consecutive_portable,
                                           product_portable};
#if RD_BF16_X86
static const bf16_path_ops avx512_ops = {pack_pairs_avx512, pack_consecutive_avx512,
                                         product_avx512};
#endif

/* The attention_products callbacks carry no state, so each path gets its own functions around
 * the shared bodies. */
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

/* yp [(rows + 1) / 2][hd] = y [rows, hd] as pairs along the rows */
static void pack_rows(const bf16_path_ops *ops, uint32_t *yp, const float *y, long ldy, int rows,
                      int hd) {
    ops->pack(yp, (size_t)hd, y, (size_t)ldy, rows, (rows + 1) / 2, hd);
}
/* c[cols, hd] += sum over query pairs of alpha xt's pair (broadcast) times y's pairs */
static void tile_t_rows(const bf16_path_ops *ops, float *c, long ldc, const float *xt, int cols,
                        int w, const uint32_t *yp, int rows, int hd, float alpha, uint32_t *pairs) {
    int rp = (rows + 1) / 2;
    ops->pack_consecutive(pairs, (size_t)rp, xt, (size_t)w, cols, rows, rp, alpha);
    ops->product(c, ldc, pairs, rp, 1, yp, hd, cols, hd, rp, 1);
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
    static void name##_pack_rows(uint32_t *yp, const float *y, long ldy, int rows, int hd) {       \
        pack_rows(ops, yp, y, ldy, rows, hd);                                                      \
    }                                                                                              \
    static void name##_tile_t_rows(float *c, long ldc, const float *xt, int cols, int w,           \
                                   const float *y, long ldy, const uint32_t *yp, int rows, int hd, \
                                   float alpha, uint32_t *pairs) {                                 \
        (void)y, (void)ldy;                                                                        \
        tile_t_rows(ops, c, ldc, xt, cols, w, yp, rows, hd, alpha, pairs);                         \
    }                                                                                              \
    static const attention_products name##_products = {                                            \
        name##_pack_query, name##_scores, name##_values, name##_pack_rows, name##_tile_t_rows};

PATH_PRODUCTS(emulated, &portable_ops)
#if RD_BF16_X86
PATH_PRODUCTS(avx512, &avx512_ops)
#endif

/* ---- the forward and the backward --------------------------------------------------------- */

static size_t packed_head_words(int T, int hd) {
    return 2 * ((size_t)T * ((hd + 1) / 2) + (size_t)(T + 1) / 2 * hd);
}

size_t rd_attention_bf16_scratch_floats(int T, int hd) {
    return rd_attention_scratch_floats(T, hd) +
           ((attention_bf16_tile_words(T, hd) + packed_head_words(T, hd) + 15) & ~(size_t)15);
}

/* The path's products, or NULL for RD_BF16_PATH_FP32. */
static const attention_products *products_of(rd_bf16_path path, const bf16_path_ops **ops) {
#if RD_BF16_X86
    if (path == RD_BF16_PATH_AVX512) {
        *ops = &avx512_ops;
        return &avx512_products;
    }
#endif
    *ops = &portable_ops;
    return path == RD_BF16_PATH_FP32 ? NULL : &emulated_products;
}

/* dst [T][hp] = x [T, hd] (rows ld apart) as pairs along hd: each row's values in order (hd
 * odd: a zero after). */
static void pack_along_hd(uint32_t *dst, const float *x, long ld, int T, int hd) {
    int hp = (hd + 1) / 2;
    for (int t = 0; t < T; t++) {
        rd_bf16 *row = (rd_bf16 *)(dst + (size_t)t * hp);
        rd_bf16_from_floats(row, x + t * ld, (size_t)hd);
        if (hd % 2) row[hd] = 0;
    }
}

/* Head h of image i of qkv with its k and v rounded to bf16 and packed into work (after the
 * tiles): k along hd and v along the keys, and for the backward v along hd and k along the
 * keys. Returns the head; *q: its queries. */
static attention_head pack_head(const bf16_path_ops *ops, float *work, const float *qkv, int i,
                                int h, int T, int D, int H, int backward, const float **q) {
    int hd = D / H, hp = (hd + 1) / 2;
    long ld = 3 * (long)D;
    uint32_t *kp =
        (void *)(work + rd_attention_scratch_floats(T, hd) + attention_bf16_tile_words(T, hd));
    uint32_t *vp = kp + (size_t)T * hp, *vh = vp + (size_t)(T + 1) / 2 * hd;
    uint32_t *kk = vh + (size_t)T * hp;
    *q = qkv + (size_t)i * T * ld + (size_t)h * hd;
    const float *k = *q + D, *v = k + D;
    pack_along_hd(kp, k, ld, T, hd);
    ops->pack(vp, (size_t)hd, v, (size_t)ld, T, (T + 1) / 2, hd);
    if (!backward) return (attention_head){k, v, ld, kp, vp, NULL, NULL, T, hd};
    pack_along_hd(vh, v, ld, T, hd);
    ops->pack(kk, (size_t)hd, k, (size_t)ld, T, (T + 1) / 2, hd);
    return (attention_head){k, v, ld, kp, vp, vh, kk, T, hd};
}

/* One call of the forward (dqkv NULL: out and lse from qkv) or of the backward (dqkv += the
 * gradient from dout, out and lse), head by head in parallel. */
typedef struct attention_call {
    const float *qkv;
    float *out, *lse;                      /* forward: written */
    float *dqkv;                           /* backward: added to */
    const float *dout, *fwd_out, *fwd_lse; /* backward: read */
    int b, T, D, H;
} attention_call;

static void run_heads(const attention_call *c, float *scratch, const attention_products *products,
                      const bf16_path_ops *ops) {
    const int b = c->b, T = c->T, D = c->D, H = c->H, hd = D / H, backward = c->dqkv != NULL;
    const long ld = 3 * (long)D;
    const float scale = 1.0f / sqrtf((float)hd);
    size_t per_thread = rd_attention_bf16_scratch_floats(T, hd);
#pragma omp parallel for collapse(2) schedule(dynamic) if ((long)b * H * T * T > RD_PARALLEL_MIN)
    for (int i = 0; i < b; i++)
        for (int h = 0; h < H; h++) {
            float *work = scratch + (size_t)omp_get_thread_num() * per_thread;
            const float *q;
            attention_head head = pack_head(ops, work, c->qkv, i, h, T, D, H, backward, &q);
            size_t rows = (size_t)i * T * D + (size_t)h * hd, lse = ((size_t)i * H + h) * 2 * T;
            if (backward) {
                float *dq = c->dqkv + (size_t)i * T * ld + (size_t)h * hd;
                rd_attention_head_backward(dq, dq + D, dq + 2 * D, work, products, &head,
                                           c->dout + rows, c->fwd_out + rows, q, c->fwd_lse + lse,
                                           D, scale);
            } else {
                rd_attention_head_forward(c->out + rows, c->lse ? c->lse + lse : NULL, work,
                                          products, &head, q, D, scale);
            }
        }
}

void rd_attention_forward_bf16(float *out, float *lse, float *scratch, const float *qkv, int b,
                               int T, int D, int H, rd_bf16_path path) {
    const bf16_path_ops *ops;
    const attention_products *products = products_of(path, &ops);
    if (!products) {
        rd_attention_forward(out, lse, scratch, qkv, b, T, D, H);
        return;
    }
    attention_call c = {qkv, out, lse, NULL, NULL, NULL, NULL, b, T, D, H};
    run_heads(&c, scratch, products, ops);
}

void rd_attention_backward_bf16(float *dqkv, float *scratch, const float *dout, const float *out,
                                const float *qkv, const float *lse, int b, int T, int D, int H,
                                rd_bf16_path path) {
    const bf16_path_ops *ops;
    const attention_products *products = products_of(path, &ops);
    if (!products) {
        rd_attention_backward(dqkv, scratch, dout, out, qkv, lse, b, T, D, H);
        return;
    }
    attention_call c = {qkv, NULL, NULL, dqkv, dout, out, lse, b, T, D, H};
    run_heads(&c, scratch, products, ops);
}
