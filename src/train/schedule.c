#include "rdino/schedule.h"

#include <math.h>
#include <string.h>

double rd_cosine_value(const rd_cosine_schedule *s, int64_t it) {
    if (it < s->zero_before) return 0.0;
    if (it >= s->total) return s->final;
    if (it < s->warmup) {
        /* numpy.linspace: start + i * step, the last element set to stop exactly. */
        if (it == s->warmup - 1) return s->warmup == 1 ? s->start_warmup : s->base;
        double step = (s->base - s->start_warmup) / (double)(s->warmup - 1);
        return (double)it * step + s->start_warmup;
    }
    int64_t n = s->total - s->warmup, i = it - s->warmup;
    const double pi = 3.141592653589793;
    return s->final + 0.5 * (s->base - s->final) * (1.0 + cos(pi * (double)i / (double)n));
}

rd_status rd_lr_scaling_parse(const char *name, rd_lr_scaling *rule, rd_error *err) {
    if (strcmp(name, "sqrt_wrt_1024") == 0)
        *rule = RD_LR_SQRT_WRT_1024;
    else if (strcmp(name, "linear_wrt_256") == 0)
        *rule = RD_LR_LINEAR_WRT_256;
    else if (strcmp(name, "none") == 0)
        *rule = RD_LR_NONE;
    else
        return rd_fail(err, RD_EINVAL,
                       "optim.scaling_rule: unknown rule '%s' (sqrt_wrt_1024, linear_wrt_256, "
                       "none)",
                       name);
    return RD_OK;
}

double rd_lr_scaled(rd_lr_scaling rule, double base_lr, int64_t global_batch) {
    switch (rule) {
    case RD_LR_SQRT_WRT_1024:
        return base_lr * sqrt((double)global_batch / 1024.0);
    case RD_LR_LINEAR_WRT_256:
        return base_lr * (double)global_batch / 256.0;
    case RD_LR_NONE:
        break;
    }
    return base_lr;
}

/* epochs x OFFICIAL_EPOCH_LENGTH, as DINOv2 multiplies them (fractional epochs truncate). */
static int64_t iterations(const rd_config *cfg, const char *epochs_key) {
    return (int64_t)(rd_cfg_float(cfg, epochs_key) *
                     (double)rd_cfg_int(cfg, "train.OFFICIAL_EPOCH_LENGTH"));
}

rd_status rd_schedules_from_config(rd_schedules *s, const rd_config *cfg, int64_t global_batch,
                                   rd_error *err) {
    rd_lr_scaling rule;
    rd_status st = rd_lr_scaling_parse(rd_cfg_str(cfg, "optim.scaling_rule"), &rule, err);
    if (st) return st;
    int64_t epoch_len = rd_cfg_int(cfg, "train.OFFICIAL_EPOCH_LENGTH");
    int64_t total = rd_cfg_int(cfg, "optim.epochs") * epoch_len;
    memset(s, 0, sizeof *s);
    s->lr = (rd_cosine_schedule){
        .base = rd_lr_scaled(rule, rd_cfg_float(cfg, "optim.base_lr"), global_batch),
        .final = rd_cfg_float(cfg, "optim.min_lr"),
        .total = total,
        .warmup = iterations(cfg, "optim.warmup_epochs"),
    };
    s->last_layer_lr = s->lr;
    s->last_layer_lr.zero_before = iterations(cfg, "optim.freeze_last_layer_epochs");
    s->wd = (rd_cosine_schedule){.base = rd_cfg_float(cfg, "optim.weight_decay"),
                                 .final = rd_cfg_float(cfg, "optim.weight_decay_end"),
                                 .total = total};
    s->momentum = (rd_cosine_schedule){.base = rd_cfg_float(cfg, "teacher.momentum_teacher"),
                                       .final = rd_cfg_float(cfg, "teacher.final_momentum_teacher"),
                                       .total = total};
    int64_t temp_iters = iterations(cfg, "teacher.warmup_teacher_temp_epochs");
    s->teacher_temp =
        (rd_cosine_schedule){.base = rd_cfg_float(cfg, "teacher.teacher_temp"),
                             .final = rd_cfg_float(cfg, "teacher.teacher_temp"),
                             .start_warmup = rd_cfg_float(cfg, "teacher.warmup_teacher_temp"),
                             .total = temp_iters,
                             .warmup = temp_iters};
    if (s->lr.warmup > total)
        return rd_fail(err, RD_EINVAL, "optim.warmup_epochs (%g) exceeds optim.epochs (%lld)",
                       rd_cfg_float(cfg, "optim.warmup_epochs"),
                       (long long)rd_cfg_int(cfg, "optim.epochs"));
    return RD_OK;
}

void rd_schedules_at(const rd_schedules *s, int64_t it, rd_schedule_values *v) {
    v->lr = rd_cosine_value(&s->lr, it);
    v->last_layer_lr = rd_cosine_value(&s->last_layer_lr, it);
    v->wd = rd_cosine_value(&s->wd, it);
    v->momentum = rd_cosine_value(&s->momentum, it);
    v->teacher_temp = rd_cosine_value(&s->teacher_temp, it);
}
