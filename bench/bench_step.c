/* One full DINOv2 training step on this process: ViT-S/16, 2 x 224 + n_l x 96 crops per image,
 * shared DINO/iBOT head (K prototypes, bottleneck 256, hidden 2048), Sinkhorn targets, iBOT
 * block masks, KoLeo, clipping, AdamW, EMA; no drop path (the PyTorch peer matches this).
 *   build/bench/bench_step [B=8] [steps=3] [K=65536] [n_local=8]
 * Prints per-phase times and "RESULT" lines: images/s and model GFLOP/s (analytic FLOPs of the
 * matrix products: ViT forward, teacher forward only, student forward + backward = 3x, heads
 * likewise). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdino/log.h"
#include "rdino/masks.h"
#include "rdino/rng.h"
#include "rdino/step.h"

/* Multiply-add FLOPs (2 per MAC) of a ViT forward on b images of n patches. */
static double vit_flops(const rd_vit_config *c, double b, double n) {
    double D = c->embed_dim, T = 1 + c->num_register_tokens + n, p2 = c->patch_size * c->patch_size;
    double block = 2 * T * (3 * D * D + D * D + 2 * D * 4 * D) + 2 * 2 * T * T * D;
    return b * (2 * n * 3 * p2 * D + c->depth * block);
}

static double head_flops(const rd_head_config *h, double rows) {
    return 2 * rows *
           ((double)h->in_dim * h->hidden_dim + (double)h->hidden_dim * h->hidden_dim +
            (double)h->hidden_dim * h->bottleneck + (double)h->bottleneck * h->prototypes);
}

int main(int argc, char **argv) {
    const int B = argc > 1 ? atoi(argv[1]) : 8, steps = argc > 2 ? atoi(argv[2]) : 3;
    const int K = argc > 3 ? atoi(argv[3]) : 65536, nl = argc > 4 ? atoi(argv[4]) : 8;
    rd_error err = {0};
    rd_vit_config vc;
    if (rd_vit_config_default(&vc, "vit_small", 16, 224, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    rd_head_config hc = {vc.embed_dim, 2048, 256, K, 3};
    rd_mask_config mc;
    rd_mask_config_default(&mc, 224, 16, 0.5, 0.1, 0.5);
    rd_step_config sc = {.batch = B,
                         .n_local = nl,
                         .channels = 3,
                         .global_size = 224,
                         .local_size = 96,
                         .max_masked = rd_ibot_masks_upperbound(&mc, 2 * B),
                         .targets = RD_TARGETS_SINKHORN,
                         .sinkhorn_iterations = 3,
                         .center_momentum = 0.9,
                         .student_temp = 0.1,
                         .dino_weight = 1,
                         .ibot_weight = 1,
                         .koleo_weight = 0.1,
                         .clip_grad = 3.0,
                         .layerwise_decay = 0.9,
                         .patch_embed_lr_mult = 0.2,
                         .beta1 = 0.9,
                         .beta2 = 0.999,
                         .adam_eps = 1e-8};
    rd_trainer tr;
    double t0 = rd_now();
    if (rd_trainer_init(&tr, &vc, &hc, NULL, &sc, &err)) {
        fprintf(stderr, "bench_step: %s\n", err.msg);
        return 1;
    }
    double t1 = rd_now();
    rd_trainer_init_params(&tr, 1);
    rd_trainer_report_memory(&tr);
    printf("allocation %.2f s, parameter init %.2f s, trainer memory %.0f MiB\n", t1 - t0,
           rd_now() - t1, rd_trainer_bytes(&tr) / 1048576.0);

    size_t g = (size_t)2 * B * 3 * 224 * 224, l = (size_t)nl * B * 3 * 96 * 96;
    float *gc = malloc(g * sizeof(float)), *lc = malloc((l ? l : 1) * sizeof(float));
    rd_rng r;
    rd_rng_init(&r, 1, RD_RNG_TEST, 0, 0, 0);
    for (size_t i = 0; i < g; i++) gc[i] = (float)rd_rng_normal(&r);
    for (size_t i = 0; i < l; i++) lc[i] = (float)rd_rng_normal(&r);
    rd_arena arena;
    rd_arena_init(&arena, "masks", 1 << 20, &err);
    rd_ibot_masks masks;
    rd_ibot_masks_alloc(&masks, 2 * B, 196, &arena, &err);

    double phase[RD_PHASE_COUNT] = {0}, total = 0, flops = 0;
    for (int s = 0; s <= steps; s++) { /* step 0 warms up */
        rd_ibot_masks_generate(&masks, &mc, 2 * B, 1, 0, (uint64_t)s * B, &err);
        rd_step_batch batch = {gc,           lc,          masks.mask, masks.indices,
                               masks.weight, masks.count, NULL,       NULL};
        rd_schedule_values v = {1e-4, 1e-4, 0.04, 0.996, 0.07};
        rd_step_stats st;
        double ts = rd_now();
        if (rd_trainer_step(&tr, &batch, &v, NULL, &st, &err)) {
            fprintf(stderr, "bench_step: %s\n", err.msg);
            return 1;
        }
        double dt = rd_now() - ts;
        printf("step %d: %.2f s, loss %.4f (dino local %.4f global %.4f, ibot %.4f, koleo %.4f), "
               "M = %d\n",
               s, dt, st.loss, st.dino_local, st.dino_global, st.ibot, st.koleo, masks.count);
        if (s == 0) continue;
        total += dt;
        for (int p = 0; p < RD_PHASE_COUNT; p++) phase[p] += st.seconds[p];
        double student = vit_flops(&vc, 2 * B, 196) + vit_flops(&vc, nl * B, 36);
        double rows_s = (nl + 2) * B + masks.count, rows_t = 2 * B + masks.count;
        flops += vit_flops(&vc, 2 * B, 196) + 3 * student + head_flops(&hc, rows_t) +
                 3 * head_flops(&hc, rows_s);
    }
    printf("profile (mean of %d steps):\n", steps);
    for (int p = 0; p < RD_PHASE_COUNT; p++)
        printf("  %-42s %7.3f s  %5.1f %%\n", rd_step_phase_name((rd_step_phase)p),
               phase[p] / steps, 100 * phase[p] / total);
    printf("RESULT step ViT-S/16 B=%d K=%d: %.3f s/step\n", B, K, total / steps);
    printf("RESULT step images/s: %.3f img/s\n", B * steps / total);
    printf("RESULT step GFLOP/s: %.1f GFLOP/s\n", flops / total * 1e-9);
    free(gc);
    free(lc);
    rd_arena_free(&arena);
    rd_trainer_free(&tr);
    return 0;
}
