/* Fused multi-head attention in tiles (FlashAttention-2, Dao 2023, arXiv:2307.08691, Algorithms
 * 1 and 2): the forward walks key tiles with an online softmax and keeps each query row's
 * log-sum-exp; the backward recomputes each tile's probabilities from q, k and that log-sum-exp.
 * The [T, T] probability matrix never exists whole; each thread holds [BC, BR] tiles.
 *
 * The log-sum-exp is kept in two parts, the row max m and log l (l = sum exp(s - m)), and the
 * backward takes exp((s - m) - log l): s - m is exact near the max, whereas s - fl(m + log l)
 * carries the rounding of the sum, half an ulp of |m| (1.5e-5 relative error in P at scores of
 * 512, which tests/nn/test_attention.c's large-score case would see).
 *
 * Tiles are kept transposed, keys by queries (st[c][r] = score of query r against key c), so
 * every vector runs along BR queries: the softmax over keys is lane-wise, k and v are read in
 * place from qkv as broadcast scalars, and only the query tile (and dout) is packed. */
#include "rdino/nn.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "attention_internal.h"
#include "vecmath.h"

/* Tile sizes: BR queries by BC keys. Measured with bench/bench_attention (ViT-B, hd 64, at
 * T = 257 and 1370): BR 32..128 and BC 64..256 lie within 10 % of each other; BR 64 wastes the
 * least on a last partial tile and BC 128 rescales the output half as often as BC 64. Scratch
 * per thread: 80 KiB at hd 64, L2-resident. */
enum { BR = 64, BC = 128 };

/* One tile product through OpenBLAS: C[M, N] = alpha * A(M, K) B[K, N] (+ C when accumulate),
 * A(m, k) = a[m * sam + k * sak] with sam or sak 1, rows of B and C ldb and ldc apart. */
static void blas_gemm(float *c, long ldc, const float *a, long sam, long sak, const float *b,
                      long ldb, int M, int N, int K, float alpha, int accumulate) {
    int trans_a = sam == 1 && sak != 1;
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, CblasNoTrans, M, N, K, alpha, a,
                (int)(trans_a ? sak : sam), b, (int)ldb, accumulate ? 1.0f : 0.0f, c, (int)ldc);
}

#if defined(__AVX__)
#include <immintrin.h>

/* The tile products in registers, the vector being the target's widest (AVX-512: blocks of
 * MR = 6 rows by NV = 4 zmm, 24 accumulators of 32 registers; AVX: 6 x 2 ymm, 12 of 16).
 * Measured against blas_gemm on the same tiles (bench/bench_attention, an AMD Zen 5 that
 * OpenBLAS 0.3.21 drives with its Haswell kernels): 1.9x faster with AVX-512, 1.0-1.1x with
 * AVX2. */
#if defined(__AVX512F__)
enum { VL = 16, NV = 4 };
typedef __m512 vf;
#else
enum { VL = 8, NV = 2 };
typedef __m256 vf;
#endif
enum { MR = 6 };

static inline vf vload(const float *p) {
#if defined(__AVX512F__)
    return _mm512_loadu_ps(p);
#else
    return _mm256_loadu_ps(p);
#endif
}
static inline void vstore(float *p, vf v) {
#if defined(__AVX512F__)
    _mm512_storeu_ps(p, v);
#else
    _mm256_storeu_ps(p, v);
#endif
}
static inline vf vbroadcast(float x) {
#if defined(__AVX512F__)
    return _mm512_set1_ps(x);
#else
    return _mm256_set1_ps(x);
#endif
}
static inline vf vzero(void) {
    return vbroadcast(0.0f);
}
/* a * b + c, in one rounding where the target has FMA */
static inline vf vfma(vf a, vf b, vf c) {
#if defined(__AVX512F__)
    return _mm512_fmadd_ps(a, b, c);
#elif defined(__FMA__)
    return _mm256_fmadd_ps(a, b, c);
#else
    return _mm256_add_ps(_mm256_mul_ps(a, b), c);
#endif
}
static inline vf vmul(vf a, vf b) {
#if defined(__AVX512F__)
    return _mm512_mul_ps(a, b);
#else
    return _mm256_mul_ps(a, b);
#endif
}

/* One register block: C[mr, nv * VL] = alpha * sum_k A(m, k) B[k, :] (+ C when accumulate). */
static inline __attribute__((always_inline)) void block(float *c, long ldc, const float *a,
                                                        long sam, long sak, const float *b,
                                                        long ldb, int K, float alpha,
                                                        int accumulate, int mr, int nv) {
    vf acc[MR][NV];
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 8
        for (int v = 0; v < nv; v++) acc[i][v] = vzero();
    for (int k = 0; k < K; k++) {
        const float *bk = b + k * ldb, *ak = a + k * sak;
        vf bv[NV];
#pragma GCC unroll 8
        for (int v = 0; v < nv; v++) bv[v] = vload(bk + v * VL);
#pragma GCC unroll 8
        for (int i = 0; i < mr; i++) {
            vf ai = vbroadcast(ak[i * sam]);
#pragma GCC unroll 8
            for (int v = 0; v < nv; v++) acc[i][v] = vfma(ai, bv[v], acc[i][v]);
        }
    }
    vf va = vbroadcast(alpha);
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 8
        for (int v = 0; v < nv; v++) {
            float *ci = c + i * ldc + v * VL;
            vstore(ci, accumulate ? vfma(va, acc[i][v], vload(ci)) : vmul(va, acc[i][v]));
        }
}

#define BLOCK(mr, nv)                                                                              \
    case (mr)*8 + (nv):                                                                            \
        block(cm, ldc, am, sam, sak, bn, ldb, K, alpha, accumulate, mr, nv);                       \
        break;
#if defined(__AVX512F__) /* nv up to NV */
#define BLOCKS(mr) BLOCK(mr, 1) BLOCK(mr, 2) BLOCK(mr, 3) BLOCK(mr, 4)
#else
#define BLOCKS(mr) BLOCK(mr, 1) BLOCK(mr, 2)
#endif

/* C[M, N] = alpha * A(M, K) B[K, N] (+ C when accumulate), as blas_gemm; register blocks when N
 * is a multiple of VL, OpenBLAS otherwise (head widths such as 4 or 24 in tests). */
static void gemm(float *c, long ldc, const float *a, long sam, long sak, const float *b, long ldb,
                 int M, int N, int K, float alpha, int accumulate) {
    if (N % VL) {
        blas_gemm(c, ldc, a, sam, sak, b, ldb, M, N, K, alpha, accumulate);
        return;
    }
    for (int n0 = 0; n0 < N; n0 += NV * VL) {
        int nv = (N - n0) / VL < NV ? (N - n0) / VL : NV;
        const float *bn = b + n0;
        for (int m0 = 0; m0 < M; m0 += MR) {
            int mr = M - m0 < MR ? M - m0 : MR;
            float *cm = c + m0 * ldc + n0;
            const float *am = a + m0 * sam;
            switch (mr * 8 + nv) { BLOCKS(1) BLOCKS(2) BLOCKS(3) BLOCKS(4) BLOCKS(5) BLOCKS(6) }
        }
    }
}
#else
/* Built without AVX (a portable x86-64-v2 build): OpenBLAS, which picks its kernels at run
 * time, beats 4-wide register blocks without FMA (2.5x at T = 1370 on the machine above). Tile
 * columns are still padded to 8 floats. */
enum { VL = 8 };
#define gemm blas_gemm
#endif

static int round_up(int n, int to) {
    return (n + to - 1) / to * to;
}

/* Widest query tile in floats: BR rows, or all T rounded up to whole vectors (BR is one). */
static int tile_width(int T) {
    return round_up(T < BR ? T : BR, VL);
}
static int key_tile(int T) {
    return T < BC ? T : BC;
}

size_t rd_attention_scratch_floats(int T, int hd) {
    size_t w = (size_t)tile_width(T), bc = (size_t)key_tile(T);
    /* forward: qt, ot [hd, w]; st [bc, w]; four rows [w]. backward: qt, dot, dqt [hd, w];
     * pt, dpt [bc, w]; three rows [w]. */
    return (3 * hd * w + 2 * bc * w + 4 * w + 15) & ~(size_t)15; /* 64-byte multiple */
}

size_t attention_bf16_tile_words(int T, int hd) {
    size_t w = (size_t)tile_width(T), bc = (size_t)key_tile(T), hp = (size_t)(hd + 1) / 2;
    return 2 * hp * w + w * (size_t)hd + (bc + 1) / 2 * w;
}

/* xt[d, r] = scale * x[r, d] for r < rows (rows ld apart), 0 for rows <= r < w. */
static void pack_transposed(float *xt, const float *x, int rows, int w, int hd, long ld,
                            float scale) {
    for (int d = 0; d < hd; d++) {
        float *row = xt + (size_t)d * w;
        for (int r = 0; r < rows; r++) row[r] = scale * x[r * ld + d];
        for (int r = rows; r < w; r++) row[r] = 0.0f;
    }
}

/* The fp32 products read k and v in place from qkv. */
static void scores_fp32(float *st, const attention_head *h, const void *q, int j0, int cols,
                        int w) {
    gemm(st, w, h->k + j0 * h->ld, h->ld, 1, q, w, cols, w, h->hd, 1.0f, 0);
}
static void values_fp32(float *ot, const attention_head *h, const float *st, uint32_t *pairs,
                        int j0, int cols, int w, int accumulate) {
    (void)pairs;
    gemm(ot, w, h->v + j0 * h->ld, 1, h->ld, st, w, h->hd, w, cols, 1.0f, accumulate);
}
static void tile_t_rows_fp32(float *c, long ldc, const float *xt, int cols, int w, const float *y,
                             long ldy, const uint32_t *yp, int rows, int hd, float alpha,
                             uint32_t *pairs) {
    (void)yp, (void)pairs;
    gemm(c, ldc, xt, w, 1, y, ldy, cols, hd, rows, alpha, 1);
}
static const attention_products fp32_products = {NULL, scores_fp32, values_fp32, NULL,
                                                 tile_t_rows_fp32};

/* One query tile of one head: out[rows, hd] (rows D apart) = softmax(q k^T * scale) v over all
 * T keys, key tile by key tile: m = running max per query, l = running sum of exp(s - m); when a
 * tile raises the max, what is already summed (l and the output) is rescaled by exp(m_old -
 * m_new). When lse is not NULL: lse[r] = m, lse[T + r] = log(l) for r < rows. Scratch: qt, ot
 * [hd, w]; st [bc, w]; four rows [w]; after rd_attention_scratch_floats(T, hd) floats, the bf16
 * products' packed query [hp, w] and probabilities [(bc + 1) / 2, w]. */
static void forward_tile(float *out, float *lse, float *work, const attention_products *ops,
                         const attention_head *h, const float *q, int rows, int D, float scale) {
    int T = h->T, hd = h->hd, w = round_up(rows, VL), bc = key_tile(T);
    float *qt = work, *ot = qt + (size_t)hd * w, *st = ot + (size_t)hd * w;
    float *m = st + (size_t)bc * w, *l = m + w, *mx = l + w, *alpha = mx + w;
    uint32_t *qp = (void *)(work + rd_attention_scratch_floats(T, hd));
    uint32_t *pairs = qp + (size_t)(hd + 1) / 2 * w;
    pack_transposed(qt, q, rows, w, hd, h->ld, scale);
    const void *qop = qt;
    if (ops->pack_query) {
        ops->pack_query(qp, qt, hd, w);
        qop = qp;
    }
    for (int j0 = 0; j0 < T; j0 += bc) {
        int cols = T - j0 < bc ? T - j0 : bc;
        ops->scores(st, h, qop, j0, cols, w);
        memcpy(mx, j0 ? m : st, (size_t)w * sizeof *mx);
        for (int c = 0; c < cols; c++) {
            const float *s = st + (size_t)c * w;
#pragma omp simd
            for (int r = 0; r < w; r++) mx[r] = s[r] > mx[r] ? s[r] : mx[r];
        }
        if (j0) {
#pragma omp simd
            for (int r = 0; r < w; r++) {
                alpha[r] = rd_vexpf(m[r] - mx[r]);
                l[r] *= alpha[r];
            }
            for (int d = 0; d < hd; d++) {
                float *o = ot + (size_t)d * w;
#pragma omp simd
                for (int r = 0; r < w; r++) o[r] *= alpha[r];
            }
        } else {
            memset(l, 0, (size_t)w * sizeof *l);
        }
        for (int c = 0; c < cols; c++) {
            float *s = st + (size_t)c * w;
#pragma omp simd
            for (int r = 0; r < w; r++) {
                s[r] = rd_vexpf(s[r] - mx[r]);
                l[r] += s[r];
            }
        }
        memcpy(m, mx, (size_t)w * sizeof *m);
        ops->values(ot, h, st, pairs, j0, cols, w, j0 > 0);
    }
    for (int r = 0; r < rows; r++) {
        float inv = 1.0f / l[r], *o = out + (size_t)r * D;
        for (int d = 0; d < hd; d++) o[d] = ot[(size_t)d * w + r] * inv;
        if (lse) {
            lse[r] = m[r];
            lse[T + r] = logf(l[r]);
        }
    }
}

void rd_attention_head_forward(float *out, float *lse, float *work, const attention_products *ops,
                               const attention_head *h, const float *q, int D, float scale) {
    for (int r0 = 0; r0 < h->T; r0 += BR) {
        int rows = h->T - r0 < BR ? h->T - r0 : BR;
        forward_tile(out + (size_t)r0 * D, lse ? lse + r0 : NULL, work, ops, h, q + r0 * h->ld,
                     rows, D, scale);
    }
}

void rd_attention_forward(float *out, float *lse, float *scratch, const float *qkv, int b, int T,
                          int D, int H) {
    int hd = D / H, ld = 3 * D, br = BR;
    int ntiles = (T + br - 1) / br;
    float scale = 1.0f / sqrtf((float)hd);
    size_t per_thread = rd_attention_scratch_floats(T, hd);
    rd_blas_one_thread();
#pragma omp parallel for schedule(dynamic) if ((long)b * H * T * T > RD_PARALLEL_MIN)
    for (long task = 0; task < (long)b * H * ntiles; task++) {
        int i = (int)(task / ((long)H * ntiles)), h = (int)(task / ntiles % H);
        int r0 = (int)(task % ntiles) * br, rows = T - r0 < br ? T - r0 : br;
        const float *q = qkv + ((size_t)i * T + r0) * ld + (size_t)h * hd;
        const float *k = qkv + (size_t)i * T * ld + D + (size_t)h * hd;
        attention_head head = {k, k + D, ld, NULL, NULL, NULL, NULL, T, hd};
        forward_tile(out + ((size_t)i * T + r0) * D + (size_t)h * hd,
                     lse ? lse + ((size_t)i * H + h) * 2 * T + r0 : NULL,
                     scratch + (size_t)omp_get_thread_num() * per_thread, &fp32_products, &head, q,
                     rows, D, scale);
    }
}

/* One head, query tile by query tile, key tile by key tile (a fixed order, so the sums into dq,
 * dk and dv do not depend on the thread count). lse [2, T]: row max and log-sum as the forward
 * left them. Per tile pair, with P = exp(s - m - log l):
 * dv += P^T dO,  dP = dO v^T,  dS = P (dP - delta),  dq += scale dS k,  dk += scale dS^T q,
 * where delta[row] = dO . out (= sum over the row of P dP). The scores are the forward's
 * products, so P is the forward's bit for bit; dP and dS k are the forward's products on the
 * head with k and v swapped. Scratch as forward_tile's: qt, dot, dqt [hd, w]; pt, dpt [bc, w];
 * three rows [w]; after rd_attention_scratch_floats(T, hd) floats the bf16 products' packed qt
 * and dot [hp, w], q and dO as row pairs [w / 2, hd] and a key tile's pairs. */
void rd_attention_head_backward(float *dq, float *dk, float *dv, float *work,
                                const attention_products *ops, const attention_head *h,
                                const float *dout, const float *out, const float *q,
                                const float *lse, int D, float scale) {
    const int T = h->T, hd = h->hd, hp = (hd + 1) / 2, bc = key_tile(T);
    const long ld = h->ld;
    const attention_head swapped = attention_head_swapped(h);
    for (int i0 = 0; i0 < T; i0 += BR) {
        int rows = T - i0 < BR ? T - i0 : BR, w = round_up(rows, VL);
        float *qt = work, *dot = qt + (size_t)hd * w, *dqt = dot + (size_t)hd * w;
        float *pt = dqt + (size_t)hd * w, *dpt = pt + (size_t)bc * w;
        float *delta = dpt + (size_t)bc * w, *m = delta + w, *logl = m + w;
        uint32_t *qp = (void *)(work + rd_attention_scratch_floats(T, hd)), *dop = qp + hp * w;
        uint32_t *qr = dop + hp * w, *dor = qr + (size_t)w / 2 * hd, *pairs = dor + w / 2 * hd;
        const float *qi = q + i0 * ld, *dOi = dout + (size_t)i0 * D;
        const void *q_op = qt, *dout_op = dot;
        pack_transposed(qt, qi, rows, w, hd, ld, scale);
        pack_transposed(dot, dOi, rows, w, hd, D, 1.0f);
        if (ops->pack_query) {
            ops->pack_query(qp, qt, hd, w);
            ops->pack_query(dop, dot, hd, w);
            ops->pack_rows(qr, qi, ld, rows, hd);
            ops->pack_rows(dor, dOi, D, rows, hd);
            q_op = qp, dout_op = dop;
        }
        memset(dqt, 0, (size_t)hd * w * sizeof *dqt);
        for (int r = 0; r < w; r++) {
            float dsum = 0.0f;
            if (r < rows) {
                const float *g = dOi + (size_t)r * D, *o = out + (size_t)(i0 + r) * D;
                for (int d = 0; d < hd; d++) dsum += g[d] * o[d];
            }
            delta[r] = dsum;
            m[r] = r < rows ? lse[i0 + r] : 0.0f;
            logl[r] = r < rows ? lse[T + i0 + r] : 0.0f;
        }
        for (int j0 = 0; j0 < T; j0 += bc) {
            int cols = T - j0 < bc ? T - j0 : bc;
            /* pt[cols, w] = exp(k_j qt - m - log l);  dpt[cols, w] = v_j dot */
            ops->scores(pt, h, q_op, j0, cols, w);
            for (int c = 0; c < cols; c++) {
                float *p = pt + (size_t)c * w;
#pragma omp simd
                for (int r = 0; r < w; r++) p[r] = rd_vexpf(p[r] - m[r] - logl[r]);
            }
            ops->scores(dpt, &swapped, dout_op, j0, cols, w);
            /* dv[cols, hd] += pt[:, :rows] dO */
            ops->tile_t_rows(dv + j0 * ld, ld, pt, cols, w, dOi, D, dor, rows, hd, 1.0f, pairs);
            for (int c = 0; c < cols; c++) {
                float *g = dpt + (size_t)c * w;
                const float *p = pt + (size_t)c * w;
#pragma omp simd
                for (int r = 0; r < w; r++) g[r] = p[r] * (g[r] - delta[r]);
            }
            /* dqt[hd, w] += k_j^T dS^T;  dk[cols, hd] += scale dS^T q */
            ops->values(dqt, &swapped, dpt, pairs, j0, cols, w, 1);
            ops->tile_t_rows(dk + j0 * ld, ld, dpt, cols, w, qi, ld, qr, rows, hd, scale, pairs);
        }
        for (int r = 0; r < rows; r++) {
            float *g = dq + (i0 + r) * ld;
            for (int d = 0; d < hd; d++) g[d] += scale * dqt[(size_t)d * w + r];
        }
    }
}

void rd_attention_backward(float *dqkv, float *scratch, const float *dout, const float *out,
                           const float *qkv, const float *lse, int b, int T, int D, int H) {
    int hd = D / H, ld = 3 * D;
    float scale = 1.0f / sqrtf((float)hd);
    size_t per_thread = rd_attention_scratch_floats(T, hd);
    rd_blas_one_thread();
#pragma omp parallel for collapse(2) schedule(dynamic) if ((long)b * H * T * T > RD_PARALLEL_MIN)
    for (int i = 0; i < b; i++)
        for (int h = 0; h < H; h++) {
            size_t at = (size_t)i * T * ld + (size_t)h * hd, rows = (size_t)i * T * D + h * hd;
            const float *q = qkv + at;
            float *dq = dqkv + at;
            attention_head head = {q + D, q + 2 * D, ld, NULL, NULL, NULL, NULL, T, hd};
            rd_attention_head_backward(dq, dq + D, dq + 2 * D,
                                       scratch + (size_t)omp_get_thread_num() * per_thread,
                                       &fp32_products, &head, dout + rows, out + rows, q,
                                       lse + ((size_t)i * H + h) * 2 * T, D, scale);
        }
}
