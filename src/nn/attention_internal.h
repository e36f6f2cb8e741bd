/* The tiled attention forward and backward, shared by their fp32 products (attention.c) and
 * their bf16 products (attention_bf16.c). Private to src/nn. */
#ifndef RDINO_NN_ATTENTION_INTERNAL_H
#define RDINO_NN_ATTENTION_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* One head of one image as a tile's products read it. */
typedef struct attention_head {
    const float *k, *v; /* fp32 rows of qkv, ld floats apart */
    long ld;
    /* bf16 products (NULL for fp32), with hp = (hd + 1) / 2: k as [T][hp] pairs along hd and v
     * as [(T + 1) / 2][hd] pairs along the keys; the backward adds the other two layouts, v
     * along hd and k along the keys (NULL in the forward). */
    const uint32_t *kp, *vp, *vh, *kk;
    int T, hd;
} attention_head;

/* The head with k and v (and their layouts) swapped: scores of it give dO v^T and values of it
 * give dS k, so the backward reuses the forward's two products. */
static inline attention_head attention_head_swapped(const attention_head *h) {
    return (attention_head){h->v, h->k, h->ld, h->vh, h->kk, h->kp, h->vp, h->T, h->hd};
}

/* The products of a query tile of w queries (w a multiple of the vector width, queries along w)
 * against cols keys from key j0 (j0 even). */
typedef struct attention_products {
    /* qp <- the query tile qt [hd, w] as the products want it; NULL: qt itself (fp32) */
    void (*pack_query)(uint32_t *qp, const float *qt, int hd, int w);
    /* st[cols, w] = k[j0 .. j0 + cols) q (q: qt, or qp after pack_query) */
    void (*scores)(float *st, const attention_head *h, const void *q, int j0, int cols, int w);
    /* ot[hd, w] (+)= v[j0 .. j0 + cols)^T st; pairs: scratch for st as bf16 pairs */
    void (*values)(float *ot, const attention_head *h, const float *st, uint32_t *pairs, int j0,
                   int cols, int w, int accumulate);
    /* The backward's products over the queries. yp <- y [rows, hd] (rows ldy apart) as pairs
     * along the rows, [(rows + 1) / 2][hd]; NULL: the products read y itself (fp32). */
    void (*pack_rows)(uint32_t *yp, const float *y, long ldy, int rows, int hd);
    /* c[cols, hd] (ldc) += alpha xt[cols, :rows] y[rows, hd], xt [cols, w] a tile, y as given to
     * pack_rows (y and ldy, or yp); pairs: scratch for alpha xt as bf16 pairs */
    void (*tile_t_rows)(float *c, long ldc, const float *xt, int cols, int w, const float *y,
                        long ldy, const uint32_t *yp, int rows, int hd, float alpha,
                        uint32_t *pairs);
} attention_products;

/* out[T, hd] (rows D apart) = softmax(q k^T * scale) v for one head, query tile by query tile,
 * through ops; q [T, hd] rows h->ld apart. lse: [2, T] (row max, log sum) or NULL. work:
 * rd_attention_scratch_floats(T, hd) floats (bf16 products: + attention_bf16_tile_words). */
void rd_attention_head_forward(float *out, float *lse, float *work, const attention_products *ops,
                               const attention_head *h, const float *q, int D, float scale);

/* The gradients of one head, rd_attention_backward's per (image, head): dq, dk, dv [T, hd]
 * (rows h->ld apart, added to) from dout and out [T, hd] (rows D apart), q [T, hd] (rows
 * h->ld apart) and lse [2, T]. work: as rd_attention_head_forward's. */
void rd_attention_head_backward(float *dq, float *dk, float *dv, float *work,
                                const attention_products *ops, const attention_head *h,
                                const float *dout, const float *out, const float *q,
                                const float *lse, int D, float scale);

/* Words the bf16 products need after rd_attention_scratch_floats(T, hd) in a tile's work: the
 * packed query and dout [hp, w] each, q and dout as row pairs [w / 2, hd] each, and one key
 * tile as pairs. */
size_t attention_bf16_tile_words(int T, int hd);

#endif
