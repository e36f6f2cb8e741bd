#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "rdino/config.h"

/* DINOv2's dinov2/configs/train/vitl14.yaml as users have it. */
static const char *dinov2_vitl14 =
    "dino:\n  head_n_prototypes: 131072\n  head_bottleneck_dim: 384\nibot:\n"
    "  separate_head: true\n  head_n_prototypes: 131072\ntrain:\n  batch_size_per_gpu: 32\n"
    "  dataset_path: ImageNet22k\n  centering: sinkhorn_knopp\nstudent:\n  arch: vit_large\n"
    "  patch_size: 14\n  drop_path_rate: 0.4\n  ffn_layer: swiglufused\n  block_chunks: 4\n"
    "teacher:\n  momentum_teacher: 0.994\noptim:\n  epochs: 500\n  weight_decay_end: 0.2\n"
    "  base_lr: 2.0e-04  # learning rate for a batch size of 1024\n  warmup_epochs: 80\n"
    "  layerwise_decay: 1.0\ncrops:\n  local_crops_size: 98\n";

/* The parts of ssl_default_config.yaml with nesting and lists. */
static const char *dinov2_default_excerpt =
    "MODEL:\n  WEIGHTS: ''\ncompute_precision:\n  grad_scaler: true\n  teacher:\n    backbone:\n"
    "      sharding_strategy: SHARD_GRAD_OP\n      mixed_precision:\n        param_dtype: fp16\n"
    "        reduce_dtype: fp16\n        buffer_dtype: fp32\n"
    "ibot:\n  mask_ratio_min_max:\n  - 0.1\n  - 0.5\n"
    "optim:\n  lr: 0.  # will be set after applying scaling rule\n  min_lr: 1.0e-06\n"
    "crops:\n  global_crops_scale:\n  - 0.32\n  - 1.0\n  local_crops_scale: [0.05, 0.32]\n"
    "evaluation:\n  eval_period_iterations: 12500\n";

static void init(rd_test *t, rd_config *cfg) {
    rd_error err = {0};
    CHECK_OK(rd_config_init(cfg, &err), &err);
}

static void defaults_are_dinov2_defaults(rd_test *t) {
    rd_config cfg;
    init(t, &cfg);
    CHECK(strcmp(rd_cfg_str(&cfg, "student.arch"), "vit_large") == 0);
    CHECK(rd_cfg_int(&cfg, "student.patch_size") == 16);
    CHECK_NEAR(rd_cfg_float(&cfg, "optim.base_lr"), 0.004, 0);
    CHECK_NEAR(rd_cfg_float(&cfg, "teacher.final_momentum_teacher"), 1.0, 0);
    CHECK(rd_cfg_int(&cfg, "dino.head_n_prototypes") == 65536);
    double scale[2];
    CHECK(rd_cfg_list(&cfg, "crops.global_crops_scale", scale, 2) == 2);
    CHECK_NEAR(scale[0], 0.32, 0);
    CHECK_NEAR(scale[1], 1.0, 0);
    CHECK(rd_cfg_bool(&cfg, "ibot.separate_head") == 0);
    CHECK(rd_cfg_origin_of(&cfg, "optim.base_lr") == RD_CFG_FROM_DEFAULT);
    rd_config_free(&cfg);
}

static void dinov2_yaml_loads_unchanged(rd_test *t) {
    rd_config cfg;
    rd_error err = {0};
    init(t, &cfg);
    CHECK_OK(rd_config_load_string(&cfg, dinov2_default_excerpt, "default", &err), &err);
    CHECK_OK(rd_config_load_string(&cfg, dinov2_vitl14, "vitl14.yaml", &err), &err);
    CHECK(rd_cfg_int(&cfg, "dino.head_n_prototypes") == 131072);
    CHECK(rd_cfg_bool(&cfg, "ibot.separate_head") == 1);
    CHECK(strcmp(rd_cfg_str(&cfg, "train.centering"), "sinkhorn_knopp") == 0);
    CHECK_NEAR(rd_cfg_float(&cfg, "optim.base_lr"), 2e-4, 0);
    CHECK(rd_cfg_int(&cfg, "crops.local_crops_size") == 98);
    CHECK(rd_cfg_origin_of(&cfg, "optim.base_lr") == RD_CFG_FROM_FILE);
    double r[2];
    CHECK(rd_cfg_list(&cfg, "crops.local_crops_scale", r, 2) == 2 && r[1] == 0.32);
    rd_config_free(&cfg);
}

/* Loads yaml into a fresh config and expects failure with every needle in the message. */
static void expect_error(rd_test *t, const char *yaml, const char *needle1, const char *needle2) {
    rd_config cfg;
    rd_error err = {0};
    init(t, &cfg);
    rd_status st = rd_config_load_string(&cfg, yaml, "test.yaml", &err);
    CHECK_MSG(st != RD_OK, "accepted: %s", yaml);
    CHECK_MSG(strstr(err.msg, needle1), "message '%s' lacks '%s'", err.msg, needle1);
    if (needle2) CHECK_MSG(strstr(err.msg, needle2), "message '%s' lacks '%s'", err.msg, needle2);
    rd_config_free(&cfg);
}

static void unknown_keys_name_the_closest_valid_one(rd_test *t) {
    expect_error(t, "optim:\n  base_lrr: 0.1\n", "'optim.base_lrr'", "'optim.base_lr'");
    expect_error(t, "optim:\n  patch_size: 14\n", "'optim.patch_size'", "'student.patch_size'");
    expect_error(t, "studnet:\n  arch: vit_small\n", "'studnet'", "'student'");
    expect_error(t, "crops:\n  global_crop_size: 224\n", "line 2", "'crops.global_crops_size'");
}

static void wrong_types_and_ranges_name_the_key(rd_test *t) {
    expect_error(t, "optim:\n  epochs: ten\n", "'optim.epochs'", "integer");
    expect_error(t, "optim:\n  epochs: 2.5\n", "'optim.epochs'", "integer");
    expect_error(t, "ibot:\n  separate_head: maybe\n", "'ibot.separate_head'", "boolean");
    expect_error(t, "ibot:\n  mask_sample_probability: 1.5\n", "'ibot.mask_sample_probability'",
                 "[0, 1]");
    expect_error(t, "train:\n  centering: sinkhorn\n", "'train.centering'", "sinkhorn_knopp");
    expect_error(t, "crops:\n  global_crops_scale: [0.3]\n", "'crops.global_crops_scale'", "2");
    expect_error(t, "crops:\n  global_crops_size: [1, 2]\n", "'crops.global_crops_size'", "list");
    expect_error(t, "optim: 5\n", "'optim'", "section");
    expect_error(t, "optim:\n  epochs: 1\n  epochs: 2\n", "'optim.epochs'", "twice");
    expect_error(t, "optim:\n  epochs: [1\n", "test.yaml", "syntax");
    expect_error(t, "- a\n- b\n", "test.yaml", "mapping");
}

static void overrides_apply_and_validate(rd_test *t) {
    rd_config cfg;
    rd_error err = {0};
    init(t, &cfg);
    CHECK_OK(rd_config_override(&cfg, "optim.base_lr=0.001", &err), &err);
    CHECK_OK(rd_config_override(&cfg, "crops.local_crops_scale=[0.1, 0.4]", &err), &err);
    CHECK_OK(rd_config_override(&cfg, "data.image_root=/data/nih images", &err), &err);
    CHECK_NEAR(rd_cfg_float(&cfg, "optim.base_lr"), 0.001, 0);
    CHECK(rd_cfg_origin_of(&cfg, "optim.base_lr") == RD_CFG_FROM_OVERRIDE);
    double r[2];
    rd_cfg_list(&cfg, "crops.local_crops_scale", r, 2);
    CHECK(r[0] == 0.1 && r[1] == 0.4);
    CHECK(strcmp(rd_cfg_str(&cfg, "data.image_root"), "/data/nih images") == 0);
    CHECK(rd_config_override(&cfg, "optim.base_lrr=1", &err) != RD_OK);
    CHECK_MSG(strstr(err.msg, "'optim.base_lr'"), "no suggestion in '%s'", err.msg);
    CHECK(rd_config_override(&cfg, "optim.epochs=-3", &err) != RD_OK);
    CHECK_MSG(strstr(err.msg, "'optim.epochs'"), "key not named in '%s'", err.msg);
    CHECK(rd_config_override(&cfg, "noequals", &err) != RD_OK);
    rd_config_free(&cfg);
}

static void dump_reloads_to_the_same_config(rd_test *t) {
    rd_config a, b;
    rd_error err = {0};
    init(t, &a);
    CHECK_OK(rd_config_load_string(&a, dinov2_vitl14, "vitl14.yaml", &err), &err);
    CHECK_OK(rd_config_override(&a, "data.image_root=a: b # not a comment", &err), &err);
    CHECK_OK(rd_config_override(&a, "data.columns.age=true", &err), &err);
    CHECK_OK(rd_config_override(&a, "optim.min_lr=1e-7", &err), &err);
    char *dump = rd_config_dump(&a);
    CHECK(dump != NULL);
    init(t, &b);
    CHECK_OK(rd_config_load_string(&b, dump, "dump", &err), &err);
    for (int i = 0; i < a.nkeys; i++)
        CHECK_MSG(strcmp(a.values[i].text, b.values[i].text) == 0, "%s: '%s' became '%s'",
                  a.keys[i].name, a.values[i].text, b.values[i].text);
    CHECK(strstr(dump, "# override") != NULL);
    free(dump);
    rd_config_free(&a);
    rd_config_free(&b);
}

static void edit_distance(rd_test *t) {
    CHECK(rd_edit_distance("kitten", "sitting") == 3);
    CHECK(rd_edit_distance("", "abc") == 3);
    CHECK(rd_edit_distance("same", "same") == 0);
}

static void file_errors_name_the_file(rd_test *t) {
    rd_config cfg;
    rd_error err = {0};
    init(t, &cfg);
    CHECK(rd_config_load_file(&cfg, "/nonexistent/x.yaml", &err) != RD_OK);
    CHECK(strstr(err.msg, "/nonexistent/x.yaml") != NULL);
    const char *dir = rd_test_tmpdir(t);
    char path[700];
    snprintf(path, sizeof path, "%s/bad.yaml", dir);
    FILE *f = fopen(path, "w");
    fputs("optim:\n  base_lr: fast\n", f);
    fclose(f);
    CHECK(rd_config_load_file(&cfg, path, &err) != RD_OK);
    CHECK_MSG(strstr(err.msg, path) && strstr(err.msg, "line 2"), "got '%s'", err.msg);
    rd_config_free(&cfg);
}

static const rd_test_case cases[] = {
    {"defaults_are_dinov2_defaults", defaults_are_dinov2_defaults},
    {"dinov2_yaml_loads_unchanged", dinov2_yaml_loads_unchanged},
    {"unknown_keys_name_the_closest_valid_one", unknown_keys_name_the_closest_valid_one},
    {"wrong_types_and_ranges_name_the_key", wrong_types_and_ranges_name_the_key},
    {"overrides_apply_and_validate", overrides_apply_and_validate},
    {"dump_reloads_to_the_same_config", dump_reloads_to_the_same_config},
    {"edit_distance", edit_distance},
    {"file_errors_name_the_file", file_errors_name_the_file},
};
RD_TEST_MAIN("core/config", cases)
