#include "rdino/step.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loss.h"
#include "rdino/log.h"
#include "rdino/masks.h"

static rd_head_config head_from(const rd_config *config, const char *section, int in_dim) {
    char key[64];
    rd_head_config h = {.in_dim = in_dim};
    snprintf(key, sizeof key, "%s.head_n_prototypes", section);
    h.prototypes = (int)rd_cfg_int(config, key);
    snprintf(key, sizeof key, "%s.head_bottleneck_dim", section);
    h.bottleneck = (int)rd_cfg_int(config, key);
    snprintf(key, sizeof key, "%s.head_hidden_dim", section);
    h.hidden_dim = (int)rd_cfg_int(config, key);
    snprintf(key, sizeof key, "%s.head_nlayers", section);
    h.nlayers = (int)rd_cfg_int(config, key);
    return h;
}

rd_status rd_step_setup_from_config(const rd_config *config, const rd_vit_config *vit,
                                    rd_step_config *step, rd_head_config *dino,
                                    rd_head_config *ibot, int *separate, rd_error *err) {
    const char *centering = rd_cfg_str(config, "train.centering");
    rd_targets_mode mode;
    if (strcmp(centering, "centering") == 0)
        mode = RD_TARGETS_CENTERING;
    else if (strcmp(centering, "sinkhorn_knopp") == 0)
        mode = RD_TARGETS_SINKHORN;
    else
        return rd_fail(err, RD_EINVAL, "train.centering: unknown mode '%s'", centering);
    const int B = (int)rd_cfg_int(config, "train.batch_size_per_gpu");
    const int G = (int)rd_cfg_int(config, "crops.global_crops_size");
    if (G % vit->patch_size)
        return rd_fail(err, RD_EINVAL,
                       "crops.global_crops_size %d is not a multiple of the patch "
                       "size %d",
                       G, vit->patch_size);
    double ratios[2];
    rd_cfg_list(config, "ibot.mask_ratio_min_max", ratios, 2);
    rd_mask_config masks;
    rd_mask_config_default(&masks, G, vit->patch_size,
                           rd_cfg_float(config, "ibot.mask_sample_probability"), ratios[0],
                           ratios[1]);
    *step = (rd_step_config){
        .batch = B,
        .n_local = (int)rd_cfg_int(config, "crops.local_crops_number"),
        .channels = vit->in_chans,
        .global_size = G,
        .local_size = (int)rd_cfg_int(config, "crops.local_crops_size"),
        .max_masked = rd_ibot_masks_upperbound(&masks, 2 * B),
        .targets = mode,
        .sinkhorn_iterations = 3,
        .center_momentum = 0.9,
        .student_temp = 0.1,
        .dino_weight = rd_cfg_float(config, "dino.loss_weight"),
        .ibot_weight = rd_cfg_float(config, "ibot.loss_weight"),
        .koleo_weight = rd_cfg_float(config, "dino.koleo_loss_weight"),
        .clip_grad = rd_cfg_float(config, "optim.clip_grad"),
        .layerwise_decay = rd_cfg_float(config, "optim.layerwise_decay"),
        .patch_embed_lr_mult = rd_cfg_float(config, "optim.patch_embed_lr_mult"),
        .beta1 = rd_cfg_float(config, "optim.adamw_beta1"),
        .beta2 = rd_cfg_float(config, "optim.adamw_beta2"),
        .adam_eps = 1e-8,
        .bf16 = strcmp(rd_cfg_str(config, "pretrain.precision"), "bf16") == 0,
    };
    *dino = head_from(config, "dino", vit->embed_dim);
    *separate = rd_cfg_bool(config, "ibot.separate_head");
    *ibot = *separate ? head_from(config, "ibot", vit->embed_dim) : *dino;
    return RD_OK;
}

static int global_patches(const rd_trainer *tr) {
    int g = tr->cfg.global_size / tr->vit.cfg.patch_size;
    return g * g;
}

/* Rows each head call handles: teacher [2B CLS | M patches], student [n_l B + 2B CLS | M]. */
static int teacher_dino_rows(const rd_trainer *tr) {
    return 2 * tr->cfg.batch + (tr->separate_ibot ? 0 : tr->cfg.max_masked);
}
static int student_dino_rows(const rd_trainer *tr) {
    return (tr->cfg.n_local + 2) * tr->cfg.batch + (tr->separate_ibot ? 0 : tr->cfg.max_masked);
}

/* Carves the head activations and step buffers from tr->arena (measuring or real). */
static rd_status carve(rd_trainer *tr, rd_error *err) {
    const rd_step_config *c = &tr->cfg;
    const int D = tr->vit.cfg.embed_dim, Mx = c->max_masked;
    const size_t s_rows = (size_t)(c->n_local + 2) * c->batch + Mx;
    rd_arena *a = &tr->arena;
    rd_status st;
    if ((st = rd_head_acts_alloc(&tr->t_dino, &tr->dino_head, teacher_dino_rows(tr), 0, a, err)))
        return st;
    if ((st = rd_head_acts_alloc(&tr->s_dino, &tr->dino_head, student_dino_rows(tr), 1, a, err)))
        return st;
    if (tr->separate_ibot) {
        if ((st = rd_head_acts_alloc(&tr->t_ibot, &tr->ibot_head, Mx, 0, a, err))) return st;
        if ((st = rd_head_acts_alloc(&tr->s_ibot, &tr->ibot_head, Mx, 1, a, err))) return st;
    }
    if (c->targets == RD_TARGETS_CENTERING) {
        if ((st = rd_center_init(&tr->center_dino, tr->dino_head.cfg.prototypes, c->center_momentum,
                                 RD_CENTER_GLOBAL_MEAN, a, err)))
            return st;
        if ((st = rd_center_init(&tr->center_ibot, tr->ibot_head.cfg.prototypes, c->center_momentum,
                                 c->ibot_center, a, err)))
            return st;
    }
    tr->t_in = rd_arena_floats(a, (size_t)(2 * c->batch + Mx) * D);
    tr->s_in = rd_arena_floats(a, s_rows * D);
    tr->ds_in = rd_arena_floats(a, s_rows * D);
    tr->d_patch = rd_arena_floats(a, (size_t)2 * c->batch * global_patches(tr) * D);
    size_t work = rd_koleo_work(c->batch, D);
    if ((size_t)tr->dino_head.cfg.prototypes > work) work = (size_t)tr->dino_head.cfg.prototypes;
    if ((size_t)tr->ibot_head.cfg.prototypes > work) work = (size_t)tr->ibot_head.cfg.prototypes;
    tr->work = rd_arena_alloc(a, work * sizeof(double));
    tr->nn_index = rd_arena_alloc(a, (size_t)c->batch * sizeof(int));
    if (a->base && !tr->nn_index)
        return rd_fail(err, RD_ENOMEM, "arena '%s' too small for the step buffers", a->name);
    return RD_OK;
}

static rd_status declare(rd_trainer *tr, rd_param_set *set, const rd_vit_config *vit_cfg,
                         const rd_head_config *dino_cfg, const rd_head_config *ibot_cfg,
                         rd_error *err) {
    rd_params_init(set);
    rd_status st = rd_vit_declare(&tr->vit, vit_cfg, set, err);
    if (!st) st = rd_head_declare(&tr->dino_head, set, RD_MODULE_DINO_HEAD, dino_cfg, err);
    if (!st && ibot_cfg)
        st = rd_head_declare(&tr->ibot_head, set, RD_MODULE_IBOT_HEAD, ibot_cfg, err);
    return st;
}

/* Checks the shapes and declares the student (the plan's and the trainer's first step). */
static rd_status declare_student(rd_trainer *tr, const rd_vit_config *vit_cfg,
                                 const rd_head_config *dino_cfg, const rd_head_config *ibot_cfg,
                                 const rd_step_config *cfg, rd_error *err) {
    memset(tr, 0, sizeof *tr);
    tr->cfg = *cfg;
    tr->separate_ibot = ibot_cfg != NULL;
    if (cfg->batch < 1 || cfg->n_local < 0 || cfg->max_masked < 0 || cfg->koleo_group < 0)
        return rd_fail(err, RD_EINVAL, "step: bad batch %d, local crops %d or capacities",
                       cfg->batch, cfg->n_local);
    rd_status st = declare(tr, &tr->student, vit_cfg, dino_cfg, ibot_cfg, err);
    if (st) return st;
    if (!tr->separate_ibot) tr->ibot_head = tr->dino_head;
    if (dino_cfg->in_dim != vit_cfg->embed_dim ||
        (ibot_cfg && ibot_cfg->in_dim != vit_cfg->embed_dim))
        return rd_fail(err, RD_EINVAL, "step: head input %d differs from the embed dim %d",
                       dino_cfg->in_dim, vit_cfg->embed_dim);
    return RD_OK;
}

rd_status rd_trainer_plan(const rd_vit_config *vit_cfg, const rd_head_config *dino_cfg,
                          const rd_head_config *ibot_cfg, const rd_step_config *cfg,
                          rd_trainer_memory *m, rd_error *err) {
    memset(m, 0, sizeof *m);
    rd_trainer *tr = malloc(sizeof *tr);
    if (!tr) return rd_fail(err, RD_ENOMEM, "out of memory for the trainer plan");
    rd_status st = declare_student(tr, vit_cfg, dino_cfg, ibot_cfg, cfg, err);
    if (!st) {
        const int B = cfg->batch, G = cfg->global_size, L = cfg->local_size;
        size_t params = rd_arena_round(tr->student.numel * sizeof(float));
        m->batch = B;
        m->student = 2 * params;
        m->teacher = params;
        m->adamw = 2 * params + rd_arena_round((size_t)tr->student.count * sizeof(int64_t));
        m->teacher_acts = rd_arena_round(rd_vit_context_bytes(&tr->vit, 2 * B, G, G, RD_VIT_INFER));
        m->global_acts = rd_arena_round(rd_vit_context_bytes(&tr->vit, 2 * B, G, G, RD_VIT_TRAIN));
        if (cfg->n_local > 0)
            m->local_acts = rd_arena_round(
                rd_vit_context_bytes(&tr->vit, cfg->n_local * B, L, L, RD_VIT_TRAIN));
        rd_arena_init_measure(&tr->arena, "step");
        st = carve(tr, err);
        m->step = rd_arena_round(tr->arena.peak);
        if (cfg->bf16 && rd_bf16_available()) m->bf16 = rd_vit_bf16_bytes(&tr->vit, 1);
    }
    rd_params_free(&tr->student);
    free(tr);
    return st;
}

rd_status rd_trainer_init(rd_trainer *tr, const rd_vit_config *vit_cfg,
                          const rd_head_config *dino_cfg, const rd_head_config *ibot_cfg,
                          const rd_step_config *cfg, rd_error *err) {
    rd_status st = declare_student(tr, vit_cfg, dino_cfg, ibot_cfg, cfg, err);
    if (!st) st = declare(tr, &tr->teacher, vit_cfg, dino_cfg, ibot_cfg, err);
    if (st) return st;
    if ((st = rd_params_alloc(&tr->student, 1, err)) ||
        (st = rd_params_alloc(&tr->teacher, 0, err)))
        return st;
    rd_param_groups_assign(&tr->student, vit_cfg->depth, cfg->layerwise_decay,
                           cfg->patch_embed_lr_mult);
    if ((st = rd_adamw_init(&tr->opt, &tr->student, cfg->beta1, cfg->beta2, cfg->adam_eps, err)))
        return st;
    const int B = cfg->batch, G = cfg->global_size, L = cfg->local_size;
    if ((st = rd_vit_context_init(&tr->teacher_ctx, &tr->vit, 2 * B, G, G, RD_VIT_INFER, err)) ||
        (st = rd_vit_context_init(&tr->global_ctx, &tr->vit, 2 * B, G, G, RD_VIT_TRAIN, err)))
        return st;
    if (cfg->n_local > 0 && (st = rd_vit_context_init(&tr->local_ctx, &tr->vit, cfg->n_local * B, L,
                                                      L, RD_VIT_TRAIN, err)))
        return st;
    if (cfg->bf16 &&
        ((st = rd_vit_bf16_init(&tr->student_bf16, &tr->vit, &tr->student, 1, err)) ||
         (st = rd_vit_context_bf16(&tr->global_ctx, &tr->student_bf16, err)) ||
         (cfg->n_local > 0 && (st = rd_vit_context_bf16(&tr->local_ctx, &tr->student_bf16, err)))))
        return st;
    rd_arena_init_measure(&tr->arena, "step");
    if ((st = carve(tr, err))) return st;
    size_t bytes = tr->arena.peak;
    if ((st = rd_arena_init(&tr->arena, "step", bytes, err))) return st;
    return carve(tr, err);
}

void rd_trainer_free(rd_trainer *tr) {
    rd_vit_context_free(&tr->teacher_ctx);
    rd_vit_context_free(&tr->global_ctx);
    if (tr->cfg.n_local > 0) rd_vit_context_free(&tr->local_ctx);
    rd_adamw_free(&tr->opt);
    rd_vit_bf16_free(&tr->student_bf16);
    rd_arena_free(&tr->arena);
    rd_params_free(&tr->student);
    rd_params_free(&tr->teacher);
    memset(tr, 0, sizeof *tr);
}

void rd_trainer_init_params(rd_trainer *tr, uint64_t seed) {
    rd_vit_init_params(&tr->vit, &tr->student, seed);
    rd_head_init(&tr->dino_head, &tr->student, seed);
    if (tr->separate_ibot) rd_head_init(&tr->ibot_head, &tr->student, seed);
    memcpy(tr->teacher.data, tr->student.data, tr->student.numel * sizeof(float));
    memset(tr->opt.exp_avg, 0, tr->opt.numel * sizeof(float));
    memset(tr->opt.exp_avg_sq, 0, tr->opt.numel * sizeof(float));
    memset(tr->opt.step, 0, (size_t)tr->opt.count * sizeof(int64_t));
}

static void memory_of(const rd_trainer *tr, rd_trainer_memory *m) {
    *m = (rd_trainer_memory){
        .student = tr->student.arena.capacity,
        .teacher = tr->teacher.arena.capacity,
        .adamw = tr->opt.arena.capacity,
        .teacher_acts = tr->teacher_ctx.arena.capacity,
        .global_acts = tr->global_ctx.arena.capacity,
        .local_acts = tr->cfg.n_local > 0 ? tr->local_ctx.arena.capacity : 0,
        .step = tr->arena.capacity,
        .bf16 = tr->student_bf16.buffer ? rd_vit_bf16_bytes(&tr->vit, 1) : 0,
        .batch = tr->cfg.batch,
    };
}

size_t rd_trainer_memory_total(const rd_trainer_memory *m) {
    return m->student + m->teacher + m->adamw + m->teacher_acts + m->global_acts + m->local_acts +
           m->step + m->bf16;
}

size_t rd_trainer_bytes(const rd_trainer *tr) {
    rd_trainer_memory m;
    memory_of(tr, &m);
    return rd_trainer_memory_total(&m);
}

void rd_trainer_memory_format(const rd_trainer_memory *m, char *buf, size_t size) {
    const double mib = 1.0 / (1024.0 * 1024.0);
    snprintf(buf, size,
             "trainer memory: student %.1f MiB (params + grads), teacher %.1f MiB, AdamW %.1f MiB, "
             "teacher activations %.1f MiB, student activations %.1f + %.1f MiB, heads and step "
             "buffers %.1f MiB, bf16 copies %.1f MiB; total %.1f MiB for %d image%s per step "
             "(student activations %.1f MiB per image)",
             m->student * mib, m->teacher * mib, m->adamw * mib, m->teacher_acts * mib,
             m->global_acts * mib, m->local_acts * mib, m->step * mib, m->bf16 * mib,
             rd_trainer_memory_total(m) * mib, m->batch, m->batch == 1 ? "" : "s",
             (m->global_acts + m->local_acts) * mib / (m->batch > 0 ? m->batch : 1));
}

void rd_trainer_report_memory(const rd_trainer *tr) {
    rd_trainer_memory m;
    char line[512];
    memory_of(tr, &m);
    rd_trainer_memory_format(&m, line, sizeof line);
    rd_info("%s", line);
}

/* Teacher forward, heads and targets; returns pointers to the DINO targets [2B, K] (rows in
 * swapped view order) and iBOT targets [M, K_ibot], both in the teacher head's logits. */
static rd_status teacher_targets(rd_trainer *tr, const rd_step_batch *batch, double temp,
                                 const rd_reducer *red, float **q_dino, float **q_ibot,
                                 rd_error *err) {
    const rd_step_config *c = &tr->cfg;
    const int B = c->batch, D = tr->vit.cfg.embed_dim, M = batch->n_masked;
    const int Kd = tr->dino_head.cfg.prototypes, Ki = tr->ibot_head.cfg.prototypes;
    rd_vit_output T;
    rd_status st = rd_vit_forward(&tr->teacher_ctx, &tr->teacher, batch->global_crops, 2 * B,
                                  c->channels, c->global_size, c->global_size, NULL, NULL, &T, err);
    if (st) return st;
    /* Row r of the targets pairs with student row r: teacher crop 2 first, then crop 1. */
    memcpy(tr->t_in, T.cls + (size_t)B * D, (size_t)B * D * sizeof(float));
    memcpy(tr->t_in + (size_t)B * D, T.cls, (size_t)B * D * sizeof(float));
    float *t_patch = tr->t_in + (size_t)2 * B * D;
    for (int p = 0; p < M; p++)
        memcpy(t_patch + (size_t)p * D, T.patch + (size_t)batch->mask_indices[p] * D,
               (size_t)D * sizeof(float));
    if (tr->separate_ibot) {
        if ((st = rd_head_forward(&tr->dino_head, &tr->teacher, &tr->t_dino, tr->t_in, 2 * B,
                                  err)) ||
            (st = rd_head_forward(&tr->ibot_head, &tr->teacher, &tr->t_ibot, t_patch, M, err)))
            return st;
        *q_dino = tr->t_dino.logits;
        *q_ibot = tr->t_ibot.logits;
    } else {
        if ((st = rd_head_forward(&tr->dino_head, &tr->teacher, &tr->t_dino, tr->t_in, 2 * B + M,
                                  err)))
            return st;
        *q_dino = tr->t_dino.logits;
        *q_ibot = tr->t_dino.logits + (size_t)2 * B * Kd;
    }
    if (c->targets == RD_TARGETS_SINKHORN) {
        st = rd_sinkhorn_targets(*q_dino, *q_dino, 2 * B, Kd, temp, c->sinkhorn_iterations, red,
                                 tr->work, err);
        if (!st)
            st = rd_sinkhorn_targets(*q_ibot, *q_ibot, M, Ki, temp, c->sinkhorn_iterations, red,
                                     tr->work, err);
        return st;
    }
    /* Centring: the centre holds batches up to the previous step; this batch's mean is
     * reduced now and folded in at the next step. */
    rd_center_apply_pending(&tr->center_dino);
    rd_center_apply_pending(&tr->center_ibot);
    if ((st = rd_center_accumulate(&tr->center_dino, *q_dino, 2 * B, red, err)) ||
        (st = rd_center_accumulate(&tr->center_ibot, *q_ibot, M, red, err)))
        return st;
    rd_centering_targets(*q_dino, *q_dino, tr->center_dino.value, 2 * B, Kd, temp);
    rd_centering_targets(*q_ibot, *q_ibot, tr->center_ibot.value, M, Ki, temp);
    return RD_OK;
}

/* KoLeo on the student CLS of each global crop, in groups of koleo_group images; the
 * gradient goes into d_cls [2B, D]. Returns weight x (KL_crop1 + KL_crop2). */
static double koleo(rd_trainer *tr, const float *cls, float *d_cls) {
    const int B = tr->cfg.batch, D = tr->vit.cfg.embed_dim;
    const int group = tr->cfg.koleo_group > 0 ? tr->cfg.koleo_group : B;
    const double w = tr->cfg.koleo_weight;
    double total = 0.0;
    for (int crop = 0; crop < 2; crop++)
        for (int g0 = 0; g0 < B; g0 += group) {
            int n = g0 + group <= B ? group : B - g0;
            size_t row = (size_t)crop * B + g0;
            /* The crop's loss is the mean over its B rows: each group counts n / B. */
            double share = (double)n / B;
            total += share * rd_koleo_loss(cls + row * D, n, D, w * share, d_cls + row * D,
                                           tr->nn_index, tr->work);
        }
    return w * total;
}

/* ---- cross-rank pieces of the step ---- */

/* End of the backbone's tensors in the flat buffers (the heads follow). */
static size_t backbone_end(const rd_trainer *tr) {
    size_t begin, end;
    rd_params_module_range(&tr->student, RD_MODULE_BACKBONE, &begin, &end);
    return end;
}

/* State of the gradient-ready announcements during the backbone backward. */
typedef struct grad_ready {
    const rd_trainer *tr;
    const rd_step_comm *comm;
    rd_status status;
    rd_error *err;
    size_t next_end; /* everything from here up is declared */
} grad_ready;

/* rd_vit grad hook: part depth = final norm, i = block i, -1 = embeddings (descending). */
static void backbone_part_ready(void *arg, int part) {
    grad_ready *r = arg;
    if (r->status) return;
    const rd_vit *vit = &r->tr->vit;
    const rd_param *params = r->tr->student.params;
    const int depth = vit->cfg.depth;
    size_t begin = part == depth ? params[vit->norm_weight].offset
                   : part >= 0   ? params[vit->blocks[part].norm1_weight].offset
                                 : 0;
    r->status = r->comm->gradients_ready(r->comm->ctx, begin, r->next_end, r->err);
    r->next_end = begin;
}

/* Loss terms averaged over ranks: each rank's term is a mean over its images, and the ranks
 * hold equal shares, so the mean over ranks is the term over the global batch. */
static rd_status mean_loss_terms(rd_step_stats *s, const rd_step_comm *comm, rd_error *err) {
    if (!comm || comm->nranks <= 1) return RD_OK;
    double terms[4] = {s->dino_local, s->dino_global, s->ibot, s->koleo};
    rd_status st = rd_reduce(comm->reducer, RD_REDUCE_SUM, terms, 4, err);
    if (st) return st;
    s->dino_local = terms[0] / comm->nranks;
    s->dino_global = terms[1] / comm->nranks;
    s->ibot = terms[2] / comm->nranks;
    s->koleo = terms[3] / comm->nranks;
    return RD_OK;
}

static rd_status check_finite(const rd_step_stats *s, rd_error *err) {
    const char *names[4] = {"dino_local_crops_loss", "dino_global_crops_loss", "ibot_loss",
                            "koleo_loss"};
    const double terms[4] = {s->dino_local, s->dino_global, s->ibot, s->koleo};
    for (int i = 0; i < 4; i++)
        if (!isfinite(terms[i]))
            return rd_fail(err, RD_ENUMERIC, "non-finite %s (%g); parameters not updated", names[i],
                           terms[i]);
    for (int m = 0; m < RD_MODULE_COUNT; m++)
        if (!isfinite(s->grad_norm[m]))
            return rd_fail(err, RD_ENUMERIC,
                           "non-finite gradient norm of the student %s (%g); parameters not "
                           "updated",
                           rd_module_name((rd_module)m), s->grad_norm[m]);
    return RD_OK;
}

const char *rd_step_phase_name(rd_step_phase phase) {
    static const char *const names[RD_PHASE_COUNT] = {
        "teacher (backbone, heads, targets)", "student backbone forward",
        "student heads + losses + heads backward", "student backbone backward",
        "clip + AdamW + EMA"};
    return phase < RD_PHASE_COUNT ? names[phase] : "?";
}

rd_status rd_trainer_step(rd_trainer *tr, const rd_step_batch *batch, const rd_schedule_values *v,
                          const rd_step_comm *comm, rd_step_stats *stats, rd_error *err) {
    const rd_step_config *c = &tr->cfg;
    const int B = c->batch, nl = c->n_local, D = tr->vit.cfg.embed_dim, M = batch->n_masked;
    const int N = global_patches(tr);
    const int Kd = tr->dino_head.cfg.prototypes, Ki = tr->ibot_head.cfg.prototypes;
    const rd_reducer *red = comm ? comm->reducer : NULL;
    if (M < 0 || M > c->max_masked)
        return rd_fail(err, RD_ERANGE, "step: %d masked patches exceed the capacity %d", M,
                       c->max_masked);
    memset(stats, 0, sizeof *stats);
    memset(tr->student.grad, 0, tr->student.numel * sizeof(float));
    /* bf16 copies of this step's weights: after the last step's AdamW and EMA, an
     * initialisation or a checkpoint read (no-ops without bf16) */
    rd_vit_bf16_refresh(&tr->student_bf16);

    double t0 = rd_now(), t1;
    float *q_dino, *q_ibot;
    rd_status st = teacher_targets(tr, batch, v->teacher_temp, red, &q_dino, &q_ibot, err);
    if (st) return st;
    t1 = rd_now();
    stats->seconds[RD_PHASE_TEACHER] = t1 - t0;

    /* Student backbone on the masked global crops and on the local crops. */
    rd_vit_output G, L;
    if ((st = rd_vit_forward(&tr->global_ctx, &tr->student, batch->global_crops, 2 * B, c->channels,
                             c->global_size, c->global_size, batch->masks, batch->drop_global, &G,
                             err)))
        return st;
    if (nl > 0 &&
        (st = rd_vit_forward(&tr->local_ctx, &tr->student, batch->local_crops, nl * B, c->channels,
                             c->local_size, c->local_size, NULL, batch->drop_local, &L, err)))
        return st;
    t0 = rd_now();
    stats->seconds[RD_PHASE_STUDENT_FORWARD] = t0 - t1;
    float *s_local = tr->s_in, *s_global = tr->s_in + (size_t)nl * B * D;
    float *s_patch = s_global + (size_t)2 * B * D;
    if (nl > 0) memcpy(s_local, L.cls, (size_t)nl * B * D * sizeof(float));
    memcpy(s_global, G.cls, (size_t)2 * B * D * sizeof(float));
    for (int p = 0; p < M; p++)
        memcpy(s_patch + (size_t)p * D, G.patch + (size_t)batch->mask_indices[p] * D,
               (size_t)D * sizeof(float));

    /* Student heads, then the losses (gradients overwrite the logits). */
    float *l_local = tr->s_dino.logits, *l_global = l_local + (size_t)nl * B * Kd, *l_patch;
    int dino_rows = (nl + 2) * B + (tr->separate_ibot ? 0 : M);
    if ((st = rd_head_forward(&tr->dino_head, &tr->student, &tr->s_dino, tr->s_in, dino_rows, err)))
        return st;
    if (tr->separate_ibot) {
        if ((st = rd_head_forward(&tr->ibot_head, &tr->student, &tr->s_ibot, s_patch, M, err)))
            return st;
        l_patch = tr->s_ibot.logits;
    } else {
        l_patch = l_global + (size_t)2 * B * Kd;
    }
    rd_dino_loss(q_dino, l_local, l_global, B, nl, Kd, c->student_temp, c->dino_weight,
                 &stats->dino_local, &stats->dino_global, l_local, l_global);
    if (M > 0)
        stats->ibot = rd_ibot_loss(q_ibot, l_patch, batch->masks_weight, M, 2 * B, Ki,
                                   c->student_temp, c->ibot_weight, l_patch);
    size_t s_rows = (size_t)(nl + 2) * B + M;
    memset(tr->ds_in, 0, s_rows * D * sizeof(float));
    float *d_global = tr->ds_in + (size_t)nl * B * D;
    if (c->koleo_weight > 0) stats->koleo = koleo(tr, G.cls, d_global);

    /* Backward: heads (their gradients are then final), then the backbone from the CLS and
     * masked-patch gradients; the last backbone backward declares each part final. */
    rd_head_backward(&tr->dino_head, &tr->student, &tr->s_dino, tr->s_dino.logits, tr->ds_in);
    if (tr->separate_ibot)
        rd_head_backward(&tr->ibot_head, &tr->student, &tr->s_ibot, tr->s_ibot.logits,
                         d_global + (size_t)2 * B * D);
    grad_ready ready = {tr, comm, RD_OK, err, backbone_end(tr)};
    if (comm && comm->gradients_ready)
        ready.status = comm->gradients_ready(comm->ctx, ready.next_end, tr->student.numel, err);
    if (ready.status) return ready.status;
    t1 = rd_now();
    stats->seconds[RD_PHASE_HEADS_LOSSES] = t1 - t0;
    memset(tr->d_patch, 0, (size_t)2 * B * N * D * sizeof(float));
    for (int p = 0; p < M; p++)
        memcpy(tr->d_patch + (size_t)batch->mask_indices[p] * D, d_global + (size_t)(2 * B + p) * D,
               (size_t)D * sizeof(float));
    rd_vit_context *last = nl > 0 ? &tr->local_ctx : &tr->global_ctx;
    if (comm && comm->gradients_ready) rd_vit_context_grad_hook(last, backbone_part_ready, &ready);
    st = rd_vit_backward(&tr->global_ctx, &tr->student, d_global, tr->d_patch, err);
    if (!st && nl > 0) st = rd_vit_backward(&tr->local_ctx, &tr->student, tr->ds_in, NULL, err);
    rd_vit_context_grad_hook(last, NULL, NULL);
    if (st) return st;
    if (ready.status) return ready.status;

    t0 = rd_now();
    stats->seconds[RD_PHASE_BACKBONE_BACKWARD] = t0 - t1;

    /* Gradient mean over ranks and the loss terms' mean, so that every rank sees the same
     * numbers and reaches the same verdict on them; then clipping, AdamW, EMA. */
    if (comm && comm->mean_gradients &&
        (st = comm->mean_gradients(comm->ctx, tr->student.grad, tr->student.numel, err)))
        return st;
    if ((st = mean_loss_terms(stats, comm, err))) return st;
    rd_clip_grad_norms(&tr->student, c->clip_grad, stats->grad_norm, stats->clip_coef);
    if ((st = check_finite(stats, err))) return st;
    rd_adamw_step(&tr->opt, &tr->student, v->lr, v->last_layer_lr, v->wd);
    if ((st = rd_ema_update(&tr->teacher, &tr->student, v->momentum, err))) return st;
    stats->seconds[RD_PHASE_OPTIMIZER] = rd_now() - t0;

    stats->loss = c->dino_weight * (stats->dino_local + stats->dino_global) + stats->koleo +
                  c->ibot_weight * stats->ibot;
    stats->logged_koleo = stats->koleo / 2;
    stats->logged_ibot = stats->ibot / 2;
    stats->logged_total =
        stats->dino_local + stats->dino_global + stats->logged_koleo + stats->logged_ibot;
    return RD_OK;
}
