/* Many DINOv2 iterations against the PyTorch oracle: the state a step hands to the next (centres
 * with their deferred update, AdamW moments and step counts, the schedules with the last-layer
 * freeze, teacher-temperature warmup and lr warmup, the teacher EMA) is checked over a whole short
 * schedule, not just for one step (tests/train/test_step_fixtures.c).
 *
 * The fixture tests/reference/fixtures/multistep_centering.h5 holds the exact inputs of 41
 * iterations that rdino's loader produced on phantom shards (crops rounded to fp16, iBOT masks,
 * drop-path subsets), the schedule values rdino-pretrain's schedules gave for each iteration,
 * the initial state (rdino's DINOv2 init), and the fp64 oracle's trajectory on those inputs
 * (tests/reference/multistep.py; tests/reference/README.md, "Multi-step"). This test replays the
 * inputs through rd_trainer_step and compares every loss term of every iteration and the final
 * student, teacher, AdamW moments and centres. It also counts the allocations made inside
 * rd_trainer_step after the first step (the process's malloc family wrapped): none allowed.
 *
 * Tolerances. fp32 against fp64 drifts as the steps compound; the fixture also stores the
 * oracle run in fp32, and its distance to the fp64 run sets the scale: every per-step loss term
 * must agree with the fp64 oracle to 1e-4 relative (measured: C 3e-6, oracle fp32 4e-6), final
 * parameters to 2e-3 of each tensor's largest value (measured: C 1.5e-4, oracle fp32 1.2e-4) except
 * the key third of attn.qkv.bias, which has no true gradient (softmax ignores a shift), so AdamW
 * turns its rounding noise into +-lr steps in any precision; it is checked to move by at most
 * lr x steps, and it does not change any output.
 *
 * Recording (used by tests/reference/make_multistep.sh, not by the test suite):
 *   test_multistep --record CONFIG.yaml OUT.h5 [SNAPSHOT_EVERY]
 * runs rdino-pretrain's loop on one process for pretrain.max_steps iterations (loader without
 * prefetch, schedules, rd_trainer_init_params) and writes the inputs of every iteration, the
 * schedule values, the initial state, rdino's own loss terms and gradient norms per iteration,
 * and the student and teacher every SNAPSHOT_EVERY iterations and at the end. */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "harness.h"
#include "mpi_once.h"
#include "rdino/loader.h"
#include "rdino/log.h"
#include "rdino/schedule.h"
#include "rdino/step.h"
#include "step_fixture.h"

#define LOSS_TOL   1e-5 /* |rdino - oracle| / max(|oracle|, 1), every term of every step */
#define PARAM_TOL  2e-5 /* max |rdino - oracle| / max |oracle| per tensor, after the last step */
#define MOMENT_TOL 1e-4 /* the same for AdamW's exp_avg */

enum { LOSS_TERMS = 5 };
static const char *const LOSS_NAMES[LOSS_TERMS] = {"dino_local", "dino_global", "koleo", "ibot",
                                                   "total"};

/* Allocation counter: the test program's malloc family wraps glibc's, so every allocation in
 * the process (rdino, OpenBLAS, libgomp) is seen; the replay counts those made inside
 * rd_trainer_step after the first step (which may start thread pools). Not under ASan, which
 * brings its own malloc. */
#ifndef __SANITIZE_ADDRESS__
#define COUNT_ALLOCATIONS 1
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
static _Atomic int counting;
static _Atomic long allocations;
static void count(void) {
    if (counting) allocations++;
}
void *malloc(size_t n) {
    count();
    return __libc_malloc(n);
}
void *calloc(size_t k, size_t n) {
    count();
    return __libc_calloc(k, n);
}
void *realloc(void *p, size_t n) {
    count();
    return __libc_realloc(p, n);
}
void *aligned_alloc(size_t align, size_t n) {
    count();
    return __libc_memalign(align, n);
}
int posix_memalign(void **p, size_t align, size_t n) {
    count();
    *p = __libc_memalign(align, n);
    return *p ? 0 : 12; /* ENOMEM */
}
#endif

static void stats_terms(const rd_step_stats *s, double *terms) {
    terms[0] = s->dino_local;
    terms[1] = s->dino_global;
    terms[2] = s->koleo;
    terms[3] = s->ibot;
    terms[4] = s->loss;
}

/* ---- recording ---- */

/* Writes a whole dataset at path (intermediate groups created). */
static int write_array(hid_t file, const char *path, hid_t type, int ndim, const hsize_t *dims,
                       const void *data) {
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t space = H5Screate_simple(ndim, dims, NULL);
    hid_t ds = H5Dcreate2(file, path, type, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = ds < 0 ? -1 : H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    if (ds >= 0) H5Dclose(ds);
    H5Sclose(space);
    H5Pclose(lcpl);
    return rc < 0 ? -1 : 0;
}

/* Creates a dataset [steps, dims...] (intermediate groups created). */
static hid_t create_per_step(hid_t file, const char *path, hid_t type, int ndim,
                             const hsize_t *dims) {
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t space = H5Screate_simple(ndim, dims, NULL);
    hid_t ds = H5Dcreate2(file, path, type, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    H5Sclose(space);
    H5Pclose(lcpl);
    return ds;
}

/* Writes row `step` of a [steps, ...] dataset from data. */
static int write_row(hid_t ds, hid_t type, int64_t step, const void *data) {
    hid_t space = H5Dget_space(ds);
    hsize_t dims[8], start[8] = {0}, count[8];
    int nd = H5Sget_simple_extent_dims(space, dims, NULL);
    for (int i = 0; i < nd; i++) count[i] = dims[i];
    start[0] = (hsize_t)step;
    count[0] = 1;
    H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, count, NULL);
    hid_t mem = H5Screate_simple(nd, count, NULL);
    herr_t rc = H5Dwrite(ds, type, mem, space, H5P_DEFAULT, data);
    H5Sclose(mem);
    H5Sclose(space);
    return rc < 0 ? -1 : 0;
}

static void attr_double(hid_t file, const char *name, double v) {
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(file, name, H5T_NATIVE_DOUBLE, space, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_DOUBLE, &v);
    H5Aclose(a);
    H5Sclose(space);
}

static void attr_string(hid_t file, const char *name, const char *v) {
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, strlen(v) + 1);
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(file, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, type, v);
    H5Aclose(a);
    H5Sclose(space);
    H5Tclose(type);
}

/* Every tensor of set (data, or buf laid out like it) under prefix/<module>/<name>. */
static int write_tensors(hid_t file, const char *prefix, const rd_param_set *set,
                         const float *buf) {
    for (int i = 0; i < set->count; i++) {
        const rd_param *p = &set->params[i];
        char path[256];
        hsize_t dims[RD_PARAM_MAX_DIMS];
        for (int d = 0; d < p->ndim; d++) dims[d] = (hsize_t)p->shape[d];
        snprintf(path, sizeof path, "%s/%s/%s", prefix, rd_module_name(p->module), p->name);
        if (write_array(file, path, H5T_NATIVE_FLOAT, p->ndim, dims, buf + p->offset)) return -1;
    }
    return 0;
}

/* The configuration attributes the oracle needs (dinov2_oracle.StepConfig names). */
static void write_config(hid_t f, const rd_trainer *tr, int64_t steps, uint64_t seed) {
    const rd_vit_config *v = &tr->vit.cfg;
    const rd_step_config *c = &tr->cfg;
    const rd_head_config *d = &tr->dino_head.cfg, *ib = &tr->ibot_head.cfg;
    const struct {
        const char *name;
        double value;
    } attrs[] = {
        {"embed_dim", v->embed_dim},
        {"depth", v->depth},
        {"num_heads", v->num_heads},
        {"mlp_ratio", v->mlp_ratio},
        {"patch_size", v->patch_size},
        {"in_chans", v->in_chans},
        {"num_register_tokens", v->num_register_tokens},
        {"layerscale", v->layerscale},
        {"qkv_bias", v->qkv_bias},
        {"global_size", c->global_size},
        {"local_size", c->local_size},
        {"n_local", c->n_local},
        {"batch_size", c->batch},
        {"channels", c->channels},
        {"max_masked", c->max_masked},
        {"K", d->prototypes},
        {"bottleneck", d->bottleneck},
        {"hidden", d->hidden_dim},
        {"separate_ibot_head", tr->separate_ibot},
        {"ibot_K", ib->prototypes},
        {"ibot_bottleneck", ib->bottleneck},
        {"ibot_hidden", ib->hidden_dim},
        {"koleo_weight", c->koleo_weight},
        {"koleo_group", c->koleo_group},
        {"dino_loss_weight", c->dino_weight},
        {"ibot_loss_weight", c->ibot_weight},
        {"drop_path_rate", v->drop_path_rate},
        {"student_temp", c->student_temp},
        {"center_momentum", c->center_momentum},
        {"sinkhorn_iterations", c->sinkhorn_iterations},
        {"interpolate_offset", v->interpolate_offset},
        {"layerwise_decay", c->layerwise_decay},
        {"patch_embed_lr_mult", c->patch_embed_lr_mult},
        {"clip_grad", c->clip_grad},
        {"beta1", c->beta1},
        {"beta2", c->beta2},
        {"adam_eps", c->adam_eps},
        {"steps", (double)steps},
        {"seed", (double)seed},
    };
    for (size_t i = 0; i < sizeof attrs / sizeof attrs[0]; i++)
        attr_double(f, attrs[i].name, attrs[i].value);
    attr_string(f, "centering", c->targets == RD_TARGETS_SINKHORN ? "sinkhorn_knopp" : "centering");
}

/* The schedule settings: stored as attributes sched_<name after the dot> (the oracle builds
 * DINOv2's schedules from them; the replay builds rdino's). */
static const char *const SCHEDULE_KEYS[] = {"optim.base_lr",
                                            "optim.min_lr",
                                            "optim.epochs",
                                            "optim.warmup_epochs",
                                            "optim.freeze_last_layer_epochs",
                                            "optim.weight_decay",
                                            "optim.weight_decay_end",
                                            "teacher.momentum_teacher",
                                            "teacher.final_momentum_teacher",
                                            "teacher.teacher_temp",
                                            "teacher.warmup_teacher_temp",
                                            "teacher.warmup_teacher_temp_epochs",
                                            "train.OFFICIAL_EPOCH_LENGTH"};
enum { SCHEDULE_KEY_COUNT = sizeof SCHEDULE_KEYS / sizeof SCHEDULE_KEYS[0] };

static void schedule_attr_name(char *buf, size_t n, const char *key) {
    snprintf(buf, n, "sched_%s", strchr(key, '.') + 1);
}

static void write_schedule_config(hid_t f, const rd_config *cfg, int64_t global_batch) {
    for (int i = 0; i < SCHEDULE_KEY_COUNT; i++) {
        char name[96];
        schedule_attr_name(name, sizeof name, SCHEDULE_KEYS[i]);
        attr_double(f, name, rd_cfg_float(cfg, SCHEDULE_KEYS[i]));
    }
    attr_double(f, "sched_global_batch", (double)global_batch);
    attr_string(f, "sched_scaling_rule", rd_cfg_str(cfg, "optim.scaling_rule"));
}

/* Per-step datasets of the recording. */
typedef struct recording {
    hid_t global, local, masks, n_masked, indices, weights, drop_global, drop_local;
    hid_t schedule, losses, grad_norms;
    int *index_row, *drop_row;
    float *weight_row;
} recording;

static void create_recording(hid_t f, const rd_trainer *tr, int64_t steps, recording *r) {
    const rd_step_config *c = &tr->cfg;
    const int B = c->batch, C = c->channels, G = c->global_size, L = c->local_size;
    const int grid = G / tr->vit.cfg.patch_size, depth = tr->vit.cfg.depth;
    const hsize_t S = (hsize_t)steps, Mx = (hsize_t)c->max_masked;
    hsize_t g[5] = {S, 2 * (hsize_t)B, (hsize_t)C, (hsize_t)G, (hsize_t)G};
    hsize_t l[5] = {S, (hsize_t)c->n_local * B, (hsize_t)C, (hsize_t)L, (hsize_t)L};
    hsize_t m[3] = {S, 2 * (hsize_t)B, (hsize_t)grid * grid}, n[1] = {S}, mi[2] = {S, Mx};
    hsize_t dg[4] = {S, (hsize_t)depth, 2, g[1]}, dl[4] = {S, (hsize_t)depth, 2, l[1]};
    hsize_t sched[2] = {S, 5}, losses[2] = {S, LOSS_TERMS}, norms[2] = {S, RD_MODULE_COUNT};
    r->global = create_per_step(f, "inputs/global_crops", H5T_NATIVE_FLOAT, 5, g);
    r->local = create_per_step(f, "inputs/local_crops", H5T_NATIVE_FLOAT, 5, l);
    r->masks = create_per_step(f, "inputs/masks", H5T_NATIVE_UINT8, 3, m);
    r->n_masked = create_per_step(f, "inputs/n_masked", H5T_NATIVE_INT, 1, n);
    r->indices = create_per_step(f, "inputs/mask_indices", H5T_NATIVE_INT, 2, mi);
    r->weights = create_per_step(f, "inputs/masks_weight", H5T_NATIVE_FLOAT, 2, mi);
    r->drop_global = create_per_step(f, "inputs/drop_path/global", H5T_NATIVE_INT, 4, dg);
    r->drop_local = create_per_step(f, "inputs/drop_path/local", H5T_NATIVE_INT, 4, dl);
    r->schedule = create_per_step(f, "inputs/schedule", H5T_NATIVE_DOUBLE, 2, sched);
    r->losses = create_per_step(f, "rdino/loss", H5T_NATIVE_DOUBLE, 2, losses);
    r->grad_norms = create_per_step(f, "rdino/grad_norm", H5T_NATIVE_DOUBLE, 2, norms);
    r->index_row = malloc(Mx * sizeof(int));
    r->weight_row = malloc(Mx * sizeof(float));
    size_t rows = g[1] > l[1] ? g[1] : l[1];
    r->drop_row = malloc((size_t)depth * 2 * rows * sizeof(int));
}

/* Drop-path subsets as [depth, 2, rows]: the kept rows first, -1 after them. */
static void drop_rows(int *out, const rd_vit_drop_path *dp, int depth, int rows) {
    for (int i = 0; i < depth * 2 * rows; i++) out[i] = -1;
    for (int br = 0; dp && br < depth * 2; br++)
        memcpy(out + (size_t)br * rows, dp->index + (size_t)br * rows,
               (size_t)dp->count[br] * sizeof(int));
}

static int record_step(recording *r, const rd_trainer *tr, int64_t it, const rd_step_batch *b,
                       const rd_schedule_values *v, const rd_step_stats *s) {
    const rd_step_config *c = &tr->cfg;
    const int depth = tr->vit.cfg.depth, Mx = c->max_masked;
    for (int p = 0; p < Mx; p++) {
        r->index_row[p] = p < b->n_masked ? b->mask_indices[p] : -1;
        r->weight_row[p] = p < b->n_masked ? b->masks_weight[p] : 0.0f;
    }
    double sched[5] = {v->lr, v->last_layer_lr, v->wd, v->momentum, v->teacher_temp};
    double terms[LOSS_TERMS];
    stats_terms(s, terms);
    int rc = write_row(r->global, H5T_NATIVE_FLOAT, it, b->global_crops) |
             write_row(r->local, H5T_NATIVE_FLOAT, it, b->local_crops) |
             write_row(r->masks, H5T_NATIVE_UINT8, it, b->masks) |
             write_row(r->n_masked, H5T_NATIVE_INT, it, &b->n_masked) |
             write_row(r->indices, H5T_NATIVE_INT, it, r->index_row) |
             write_row(r->weights, H5T_NATIVE_FLOAT, it, r->weight_row) |
             write_row(r->schedule, H5T_NATIVE_DOUBLE, it, sched) |
             write_row(r->losses, H5T_NATIVE_DOUBLE, it, terms) |
             write_row(r->grad_norms, H5T_NATIVE_DOUBLE, it, s->grad_norm);
    drop_rows(r->drop_row, b->drop_global, depth, 2 * c->batch);
    rc |= write_row(r->drop_global, H5T_NATIVE_INT, it, r->drop_row);
    drop_rows(r->drop_row, b->drop_local, depth, c->n_local * c->batch);
    rc |= write_row(r->drop_local, H5T_NATIVE_INT, it, r->drop_row);
    return rc;
}

static void close_recording(recording *r) {
    hid_t all[] = {r->global,   r->local,   r->masks,       r->n_masked,
                   r->indices,  r->weights, r->drop_global, r->drop_local,
                   r->schedule, r->losses,  r->grad_norms};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) H5Dclose(all[i]);
    free(r->index_row);
    free(r->weight_row);
    free(r->drop_row);
}

/* Student, teacher (and, at the end, moments, step counts and centres) under prefix. */
static int write_state(hid_t f, const char *prefix, const rd_trainer *tr, int full) {
    char p[128];
    snprintf(p, sizeof p, "%s/student", prefix);
    int rc = write_tensors(f, p, &tr->student, tr->student.data);
    snprintf(p, sizeof p, "%s/teacher", prefix);
    rc |= write_tensors(f, p, &tr->teacher, tr->teacher.data);
    if (!full) return rc;
    snprintf(p, sizeof p, "%s/adam/exp_avg/student", prefix);
    rc |= write_tensors(f, p, &tr->student, tr->opt.exp_avg);
    snprintf(p, sizeof p, "%s/adam/exp_avg_sq/student", prefix);
    rc |= write_tensors(f, p, &tr->student, tr->opt.exp_avg_sq);
    hsize_t n = (hsize_t)tr->opt.count;
    snprintf(p, sizeof p, "%s/adam/step", prefix);
    rc |= write_array(f, p, H5T_NATIVE_INT64, 1, &n, tr->opt.step);
    if (tr->cfg.targets == RD_TARGETS_CENTERING) {
        /* the centres the next step would use (the pending batch mean folded in) */
        rd_center cd = tr->center_dino, ci = tr->center_ibot;
        float *vd = malloc((size_t)cd.K * sizeof(float)),
              *vi = malloc((size_t)ci.K * sizeof(float));
        memcpy(vd, cd.value, (size_t)cd.K * sizeof(float));
        memcpy(vi, ci.value, (size_t)ci.K * sizeof(float));
        cd.value = vd;
        ci.value = vi;
        rd_center_apply_pending(&cd);
        rd_center_apply_pending(&ci);
        hsize_t kd = (hsize_t)cd.K, ki = (hsize_t)ci.K;
        snprintf(p, sizeof p, "%s/center/dino", prefix);
        rc |= write_array(f, p, H5T_NATIVE_FLOAT, 1, &kd, vd);
        snprintf(p, sizeof p, "%s/center/ibot", prefix);
        rc |= write_array(f, p, H5T_NATIVE_FLOAT, 1, &ki, vi);
        free(vd);
        free(vi);
    }
    return rc;
}

/* rdino-pretrain's setup on one process (src/train/pretrain.c, setup_trainer). */
static rd_status setup(const rd_config *cfg, rd_trainer *tr, rd_loader_params *lp,
                       rd_schedules *sched, rd_error *err) {
    rd_vit_config vc;
    rd_step_config sc;
    rd_head_config dino, ibot;
    int separate, batch, group;
    rd_status st = rd_vit_config_from(cfg, &vc, err);
    if (!st) st = rd_step_setup_from_config(cfg, &vc, &sc, &dino, &ibot, &separate, err);
    if (!st)
        st = rd_loader_params_from_config(
            cfg, &vc, 1, (int)rd_cfg_int(cfg, "pretrain.global_batch"), 1, 0, lp, err);
    if (!st) st = rd_loader_check(lp, &batch, &group, err);
    if (st) return st;
    lp->prefetch = 0; /* this thread writes HDF5 between the reads */
    sc.batch = batch;
    sc.channels = 1;
    sc.koleo_group = group;
    sc.max_masked = rd_loader_max_masked(lp);
    if ((st = rd_trainer_init(tr, &vc, &dino, separate ? &ibot : NULL, &sc, err))) return st;
    return rd_schedules_from_config(sched, cfg, lp->global_batch, err);
}

static int record(const char *config_path, const char *out_path, int64_t snapshot_every) {
    rd_error err = {0};
    rd_config cfg;
    rd_trainer tr;
    rd_loader_params lp;
    rd_schedules sched;
    rd_loader *loader = NULL;
    rd_status st = rd_config_init(&cfg, &err);
    if (!st) st = rd_config_load_file(&cfg, config_path, &err);
    if (!st) st = setup(&cfg, &tr, &lp, &sched, &err);
    if (!st) st = rd_loader_open(&loader, &lp, &err);
    if (st) {
        fprintf(stderr, "record: %s\n", err.msg);
        return 1;
    }
    const int64_t steps = rd_cfg_int(&cfg, "pretrain.max_steps");
    const uint64_t seed = (uint64_t)rd_cfg_int(&cfg, "train.seed");
    rd_trainer_init_params(&tr, seed);
    hid_t f = H5Fcreate(out_path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    write_config(f, &tr, steps, seed);
    write_schedule_config(f, &cfg, lp.global_batch);
    recording r;
    create_recording(f, &tr, steps, &r);
    int rc = write_state(f, "init", &tr, 0);
    for (int64_t it = 0; it < steps && !st && !rc; it++) {
        rd_step_batch batch;
        rd_schedule_values v;
        rd_step_stats stats;
        st = rd_loader_next(loader, it, &batch, &err);
        rd_schedules_at(&sched, it, &v);
        if (!st) st = rd_trainer_step(&tr, &batch, &v, NULL, &stats, &err);
        if (!st) rc = record_step(&r, &tr, it, &batch, &v, &stats);
        if (!st && snapshot_every > 0 && (it + 1) % snapshot_every == 0 && it + 1 < steps) {
            char prefix[64];
            snprintf(prefix, sizeof prefix, "rdino/snapshots/%06lld", (long long)(it + 1));
            rc = write_state(f, prefix, &tr, 0);
        }
    }
    if (!st && !rc) rc = write_state(f, "rdino/after", &tr, 1);
    close_recording(&r);
    H5Fclose(f);
    rd_loader_close(loader);
    rd_trainer_free(&tr);
    rd_config_free(&cfg);
    if (st || rc) fprintf(stderr, "record: %s\n", st ? err.msg : "HDF5 write failed");
    return st || rc;
}

/* ---- replay against the fixture ---- */

/* Largest |got - want| / max|want| over a tensor. */
static double rel_diff(const float *got, const float *want, size_t n) {
    double mx = 0, d = 0;
    for (size_t j = 0; j < n; j++) {
        mx = fmax(mx, fabs(want[j]));
        d = fmax(d, fabs((double)got[j] - want[j]));
    }
    return mx > 0 ? d / mx : d;
}

/* Compares buf (laid out like set) with prefix/<module>/<name>: within tol x max|want| per
 * tensor, except the key third of attn.qkv.bias (moves at most key_bound). Returns the largest
 * relative difference seen. */
static double compare_state(rd_test *t, hid_t f, const rd_param_set *set, const char *prefix,
                            const float *got, double tol, double key_bound, int dim) {
    double worst = 0;
    for (int i = 0; i < set->count; i++) {
        const rd_param *p = &set->params[i];
        char path[256];
        snprintf(path, sizeof path, "%s/%s/%s", prefix, rd_module_name(p->module), p->name);
        size_t n = 0;
        float *want = rd_fixture_floats(f, path, &n);
        CHECK_MSG(want && n == p->numel, "%s missing", path);
        if (want && n == p->numel) {
            const float *g = got + p->offset;
            if (strstr(p->name, "attn.qkv.bias")) {
                /* q and v thirds as any tensor; the key third only within its bound */
                double d = fmax(rel_diff(g, want, (size_t)dim),
                                rel_diff(g + 2 * dim, want + 2 * dim, (size_t)dim));
                double dk = 0;
                for (int j = dim; j < 2 * dim; j++) dk = fmax(dk, fabs((double)g[j] - want[j]));
                CHECK_MSG(d <= tol && dk <= key_bound,
                          "%s: q/v differ by %.3g of the largest (tolerance %.3g), keys by %.3g "
                          "(bound %.3g)",
                          path, d, tol, dk, key_bound);
                worst = fmax(worst, d);
            } else {
                double d = rel_diff(g, want, n);
                CHECK_MSG(d <= tol, "%s: differs by %.3g of its largest value (tolerance %.3g)",
                          path, d, tol);
                worst = fmax(worst, d);
            }
        }
        free(want);
    }
    return worst;
}

/* rdino's schedules for the fixture's settings (rd_schedules_from_config on a configuration
 * made of the sched_* attributes). */
static rd_status fixture_schedules(hid_t f, rd_schedules *sched, rd_error *err) {
    rd_config cfg;
    rd_status st = rd_config_init(&cfg, err);
    for (int i = 0; !st && i < SCHEDULE_KEY_COUNT; i++) {
        char name[96], kv[160];
        schedule_attr_name(name, sizeof name, SCHEDULE_KEYS[i]);
        snprintf(kv, sizeof kv, "%s=%.17g", SCHEDULE_KEYS[i], rd_fixture_attr(f, name));
        st = rd_config_override(&cfg, kv, err);
    }
    char rule[64] = "", kv[96];
    rd_fixture_attr_str(f, "sched_scaling_rule", rule, sizeof rule);
    snprintf(kv, sizeof kv, "optim.scaling_rule=%s", rule);
    if (!st) st = rd_config_override(&cfg, kv, err);
    if (!st)
        st = rd_schedules_from_config(sched, &cfg,
                                      (int64_t)rd_fixture_attr(f, "sched_global_batch"), err);
    rd_config_free(&cfg);
    return st;
}

/* The fixture's per-step inputs, read whole. */
typedef struct replay_inputs {
    float *global, *local, *weights;
    int64_t *masks, *n_masked, *indices, *drop_global, *drop_local;
    double *schedule;
    uint8_t *mask_row;
    int *index_row, *count_g, *index_g, *count_l, *index_l;
} replay_inputs;

static int read_inputs(rd_test *t, hid_t f, replay_inputs *in) {
    memset(in, 0, sizeof *in);
    in->global = rd_fixture_floats(f, "inputs/global_crops", NULL);
    in->local = rd_fixture_floats(f, "inputs/local_crops", NULL);
    in->weights = rd_fixture_floats(f, "inputs/masks_weight", NULL);
    in->masks = rd_fixture_ints(f, "inputs/masks", NULL);
    in->n_masked = rd_fixture_ints(f, "inputs/n_masked", NULL);
    in->indices = rd_fixture_ints(f, "inputs/mask_indices", NULL);
    in->drop_global = rd_fixture_ints(f, "inputs/drop_path/global", NULL);
    in->drop_local = rd_fixture_ints(f, "inputs/drop_path/local", NULL);
    in->schedule = rd_fixture_doubles(f, "oracle/schedule", NULL);
    int ok = in->global && in->local && in->weights && in->masks && in->n_masked && in->indices &&
             in->drop_global && in->drop_local && in->schedule;
    CHECK_MSG(ok, "the fixture lacks an inputs/ dataset or oracle/schedule");
    return ok;
}

static void free_inputs(replay_inputs *in) {
    void *all[] = {in->global,    in->local,       in->weights,    in->masks,    in->n_masked,
                   in->indices,   in->drop_global, in->drop_local, in->schedule, in->mask_row,
                   in->index_row, in->count_g,     in->index_g,    in->count_l,  in->index_l};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
}

/* Subsets of step `it` from rows [S, depth, 2, rows] (-1 padded). */
static void drop_subsets(const int64_t *all, int64_t it, int depth, int rows, int *count,
                         int *index) {
    const int64_t *src = all + (size_t)it * depth * 2 * rows;
    for (int br = 0; br < depth * 2; br++) {
        count[br] = 0;
        for (int j = 0; j < rows; j++)
            if (src[(size_t)br * rows + j] >= 0)
                index[(size_t)br * rows + count[br]++] = (int)src[(size_t)br * rows + j];
    }
}

/* checkpointing: student.activation_checkpointing (the same oracle, still no allocation). */
static void replay(rd_test *t, const char *name, int checkpointing) {
    rd_log_set_quiet(1);
    hid_t f = rd_fixture_open(name);
    if (f < 0) SKIP("fixture %s not found (tests/reference/make_multistep.sh writes it)", name);
    rd_error err = {0};
    rd_trainer tr;
    rd_schedules sched;
    step_fixture_config fc;
    CHECK_OK(fixture_schedules(f, &sched, &err), &err);
    step_fixture_config_read(f, &fc);
    fc.vit.activation_checkpointing = checkpointing;
    CHECK_OK(rd_trainer_init(&tr, &fc.vit, &fc.dino, fc.separate ? &fc.ibot : NULL, &fc.step, &err),
             &err);
    replay_inputs in;
    if (t->failures || !read_inputs(t, f, &in) ||
        !step_fixture_load(t, f, &tr.student, "init/student", tr.student.data)) {
        rd_fixture_close(f);
        return;
    }
    /* the teacher starts as the student (DINOv2); the fixture stores only the student */
    memcpy(tr.teacher.data, tr.student.data, tr.student.numel * sizeof(float));
    const rd_step_config *c = &tr.cfg;
    const int steps = (int)rd_fixture_attr(f, "steps"), depth = tr.vit.cfg.depth;
    const int B = c->batch, Mx = c->max_masked, G = c->global_size, L = c->local_size;
    const int N = (G / tr.vit.cfg.patch_size) * (G / tr.vit.cfg.patch_size);
    const size_t g_len = (size_t)2 * B * c->channels * G * G;
    const size_t l_len = (size_t)c->n_local * B * c->channels * L * L;
    in.mask_row = malloc((size_t)2 * B * N);
    in.index_row = malloc((size_t)Mx * sizeof(int));
    in.count_g = malloc((size_t)depth * 2 * sizeof(int));
    in.count_l = malloc((size_t)depth * 2 * sizeof(int));
    in.index_g = malloc((size_t)depth * 2 * 2 * B * sizeof(int));
    in.index_l = malloc((size_t)depth * 2 * c->n_local * B * sizeof(int) + sizeof(int));
    double *want = rd_fixture_doubles(f, "oracle/loss", NULL);
    double *want32 = rd_fixture_doubles(f, "oracle_fp32/loss", NULL);
    CHECK_MSG(want && want32, "the fixture lacks oracle/loss or oracle_fp32/loss");
    double worst = 0, worst32 = 0, lr_sum = 0;
    int worst_step = -1;
    for (int it = 0; it < steps && want && want32 && !t->failures; it++) {
        const int M = (int)in.n_masked[it];
        for (int i = 0; i < 2 * B * N; i++)
            in.mask_row[i] = (uint8_t)in.masks[(size_t)it * 2 * B * N + i];
        for (int p = 0; p < M; p++) in.index_row[p] = (int)in.indices[(size_t)it * Mx + p];
        rd_vit_drop_path dg = {in.count_g, in.index_g}, dl = {in.count_l, in.index_l};
        drop_subsets(in.drop_global, it, depth, 2 * B, in.count_g, in.index_g);
        drop_subsets(in.drop_local, it, depth, c->n_local * B, in.count_l, in.index_l);
        const int dropping = tr.vit.cfg.drop_path_rate > 0;
        rd_step_batch batch = {in.global + it * g_len, in.local + it * l_len,        in.mask_row,
                               in.index_row,           in.weights + (size_t)it * Mx, M,
                               dropping ? &dg : NULL,  dropping ? &dl : NULL};
        /* rdino's schedules, which must be DINOv2's (the oracle's) */
        const double *s = in.schedule + (size_t)it * 5;
        rd_schedule_values v;
        rd_schedules_at(&sched, it, &v);
        const double mine[5] = {v.lr, v.last_layer_lr, v.wd, v.momentum, v.teacher_temp};
        for (int k = 0; k < 5; k++)
            CHECK_MSG(fabs(mine[k] - s[k]) <= 1e-12 * fabs(s[k]),
                      "step %d: schedule value %d is %.17g, DINOv2's %.17g", it, k, mine[k], s[k]);
        lr_sum += v.lr;
        rd_step_stats stats;
#ifdef COUNT_ALLOCATIONS
        counting = it > 0;
#endif
        CHECK_OK(rd_trainer_step(&tr, &batch, &v, NULL, &stats, &err), &err);
#ifdef COUNT_ALLOCATIONS
        counting = 0;
#endif
        double terms[LOSS_TERMS];
        stats_terms(&stats, terms);
        for (int k = 0; k < LOSS_TERMS && !t->failures; k++) {
            const double w = want[it * LOSS_TERMS + k], w32 = want32[it * LOSS_TERMS + k];
            const double d = fabs(terms[k] - w) / fmax(fabs(w), 1.0);
            if (d > worst) worst = d, worst_step = it;
            worst32 = fmax(worst32, fabs(w32 - w) / fmax(fabs(w), 1.0));
            CHECK_MSG(d <= LOSS_TOL, "step %d %s: rdino %.9g, oracle %.9g (difference %.3g)", it,
                      LOSS_NAMES[k], terms[k], w, d);
        }
    }
#ifdef COUNT_ALLOCATIONS
    CHECK_MSG(allocations == 0, "%ld allocations inside rd_trainer_step after the first step",
              (long)allocations);
#endif
    if (!t->failures) {
        const double tol = PARAM_TOL, key_bound = 1.01 * lr_sum;
        double ds = compare_state(t, f, &tr.student, "oracle/after/student", tr.student.data, tol,
                                  key_bound, tr.vit.cfg.embed_dim);
        double dt = compare_state(t, f, &tr.teacher, "oracle/after/teacher", tr.teacher.data, tol,
                                  key_bound, tr.vit.cfg.embed_dim);
        double dm = compare_state(t, f, &tr.student, "oracle/after/adam/exp_avg/student",
                                  tr.opt.exp_avg, MOMENT_TOL, INFINITY, tr.vit.cfg.embed_dim);
        int64_t *adam_steps = rd_fixture_ints(f, "oracle/after/adam/step", NULL);
        for (int i = 0; adam_steps && i < tr.opt.count; i++)
            CHECK_MSG(tr.opt.step[i] == adam_steps[i],
                      "AdamW step count of tensor %d: %lld vs %lld", i, (long long)tr.opt.step[i],
                      (long long)adam_steps[i]);
        free(adam_steps);
        if (c->targets == RD_TARGETS_CENTERING) {
            rd_center_apply_pending(&tr.center_dino);
            rd_center_apply_pending(&tr.center_ibot);
            float *cd = rd_fixture_floats(f, "oracle/after/center/dino", NULL);
            float *ci = rd_fixture_floats(f, "oracle/after/center/ibot", NULL);
            CHECK(cd && ci);
            if (cd && ci) {
                double d1 = rel_diff(tr.center_dino.value, cd, (size_t)tr.center_dino.K);
                double d2 = rel_diff(tr.center_ibot.value, ci, (size_t)tr.center_ibot.K);
                CHECK_MSG(d1 <= tol && d2 <= tol, "centres differ by %.3g, %.3g", d1, d2);
            }
            free(cd);
            free(ci);
        }
        printf("INFO multistep/%s: %d steps; losses within %.2g of the fp64 oracle (worst at step "
               "%d; the oracle in fp32: %.2g); final student %.2g, teacher %.2g, exp_avg %.2g of "
               "each tensor's largest value\n",
               name, steps, worst, worst_step, worst32, ds, dt, dm);
    }
    free(want);
    free(want32);
    free_inputs(&in);
    rd_trainer_free(&tr);
    rd_fixture_close(f);
}

static void centering_schedule(rd_test *t) {
    replay(t, "multistep_centering.h5", 0);
}
static void centering_schedule_checkpointing(rd_test *t) {
    replay(t, "multistep_centering.h5", 1);
}

static const rd_test_case cases[] = {
    {"centering_schedule", centering_schedule},
    {"centering_schedule_checkpointing", centering_schedule_checkpointing}};

int main(int argc, char **argv) {
    if (argc >= 4 && strcmp(argv[1], "--record") == 0) {
        rd_test_need_mpi();
        rd_log_set_quiet(1);
        return record(argv[2], argv[3], argc >= 5 ? atoll(argv[4]) : 0);
    }
    return rd_test_main(argc, argv, "multistep", cases, (int)(sizeof cases / sizeof cases[0]));
}
