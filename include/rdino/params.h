/* Parameter sets: every trainable tensor of a network (backbone + heads) in one contiguous
 * float buffer, with a gradient buffer of the same layout and named views. Student and
 * teacher declare their tensors in the same order, so their buffers line up element for
 * element: the EMA update, AdamW and the gradient all-reduce are loops over flat arrays.
 * Names are DINOv2's state-dict names inside their module ("blocks.0.attn.qkv.weight",
 * "last_layer.weight_g"), so checkpoints convert to PyTorch by a rename. */
#ifndef RDINO_PARAMS_H
#define RDINO_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "rdino/arena.h"
#include "rdino/error.h"

typedef enum {
    RD_MODULE_BACKBONE = 0,
    RD_MODULE_DINO_HEAD = 1,
    RD_MODULE_IBOT_HEAD = 2,
    RD_MODULE_COUNT = 3
} rd_module;

enum { RD_PARAM_NAME_MAX = 80, RD_PARAM_MAX_DIMS = 4 };

typedef struct rd_param {
    char name[RD_PARAM_NAME_MAX];
    rd_module module;
    int ndim;
    int64_t shape[RD_PARAM_MAX_DIMS];
    size_t numel;
    size_t offset; /* first element in data/grad */
    float lr_mult; /* optimiser multipliers (optim.h, rd_param_groups_assign); 1 until assigned */
    float wd_mult;
    int last_layer; /* a head's last_layer.* (frozen at the start of training) */
} rd_param;

typedef struct rd_param_set {
    rd_param *params;
    int count, capacity;
    size_t numel;
    float *data; /* NULL until rd_params_alloc */
    float *grad; /* NULL for sets without gradients (teacher) */
    rd_arena arena;
} rd_param_set;

void rd_params_init(rd_param_set *set);
void rd_params_free(rd_param_set *set);

/* Declares a tensor; returns its index (>= 0) or -1 on error. Shapes are PyTorch's. */
int rd_params_add(rd_param_set *set, rd_module module, const char *name, int ndim,
                  const int64_t *shape, rd_error *err);
/* Allocates data (and grad if with_grad) for all declared tensors, zeroed. */
rd_status rd_params_alloc(rd_param_set *set, int with_grad, rd_error *err);

static inline float *rd_param_data(const rd_param_set *set, int idx) {
    return set->data + set->params[idx].offset;
}
static inline float *rd_param_grad(const rd_param_set *set, int idx) {
    return set->grad + set->params[idx].offset;
}
/* Tensor idx inside buf, a buffer laid out like set (its data, its gradients, a moment); NULL
 * when the tensor is absent (idx -1) or the buffer is (NULL). Named views bind with it. */
static inline float *rd_param_in(const rd_param_set *set, float *buf, int idx) {
    return buf && idx >= 0 ? buf + set->params[idx].offset : NULL;
}
/* Index of a tensor by module and name, or -1. */
int rd_params_find(const rd_param_set *set, rd_module module, const char *name);
/* Half-open element range [begin, end) of one module's tensors (declared contiguously). */
void rd_params_module_range(const rd_param_set *set, rd_module module, size_t *begin, size_t *end);
const char *rd_module_name(rd_module module); /* "backbone", "dino_head", "ibot_head" */

#endif
