/* Optimisation of the student: DINOv2's parameter groups computed from the parameter names
 * (get_params_groups_with_decay, dinov2/utils/param_groups.py), AdamW exactly as torch.optim.AdamW
 * (one group per parameter), global-norm gradient clipping per sub-module (do_train,
 * dinov2/train/train.py), and the teacher EMA (SSLMetaArch.update_teacher). All act on rd_param_set
 * flat buffers; the optimiser's moments live in one arena sized at init, so a step allocates
 * nothing. */
#ifndef RDINO_OPTIM_H
#define RDINO_OPTIM_H

#include <stdint.h>

#include "rdino/arena.h"
#include "rdino/error.h"
#include "rdino/params.h"

/* Learning-rate and weight-decay multipliers of one parameter (get_params_groups_with_decay):
 * backbone layer id 0 for patch_embed / pos_embed / cls_token / register_tokens / mask_token,
 * i+1 for blocks.i.*, depth+1 otherwise (final norm); lr_mult = layerwise_decay^(depth+1-id),
 * x patch_embed_lr_mult for patch_embed.*; heads lr_mult 1. wd_mult 0 for names ending in
 * ".bias" or containing "norm" or "gamma". last_layer = a head name containing "last_layer". */
void rd_param_group_of(rd_module module, const char *name, int depth, double layerwise_decay,
                       double patch_embed_lr_mult, double *lr_mult, double *wd_mult,
                       int *last_layer);
/* Fills lr_mult / wd_mult / last_layer of every parameter of the set. */
void rd_param_groups_assign(rd_param_set *set, int depth, double layerwise_decay,
                            double patch_embed_lr_mult);

typedef struct rd_adamw {
    double beta1, beta2, eps;
    float *exp_avg;    /* [set numel], same layout as the parameters */
    float *exp_avg_sq; /* [set numel] */
    int64_t *step;     /* [set count]: steps taken per parameter tensor */
    int count;
    size_t numel;
    rd_arena arena;
} rd_adamw;

/* Zeroed moments and step counts for every tensor of set. */
rd_status rd_adamw_init(rd_adamw *opt, const rd_param_set *set, double beta1, double beta2,
                        double eps, rd_error *err);
void rd_adamw_free(rd_adamw *opt);
/* One torch.optim.AdamW step on every tensor, group lr_g = (last_layer ? last_layer_lr : lr) *
 * lr_mult and wd_g = wd * wd_mult: theta *= 1 - lr_g wd_g; m, v updated; step += 1;
 * theta -= lr_g / (1 - b1^s) * m / (sqrt(v) / sqrt(1 - b2^s) + eps). With lr_g = 0 (frozen
 * last layer) theta is unchanged but the moments and step still advance. */
void rd_adamw_step(rd_adamw *opt, rd_param_set *set, double lr, double last_layer_lr, double wd);

/* Gradient clipping per sub-module (FSDP clip_grad_norm_): n = sqrt(sum g^2) over the module's
 * gradients, coef = min(1, max_norm / (n + 1e-6)), grads *= coef. max_norm <= 0 only measures.
 * norms/coefs (optional, [RD_MODULE_COUNT]) receive the pre-clip norm and the factor used; a
 * module without parameters gets norm 0, coef 1. */
void rd_clip_grad_norms(rd_param_set *set, double max_norm, double *norms, double *coefs);

/* Teacher EMA over the whole flat buffer: theta_t = m theta_t + (1 - m) theta_s. The sets
 * must have the same layout (checked). */
rd_status rd_ema_update(rd_param_set *teacher, const rd_param_set *student, double momentum,
                        rd_error *err);

#endif
