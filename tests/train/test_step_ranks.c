/* Rank equivalence of the whole step (docs/PRETRAIN.md, "Rank-count invariance"): W = 2 ranks
 * simulated by threads, each holding half of the images and reducing through the rd_step_comm
 * hooks, must give what one process gives on all the images: same losses (mean over ranks), same
 * averaged and clipped gradients, same parameters after AdamW and EMA, and both ranks
 * bit-identical. KoLeo is computed in groups of 2 images on both sides (koleo_group), which is what
 * makes it rank-independent; masks are injected identically. Tolerances (fp32 sums in another
 * order): gradients rtol 1e-4 + 1e-5 x the tensor's max, parameters rtol 1e-5 + 1e-6. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "rdino/masks.h"
#include "rdino/rng.h"
#include "rdino/step.h"
#include "sim_ranks.h"

enum { W = 2, B = 4, BR = B / W, NL = 2, G = 32, L = 16, P = 8, N = (G / P) * (G / P), C = 3 };

typedef struct setup {
    rd_vit_config vc;
    rd_head_config dino, ibot;
    int separate;
    rd_step_config sc;
} setup;

static void make_setup(setup *s, rd_targets_mode mode, int separate, double koleo) {
    rd_error err;
    rd_vit_config_default(&s->vc, "vit_small", P, G, &err);
    s->vc.embed_dim = 32;
    s->vc.depth = 2;
    s->vc.num_heads = 4;
    s->vc.num_register_tokens = 1;
    s->vc.layerscale = 0.3f; /* so that the blocks matter */
    s->dino = (rd_head_config){32, 48, 16, 64, 3};
    s->ibot = (rd_head_config){32, 40, 8, 32, 3};
    s->separate = separate;
    s->sc = (rd_step_config){.batch = B,
                             .n_local = NL,
                             .channels = C,
                             .global_size = G,
                             .local_size = L,
                             .max_masked = 2 * B * N,
                             .targets = mode,
                             .sinkhorn_iterations = 3,
                             .center_momentum = 0.9,
                             .student_temp = 0.1,
                             .dino_weight = 1,
                             .ibot_weight = 1,
                             .koleo_weight = koleo,
                             .koleo_group = 2,
                             .clip_grad = 0.5, /* small enough to clip */
                             .layerwise_decay = 0.9,
                             .patch_embed_lr_mult = 0.2,
                             .beta1 = 0.9,
                             .beta2 = 0.999,
                             .adam_eps = 1e-8};
}

static rd_status make_trainer(rd_trainer *tr, const setup *s, int batch, rd_error *err) {
    rd_step_config sc = s->sc;
    sc.batch = batch;
    rd_status st = rd_trainer_init(tr, &s->vc, &s->dino, s->separate ? &s->ibot : NULL, &sc, err);
    if (st) return st;
    rd_trainer_init_params(tr, 5);
    /* Move away from the init (same noise everywhere: keyed by the element index). */
    rd_rng r;
    rd_rng_init(&r, 6, RD_RNG_TEST, 0, 0, 0);
    for (size_t i = 0; i < tr->student.numel; i++) {
        float noise = (float)(0.02 * rd_rng_normal(&r));
        tr->student.data[i] += noise;
        tr->teacher.data[i] += 0.5f * noise;
    }
    /* Adam state of a run in progress: with v >> g^2 the update is proportional to the
     * gradient, so rounding-level gradient noise (e.g. on key biases, whose true gradient is 0)
     * does not become a +-lr first-step update. */
    for (size_t i = 0; i < tr->opt.numel; i++) tr->opt.exp_avg_sq[i] = 1e-5f;
    for (int i = 0; i < tr->opt.count; i++) tr->opt.step[i] = 4;
    return RD_OK;
}

/* Inputs of all B images (crop-major) and of rank r's images [r BR, (r+1) BR). */
typedef struct data {
    float global[2 * B * C * G * G], local[NL * B * C * L * L];
    rd_ibot_masks masks, rank_masks[W];
    float rank_global[W][2 * BR * C * G * G], rank_local[W][NL * BR * C * L * L];
    rd_arena arena;
} data;

static void copy_rows(float *dst, const float *src, int crops, int from_batch, int to_batch,
                      int first, size_t row) {
    for (int c = 0; c < crops; c++)
        memcpy(dst + (size_t)c * to_batch * row, src + ((size_t)c * from_batch + first) * row,
               (size_t)to_batch * row * sizeof(float));
}

static int make_data(rd_test *t, data *d) {
    rd_error err = {0};
    rd_rng r;
    rd_rng_init(&r, 7, RD_RNG_TEST, 0, 1, 0);
    for (size_t i = 0; i < sizeof d->global / sizeof(float); i++)
        d->global[i] = (float)rd_rng_normal(&r);
    for (size_t i = 0; i < sizeof d->local / sizeof(float); i++)
        d->local[i] = (float)rd_rng_normal(&r);
    CHECK_OK(rd_arena_init(&d->arena, "masks", 1 << 16, &err), &err);
    CHECK_OK(rd_ibot_masks_alloc(&d->masks, 2 * B, N, &d->arena, &err), &err);
    rd_mask_config mc;
    rd_mask_config_default(&mc, G, P, 0.5, 0.1, 0.5);
    mc.min_patches = 1; /* a 4x4 grid */
    d->masks.n_images = 2 * B;
    for (int rank = 0; rank < W; rank++) {
        CHECK_OK(rd_ibot_masks_alloc(&d->rank_masks[rank], 2 * BR, N, &d->arena, &err), &err);
        CHECK_OK(rd_ibot_masks_generate(&d->rank_masks[rank], &mc, 2 * BR, 9, 0,
                                        (uint64_t)rank * BR, &err),
                 &err);
        /* Rank row c BR + j is global row c B + r BR + j. */
        for (int c = 0; c < 2; c++)
            memcpy(d->masks.mask + ((size_t)c * B + rank * BR) * N,
                   d->rank_masks[rank].mask + (size_t)c * BR * N, (size_t)BR * N);
        copy_rows(d->rank_global[rank], d->global, 2, B, BR, rank * BR, (size_t)C * G * G);
        copy_rows(d->rank_local[rank], d->local, NL, B, BR, rank * BR, (size_t)C * L * L);
    }
    rd_ibot_masks_index(&d->masks);
    CHECK(d->masks.count > 0);
    return t->failures == 0;
}

static rd_step_batch batch_of(const float *g, const float *l, const rd_ibot_masks *m) {
    return (rd_step_batch){g, l, m->mask, m->indices, m->weight, m->count, NULL, NULL};
}

typedef struct rank_job {
    rd_trainer tr;
    sim_rank *self;
    rd_step_batch batch;
    rd_step_stats stats;
    rd_status st;
    rd_error err;
} rank_job;

static const rd_schedule_values values = {1e-3, 5e-4, 0.04, 0.99, 0.05};

static void *rank_step(void *arg) {
    rank_job *j = arg;
    rd_reducer red = {sim_reduce, j->self};
    rd_step_comm comm = {.reducer = &red, .mean_gradients = sim_mean_floats, .ctx = j->self};
    j->st = rd_trainer_step(&j->tr, &j->batch, &values, &comm, &j->stats, &j->err);
    return NULL;
}

static void compare_sets(rd_test *t, const char *what, const rd_param_set *got,
                         const float *got_buf, const float *want_buf, double rtol, double atol) {
    for (int i = 0; i < got->count; i++) {
        const rd_param *p = &got->params[i];
        double mx = 0;
        for (size_t j = 0; j < p->numel; j++) mx = fmax(mx, fabs(want_buf[p->offset + j]));
        char name[160];
        snprintf(name, sizeof name, "%s %s.%s", what, rd_module_name(p->module), p->name);
        CHECK_CLOSE(name, got_buf + p->offset, want_buf + p->offset, p->numel, rtol,
                    atol * mx + 1e-12);
    }
}

static void ranks_equal_one_process(rd_test *t, rd_targets_mode mode, int separate, double koleo) {
    setup s;
    make_setup(&s, mode, separate, koleo);
    data *d = calloc(1, sizeof *d);
    rd_error err = {0};
    rd_trainer one;
    rank_job *jobs = calloc(W, sizeof *jobs);
    if (!make_data(t, d)) goto out;
    CHECK_OK(make_trainer(&one, &s, B, &err), &err);
    for (int r = 0; r < W; r++) CHECK_OK(make_trainer(&jobs[r].tr, &s, BR, &err), &err);
    if (t->failures) goto out;
    rd_step_batch all = batch_of(d->global, d->local, &d->masks);
    rd_step_stats one_stats;
    CHECK_OK(rd_trainer_step(&one, &all, &values, NULL, &one_stats, &err), &err);

    sim_rank ranks[W];
    void *args[W];
    for (int r = 0; r < W; r++) {
        jobs[r].self = &ranks[r];
        jobs[r].batch = batch_of(d->rank_global[r], d->rank_local[r], &d->rank_masks[r]);
        args[r] = &jobs[r];
    }
    sim_run(W, ranks, args, rank_step);
    for (int r = 0; r < W; r++) CHECK_MSG(jobs[r].st == RD_OK, "rank %d: %s", r, jobs[r].err.msg);

    /* Losses: the mean over ranks is the one-process loss. */
    double terms[4][2] = {{one_stats.dino_local, 0},
                          {one_stats.dino_global, 0},
                          {one_stats.ibot, 0},
                          {one_stats.koleo, 0}};
    for (int r = 0; r < W; r++) {
        terms[0][1] += jobs[r].stats.dino_local / W;
        terms[1][1] += jobs[r].stats.dino_global / W;
        terms[2][1] += jobs[r].stats.ibot / W;
        terms[3][1] += jobs[r].stats.koleo / W;
    }
    for (int i = 0; i < 4; i++) CHECK_NEAR(terms[i][1], terms[i][0], 1e-5 * fabs(terms[i][0]));
    if (koleo > 0) CHECK(one_stats.koleo != 0.0);
    for (int m = 0; m < RD_MODULE_COUNT; m++) {
        CHECK_NEAR(jobs[0].stats.grad_norm[m], one_stats.grad_norm[m],
                   1e-5 * one_stats.grad_norm[m]);
        CHECK(jobs[0].stats.clip_coef[m] < 1.0 || one_stats.grad_norm[m] == 0.0);
    }
    compare_sets(t, "gradient", &one.student, jobs[0].tr.student.grad, one.student.grad, 1e-4,
                 1e-5);
    compare_sets(t, "student", &one.student, jobs[0].tr.student.data, one.student.data, 1e-5, 1e-6);
    compare_sets(t, "teacher", &one.teacher, jobs[0].tr.teacher.data, one.teacher.data, 1e-5, 1e-6);
    for (int r = 1; r < W; r++)
        CHECK(memcmp(jobs[r].tr.student.data, jobs[0].tr.student.data,
                     one.student.numel * sizeof(float)) == 0 &&
              memcmp(jobs[r].tr.teacher.data, jobs[0].tr.teacher.data,
                     one.teacher.numel * sizeof(float)) == 0);
    if (mode == RD_TARGETS_CENTERING) { /* the DINO centre is a global mean */
        rd_center_apply_pending(&one.center_dino);
        rd_center_apply_pending(&jobs[0].tr.center_dino);
        CHECK_CLOSE("DINO centre", jobs[0].tr.center_dino.value, one.center_dino.value,
                    (size_t)s.dino.prototypes, 1e-5, 1e-7);
    }
    rd_trainer_free(&one);
    for (int r = 0; r < W; r++) rd_trainer_free(&jobs[r].tr);
out:
    rd_arena_free(&d->arena);
    free(d);
    free(jobs);
}

static void centering_shared_head_koleo(rd_test *t) {
    ranks_equal_one_process(t, RD_TARGETS_CENTERING, 0, 0.1);
}
static void sinkhorn_separate_heads(rd_test *t) {
    ranks_equal_one_process(t, RD_TARGETS_SINKHORN, 1, 0.0);
}

static const rd_test_case cases[] = {
    {"centering_shared_head_koleo", centering_shared_head_koleo},
    {"sinkhorn_separate_heads", sinkhorn_separate_heads},
};
RD_TEST_MAIN("train/step_ranks", cases)
