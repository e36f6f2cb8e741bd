/* The tiled attention forward, shared by its fp32 products (attention.c) and its bf16 products
 * (attention_bf16.c). Private to src/nn. */
#ifndef RDINO_NN_ATTENTION_INTERNAL_H
#define RDINO_NN_ATTENTION_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* One head of one image as a query tile's products read it. */
typedef struct attention_head {
    const float *k, *v; /* fp32 rows of qkv, ld floats apart */
    long ld;
    const uint32_t *kp; /* bf16 products: k as [T][hp] pairs along hd (hp = (hd + 1) / 2) */
    const uint32_t *vp; /* and v as [(T + 1) / 2][hd] pairs along the keys; NULL for fp32 */
    int T, hd;
} attention_head;

/* The two products of a query tile of w queries (w a multiple of the vector width, queries
 * along w) against cols keys from key j0 (j0 even). */
typedef struct attention_products {
    /* qp <- the query tile qt [hd, w] as the products want it; NULL: qt itself (fp32) */
    void (*pack_query)(uint32_t *qp, const float *qt, int hd, int w);
    /* st[cols, w] = k[j0 .. j0 + cols) q (q: qt, or qp after pack_query) */
    void (*scores)(float *st, const attention_head *h, const void *q, int j0, int cols, int w);
    /* ot[hd, w] (+)= v[j0 .. j0 + cols)^T st; pairs: scratch for st as bf16 pairs */
    void (*values)(float *ot, const attention_head *h, const float *st, uint32_t *pairs, int j0,
                   int cols, int w, int accumulate);
} attention_products;

/* out[T, hd] (rows D apart) = softmax(q k^T * scale) v for one head, query tile by query tile,
 * through ops; q [T, hd] rows h->ld apart. lse: [2, T] (row max, log sum) or NULL. work:
 * rd_attention_scratch_floats(T, hd) floats. */
void rd_attention_head_forward(float *out, float *lse, float *work, const attention_products *ops,
                               const attention_head *h, const float *q, int D, float scale);

#endif
