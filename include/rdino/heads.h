/* DINO / iBOT projection head (DINOHead, dinov2/layers/dino_head.py), forward and backward on
 * a batch of rows:
 *         x [rows, in] -> MLP (Linear+GELU x (nlayers-1), Linear to bottleneck)
 *         z = y / max(||y||, 1e-12)                      (L2 normalisation per row)
 *         logits [rows, K] = z W^T,  W_k = g_k v_k / ||v_k||   (weight-normalised last layer)
 * Parameters live in an rd_param_set under DINOv2's names (mlp.0.weight, mlp.0.bias, ...,
 * last_layer.weight_g [K,1], last_layer.weight_v [K,bottleneck]); a head describes where
 * they are, so one rd_head serves the student and the teacher set (same layout); forward and
 * backward bind named pointers into the set they are given at every call. */
#ifndef RDINO_HEADS_H
#define RDINO_HEADS_H

#include <stddef.h>
#include <stdint.h>

#include "rdino/arena.h"
#include "rdino/error.h"
#include "rdino/params.h"

enum { RD_HEAD_MAX_LAYERS = 16 };

typedef struct rd_head_config {
    int in_dim;     /* backbone embed dim D */
    int hidden_dim; /* 2048 */
    int bottleneck; /* 256 */
    int prototypes; /* K */
    int nlayers;    /* MLP layers (3); 1 = a single Linear in -> bottleneck */
} rd_head_config;

typedef struct rd_head {
    rd_head_config cfg;
    rd_module module;
    int weight[RD_HEAD_MAX_LAYERS], bias[RD_HEAD_MAX_LAYERS]; /* parameter indices per layer */
    int weight_g, weight_v;
} rd_head;

/* Declares the head's tensors in set (after the backbone's) under module. */
rd_status rd_head_declare(rd_head *head, rd_param_set *set, rd_module module,
                          const rd_head_config *cfg, rd_error *err);
/* DINOv2 init from the counter-based RNG (RD_RNG_INIT, index = parameter number): MLP weights
 * trunc-normal(0, 0.02) cut at +-2, biases 0, v ~ U(-1/sqrt(bottleneck), 1/sqrt(bottleneck)),
 * g = 1. */
void rd_head_init(const rd_head *head, rd_param_set *set, uint64_t seed);

/* Activations of one forward call, kept for the backward; sized for up to 'capacity' rows. */
typedef struct rd_head_acts {
    int capacity, rows;
    const float *x;                 /* [rows, in] input (owned by the caller) */
    float *pre[RD_HEAD_MAX_LAYERS]; /* [rows, hidden] pre-GELU of hidden layers */
    float *act[RD_HEAD_MAX_LAYERS]; /* [rows, hidden] post-GELU */
    float *y;                       /* [rows, bottleneck] MLP output */
    float *inv_norm;                /* [rows] 1 / max(||y||, eps) */
    float *z;                       /* [rows, bottleneck] normalised */
    float *logits;                  /* [rows, K] */
    float *weight;                  /* [K, bottleneck] effective g v / ||v|| */
    float *inv_vnorm;               /* [K] 1 / ||v_k|| */
    float *dhidden[2];              /* [rows, hidden] backward scratch (NULL: no backward) */
    float *dz;                      /* [rows, bottleneck] */
    float *dweight;                 /* [K, bottleneck] */
} rd_head_acts;

/* Carves the activation buffers from arena (a measuring arena only counts the bytes).
 * with_backward = 0 for the teacher. */
rd_status rd_head_acts_alloc(rd_head_acts *acts, const rd_head *head, int capacity,
                             int with_backward, rd_arena *arena, rd_error *err);

/* logits = head(x) for rows rows of x [rows, in]; result in acts->logits [rows, K]. x must stay
 * valid until the backward. */
rd_status rd_head_forward(const rd_head *head, const rd_param_set *set, rd_head_acts *acts,
                          const float *x, int rows, rd_error *err);
/* Backward of the last forward: accumulates (+=) the gradients of every head parameter into
 * set->grad and, if dx is not NULL, dL/dx into dx [rows, in]. dlogits [rows, K]. g and v get
 * torch weight_norm's gradients: dg_k = <dW_k, v_k>/||v_k||,
 * dv_k = g_k/||v_k|| (dW_k - <dW_k, v_k> v_k / ||v_k||^2). */
void rd_head_backward(const rd_head *head, rd_param_set *set, rd_head_acts *acts,
                      const float *dlogits, float *dx);

#endif
