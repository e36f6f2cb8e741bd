/* Teacher targets: softmax centring with an EMA centre, and Sinkhorn-Knopp (DINOLoss and
 * iBOTPatchLoss: softmax_center_teacher, update_center / apply_center_update,
 * sinkhorn_knopp_teacher in dinov2/loss/dino_clstoken_loss.py and ibot_patch_loss.py).
 * Every batch-level sum goes through an rd_reducer (NULL = one process), so W ranks holding
 * disjoint rows get the targets one process would get on all the rows. */
#ifndef RDINO_TARGETS_H
#define RDINO_TARGETS_H

#include <stddef.h>

#include "rdino/arena.h"
#include "rdino/error.h"
#include "rdino/reduce.h"

/* Sinkhorn-Knopp targets q [rows, K] from teacher logits [rows, K] (this rank's rows):
 *   Q = exp(t/temp - global max); Q /= sum(Q);
 *   repeat iterations: Q[:,k] /= (K * prototype mass r_k);  Q[b,:] /= (B_tot * row mass c_b);
 *   Q *= B_tot.
 * B_tot = total rows over ranks, the max, the total mass and the per-prototype masses r_k
 * are reduced (1 + 2 + iterations x K doubles). work: K doubles. q may be logits (in place). */
rd_status rd_sinkhorn_targets(float *q, const float *logits, int rows, int K, double temp,
                              int iterations, const rd_reducer *red, double *work, rd_error *err);

/* Softmax centring targets q = softmax((t - c) / temp) per row, t [rows, K], c [K]; q may be t. */
void rd_centering_targets(float *q, const float *logits, const float *center, int rows, int K,
                          double temp);

/* How a batch mean of teacher logits is formed over ranks. */
typedef enum {
    RD_CENTER_GLOBAL_MEAN,       /* DINO: (sum over ranks of row sums) / (total rows) */
    RD_CENTER_MEAN_OF_RANK_MEANS /* iBOT: mean over ranks of each rank's row mean (DINOv2) */
} rd_center_mode;

/* EMA centre with DINOv2's one-iteration delay: the batch mean of step it is folded into the
 * centre at step it+1 (c = m c + (1 - m) mean), before that step's targets. */
typedef struct rd_center {
    int K;
    double momentum; /* 0.9 */
    rd_center_mode mode;
    float *value;    /* [K] centre used for the targets; 0 at the start */
    double *pending; /* [K + 1]: reduced sums of the last batch and their count */
    int has_pending;
} rd_center;

rd_status rd_center_init(rd_center *c, int K, double momentum, rd_center_mode mode, rd_arena *arena,
                         rd_error *err);
/* Folds the pending batch mean (if any) into value. Call at the start of each step. */
void rd_center_apply_pending(rd_center *c);
/* Reduces this rank's teacher logits [rows, K] into the pending batch mean. */
rd_status rd_center_accumulate(rd_center *c, const float *logits, int rows, const rd_reducer *red,
                               rd_error *err);

#endif
