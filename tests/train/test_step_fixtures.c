/* The heads, teacher targets, losses, head gradients, clipping, AdamW and EMA against the
 * PyTorch oracle's step fixtures (tests/reference/make_fixtures.py: fp64 oracle stored as fp32),
 * among them a SwiGLU model and a model without LayerScale (with drop path).
 * The fixtures store the backbone outputs, so everything after the backbone is checked here
 * without running a ViT; clipping / AdamW / EMA use the fixture's gradients of all parameters.
 * Tolerances: forward values and losses rtol 1e-5 (logits, |logit| <= max g ~ 1.5, also atol
 * 1e-6 for entries that cancel to ~0); gradients rtol 1e-4 with atol 1e-5 x the largest gradient
 * of the tensor; optimiser outputs rtol 1e-5 (moments), 1e-6 (parameters). */
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "harness.h"
#include "rdino/heads.h"
#include "train/loss.h"
#include "rdino/optim.h"
#include "rdino/step.h"
#include "rdino/targets.h"
#include "step_fixture.h"

#define FWD_RTOL   1e-5
#define GRAD_RTOL  1e-4
#define LOGIT_ATOL 1e-6

typedef struct step_case {
    hid_t f;
    int B, n_local, D, R, N, M, K_dino, K_ibot, separate, sinkhorn, depth;
    double teacher_temp, student_temp, koleo_weight, dino_weight, ibot_weight;
    rd_param_set student, teacher;
    rd_head dino, ibot; /* ibot == dino when shared */
} step_case;

static herr_t add_backbone_param(hid_t group, const char *name, const H5L_info_t *info, void *ctx) {
    (void)info;
    rd_param_set *set = ctx;
    hid_t ds = H5Dopen2(group, name, H5P_DEFAULT);
    hid_t space = H5Dget_space(ds);
    hsize_t d[RD_PARAM_MAX_DIMS];
    int nd = H5Sget_simple_extent_dims(space, d, NULL);
    int64_t shape[RD_PARAM_MAX_DIMS];
    for (int i = 0; i < nd; i++) shape[i] = (int64_t)d[i];
    H5Sclose(space);
    H5Dclose(ds);
    return rd_params_add(set, RD_MODULE_BACKBONE, name, nd, shape, NULL) < 0 ? -1 : 0;
}

/* Compares buf (laid out like set) with prefix/<module>/<name> for the modules in [lo, hi]. */
static void compare_tensors(rd_test *t, hid_t f, const rd_param_set *set, const char *prefix,
                            const float *got, rd_module lo, rd_module hi, double rtol,
                            double atol_rel) {
    for (int i = 0; i < set->count; i++) {
        const rd_param *p = &set->params[i];
        if (p->module < lo || p->module > hi) continue;
        char path[256];
        snprintf(path, sizeof path, "%s/%s/%s", prefix, rd_module_name(p->module), p->name);
        size_t n = 0;
        float *want = rd_fixture_floats(f, path, &n);
        CHECK_MSG(want && n == p->numel, "%s missing", path);
        if (!want || n != p->numel) {
            free(want);
            continue;
        }
        double mx = 0;
        for (size_t j = 0; j < n; j++) mx = fmax(mx, fabs(want[j]));
        CHECK_CLOSE(path, got + p->offset, want, n, rtol, atol_rel * mx + 1e-12);
        free(want);
    }
}

static int open_case(rd_test *t, step_case *c, const char *name) {
    memset(c, 0, sizeof *c);
    c->f = rd_fixture_open(name);
    if (c->f < 0) return 0;
    char centering[64] = "";
    rd_fixture_attr_str(c->f, "centering", centering, sizeof centering);
    c->B = (int)rd_fixture_attr(c->f, "batch_size");
    c->n_local = (int)rd_fixture_attr(c->f, "n_local");
    c->D = (int)rd_fixture_attr(c->f, "embed_dim");
    c->R = (int)rd_fixture_attr(c->f, "num_register_tokens");
    c->N = (int)rd_fixture_attr(c->f, "n_global_patches");
    c->M = (int)rd_fixture_attr(c->f, "n_masked_patches");
    c->depth = (int)rd_fixture_attr(c->f, "depth");
    c->separate = (int)rd_fixture_attr(c->f, "separate_ibot_head");
    c->sinkhorn = strcmp(centering, "sinkhorn_knopp") == 0;
    c->teacher_temp = rd_fixture_attr(c->f, "teacher_temp");
    c->student_temp = rd_fixture_attr(c->f, "student_temp");
    c->koleo_weight = rd_fixture_attr(c->f, "koleo_weight");
    c->dino_weight = rd_fixture_attr(c->f, "dino_loss_weight");
    c->ibot_weight = rd_fixture_attr(c->f, "ibot_loss_weight");
    rd_head_config dcfg = {.in_dim = c->D,
                           .hidden_dim = (int)rd_fixture_attr(c->f, "hidden"),
                           .bottleneck = (int)rd_fixture_attr(c->f, "bottleneck"),
                           .prototypes = (int)rd_fixture_attr(c->f, "K"),
                           .nlayers = 3};
    rd_head_config icfg = dcfg;
    if (c->separate) {
        icfg.hidden_dim = (int)rd_fixture_attr(c->f, "ibot_hidden");
        icfg.bottleneck = (int)rd_fixture_attr(c->f, "ibot_bottleneck");
        icfg.prototypes = (int)rd_fixture_attr(c->f, "ibot_K");
    }
    c->K_dino = dcfg.prototypes;
    c->K_ibot = icfg.prototypes;
    rd_error err = {0};
    rd_param_set *sets[2] = {&c->student, &c->teacher};
    for (int s = 0; s < 2; s++) {
        rd_params_init(sets[s]);
        hid_t g = H5Gopen2(c->f, "params/student/backbone", H5P_DEFAULT);
        H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, add_backbone_param, sets[s]);
        H5Gclose(g);
        CHECK_OK(rd_head_declare(&c->dino, sets[s], RD_MODULE_DINO_HEAD, &dcfg, &err), &err);
        if (c->separate)
            CHECK_OK(rd_head_declare(&c->ibot, sets[s], RD_MODULE_IBOT_HEAD, &icfg, &err), &err);
        CHECK_OK(rd_params_alloc(sets[s], s == 0, &err), &err);
    }
    if (!c->separate) c->ibot = c->dino;
    int ok = t->failures == 0 &&
             step_fixture_load(t, c->f, &c->student, "params/student", c->student.data) &&
             step_fixture_load(t, c->f, &c->teacher, "params/teacher", c->teacher.data);
    return ok;
}

static void close_case(step_case *c) {
    rd_params_free(&c->student);
    rd_params_free(&c->teacher);
    rd_fixture_close(c->f);
}

static void check_fixture(rd_test *t, const char *what, hid_t f, const char *path, const float *got,
                          size_t n, double rtol, double atol) {
    size_t m = 0;
    float *want = rd_fixture_floats(f, path, &m);
    CHECK_MSG(want && m == n, "%s: %s missing or %zu values instead of %zu", what, path, m, n);
    if (want && m == n) CHECK_CLOSE(path, got, want, n, rtol, atol);
    free(want);
}

/* Token `token` of each of the b sequences of a [b, T, D] tensor, into out [b, D]. */
static void take_token(float *out, const float *tokens, int b, int T, int D, int token) {
    for (int i = 0; i < b; i++)
        memcpy(out + (size_t)i * D, tokens + ((size_t)i * T + token) * D,
               (size_t)D * sizeof(float));
}

/* Everything from the backbone outputs to the head gradients. */
static void run_heads_targets_losses(rd_test *t, const char *name) {
    step_case c;
    if (!open_case(t, &c, name)) {
        if (c.f < 0) SKIP("fixture %s not found (set RDINO_FIXTURES)", name);
        close_case(&c);
        return;
    }
    const int B = c.B, D = c.D, M = c.M, Kd = c.K_dino, Ki = c.K_ibot, nl = c.n_local;
    const int Tg = 1 + c.R + c.N, Tl = 1 + c.R + (int)rd_fixture_attr(c.f, "n_local_patches");
    rd_error err = {0};
    float *tcls = rd_fixture_floats(c.f, "intermediate/teacher/cls", NULL);
    float *tpatch = rd_fixture_floats(c.f, "intermediate/teacher/patch", NULL);
    float *gnorm = rd_fixture_floats(c.f, "intermediate/student/global/norm", NULL);
    float *lnorm = rd_fixture_floats(c.f, "intermediate/student/local/norm", NULL);
    int64_t *idx = rd_fixture_ints(c.f, "inputs/mask_indices", NULL);
    float *mw = rd_fixture_floats(c.f, "inputs/masks_weight", NULL);
    CHECK(tcls && tpatch && gnorm && lnorm && idx && mw);
    if (t->failures) goto out_free;

    /* Head inputs laid out as the step lays them: teacher [cls swapped; masked patches],
     * student [local cls; global cls; masked patches] (one call per head when shared). */
    int t_rows = 2 * B + M, s_rows = nl * B + 2 * B + M;
    float *tin = malloc((size_t)t_rows * D * sizeof(float));
    float *sin_ = malloc((size_t)s_rows * D * sizeof(float));
    float *dsin = calloc((size_t)s_rows * D, sizeof(float));
    memcpy(tin, tcls + (size_t)B * D, (size_t)B * D * sizeof(float));
    memcpy(tin + (size_t)B * D, tcls, (size_t)B * D * sizeof(float));
    for (int p = 0; p < M; p++)
        memcpy(tin + (size_t)(2 * B + p) * D, tpatch + (size_t)idx[p] * D,
               (size_t)D * sizeof(float));
    check_fixture(t, "teacher masked patches", c.f, "intermediate/teacher/patch_masked",
                  tin + (size_t)2 * B * D, (size_t)M * D, 0, 0);
    float *s_local = sin_, *s_global = sin_ + (size_t)nl * B * D,
          *s_masked = s_global + (size_t)2 * B * D;
    take_token(s_local, lnorm, nl * B, Tl, D, 0);
    take_token(s_global, gnorm, 2 * B, Tg, D, 0);
    for (int p = 0; p < M; p++) {
        int64_t img = idx[p] / c.N, patch = idx[p] % c.N;
        memcpy(s_masked + (size_t)p * D, gnorm + ((size_t)img * Tg + 1 + c.R + patch) * D,
               (size_t)D * sizeof(float));
    }

    rd_arena arena;
    rd_arena_init_measure(&arena, "measure");
    rd_head_acts ta[2], sa[2];
    for (int h = 0; h < 2; h++) {
        rd_head_acts_alloc(&ta[h], h ? &c.ibot : &c.dino, t_rows, 0, &arena, &err);
        rd_head_acts_alloc(&sa[h], h ? &c.ibot : &c.dino, s_rows, 1, &arena, &err);
    }
    size_t bytes = arena.peak;
    CHECK_OK(rd_arena_init(&arena, "heads", bytes, &err), &err);
    for (int h = 0; h < 2; h++) {
        CHECK_OK(rd_head_acts_alloc(&ta[h], h ? &c.ibot : &c.dino, t_rows, 0, &arena, &err), &err);
        CHECK_OK(rd_head_acts_alloc(&sa[h], h ? &c.ibot : &c.dino, s_rows, 1, &arena, &err), &err);
    }

    /* Teacher heads. */
    const float *tl_cls, *tl_pat, *tz_cls, *tz_pat;
    if (c.separate) {
        CHECK_OK(rd_head_forward(&c.dino, &c.teacher, &ta[0], tin, 2 * B, &err), &err);
        CHECK_OK(rd_head_forward(&c.ibot, &c.teacher, &ta[1], tin + (size_t)2 * B * D, M, &err),
                 &err);
        tl_cls = ta[0].logits, tz_cls = ta[0].z, tl_pat = ta[1].logits, tz_pat = ta[1].z;
    } else {
        CHECK_OK(rd_head_forward(&c.dino, &c.teacher, &ta[0], tin, t_rows, &err), &err);
        tl_cls = ta[0].logits, tz_cls = ta[0].z;
        tl_pat = ta[0].logits + (size_t)2 * B * Kd,
        tz_pat = ta[0].z + (size_t)2 * B * c.dino.cfg.bottleneck;
    }
    /* bottleneck entries cancel to ~1e-4 (sums of hidden-width products of ~0.1): atol 1e-6 as
     * for logits; 1e-7 was met by one BLAS kernel's rounding and missed by another's */
    check_fixture(t, "teacher", c.f, "intermediate/teacher/head/cls/bottleneck", tz_cls,
                  (size_t)2 * B * c.dino.cfg.bottleneck, FWD_RTOL, 1e-6);
    check_fixture(t, "teacher", c.f, "intermediate/teacher/head/cls/logits", tl_cls,
                  (size_t)2 * B * Kd, FWD_RTOL, LOGIT_ATOL);
    check_fixture(t, "teacher", c.f, "intermediate/teacher/head/masked/bottleneck", tz_pat,
                  (size_t)M * c.ibot.cfg.bottleneck, FWD_RTOL, 1e-6);
    check_fixture(t, "teacher", c.f, "intermediate/teacher/head/masked/logits", tl_pat,
                  (size_t)M * Ki, FWD_RTOL, LOGIT_ATOL);

    /* Targets. */
    float *q_dino = malloc((size_t)2 * B * Kd * sizeof(float));
    float *q_ibot = malloc((size_t)M * Ki * sizeof(float));
    double *work = malloc((size_t)(Kd > Ki ? Kd : Ki) * sizeof(double));
    if (c.sinkhorn) {
        CHECK_OK(
            rd_sinkhorn_targets(q_dino, tl_cls, 2 * B, Kd, c.teacher_temp, 3, NULL, work, &err),
            &err);
        CHECK_OK(rd_sinkhorn_targets(q_ibot, tl_pat, M, Ki, c.teacher_temp, 3, NULL, work, &err),
                 &err);
    } else {
        rd_arena carena;
        CHECK_OK(rd_arena_init(&carena, "centres", 4 * (size_t)(Kd + Ki) * 8 + 1024, &err), &err);
        rd_center cd, ci;
        CHECK_OK(rd_center_init(&cd, Kd, 0.9, RD_CENTER_GLOBAL_MEAN, &carena, &err), &err);
        CHECK_OK(rd_center_init(&ci, Ki, 0.9, RD_CENTER_MEAN_OF_RANK_MEANS, &carena, &err), &err);
        float *c0d = rd_fixture_floats(c.f, "inputs/center_dino", NULL);
        float *c0i = rd_fixture_floats(c.f, "inputs/center_ibot", NULL);
        memcpy(cd.value, c0d, (size_t)Kd * sizeof(float));
        memcpy(ci.value, c0i, (size_t)Ki * sizeof(float));
        rd_center_apply_pending(&cd); /* nothing pending yet: unchanged */
        CHECK_CLOSE("centre without pending update", cd.value, c0d, (size_t)Kd, 0, 0);
        rd_centering_targets(q_dino, tl_cls, cd.value, 2 * B, Kd, c.teacher_temp);
        rd_centering_targets(q_ibot, tl_pat, ci.value, M, Ki, c.teacher_temp);
        CHECK_OK(rd_center_accumulate(&cd, tl_cls, 2 * B, NULL, &err), &err);
        CHECK_OK(rd_center_accumulate(&ci, tl_pat, M, NULL, &err), &err);
        rd_center_apply_pending(&cd);
        rd_center_apply_pending(&ci);
        check_fixture(t, "centre", c.f, "after/center/dino", cd.value, (size_t)Kd, FWD_RTOL, 1e-7);
        check_fixture(t, "centre", c.f, "after/center/ibot", ci.value, (size_t)Ki, FWD_RTOL, 1e-7);
        free(c0d);
        free(c0i);
        rd_arena_free(&carena);
    }
    check_fixture(t, "targets", c.f, "intermediate/teacher/targets/dino", q_dino,
                  (size_t)2 * B * Kd, FWD_RTOL, 1e-8);
    check_fixture(t, "targets", c.f, "intermediate/teacher/targets/ibot", q_ibot, (size_t)M * Ki,
                  FWD_RTOL, 1e-8);

    /* Student heads. */
    float *sl_local, *sl_global, *sl_masked;
    int dino_rows = c.separate ? (nl + 2) * B : s_rows;
    CHECK_OK(rd_head_forward(&c.dino, &c.student, &sa[0], sin_, dino_rows, &err), &err);
    sl_local = sa[0].logits;
    sl_global = sa[0].logits + (size_t)nl * B * Kd;
    if (c.separate) {
        CHECK_OK(rd_head_forward(&c.ibot, &c.student, &sa[1], s_masked, M, &err), &err);
        sl_masked = sa[1].logits;
    } else {
        sl_masked = sa[0].logits + (size_t)(nl + 2) * B * Kd;
    }
    check_fixture(t, "student", c.f, "intermediate/student/head/local/logits", sl_local,
                  (size_t)nl * B * Kd, FWD_RTOL, LOGIT_ATOL);
    check_fixture(t, "student", c.f, "intermediate/student/head/global/logits", sl_global,
                  (size_t)2 * B * Kd, FWD_RTOL, LOGIT_ATOL);
    check_fixture(t, "student", c.f, "intermediate/student/head/masked/logits", sl_masked,
                  (size_t)M * Ki, FWD_RTOL, LOGIT_ATOL);

    /* Losses; gradients overwrite the logits. */
    double l_local, l_global;
    rd_dino_loss(q_dino, sl_local, sl_global, B, nl, Kd, c.student_temp, c.dino_weight, &l_local,
                 &l_global, sl_local, sl_global);
    double l_ibot =
        rd_ibot_loss(q_ibot, sl_masked, mw, M, 2 * B, Ki, c.student_temp, c.ibot_weight, sl_masked);
    double kl[2];
    int nn[64];
    double *kwork = malloc(rd_koleo_work(B, D) * sizeof(double));
    for (int crop = 0; crop < 2; crop++)
        kl[crop] =
            rd_koleo_loss(s_global + (size_t)crop * B * D, B, D, c.koleo_weight,
                          dsin + (size_t)nl * B * D + (size_t)crop * B * D, nn + crop * B, kwork);
    double l_koleo = c.koleo_weight * (kl[0] + kl[1]);
    double want;
    struct {
        const char *path;
        double got;
    } losses[] = {
        {"loss/dino_local", l_local},
        {"loss/dino_global", l_global},
        {"loss/ibot", l_ibot},
        {"loss/koleo", l_koleo},
        {"loss/total", c.dino_weight * (l_local + l_global) + l_koleo + c.ibot_weight * l_ibot}};
    for (size_t i = 0; i < sizeof losses / sizeof losses[0]; i++) {
        float *w = rd_fixture_floats(c.f, losses[i].path, NULL);
        want = w ? w[0] : NAN;
        CHECK_MSG(fabs(losses[i].got - want) <= FWD_RTOL * fabs(want) + 1e-7,
                  "%s: got %.9g want %.9g", losses[i].path, losses[i].got, want);
        free(w);
    }
    float *kper = rd_fixture_floats(c.f, "intermediate/koleo/per_crop", NULL);
    int64_t *knn = rd_fixture_ints(c.f, "intermediate/koleo/nn_index", NULL);
    for (int i = 0; i < 2 * B && knn; i++)
        CHECK_MSG(nn[i] == knn[i], "koleo nn[%d] %d != %lld", i, nn[i], (long long)knn[i]);
    for (int i = 0; i < 2 && kper; i++) CHECK_NEAR(kl[i], kper[i], FWD_RTOL * fabs(kper[i]) + 1e-7);
    free(kper);
    free(knn);
    free(kwork);

    /* Head backward: gradients of every head parameter. */
    memset(c.student.grad, 0, c.student.numel * sizeof(float));
    rd_head_backward(&c.dino, &c.student, &sa[0], sa[0].logits, dsin);
    if (c.separate)
        rd_head_backward(&c.ibot, &c.student, &sa[1], sa[1].logits,
                         dsin + (size_t)(nl + 2) * B * D);
    compare_tensors(t, c.f, &c.student, "grads/student", c.student.grad, RD_MODULE_DINO_HEAD,
                    RD_MODULE_IBOT_HEAD, GRAD_RTOL, 1e-5);

    free(q_dino);
    free(q_ibot);
    free(work);
    rd_arena_free(&arena);
    free(tin);
    free(sin_);
    free(dsin);
out_free:
    free(tcls);
    free(tpatch);
    free(gnorm);
    free(lnorm);
    free(idx);
    free(mw);
    close_case(&c);
}

/* Parameter groups, clipping, AdamW and EMA for every parameter, from the fixture gradients. */
static void run_optimizer(rd_test *t, const char *name) {
    step_case c;
    if (!open_case(t, &c, name)) {
        if (c.f < 0) SKIP("fixture %s not found (set RDINO_FIXTURES)", name);
        close_case(&c);
        return;
    }
    rd_error err = {0};
    rd_param_groups_assign(&c.student, c.depth, rd_fixture_attr(c.f, "layerwise_decay"),
                           rd_fixture_attr(c.f, "patch_embed_lr_mult"));
    for (int i = 0; i < c.student.count; i++) {
        const rd_param *p = &c.student.params[i];
        char path[256];
        const char *mod = rd_module_name(p->module);
        snprintf(path, sizeof path, "adam/lr_mult/student/%s/%s", mod, p->name);
        float *lr = rd_fixture_floats(c.f, path, NULL);
        snprintf(path, sizeof path, "adam/wd_mult/student/%s/%s", mod, p->name);
        float *wd = rd_fixture_floats(c.f, path, NULL);
        snprintf(path, sizeof path, "adam/last_layer/student/%s/%s", mod, p->name);
        int64_t *last = rd_fixture_ints(c.f, path, NULL);
        CHECK_MSG(lr && wd && last, "%s: groups missing", p->name);
        if (lr && wd && last) {
            CHECK_MSG(fabs(p->lr_mult - lr[0]) <= 1e-7 * lr[0] && p->wd_mult == wd[0] &&
                          p->last_layer == (int)last[0],
                      "%s.%s: lr_mult %g wd_mult %g last %d, want %g %g %d", mod, p->name,
                      p->lr_mult, p->wd_mult, p->last_layer, lr[0], wd[0], (int)last[0]);
        }
        free(lr);
        free(wd);
        free(last);
    }
    /* Clipping. */
    step_fixture_load(t, c.f, &c.student, "grads/student", c.student.grad);
    double norms[RD_MODULE_COUNT], coefs[RD_MODULE_COUNT];
    rd_clip_grad_norms(&c.student, rd_fixture_attr(c.f, "clip_grad"), norms, coefs);
    int n_mod = c.separate ? 3 : 2;
    for (int m = 0; m < n_mod; m++) {
        char path[64];
        snprintf(path, sizeof path, "clip/norm/%s", rd_module_name((rd_module)m));
        float *n = rd_fixture_floats(c.f, path, NULL);
        snprintf(path, sizeof path, "clip/coef/%s", rd_module_name((rd_module)m));
        float *k = rd_fixture_floats(c.f, path, NULL);
        CHECK(n && k);
        if (n && k) {
            CHECK_NEAR(norms[m], n[0], 1e-6 * n[0]);
            CHECK_NEAR(coefs[m], k[0], 1e-6 * k[0]);
        }
        free(n);
        free(k);
    }
    /* AdamW from the fixture's moments and step count. */
    rd_adamw opt;
    CHECK_OK(rd_adamw_init(&opt, &c.student, rd_fixture_attr(c.f, "beta1"),
                           rd_fixture_attr(c.f, "beta2"), rd_fixture_attr(c.f, "adam_eps"), &err),
             &err);
    step_fixture_load(t, c.f, &c.student, "adam/exp_avg/student", opt.exp_avg);
    step_fixture_load(t, c.f, &c.student, "adam/exp_avg_sq/student", opt.exp_avg_sq);
    for (int i = 0; i < opt.count; i++) opt.step[i] = (int64_t)rd_fixture_attr(c.f, "adam_step");
    rd_adamw_step(&opt, &c.student, rd_fixture_attr(c.f, "lr"),
                  rd_fixture_attr(c.f, "last_layer_lr"), rd_fixture_attr(c.f, "wd"));
    for (int i = 0; i < opt.count; i++)
        CHECK(opt.step[i] == (int64_t)rd_fixture_attr(c.f, "adam_step_after"));
    compare_tensors(t, c.f, &c.student, "after/adam/exp_avg/student", opt.exp_avg,
                    RD_MODULE_BACKBONE, RD_MODULE_IBOT_HEAD, 1e-5, 1e-6);
    compare_tensors(t, c.f, &c.student, "after/adam/exp_avg_sq/student", opt.exp_avg_sq,
                    RD_MODULE_BACKBONE, RD_MODULE_IBOT_HEAD, 1e-5, 1e-6);
    compare_tensors(t, c.f, &c.student, "after/student", c.student.data, RD_MODULE_BACKBONE,
                    RD_MODULE_IBOT_HEAD, 1e-6, 1e-7);
    /* EMA. */
    CHECK_OK(rd_ema_update(&c.teacher, &c.student, rd_fixture_attr(c.f, "momentum"), &err), &err);
    compare_tensors(t, c.f, &c.teacher, "after/teacher", c.teacher.data, RD_MODULE_BACKBONE,
                    RD_MODULE_IBOT_HEAD, 1e-6, 1e-7);
    rd_adamw_free(&opt);
    close_case(&c);
}

/* Drop-path subsets of the fixture for a batch of b: inputs/drop_path/<tag>/blocks.i/<branch>. */
static int load_drop_path(rd_test *t, hid_t f, const char *tag, int depth, int b, int *count,
                          int *index) {
    static const char *const branch[2] = {"attn", "ffn"};
    for (int i = 0; i < depth; i++)
        for (int br = 0; br < 2; br++) {
            char path[128];
            snprintf(path, sizeof path, "inputs/drop_path/%s/blocks.%d/%s", tag, i, branch[br]);
            size_t n = 0;
            int64_t *idx = rd_fixture_ints(f, path, &n);
            CHECK_MSG(idx != NULL, "%s missing", path);
            if (!idx) return 0;
            count[2 * i + br] = (int)n;
            for (size_t j = 0; j < n; j++) index[(size_t)(2 * i + br) * b + j] = (int)idx[j];
            free(idx);
        }
    return 1;
}

/* The whole step through rd_trainer_step: losses, every gradient (after clipping: the fixture's
 * gradients x the clip coefficient), parameters and moments after AdamW, teacher after EMA.
 * checkpointing sets student.activation_checkpointing; *state (if not NULL) receives a malloc'd
 * copy of the student's parameters and gradients, the teacher and exp_avg after the step, each
 * of *numel floats. */
static void run_full_step(rd_test *t, const char *name, int checkpointing, float **state,
                          size_t *numel) {
    hid_t f = rd_fixture_open(name);
    if (f < 0) SKIP("fixture %s not found (set RDINO_FIXTURES)", name);
    rd_error err = {0};
    rd_trainer tr;
    step_fixture_config fc;
    step_fixture_config_read(f, &fc);
    fc.vit.activation_checkpointing = checkpointing;
    CHECK_OK(rd_trainer_init(&tr, &fc.vit, &fc.dino, fc.separate ? &fc.ibot : NULL, &fc.step, &err),
             &err);
    const rd_vit_config vc = fc.vit;
    const rd_head_config dc = fc.dino;
    const rd_step_config sc = fc.step;
    const int B = sc.batch, nl = sc.n_local, depth = vc.depth, separate = fc.separate;
    const int M = (int)rd_fixture_attr(f, "n_masked_patches");
    if (t->failures) {
        rd_fixture_close(f);
        return;
    }
    rd_trainer_report_memory(&tr);
    step_fixture_load(t, f, &tr.student, "params/student", tr.student.data);
    step_fixture_load(t, f, &tr.teacher, "params/teacher", tr.teacher.data);
    step_fixture_load(t, f, &tr.student, "adam/exp_avg/student", tr.opt.exp_avg);
    step_fixture_load(t, f, &tr.student, "adam/exp_avg_sq/student", tr.opt.exp_avg_sq);
    for (int i = 0; i < tr.opt.count; i++)
        tr.opt.step[i] = (int64_t)rd_fixture_attr(f, "adam_step");
    if (sc.targets == RD_TARGETS_CENTERING) {
        float *c0 = rd_fixture_floats(f, "inputs/center_dino", NULL);
        float *c1 = rd_fixture_floats(f, "inputs/center_ibot", NULL);
        memcpy(tr.center_dino.value, c0, (size_t)dc.prototypes * sizeof(float));
        memcpy(tr.center_ibot.value, c1, (size_t)tr.ibot_head.cfg.prototypes * sizeof(float));
        free(c0);
        free(c1);
    }
    float *gc = rd_fixture_floats(f, "inputs/global_crops", NULL);
    float *lc = rd_fixture_floats(f, "inputs/local_crops", NULL);
    int64_t *masks64 = rd_fixture_ints(f, "inputs/masks", NULL);
    int64_t *idx64 = rd_fixture_ints(f, "inputs/mask_indices", NULL);
    float *mw = rd_fixture_floats(f, "inputs/masks_weight", NULL);
    const int N = (int)rd_fixture_attr(f, "n_global_patches");
    uint8_t *masks = malloc((size_t)2 * B * N);
    int *idx = malloc((size_t)M * sizeof(int));
    for (int i = 0; i < 2 * B * N; i++) masks[i] = (uint8_t)masks64[i];
    for (int p = 0; p < M; p++) idx[p] = (int)idx64[p];
    rd_step_batch batch = {gc, lc, masks, idx, mw, M, NULL, NULL};
    int cg[2 * RD_VIT_MAX_DEPTH], cl[2 * RD_VIT_MAX_DEPTH];
    int *ig = malloc((size_t)2 * depth * 2 * B * sizeof(int));
    int *il = malloc((size_t)2 * depth * nl * B * sizeof(int));
    rd_vit_drop_path dg = {cg, ig}, dl = {cl, il};
    if (vc.drop_path_rate > 0 && load_drop_path(t, f, "global", depth, 2 * B, cg, ig) &&
        load_drop_path(t, f, "local", depth, nl * B, cl, il)) {
        batch.drop_global = &dg;
        batch.drop_local = &dl;
    }
    rd_schedule_values v = {.lr = rd_fixture_attr(f, "lr"),
                            .last_layer_lr = rd_fixture_attr(f, "last_layer_lr"),
                            .wd = rd_fixture_attr(f, "wd"),
                            .momentum = rd_fixture_attr(f, "momentum"),
                            .teacher_temp = rd_fixture_attr(f, "teacher_temp")};
    rd_step_stats stats;
    CHECK_OK(rd_trainer_step(&tr, &batch, &v, NULL, &stats, &err), &err);
    struct {
        const char *path;
        double got;
    } losses[] = {{"loss/dino_local", stats.dino_local},
                  {"loss/dino_global", stats.dino_global},
                  {"loss/ibot", stats.ibot},
                  {"loss/koleo", stats.koleo},
                  {"loss/total", stats.loss}};
    for (size_t i = 0; i < sizeof losses / sizeof losses[0]; i++) {
        float *w = rd_fixture_floats(f, losses[i].path, NULL);
        double want = w ? w[0] : NAN;
        CHECK_MSG(fabs(losses[i].got - want) <= FWD_RTOL * fabs(want) + 1e-7,
                  "%s: got %.9g want %.9g", losses[i].path, losses[i].got, want);
        free(w);
    }
    /* Clipping: pre-clip norms, then the clipped gradients = fixture gradients x coef. */
    float *want_grad = malloc(tr.student.numel * sizeof(float));
    memset(want_grad, 0, tr.student.numel * sizeof(float));
    step_fixture_load(t, f, &tr.student, "grads/student", want_grad);
    for (int m = 0; m < (separate ? 3 : 2); m++) {
        char path[64];
        snprintf(path, sizeof path, "clip/norm/%s", rd_module_name((rd_module)m));
        float *n = rd_fixture_floats(f, path, NULL);
        CHECK_NEAR(stats.grad_norm[m], n ? n[0] : NAN, 1e-4 * (n ? n[0] : 0));
        free(n);
        size_t lo, hi;
        rd_params_module_range(&tr.student, (rd_module)m, &lo, &hi);
        for (size_t i = lo; i < hi; i++) want_grad[i] *= (float)stats.clip_coef[m];
    }
    for (int i = 0; i < tr.student.count; i++) {
        const rd_param *p = &tr.student.params[i];
        double mx = 0;
        for (size_t j = 0; j < p->numel; j++) mx = fmax(mx, fabs(want_grad[p->offset + j]));
        char what[128];
        snprintf(what, sizeof what, "clipped grad %s.%s", rd_module_name(p->module), p->name);
        CHECK_CLOSE(what, tr.student.grad + p->offset, want_grad + p->offset, p->numel, GRAD_RTOL,
                    1e-5 * mx + 1e-12);
    }
    free(want_grad);
    compare_tensors(t, f, &tr.student, "after/adam/exp_avg/student", tr.opt.exp_avg,
                    RD_MODULE_BACKBONE, RD_MODULE_IBOT_HEAD, GRAD_RTOL, 1e-5);
    compare_tensors(t, f, &tr.student, "after/adam/exp_avg_sq/student", tr.opt.exp_avg_sq,
                    RD_MODULE_BACKBONE, RD_MODULE_IBOT_HEAD, GRAD_RTOL, 1e-5);
    compare_tensors(t, f, &tr.student, "after/student", tr.student.data, RD_MODULE_BACKBONE,
                    RD_MODULE_IBOT_HEAD, 1e-5, 1e-6);
    compare_tensors(t, f, &tr.teacher, "after/teacher", tr.teacher.data, RD_MODULE_BACKBONE,
                    RD_MODULE_IBOT_HEAD, 1e-5, 1e-6);
    if (sc.targets == RD_TARGETS_CENTERING) {
        rd_center_apply_pending(&tr.center_dino);
        rd_center_apply_pending(&tr.center_ibot);
        check_fixture(t, "centre", f, "after/center/dino", tr.center_dino.value,
                      (size_t)dc.prototypes, FWD_RTOL, 1e-7);
        check_fixture(t, "centre", f, "after/center/ibot", tr.center_ibot.value,
                      (size_t)tr.ibot_head.cfg.prototypes, FWD_RTOL, 1e-7);
    }
    const size_t n = tr.student.numel;
    if (state && (*state = malloc(4 * n * sizeof(float)))) {
        *numel = n;
        memcpy(*state, tr.student.data, n * sizeof(float));
        memcpy(*state + n, tr.student.grad, n * sizeof(float));
        memcpy(*state + 2 * n, tr.teacher.data, n * sizeof(float));
        memcpy(*state + 3 * n, tr.opt.exp_avg, n * sizeof(float));
    }
    free(gc);
    free(lc);
    free(masks64);
    free(idx64);
    free(mw);
    free(masks);
    free(idx);
    free(ig);
    free(il);
    rd_trainer_free(&tr);
    rd_fixture_close(f);
}

/* Activation checkpointing recomputes each block's forward by the same arithmetic: the step's
 * gradients, parameters, teacher and moments are bit-identical to the stored-activation path
 * (and both pass the oracle checks of run_full_step). */
static void checkpointing_bit_identical(rd_test *t, const char *name) {
    float *stored = NULL, *recomputed = NULL;
    size_t n = 0, n2 = 0;
    run_full_step(t, name, 0, &stored, &n);
    if (!t->failures) run_full_step(t, name, 1, &recomputed, &n2);
    static const char *const part[4] = {"student", "gradient", "teacher", "exp_avg"};
    for (int k = 0; k < 4 && !t->failures && stored && recomputed && n == n2; k++) {
        size_t first = n;
        for (size_t i = 0; i < n && first == n; i++)
            if (memcmp(&stored[k * n + i], &recomputed[k * n + i], sizeof(float))) first = i;
        CHECK_MSG(first == n, "%s element %zu: %.9g stored, %.9g recomputed", part[k], first,
                  first < n ? stored[k * n + first] : 0.0,
                  first < n ? recomputed[k * n + first] : 0.0);
    }
    free(stored);
    free(recomputed);
}

static void centering_full_step(rd_test *t) {
    run_full_step(t, "step_centering.h5", 0, NULL, NULL);
}
static void sinkhorn_full_step(rd_test *t) {
    run_full_step(t, "step_sinkhorn_registers.h5", 0, NULL, NULL);
}
static void droppath_full_step(rd_test *t) {
    run_full_step(t, "step_droppath.h5", 0, NULL, NULL);
}
static void droppath_checkpointing(rd_test *t) {
    checkpointing_bit_identical(t, "step_droppath.h5");
}
static void sinkhorn_checkpointing(rd_test *t) {
    checkpointing_bit_identical(t, "step_sinkhorn_registers.h5");
}

static void swiglu_full_step(rd_test *t) {
    run_full_step(t, "step_swiglu.h5", 0, NULL, NULL);
}
static void no_layerscale_full_step(rd_test *t) {
    run_full_step(t, "step_no_layerscale.h5", 0, NULL, NULL);
}

static void centering_heads_losses(rd_test *t) {
    run_heads_targets_losses(t, "step_centering.h5");
}
static void sinkhorn_heads_losses(rd_test *t) {
    run_heads_targets_losses(t, "step_sinkhorn_registers.h5");
}
static void droppath_heads_losses(rd_test *t) {
    run_heads_targets_losses(t, "step_droppath.h5");
}
static void swiglu_heads_losses(rd_test *t) {
    run_heads_targets_losses(t, "step_swiglu.h5");
}
static void no_layerscale_heads_losses(rd_test *t) {
    run_heads_targets_losses(t, "step_no_layerscale.h5");
}
static void centering_optimizer(rd_test *t) {
    run_optimizer(t, "step_centering.h5");
}
static void sinkhorn_optimizer(rd_test *t) {
    run_optimizer(t, "step_sinkhorn_registers.h5");
}
static void droppath_optimizer(rd_test *t) {
    run_optimizer(t, "step_droppath.h5");
}

static void swiglu_optimizer(rd_test *t) {
    run_optimizer(t, "step_swiglu.h5");
}
static void no_layerscale_optimizer(rd_test *t) {
    run_optimizer(t, "step_no_layerscale.h5");
}

static const rd_test_case cases[] = {
    {"centering_full_step", centering_full_step},
    {"sinkhorn_registers_full_step", sinkhorn_full_step},
    {"droppath_full_step", droppath_full_step},
    {"swiglu_full_step", swiglu_full_step},
    {"no_layerscale_droppath_full_step", no_layerscale_full_step},
    {"droppath_checkpointing_bit_identical", droppath_checkpointing},
    {"sinkhorn_registers_checkpointing_bit_identical", sinkhorn_checkpointing},
    {"centering_heads_targets_losses_grads", centering_heads_losses},
    {"sinkhorn_separate_heads_targets_losses_grads", sinkhorn_heads_losses},
    {"droppath_heads_targets_losses_grads", droppath_heads_losses},
    {"centering_groups_clip_adamw_ema", centering_optimizer},
    {"sinkhorn_groups_clip_adamw_ema", sinkhorn_optimizer},
    {"droppath_groups_clip_adamw_ema", droppath_optimizer},
    {"swiglu_heads_targets_losses_grads", swiglu_heads_losses},
    {"no_layerscale_heads_targets_losses_grads", no_layerscale_heads_losses},
    {"swiglu_groups_clip_adamw_ema", swiglu_optimizer},
    {"no_layerscale_groups_clip_adamw_ema", no_layerscale_optimizer},
};
RD_TEST_MAIN("train/step_fixtures", cases)
