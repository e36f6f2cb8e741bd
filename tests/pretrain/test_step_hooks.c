/* The step's hooks for data-parallel runs, on one process: the gradient ranges declared during
 * backward (heads first, then final norm, blocks top-down, embeddings; contiguous, descending,
 * covering everything, and each range final when declared), overlap giving the same result as
 * no overlap, and a non-finite loss stopping the step before any parameter changes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "rdino/log.h"
#include "rdino/masks.h"
#include "rdino/rng.h"
#include "tiny.h"

typedef struct inputs {
    float *global, *local;
    rd_arena arena;
    rd_ibot_masks masks;
    rd_step_batch batch;
} inputs;

static rd_status make_inputs(inputs *in, const rd_trainer *tr, rd_error *err) {
    const rd_step_config *c = &tr->cfg;
    const int B = c->batch, grid = c->global_size / tr->vit.cfg.patch_size;
    size_t g = (size_t)2 * B * c->channels * c->global_size * c->global_size;
    size_t l = (size_t)c->n_local * B * c->channels * c->local_size * c->local_size;
    in->global = malloc(g * sizeof(float));
    in->local = malloc(l * sizeof(float));
    rd_rng r;
    rd_rng_init(&r, 11, RD_RNG_TEST, 0, 0, 0);
    for (size_t i = 0; i < g; i++) in->global[i] = (float)rd_rng_normal(&r);
    for (size_t i = 0; i < l; i++) in->local[i] = (float)rd_rng_normal(&r);
    rd_mask_config mc;
    rd_mask_config_default(&mc, c->global_size, tr->vit.cfg.patch_size, 0.5, 0.1, 0.5);
    rd_status st = rd_arena_init(&in->arena, "masks", 1 << 16, err);
    if (!st) st = rd_ibot_masks_alloc(&in->masks, 2 * B, grid * grid, &in->arena, err);
    if (!st) st = rd_ibot_masks_generate(&in->masks, &mc, 2 * B, 3, 0, 0, err);
    in->batch =
        (rd_step_batch){in->global,       in->local,       in->masks.mask, in->masks.indices,
                        in->masks.weight, in->masks.count, NULL,           NULL};
    return st;
}

static void free_inputs(inputs *in) {
    free(in->global);
    free(in->local);
    rd_arena_free(&in->arena);
}

enum { MAX_RANGES = 64 };

typedef struct recorder {
    const rd_trainer *tr;
    size_t begin[MAX_RANGES], end[MAX_RANGES];
    float *snapshot; /* the gradient as declared, to check it never changes afterwards */
    int count;
    int mean_calls;
} recorder;

static rd_status record_ready(void *ctx, size_t begin, size_t end, rd_error *err) {
    recorder *r = ctx;
    (void)err;
    if (r->count < MAX_RANGES) {
        r->begin[r->count] = begin;
        r->end[r->count] = end;
        r->count++;
    }
    memcpy(r->snapshot + begin, r->tr->student.grad + begin, (end - begin) * sizeof(float));
    return RD_OK;
}

static rd_status record_mean(void *ctx, float *grad, size_t n, rd_error *err) {
    recorder *r = ctx;
    (void)err;
    r->mean_calls++;
    /* every declared value is still what it was when declared */
    for (size_t i = 0; i < n; i++)
        if (memcmp(&grad[i], &r->snapshot[i], sizeof(float)) != 0) return RD_EINVAL;
    return RD_OK;
}

static const rd_schedule_values values = {1e-3, 1e-3, 0.04, 0.99, 0.05};

static void test_ranges(rd_test *t) {
    rd_log_set_quiet(1);
    rd_error err = {0};
    rd_config cfg;
    rd_trainer tr;
    inputs in;
    CHECK_OK(tiny_config(&cfg, NULL, &err), &err);
    CHECK_OK(tiny_trainer(&tr, &cfg, &err), &err);
    rd_trainer_init_params(&tr, 1);
    CHECK_OK(make_inputs(&in, &tr, &err), &err);
    recorder rec = {.tr = &tr, .snapshot = calloc(tr.student.numel, sizeof(float))};
    rd_step_comm comm = {
        .mean_gradients = record_mean, .ctx = &rec, .gradients_ready = record_ready, .nranks = 1};
    rd_step_stats stats;
    rd_status st = rd_trainer_step(&tr, &in.batch, &values, &comm, &stats, &err);
    CHECK_MSG(st == RD_OK, "step failed (%d): a declared gradient changed afterwards? %s", st,
              err.msg);
    size_t bb_begin, bb_end;
    rd_params_module_range(&tr.student, RD_MODULE_BACKBONE, &bb_begin, &bb_end);
    const int depth = tr.vit.cfg.depth;
    CHECK_MSG(rec.count == 1 + 1 + depth + 1, "%d ranges", rec.count);
    CHECK(rec.mean_calls == 1);
    /* heads first, everything covered top-down without gaps */
    CHECK(rec.begin[0] == bb_end && rec.end[0] == tr.student.numel);
    for (int i = 1; i < rec.count; i++) CHECK(rec.end[i] == rec.begin[i - 1]);
    CHECK(rec.begin[rec.count - 1] == 0);
    /* the final norm, then block depth-1 */
    CHECK(rec.begin[1] == tr.student.params[tr.vit.norm_weight].offset);
    CHECK(rec.begin[2] == tr.student.params[tr.vit.blocks[depth - 1].norm1_weight].offset);
    free(rec.snapshot);
    free_inputs(&in);
    rd_trainer_free(&tr);
    rd_config_free(&cfg);
}

/* A NaN weight makes the loss NaN: the step refuses, names the term, changes nothing. */
static void test_non_finite(rd_test *t) {
    rd_log_set_quiet(1);
    rd_error err = {0};
    rd_config cfg;
    rd_trainer tr;
    inputs in;
    CHECK_OK(tiny_config(&cfg, NULL, &err), &err);
    CHECK_OK(tiny_trainer(&tr, &cfg, &err), &err);
    rd_trainer_init_params(&tr, 1);
    CHECK_OK(make_inputs(&in, &tr, &err), &err);
    tr.student.data[tr.student.params[tr.vit.cls_token].offset] = NAN;
    const size_t bytes = tr.student.numel * sizeof(float);
    float *before = malloc(bytes), *teacher = malloc(bytes);
    memcpy(before, tr.student.data, bytes);
    memcpy(teacher, tr.teacher.data, bytes);
    rd_step_stats stats;
    CHECK(rd_trainer_step(&tr, &in.batch, &values, NULL, &stats, &err) == RD_ENUMERIC);
    CHECK_MSG(strstr(err.msg, "non-finite dino_local_crops_loss"), "message: %s", err.msg);
    CHECK(memcmp(before, tr.student.data, bytes) == 0);
    CHECK(memcmp(teacher, tr.teacher.data, bytes) == 0);
    for (int i = 0; i < tr.opt.count; i++) CHECK(tr.opt.step[i] == 0);
    free(before);
    free(teacher);
    free_inputs(&in);
    rd_trainer_free(&tr);
    rd_config_free(&cfg);
}

static const rd_test_case cases[] = {{"gradient_ranges", test_ranges},
                                     {"non_finite", test_non_finite}};
RD_TEST_MAIN("pretrain/step_hooks", cases)
