/* Training steps of a run configuration on this process, as rdino-pretrain sets them up on one
 * rank (grey crops, the config's ViT, heads, crops and targets; no drop path, like the peer),
 * on random crops and iBOT masks in memory:
 *   build/bench/bench_train_config LABEL STEPS CONFIG.yaml [key.sub=value]...
 * e.g. bench_train_config nih-518 1 configs/nih.yaml train.batch_size_per_gpu=1
 * Prints the trainer memory plan, each step's time by phase and "RESULT" lines: seconds per image
 * of the fastest step, the student's activations per image, and the peak RSS next to the plan
 * (bench/bench_realscale.sh). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdino/log.h"
#include "rdino/masks.h"
#include "rdino/rng.h"
#include "rdino/step.h"

static int fail(const rd_error *err) {
    fprintf(stderr, "bench_train_config: %s\n", err->msg);
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: bench_train_config LABEL STEPS CONFIG.yaml [key=value]...\n");
        return 2;
    }
    const char *label = argv[1];
    const int steps = atoi(argv[2]);
    rd_error err = {0};
    rd_config cfg;
    if (rd_config_init(&cfg, &err) || rd_config_load_file(&cfg, argv[3], &err)) return fail(&err);
    for (int i = 4; i < argc; i++)
        if (rd_config_override(&cfg, argv[i], &err)) return fail(&err);
    rd_vit_config vc;
    rd_step_config sc;
    rd_head_config dino, ibot;
    int separate;
    if (rd_vit_config_from(&cfg, &vc, &err) ||
        rd_step_setup_from_config(&cfg, &vc, &sc, &dino, &ibot, &separate, &err))
        return fail(&err);
    sc.channels = 1; /* grey crops, as the loader gives them */
    rd_trainer_memory plan;
    if (rd_trainer_plan(&vc, &dino, separate ? &ibot : NULL, &sc, &plan, &err)) return fail(&err);
    char line[512];
    rd_trainer_memory_format(&plan, line, sizeof line);
    printf("%s\n", line);
    const int B = sc.batch, G = sc.global_size, L = sc.local_size, nl = sc.n_local;
    const int grid = G / vc.patch_size;
    size_t g = (size_t)2 * B * G * G, l = (size_t)nl * B * L * L;
    float *gc = malloc(g * sizeof(float)), *lc = malloc((l ? l : 1) * sizeof(float));
    rd_rng r;
    rd_rng_init(&r, 1, RD_RNG_TEST, 0, 0, 0);
    for (size_t i = 0; i < g; i++) gc[i] = (float)rd_rng_normal(&r);
    for (size_t i = 0; i < l; i++) lc[i] = (float)rd_rng_normal(&r);
    rd_mask_config mc;
    double ratios[2];
    rd_cfg_list(&cfg, "ibot.mask_ratio_min_max", ratios, 2);
    rd_mask_config_default(&mc, G, vc.patch_size,
                           rd_cfg_float(&cfg, "ibot.mask_sample_probability"), ratios[0],
                           ratios[1]);
    rd_arena arena;
    rd_ibot_masks masks;
    if (rd_arena_init(&arena, "masks", (size_t)8 * 2 * B * grid * grid + (1 << 20), &err) ||
        rd_ibot_masks_alloc(&masks, 2 * B, grid * grid, &arena, &err))
        return fail(&err);
    const double before = rd_rss_mib();
    rd_trainer tr;
    if (rd_trainer_init(&tr, &vc, &dino, separate ? &ibot : NULL, &sc, &err)) return fail(&err);
    rd_trainer_init_params(&tr, 1);
    double best = 1e30;
    for (int s = 0; s < steps; s++) {
        if (rd_ibot_masks_generate(&masks, &mc, 2 * B, 1, 0, (uint64_t)s * B, &err))
            return fail(&err);
        rd_step_batch batch = {gc,           lc,          masks.mask, masks.indices,
                               masks.weight, masks.count, NULL,       NULL};
        rd_schedule_values v = {1e-4, 1e-4, 0.04, 0.996, 0.07};
        rd_step_stats st;
        double t0 = rd_now();
        if (rd_trainer_step(&tr, &batch, &v, NULL, &st, &err)) return fail(&err);
        double dt = rd_now() - t0;
        printf("step %d: %.2f s, loss %.4f;", s, dt, st.loss);
        for (int ph = 0; ph < RD_PHASE_COUNT; ph++)
            printf(" %s %.2f s", rd_step_phase_name((rd_step_phase)ph), st.seconds[ph]);
        printf("\n");
        if (dt < best) best = dt;
    }
    const double mib = 1.0 / 1048576.0, total = rd_trainer_memory_total(&plan) * mib;
    const char *ck = vc.activation_checkpointing ? "checkpointing" : "no checkpointing";
    printf("RESULT pretrain step %s %s s/img: %.2f s/img (B = %d)\n", label, ck, best / B, B);
    printf("RESULT pretrain %s %s student activations per image: %.0f MiB\n", label, ck,
           (double)(plan.global_acts + plan.local_acts) * mib / B);
    printf("RESULT pretrain %s %s peak RSS: %.0f MiB (plan %.0f MiB + %.0f MiB resident "
           "before: %+.1f%%)\n",
           label, ck, rd_peak_rss_mib(), total, before,
           100 * (rd_peak_rss_mib() - before - total) / total);
    rd_trainer_free(&tr);
    rd_arena_free(&arena);
    free(gc);
    free(lc);
    rd_config_free(&cfg);
    return 0;
}
