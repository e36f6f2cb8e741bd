/* Checkpoints: a written state reads back bit for bit, names follow DINOv2's state dict, the
 * backbone loads alone for inference, and damaged files (flipped byte, truncation, missing
 * dataset, other shapes) fail with a message naming the file and the dataset. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "mpi_once.h"
#include "rdino/checkpoint.h"
#include "rdino/h5store.h"
#include "rdino/log.h"
#include "rdino/rng.h"
#include "tiny.h"

/* A trainer whose every buffer holds distinct values (not an init a bug could reproduce). */
static void fill_state(rd_trainer *tr, uint64_t seed) {
    rd_trainer_init_params(tr, seed);
    rd_rng r;
    rd_rng_init(&r, seed, RD_RNG_TEST, 0, 0, 0);
    for (size_t i = 0; i < tr->student.numel; i++) {
        tr->teacher.data[i] += (float)(0.01 * rd_rng_normal(&r));
        tr->opt.exp_avg[i] = (float)rd_rng_normal(&r);
        tr->opt.exp_avg_sq[i] = (float)rd_rng_uniform(&r);
    }
    for (int i = 0; i < tr->opt.count; i++) tr->opt.step[i] = 100 + i;
    rd_center *c[2] = {&tr->center_dino, &tr->center_ibot};
    for (int k = 0; k < 2; k++) {
        for (int j = 0; j < c[k]->K; j++) c[k]->value[j] = (float)rd_rng_normal(&r);
        for (int j = 0; j <= c[k]->K; j++) c[k]->pending[j] = rd_rng_normal(&r);
        c[k]->pending[c[k]->K] = 8 + k;
        c[k]->has_pending = 1 - k; /* the iBOT sums were already applied */
    }
}

static int same_floats(const float *a, const float *b, size_t n) {
    return memcmp(a, b, n * sizeof(float)) == 0;
}

/* Buffers laid out like set agree on every tensor (the alignment gaps between them are not
 * state). */
static int same_tensors(const rd_param_set *set, const float *a, const float *b) {
    for (int i = 0; i < set->count; i++)
        if (!same_floats(a + set->params[i].offset, b + set->params[i].offset,
                         set->params[i].numel))
            return 0;
    return 1;
}

typedef struct fixture {
    rd_config cfg;
    rd_trainer a, b;
    char path[600];
    char *yaml;
} fixture;

static int setup(rd_test *t, fixture *fx, const char *file) {
    rd_error err = {0};
    rd_test_need_mpi();
    rd_log_set_quiet(1);
    memset(fx, 0, sizeof *fx);
    CHECK_OK(tiny_config(&fx->cfg, NULL, &err), &err);
    CHECK_OK(tiny_trainer(&fx->a, &fx->cfg, &err), &err);
    CHECK_OK(tiny_trainer(&fx->b, &fx->cfg, &err), &err);
    if (t->failures) return 0;
    fill_state(&fx->a, 3);
    fill_state(&fx->b, 4);
    fx->yaml = rd_config_dump(&fx->cfg);
    snprintf(fx->path, sizeof fx->path, "%s/%s", rd_test_tmpdir(t), file);
    rd_checkpoint_meta meta = {
        .steps = 17, .global_batch = 8, .seed = 5, .nranks = 2, .config = fx->yaml};
    CHECK_OK(rd_checkpoint_write(fx->path, &fx->a, &meta, &err), &err);
    return !t->failures;
}

static void teardown(fixture *fx) {
    rd_trainer_free(&fx->a);
    rd_trainer_free(&fx->b);
    rd_config_free(&fx->cfg);
    free(fx->yaml);
}

static void test_round_trip(rd_test *t) {
    fixture fx;
    if (!setup(t, &fx, "step-0000017.h5")) return;
    rd_error err = {0};
    rd_checkpoint_meta meta;
    CHECK_OK(rd_checkpoint_read(fx.path, &fx.b, &meta, &err), &err);
    CHECK(meta.steps == 17 && meta.global_batch == 8 && meta.seed == 5 && meta.nranks == 2);
    CHECK(meta.config && strcmp(meta.config, fx.yaml) == 0);
    free((char *)meta.config);
    const rd_param_set *set = &fx.a.student;
    CHECK(same_tensors(set, fx.a.student.data, fx.b.student.data));
    CHECK(same_tensors(set, fx.a.teacher.data, fx.b.teacher.data));
    CHECK(same_tensors(set, fx.a.opt.exp_avg, fx.b.opt.exp_avg));
    CHECK(same_tensors(set, fx.a.opt.exp_avg_sq, fx.b.opt.exp_avg_sq));
    CHECK(memcmp(fx.a.opt.step, fx.b.opt.step, (size_t)fx.a.opt.count * sizeof(int64_t)) == 0);
    const rd_center *ca[2] = {&fx.a.center_dino, &fx.a.center_ibot};
    const rd_center *cb[2] = {&fx.b.center_dino, &fx.b.center_ibot};
    for (int k = 0; k < 2; k++) {
        CHECK(same_floats(ca[k]->value, cb[k]->value, (size_t)ca[k]->K));
        CHECK(cb[k]->has_pending == ca[k]->has_pending);
        if (ca[k]->has_pending)
            CHECK(memcmp(ca[k]->pending, cb[k]->pending, (size_t)(ca[k]->K + 1) * 8) == 0);
    }
    teardown(&fx);
}

/* DINOv2's names and shapes, as an h5py user would look them up. */
static void test_names(rd_test *t) {
    fixture fx;
    if (!setup(t, &fx, "names.h5")) return;
    rd_error err = {0};
    rd_h5file f;
    CHECK_OK(rd_h5_open(&f, fx.path, MPI_COMM_SELF, &err), &err);
    const char *names[] = {"student/backbone/blocks.0.attn.qkv.weight",
                           "student/backbone/pos_embed",
                           "student/dino_head/last_layer.weight_g",
                           "student/ibot_head/mlp.0.weight",
                           "teacher/backbone/blocks.1.mlp.fc2.bias",
                           "teacher/dino_head/last_layer.weight_v",
                           "optimizer/exp_avg/student/backbone/cls_token",
                           "optimizer/exp_avg_sq/student/ibot_head/last_layer.weight_v",
                           "dino_loss/center",
                           "ibot_patch_loss/center"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        CHECK_MSG(rd_h5_exists(&f, names[i]), "missing %s", names[i]);
    int64_t dims[RD_H5_MAX_DIMS];
    int ndim = 0;
    CHECK_OK(rd_h5_shape(&f, "student/backbone/blocks.0.attn.qkv.weight", dims, &ndim, NULL, &err),
             &err);
    CHECK(ndim == 2 && dims[0] == 96 && dims[1] == 32);
    CHECK_OK(rd_h5_shape(&f, "ibot_patch_loss/center", dims, &ndim, NULL, &err), &err);
    CHECK(ndim == 3 && dims[0] == 1 && dims[1] == 1 && dims[2] == 48);
    int64_t version = 0, iteration = 0;
    CHECK_OK(rd_h5_get_attr_int(&f, "/", "format_version", &version, &err), &err);
    CHECK_OK(rd_h5_get_attr_int(&f, "/", "iteration", &iteration, &err), &err);
    CHECK(version == RD_CHECKPOINT_FORMAT_VERSION && iteration == 16);
    rd_h5_close(&f);
    teardown(&fx);
}

static void test_load_backbone(rd_test *t) {
    fixture fx;
    if (!setup(t, &fx, "backbone.h5")) return;
    rd_error err = {0};
    /* the model the stored configuration describes, then its teacher backbone by name */
    rd_config cfg;
    rd_vit_config vc;
    rd_vit vit;
    rd_param_set set;
    rd_params_init(&set);
    CHECK_OK(rd_config_init(&cfg, &err), &err);
    CHECK_OK(rd_checkpoint_load_config(fx.path, &cfg, &err), &err);
    CHECK_OK(rd_vit_config_from(&cfg, &vc, &err), &err);
    rd_config_free(&cfg);
    CHECK_OK(rd_vit_declare(&vit, &vc, &set, &err), &err);
    CHECK_OK(rd_params_alloc(&set, 0, &err), &err);
    CHECK_OK(rd_checkpoint_load_params(fx.path, "teacher", &set, 1u << RD_MODULE_BACKBONE, &err),
             &err);
    if (t->failures) {
        rd_params_free(&set);
        return teardown(&fx);
    }
    size_t begin, end;
    rd_params_module_range(&fx.a.teacher, RD_MODULE_BACKBONE, &begin, &end);
    CHECK(vit.cfg.embed_dim == 32 && vit.cfg.depth == 2 && set.numel == end - begin);
    CHECK(begin == 0 && same_tensors(&set, set.data, fx.a.teacher.data));
    rd_params_free(&set);
    teardown(&fx);
}

/* Offset of the first occurrence of needle in the file, or -1. */
static long find_bytes(const char *path, const void *needle, size_t n) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)size);
    long found = -1;
    if (buf && fread(buf, 1, (size_t)size, f) == (size_t)size)
        for (long i = 0; i + (long)n <= size && found < 0; i++)
            if (memcmp(buf + i, needle, n) == 0) found = i;
    free(buf);
    fclose(f);
    return found;
}

static void flip_byte(const char *path, long offset) {
    FILE *f = fopen(path, "r+b");
    fseek(f, offset, SEEK_SET);
    int c = fgetc(f);
    fseek(f, offset, SEEK_SET);
    fputc(c ^ 0x10, f);
    fclose(f);
}

static void test_flipped_byte(rd_test *t) {
    fixture fx;
    if (!setup(t, &fx, "flipped.h5")) return;
    rd_error err = {0};
    /* the teacher's cls_token values locate its chunk in the file */
    int idx = fx.a.vit.cls_token;
    long at = find_bytes(fx.path, rd_param_data(&fx.a.teacher, idx), 32 * sizeof(float));
    CHECK(at > 0);
    if (at > 0) flip_byte(fx.path, at + 5);
    rd_checkpoint_meta meta;
    rd_status st = rd_checkpoint_read(fx.path, &fx.b, &meta, &err);
    CHECK(st != RD_OK);
    CHECK_MSG(strstr(err.msg, "flipped.h5") && strstr(err.msg, "teacher/backbone/cls_token"),
              "message should name the file and dataset: %s", err.msg);
    teardown(&fx);
}

static void test_truncated(rd_test *t) {
    fixture fx;
    if (!setup(t, &fx, "truncated.h5")) return;
    rd_error err = {0};
    struct stat s;
    stat(fx.path, &s);
    CHECK(truncate(fx.path, s.st_size / 2) == 0);
    rd_checkpoint_meta meta;
    CHECK(rd_checkpoint_read(fx.path, &fx.b, &meta, &err) != RD_OK);
    CHECK_MSG(strstr(err.msg, "truncated.h5"), "message should name the file: %s", err.msg);
    teardown(&fx);
}

/* A model with another shape, and a file lacking a tensor (a checkpoint of a model with a shared
 * head read into one with a separate head). */
static void test_mismatch(rd_test *t) {
    fixture fx;
    if (!setup(t, &fx, "mismatch.h5")) return;
    rd_error err = {0};
    rd_config cfg;
    rd_trainer other;
    const char *wider[] = {"dino.head_n_prototypes=32", NULL};
    CHECK_OK(tiny_config(&cfg, wider, &err), &err);
    CHECK_OK(tiny_trainer(&other, &cfg, &err), &err);
    rd_checkpoint_meta meta;
    CHECK(rd_checkpoint_read(fx.path, &other, &meta, &err) == RD_EFORMAT);
    CHECK_MSG(strstr(err.msg, "last_layer.weight_g") && strstr(err.msg, "[64,1]"),
              "message should name the dataset and shapes: %s", err.msg);
    rd_trainer_free(&other);
    rd_config_free(&cfg);

    const char *shared[] = {"ibot.separate_head=false", NULL};
    CHECK_OK(tiny_config(&cfg, shared, &err), &err);
    CHECK_OK(tiny_trainer(&other, &cfg, &err), &err);
    char path2[700];
    snprintf(path2, sizeof path2, "%s/shared.h5", rd_test_tmpdir(t));
    rd_checkpoint_meta m2 = {.steps = 1, .config = ""};
    CHECK_OK(rd_checkpoint_write(path2, &other, &m2, &err), &err);
    CHECK(rd_checkpoint_read(path2, &fx.a, &meta, &err) == RD_ENOTFOUND);
    CHECK_MSG(strstr(err.msg, "student/ibot_head/mlp.0.weight"), "names the dataset: %s", err.msg);
    rd_trainer_free(&other);
    rd_config_free(&cfg);
    teardown(&fx);
}

static void test_list(rd_test *t) {
    rd_test_need_mpi();
    const char *dir = rd_test_tmpdir(t);
    char path[700];
    int64_t made[] = {3, 120, 40};
    for (int i = 0; i < 3; i++) {
        rd_checkpoint_path(path, sizeof path, dir, made[i]);
        FILE *f = fopen(path, "w");
        if (f) fclose(f);
    }
    snprintf(path, sizeof path, "%s/.step-0000200.h5.tmp", dir);
    FILE *f = fopen(path, "w");
    if (f) fclose(f);
    snprintf(path, sizeof path, "%s/step-0000300.h5.corrupt", dir);
    f = fopen(path, "w");
    if (f) fclose(f);
    int64_t steps[8];
    rd_error err = {0};
    int n = rd_checkpoint_list(dir, steps, 8, &err);
    CHECK(n == 3 && steps[0] == 120 && steps[1] == 40 && steps[2] == 3);
    CHECK(rd_checkpoint_list(dir, steps, 2, &err) == 2 && steps[1] == 40);
    rd_checkpoint_path(path, sizeof path, "/x", 42);
    CHECK(strcmp(path, "/x/step-0000042.h5") == 0);
    /* empty files are not checkpoints: the finder says so */
    CHECK(rd_checkpoint_find_latest(dir, path, sizeof path, &err) == RD_ENOTFOUND);
}

static const rd_test_case cases[] = {
    {"round_trip", test_round_trip},
    {"names", test_names},
    {"load_backbone", test_load_backbone},
    {"flipped_byte", test_flipped_byte},
    {"truncated", test_truncated},
    {"mismatch", test_mismatch},
    {"list", test_list},
};
RD_TEST_MAIN("train/checkpoint", cases)
