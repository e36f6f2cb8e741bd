/* One DINOv2 training iteration on one process (do_train in dinov2/train/train.py around
 * SSLMetaArch.forward_backward in dinov2/train/ssl_meta_arch.py):
 *   teacher ViT on the global crops -> DINO / iBOT heads -> targets (centring or Sinkhorn);
 *   student ViT on the masked global crops and on the local crops -> heads -> DINO, iBOT and
 *   KoLeo losses -> backward through heads and backbone -> [gradient mean over ranks] ->
 *   clipping per sub-module -> AdamW -> teacher EMA.
 * Everything random (crops, masks, drop-path subsets) is an input, and every batch-level
 * quantity goes through hooks (rd_reducer for Sinkhorn sums and centres, a gradient-mean hook),
 * so an MPI program gets the same result on any number of ranks. All buffers are sized at
 * init (arenas); a step allocates nothing. */
#ifndef RDINO_STEP_H
#define RDINO_STEP_H

#include <stddef.h>
#include <stdint.h>

#include "rdino/config.h"
#include "rdino/error.h"
#include "rdino/heads.h"
#include "rdino/optim.h"
#include "rdino/reduce.h"
#include "rdino/schedule.h"
#include "rdino/targets.h"
#include "rdino/vit.h"

typedef enum { RD_TARGETS_CENTERING, RD_TARGETS_SINKHORN } rd_targets_mode;

typedef struct rd_step_config {
    int batch;       /* B images on this process */
    int n_local;     /* local crops per image (may be 0) */
    int channels;    /* channels of the crops (1 = grey for a 3-channel model, or in_chans) */
    int global_size; /* global crop side (the ViT's native img_size) */
    int local_size;  /* local crop side */
    int max_masked;  /* capacity for masked patches per step (rd_ibot_masks_upperbound) */
    rd_targets_mode targets;
    int sinkhorn_iterations;                       /* 3 */
    double center_momentum;                        /* 0.9 */
    double student_temp;                           /* 0.1 */
    double dino_weight, ibot_weight, koleo_weight; /* 1, 1, 0.1 */
    int koleo_group; /* images per KoLeo neighbourhood, per crop; 0 = all B (DINOv2) */
    /* iBOT centre over ranks: RD_CENTER_GLOBAL_MEAN (0, rank-count invariant) or DINOv2's
     * RD_CENTER_MEAN_OF_RANK_MEANS */
    rd_center_mode ibot_center;
    double clip_grad;                            /* 3.0; 0 = no clipping */
    double layerwise_decay, patch_embed_lr_mult; /* 0.9, 0.2 */
    double beta1, beta2, adam_eps;               /* 0.9, 0.999, 1e-8 */
    int bf16; /* pretrain.precision: bf16: the backbones' block linears in bf16 (docs/BF16.md) */
} rd_step_config;

/* Everything that lives across steps: student and teacher parameters (identical layouts),
 * optimiser state, centres, and the per-step buffers. */
typedef struct rd_trainer {
    rd_step_config cfg;
    rd_vit vit;
    rd_head dino_head, ibot_head; /* ibot_head == dino_head (copy) when shared */
    int separate_ibot;
    rd_param_set student, teacher;
    rd_adamw opt;
    rd_center center_dino, center_ibot;
    rd_vit_context teacher_ctx, global_ctx, local_ctx;
    /* cfg.bf16: bf16 copies of the student's block linears (forward and backward), re-packed
     * from the fp32 masters at the start of every step. The teacher stays fp32: with bf16 its
     * targets, sharpened by 1 / teacher_temp, doubled the loss drift (docs/BF16.md). */
    rd_vit_bf16 student_bf16;
    rd_head_acts t_dino, t_ibot, s_dino, s_ibot; /* *_ibot unused when shared */
    rd_arena arena;                              /* head activations and step buffers */
    float *t_in;    /* [2B + max_masked, D]: teacher CLS (views swapped), masked patches */
    float *s_in;    /* [(n_l + 2) B + max_masked, D]: local CLS, global CLS, masked patches */
    float *ds_in;   /* gradient of s_in */
    float *d_patch; /* [2B, N, D] patch-token gradient of the global crops */
    double *work;   /* Sinkhorn / KoLeo scratch */
    int *nn_index;  /* [B] KoLeo neighbours */
} rd_trainer;

/* The step and head settings of a run configuration (DINOv2 keys): train.batch_size_per_gpu,
 * train.centering, crops.{local_crops_number, global_crops_size, local_crops_size},
 * dino.{loss_weight, koleo_loss_weight, head_*}, ibot.{loss_weight, separate_head, head_*,
 * mask_sample_probability, mask_ratio_min_max} (max_masked = the masks' upperbound),
 * optim.{clip_grad, layerwise_decay, patch_embed_lr_mult, adamw_beta1, adamw_beta2}; fixed
 * DINOv2 constants otherwise (student temp 0.1, centre momentum 0.9, 3 Sinkhorn iterations,
 * eps 1e-8, KoLeo per process, iBOT centre from the global mean). channels = vit->in_chans
 * (set 1 for grey crops). *separate tells whether ibot is a head of its own. */
rd_status rd_step_setup_from_config(const rd_config *config, const rd_vit_config *vit,
                                    rd_step_config *step, rd_head_config *dino,
                                    rd_head_config *ibot, int *separate, rd_error *err);

/* Declares and allocates everything. ibot_cfg NULL = the iBOT loss uses the DINO head. */
rd_status rd_trainer_init(rd_trainer *tr, const rd_vit_config *vit_cfg,
                          const rd_head_config *dino_cfg, const rd_head_config *ibot_cfg,
                          const rd_step_config *cfg, rd_error *err);
void rd_trainer_free(rd_trainer *tr);
/* DINOv2 init of the student from seed (counter-based), teacher = student, moments 0. */
void rd_trainer_init_params(rd_trainer *tr, uint64_t seed);
/* Bytes held by the trainer's arenas (parameters, optimiser, activations, step buffers). */
size_t rd_trainer_bytes(const rd_trainer *tr);
/* Logs each arena's size with rd_info (the "trainer memory:" line). */
void rd_trainer_report_memory(const rd_trainer *tr);

/* What a trainer allocates, by component, in bytes. Every arena is zeroed when allocated, so
 * all of it is resident: this is the trainer's share of the process's peak RSS. */
typedef struct rd_trainer_memory {
    size_t student;                 /* parameters + gradients */
    size_t teacher;                 /* parameters */
    size_t adamw;                   /* moments, step counts */
    size_t teacher_acts;            /* inference context of the global crops */
    size_t global_acts, local_acts; /* the student's training contexts */
    size_t step;                    /* heads' activations and the step's buffers */
    size_t bf16;                    /* the student's bf16 copies and their scratch, or 0 */
    int batch;                      /* images on this process */
} rd_trainer_memory;

/* The memory rd_trainer_init would allocate for the same arguments, computed without
 * allocating it (with the OpenMP thread count in force: the contexts keep per-thread scratch). */
rd_status rd_trainer_plan(const rd_vit_config *vit_cfg, const rd_head_config *dino_cfg,
                          const rd_head_config *ibot_cfg, const rd_step_config *cfg,
                          rd_trainer_memory *m, rd_error *err);
size_t rd_trainer_memory_total(const rd_trainer_memory *m);
/* The "trainer memory:" line of m: each component and the activations per image. */
void rd_trainer_memory_format(const rd_trainer_memory *m, char *buf, size_t size);

/* One step's random choices (all supplied by the caller). */
typedef struct rd_step_batch {
    const float *global_crops; /* [2B, channels, G, G] crop-major: crop 1 of each image, crop 2 */
    const float *local_crops;  /* [n_l B, channels, L, L] crop-major */
    const uint8_t *masks;      /* [2B, N] iBOT masks of the global crops */
    const int *mask_indices;   /* [M] ascending flat indices into 2B x N */
    const float *masks_weight; /* [M] */
    int n_masked;              /* M */
    const rd_vit_drop_path *drop_global, *drop_local; /* NULL = no stochastic depth */
} rd_step_batch;

/* Cross-rank hooks; a NULL rd_step_comm (or NULL members) is one process. */
typedef struct rd_step_comm {
    const rd_reducer *reducer; /* Sinkhorn sums, centre sums, the step's loss terms */
    /* grad[n] = mean over ranks of grad[n] (FSDP's gradient averaging); called once per step
     * after the backward pass */
    rd_status (*mean_gradients)(void *ctx, float *grad, size_t n, rd_error *err);
    void *ctx;
    /* Optional (overlap of communication with backward): student.grad[begin, end) will not
     * change any more in this step. Called in descending, contiguous ranges: the heads as soon
     * as their backward is done, then the final norm, block depth-1 .. block 0 and the
     * embeddings during the last backbone backward; mean_gradients follows. */
    rd_status (*gradients_ready)(void *ctx, size_t begin, size_t end, rd_error *err);
    int nranks; /* ranks the loss terms are averaged over (0 or 1: one process) */
} rd_step_comm;

/* Wall-clock phases of a step (profiling). */
typedef enum {
    RD_PHASE_TEACHER,         /* teacher backbone, heads and targets */
    RD_PHASE_STUDENT_FORWARD, /* student backbone on global and local crops */
    RD_PHASE_HEADS_LOSSES,    /* student heads forward, losses, heads backward */
    RD_PHASE_BACKBONE_BACKWARD,
    RD_PHASE_OPTIMIZER, /* gradient mean hook, clipping, AdamW, EMA */
    RD_PHASE_COUNT
} rd_step_phase;
const char *rd_step_phase_name(rd_step_phase phase);

typedef struct rd_step_stats {
    /* backpropagated terms: L = w_dino (dino_local + dino_global) + koleo + w_ibot ibot, each the
     * mean over ranks (= the term over the whole global batch) */
    double dino_local, dino_global, ibot, koleo, loss;
    /* DINOv2's logged values: koleo / 2, ibot / 2, total = their sum with the DINO terms */
    double logged_koleo, logged_ibot, logged_total;
    double grad_norm[RD_MODULE_COUNT], clip_coef[RD_MODULE_COUNT]; /* before clipping */
    double seconds[RD_PHASE_COUNT];
} rd_step_stats;

/* One iteration with the schedule values v (lr, last_layer_lr, wd, momentum, teacher_temp).
 * A non-finite loss term or gradient norm (the same verdict on every rank: both are reduced
 * first) returns RD_ENUMERIC naming the term, before any parameter changes. */
rd_status rd_trainer_step(rd_trainer *tr, const rd_step_batch *batch, const rd_schedule_values *v,
                          const rd_step_comm *comm, rd_step_stats *stats, rd_error *err);

#endif
