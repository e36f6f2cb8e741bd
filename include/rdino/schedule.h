/* Training schedules, exactly DINOv2's CosineScheduler (dinov2/utils/utils.py) and the
 * schedules build_schedulers (dinov2/train/train.py) makes from the config. Values are doubles
 * indexed by the global iteration. */
#ifndef RDINO_SCHEDULE_H
#define RDINO_SCHEDULE_H

#include <stdint.h>

#include "rdino/config.h"
#include "rdino/error.h"

/* sched = linspace(start_warmup, base, warmup) (endpoint included)
 *         ++ [final + 0.5 (base - final)(1 + cos(pi i / n)) for i < n], n = total - warmup;
 * value(it) = 0 for it < zero_before (last-layer freeze), sched[it] for it < total, else final. */
typedef struct rd_cosine_schedule {
    double base, final, start_warmup;
    int64_t total, warmup, zero_before;
} rd_cosine_schedule;

double rd_cosine_value(const rd_cosine_schedule *s, int64_t it);

typedef enum { RD_LR_SQRT_WRT_1024, RD_LR_LINEAR_WRT_256, RD_LR_NONE } rd_lr_scaling;

/* Parses "sqrt_wrt_1024" | "linear_wrt_256" | "none". */
rd_status rd_lr_scaling_parse(const char *name, rd_lr_scaling *rule, rd_error *err);
/* Peak lr for a global batch of global_batch images: base_lr * sqrt(n/1024), base_lr * n/256,
 * or base_lr. */
double rd_lr_scaled(rd_lr_scaling rule, double base_lr, int64_t global_batch);

typedef struct rd_schedules {
    rd_cosine_schedule lr, last_layer_lr, wd, momentum, teacher_temp;
} rd_schedules;

typedef struct rd_schedule_values {
    double lr, last_layer_lr, wd, momentum, teacher_temp;
} rd_schedule_values;

/* The five schedules of train.py from optim.*, teacher.* and train.OFFICIAL_EPOCH_LENGTH;
 * global_batch = batch_size_per_gpu x ranks (images) for the lr scaling rule. */
rd_status rd_schedules_from_config(rd_schedules *s, const rd_config *cfg, int64_t global_batch,
                                   rd_error *err);
void rd_schedules_at(const rd_schedules *s, int64_t it, rd_schedule_values *v);

#endif
