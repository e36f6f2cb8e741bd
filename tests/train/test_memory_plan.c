/* The trainer's memory plan (rd_trainer_plan, printed by rdino-pretrain --plan-memory and checked
 * against pretrain.max_memory_gb) is a promise: it equals, byte for byte, what rd_trainer_init
 * allocates, and on a configuration whose activations dominate, the process's peak RSS over
 * init and a full step (VmHWM, /proc/self/status) exceeds what was resident before by the plan
 * within 10%. With and without activation checkpointing, which must shrink the student's
 * activations (here, 4 blocks: by a third at least; ViT-B/14 at 518, 12 blocks: 1539 -> 431 MiB
 * per image, docs/PERFORMANCE.md). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "rdino/gemm_bf16.h"
#include "rdino/log.h"
#include "rdino/nn.h"
#include "rdino/masks.h"
#include "rdino/rng.h"
#include "tiny.h"

#define RSS_RTOL 0.10 /* |peak - before - plan| / plan */

/* A mid-size model whose activations dominate: D = 64, 4 blocks, 8 images of 128 px (257
 * tokens) and 2 local crops of 32 px each; tiny heads. */
static const char *const MID[] = {"student.embed_dim=64",
                                  "student.depth=4",
                                  "student.num_heads=2",
                                  "crops.global_crops_size=128",
                                  "crops.local_crops_size=32",
                                  "train.batch_size_per_gpu=8",
                                  NULL,
                                  NULL};

static rd_status plan_for(const rd_config *cfg, rd_trainer_memory *m, rd_error *err) {
    rd_vit_config vc;
    rd_step_config sc;
    rd_head_config dino, ibot;
    int separate;
    rd_status st = rd_vit_config_from(cfg, &vc, err);
    if (!st) st = rd_step_setup_from_config(cfg, &vc, &sc, &dino, &ibot, &separate, err);
    if (!st) st = rd_trainer_plan(&vc, &dino, separate ? &ibot : NULL, &sc, m, err);
    return st;
}

/* kB of a "Key:   N kB" line of /proc/self/status; -1 when absent. */
static double status_kib(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double v = -1;
    size_t n = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, key, n) == 0 && line[n] == ':') v = strtod(line + n + 1, NULL);
    if (f) fclose(f);
    return v;
}

/* Resets VmHWM to the current RSS (Linux >= 4.0); 0 when not possible. */
static int reset_peak(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return 0;
    int ok = fputs("5", f) >= 0;
    return fclose(f) == 0 && ok;
}

static void plan_equals_allocation(rd_test *t) {
    rd_log_set_quiet(1);
    const char *const variants[][3] = {
        {NULL},
        {"student.activation_checkpointing=true", NULL},
        {"crops.local_crops_number=0", "ibot.separate_head=false", NULL},
        {"student.activation_checkpointing=true", "student.num_register_tokens=2", NULL},
        {"pretrain.precision=bf16", NULL}}; /* the bf16 copies, on any CPU (RD_BF16_FORCE) */
    for (int v = 0; v < 5 && !t->failures; v++) {
        int bf16 = v == 4;
        rd_bf16_set_mode(bf16 ? RD_BF16_FORCE : RD_BF16_FROM_ENV);
        rd_config cfg;
        rd_error err = {0};
        rd_trainer_memory m;
        rd_trainer tr;
        CHECK_OK(tiny_config(&cfg, variants[v], &err), &err);
        CHECK_OK(plan_for(&cfg, &m, &err), &err);
        CHECK_OK(tiny_trainer(&tr, &cfg, &err), &err);
        if (!t->failures) {
            CHECK_MSG(rd_trainer_bytes(&tr) == rd_trainer_memory_total(&m),
                      "variant %d: planned %zu bytes, allocated %zu", v,
                      rd_trainer_memory_total(&m), rd_trainer_bytes(&tr));
            CHECK_MSG((m.bf16 > 0) == bf16, "variant %d: %zu bytes of bf16 copies planned", v,
                      m.bf16);
            rd_trainer_free(&tr);
        }
        rd_config_free(&cfg);
    }
    rd_bf16_set_mode(RD_BF16_FROM_ENV);
}

/* Init, one step, free; returns the peak RSS increase in bytes and fills the plan. */
static double measured_step(rd_test *t, int checkpointing, rd_trainer_memory *m,
                            double *student_acts) {
    const char *over[8];
    memcpy(over, MID, sizeof over);
    over[6] = checkpointing ? "student.activation_checkpointing=true" : NULL;
    rd_config cfg;
    rd_error err = {0};
    CHECK_OK(tiny_config(&cfg, over, &err), &err);
    CHECK_OK(plan_for(&cfg, m, &err), &err);
    if (t->failures) return NAN;
    *student_acts = (double)(m->global_acts + m->local_acts) / m->batch;
    /* the inputs are resident before the baseline is read */
    const int B = m->batch, C = 3, G = 128, L = 32, nl = 2, grid = G / 8; /* in_chans 3 */
    size_t g = (size_t)2 * B * C * G * G, l = (size_t)nl * B * C * L * L;
    float *global = malloc(g * sizeof(float)), *local = malloc(l * sizeof(float));
    rd_rng r;
    rd_rng_init(&r, 5, RD_RNG_TEST, 0, 0, 0);
    for (size_t i = 0; i < g; i++) global[i] = (float)rd_rng_normal(&r);
    for (size_t i = 0; i < l; i++) local[i] = (float)rd_rng_normal(&r);
    rd_arena arena;
    rd_ibot_masks masks;
    rd_mask_config mc;
    rd_mask_config_default(&mc, G, 8, 0.5, 0.1, 0.5);
    CHECK_OK(rd_arena_init(&arena, "masks", 1 << 20, &err), &err);
    CHECK_OK(rd_ibot_masks_alloc(&masks, 2 * B, grid * grid, &arena, &err), &err);
    CHECK_OK(rd_ibot_masks_generate(&masks, &mc, 2 * B, 3, 0, 0, &err), &err);
    double grown = NAN;
    if (!t->failures && reset_peak()) {
        double before = status_kib("VmRSS");
        rd_trainer tr;
        CHECK_OK(tiny_trainer(&tr, &cfg, &err), &err);
        if (!t->failures) {
            rd_trainer_init_params(&tr, 1);
            rd_step_batch batch = {global,       local,       masks.mask, masks.indices,
                                   masks.weight, masks.count, NULL,       NULL};
            rd_schedule_values v = {.lr = 1e-4,
                                    .last_layer_lr = 1e-4,
                                    .wd = 0.04,
                                    .momentum = 0.99,
                                    .teacher_temp = 0.04};
            rd_step_stats stats;
            CHECK_OK(rd_trainer_step(&tr, &batch, &v, NULL, &stats, &err), &err);
            grown = 1024.0 * (status_kib("VmHWM") - before);
            rd_trainer_free(&tr);
        }
    }
    rd_arena_free(&arena);
    free(global);
    free(local);
    rd_config_free(&cfg);
    return grown;
}

static void plan_matches_peak_rss(rd_test *t) {
#ifdef __SANITIZE_ADDRESS__
    SKIP("under AddressSanitizer the heap's red zones and quarantine inflate the peak RSS");
#endif
    rd_log_set_quiet(1);
    if (!reset_peak() || status_kib("VmHWM") < 0)
        SKIP("no /proc/self/clear_refs or VmHWM: peak RSS cannot be measured here");
    /* OpenBLAS and OpenMP set up their per-thread buffers at first use: before the baseline */
    enum { N = 512 };
    float *a = calloc((size_t)N * N, sizeof(float)), *c = calloc((size_t)N * N, sizeof(float));
    rd_sgemm(0, 1, N, N, N, 1.0f, a, N, a, N, 0.0f, c, N, NULL);
    free(a);
    free(c);
    double acts[2];
    for (int ck = 0; ck < 2 && !t->failures; ck++) {
        rd_trainer_memory m;
        double grown = measured_step(t, ck, &m, &acts[ck]);
        if (t->failures) return;
        double plan = (double)rd_trainer_memory_total(&m), d = fabs(grown - plan) / plan;
        printf("INFO train/memory_plan: checkpointing %s: plan %.1f MiB, peak RSS grew %.1f MiB "
               "(%.1f%%), student activations %.2f MiB per image\n",
               ck ? "on" : "off", plan / 1048576.0, grown / 1048576.0, 100 * d,
               acts[ck] / 1048576.0);
        CHECK_MSG(d <= RSS_RTOL, "checkpointing %d: plan %.1f MiB, peak RSS grew %.1f MiB", ck,
                  plan / 1048576.0, grown / 1048576.0);
    }
    if (!t->failures)
        CHECK_MSG(acts[1] * 1.5 <= acts[0],
                  "checkpointing keeps %.2f MiB of student activations per image, without %.2f",
                  acts[1] / 1048576.0, acts[0] / 1048576.0);
}

static const rd_test_case cases[] = {
    {"plan_equals_allocation", plan_equals_allocation},
    {"plan_matches_peak_rss", plan_matches_peak_rss},
};
RD_TEST_MAIN("train/memory_plan", cases)
