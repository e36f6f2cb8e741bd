/* ViT backbone throughput: forward + backward images per second of a DINOv2 ViT on random
 * images (the student's work per crop set), the per-layer time profile of the measured
 * iterations (rd_vit_context_profile), achieved GFLOP/s of the matrix products, and the rate of
 * one large SGEMM in the same run as the machine's reference. Threads: OMP_NUM_THREADS (BLAS runs
 * single-threaded inside). bench_vit [--arch vit_small] [--patch 16] [--native 224] [--img 224]
 * [--batch 8]
 *             [--iters 3] [--profile] [--label NAME] [--infer [--bf16]]
 * The label defaults to the architecture and patch, e.g. "vit_base/14".
 * Prints "RESULT <label> <img> fwd+bwd img/s (<t> threads): <x> img/s" and, with --profile,
 * "PROFILE ..." lines. --infer times the forward of an inference context alone ("fwd img/s").
 * --bf16: the block linears in bf16 (rd_vit_bf16, the path RDINO_BF16 picks; "bf16 fwd" or
 * "bf16 fwd+bwd"); training re-packs the copies every iteration, as the trainer's step does. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdino/log.h"
#include "rdino/nn.h"
#include "rdino/rng.h"
#include "rdino/vit.h"

static void fill(float *x, size_t n, uint64_t index, float scale) {
    rd_rng r;
    rd_rng_init(&r, 7, RD_RNG_TEST, 0, index, 0);
    for (size_t i = 0; i < n; i++) x[i] = scale * (float)(2.0 * rd_rng_uniform(&r) - 1.0);
}

static float *buffer(size_t n, uint64_t index) {
    float *x = malloc(n * sizeof(float));
    if (!x) {
        fprintf(stderr, "bench_vit: out of memory (%zu floats)\n", n);
        exit(1);
    }
    fill(x, n, index, 0.5f);
    return x;
}

/* Per-category wall time of the measured iterations, from the context's own clock. */
static void profile(const rd_vit_context *ctx, int iters, double fwd_total, double bwd_total,
                    double gemm_flops, double att_flops, int infer) {
    printf("PROFILE %-31s %9s %6s %9s %6s\n", "per iteration", "fwd ms", "fwd %", "bwd ms",
           "bwd %");
    /* inference: no backward; its columns show zeros (0/1 instead of 0/0) */
    double tot[2] = {fwd_total / iters, infer ? 0 : bwd_total / iters}, sum[2] = {0, 0};
    double bwd_div = infer ? 1 : tot[1];
    for (int k = 0; k < RD_VIT_TIME_COUNT; k++) {
        double f = ctx->seconds[0][k] / iters, b = ctx->seconds[1][k] / iters;
        sum[0] += f;
        sum[1] += b;
        printf("PROFILE %-31s %9.1f %5.1f%% %9.1f %5.1f%%\n", rd_vit_time_name((rd_vit_time)k),
               1e3 * f, 100 * f / tot[0], 1e3 * b, 100 * b / bwd_div);
    }
    printf("PROFILE %-31s %9.1f %5.1f%% %9.1f %5.1f%%\n", "other (zeroing, copies)",
           1e3 * (tot[0] - sum[0]), 100 * (tot[0] - sum[0]) / tot[0], 1e3 * (tot[1] - sum[1]),
           100 * (tot[1] - sum[1]) / bwd_div);
    printf("PROFILE %-31s %9.1f %6s %9.1f\n", "total", 1e3 * tot[0], "", 1e3 * tot[1]);
    /* backward does twice the forward's products */
    double gemm_s = (ctx->seconds[0][RD_VIT_TIME_GEMM] + ctx->seconds[1][RD_VIT_TIME_GEMM]) / iters;
    double att_s =
        (ctx->seconds[0][RD_VIT_TIME_ATTENTION] + ctx->seconds[1][RD_VIT_TIME_ATTENTION]) / iters;
    int passes = infer ? 1 : 3; /* inference: the forward's products only */
    printf("PROFILE linear GEMMs %.1f GFLOP/s, attention %.1f GFLOP/s (%s)\n",
           passes * gemm_flops / gemm_s / 1e9, passes * att_flops / att_s / 1e9,
           passes == 3 ? "fwd+bwd" : "fwd");
}

/* Multiply-add FLOPs (x2) of the matrix products of one forward, split into the linears and
 * attention; backward does twice as many (input and weight gradients), except the patch
 * embedding (weight gradient only). */
static void forward_flops(const rd_vit *vit, int b, int n, double *linear, double *attention,
                          double *patch) {
    const rd_vit_config *c = &vit->cfg;
    double T = 1 + c->num_register_tokens + n, D = c->embed_dim, rows = b * T;
    double F = vit->cfg.ffn == RD_VIT_FFN_SWIGLU ? 2.0 * vit->hidden : vit->hidden;
    *linear = c->depth * (2 * rows * D * 3 * D + 2 * rows * D * D + 2 * rows * D * F +
                          2 * rows * vit->hidden * D);
    *attention = c->depth * 2 * 2 * b * T * T * D;
    *patch = 2.0 * b * n * c->in_chans * c->patch_size * c->patch_size * D;
}

static double sgemm_rate(void) {
    int N = 2048;
    float *a = buffer((size_t)N * N, 20), *b = buffer((size_t)N * N, 21),
          *c = buffer((size_t)N * N, 22);
    double best = INFINITY;
    for (int r = 0; r < 3; r++) {
        double t0 = rd_now();
        rd_sgemm(0, 1, N, N, N, 1.0f, a, N, b, N, 0.0f, c, N, NULL);
        double t = rd_now() - t0;
        best = t < best ? t : best;
    }
    free(a), free(b), free(c);
    return 2.0 * N * N * N / best / 1e9;
}

int main(int argc, char **argv) {
    const char *arch = "vit_small", *label = NULL;
    int patch = 16, native = 224, img = 224, batch = 8, iters = 3, do_profile = 0, infer = 0;
    int bf16 = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
        if (!strcmp(a, "--arch"))
            arch = v, i++;
        else if (!strcmp(a, "--label"))
            label = v, i++;
        else if (!strcmp(a, "--patch"))
            patch = atoi(v), i++;
        else if (!strcmp(a, "--native"))
            native = atoi(v), i++;
        else if (!strcmp(a, "--img"))
            img = atoi(v), i++;
        else if (!strcmp(a, "--batch"))
            batch = atoi(v), i++;
        else if (!strcmp(a, "--iters"))
            iters = atoi(v), i++;
        else if (!strcmp(a, "--profile"))
            do_profile = 1;
        else if (!strcmp(a, "--infer"))
            infer = 1;
        else if (!strcmp(a, "--bf16"))
            bf16 = 1;
        else {
            fprintf(stderr, "bench_vit: unknown option %s\n", a);
            return 2;
        }
    }
    char default_label[64];
    if (!label) {
        snprintf(default_label, sizeof default_label, "%s/%d", arch, patch);
        label = default_label;
    }
    rd_error err;
    rd_vit_config cfg;
    rd_vit vit;
    rd_param_set set;
    rd_vit_context ctx;
    rd_vit_bf16 copies;
    rd_vit_mode mode = infer ? RD_VIT_INFER : RD_VIT_TRAIN;
    rd_params_init(&set);
    memset(&copies, 0, sizeof copies);
    if (rd_vit_config_default(&cfg, arch, patch, native, &err) ||
        rd_vit_declare(&vit, &cfg, &set, &err) || rd_params_alloc(&set, !infer, &err) ||
        rd_vit_context_init(&ctx, &vit, batch, img, img, mode, &err)) {
        fprintf(stderr, "bench_vit: %s\n", err.msg);
        return 1;
    }
    rd_vit_init_params(&vit, &set, 1);
    if (bf16) {
        double t0 = rd_now();
        if (rd_vit_bf16_init(&copies, &vit, &set, !infer, &err) ||
            rd_vit_context_bf16(&ctx, &copies, &err)) {
            fprintf(stderr, "bench_vit: %s\n", err.msg);
            return 1;
        }
        printf("bf16 copies: %s path, %.1f MiB, packed in %.1f ms\n",
               rd_bf16_path_name(copies.path), (double)copies.bytes / 1048576.0,
               1e3 * (rd_now() - t0));
    }
    int n = (img / patch) * (img / patch), D = cfg.embed_dim, threads = omp_get_max_threads();
    float *images = buffer((size_t)batch * 3 * img * img, 30);
    float *d_cls = buffer((size_t)batch * D, 31), *d_patch = buffer((size_t)batch * n * D, 32);
    double fwd = INFINITY, bwd = INFINITY, best = INFINITY, fwd_total = 0, bwd_total = 0;
    for (int it = 0; it <= iters; it++) { /* iteration 0 warms up */
        rd_vit_output out;
        if (set.grad) memset(set.grad, 0, set.numel * sizeof(float));
        if (it == 1) rd_vit_context_profile(&ctx, do_profile); /* zeroes the totals */
        double t0 = rd_now();
        if (bf16 && !infer) rd_vit_bf16_refresh(&copies); /* timed: every step pays it */
        if (rd_vit_forward(&ctx, &set, images, batch, 3, img, img, NULL, NULL, &out, &err)) break;
        double t1 = rd_now();
        if (!infer && rd_vit_backward(&ctx, &set, d_cls, d_patch, &err)) break;
        double t2 = rd_now();
        if (it == 0) continue;
        fwd = t1 - t0 < fwd ? t1 - t0 : fwd;
        bwd = t2 - t1 < bwd ? t2 - t1 : bwd;
        best = t2 - t0 < best ? t2 - t0 : best; /* best iteration: the machine is shared */
        fwd_total += t1 - t0;
        bwd_total += t2 - t1;
    }
    if (err.code) {
        fprintf(stderr, "bench_vit: %s\n", err.msg);
        return 1;
    }
    double linear, attention, patch_flops;
    forward_flops(&vit, batch, n, &linear, &attention, &patch_flops);
    double flops = linear + attention + patch_flops;
    double fb_flops = infer ? flops : 3 * flops - patch_flops;
    const char *s = threads > 1 ? "s" : "";
    const char *what = infer ? (bf16 ? "bf16 fwd" : "fwd") : (bf16 ? "bf16 fwd+bwd" : "fwd+bwd");
    printf("context: %.1f MiB of activations for %d x %dx%d (%s)\n",
           (double)rd_vit_context_bytes(&vit, batch, img, img, mode) / 1048576.0, batch, img, img,
           infer ? "inference" : "train");
    printf("RESULT %s %d %s img/s (%d thread%s): %.3f img/s\n", label, img, what, threads, s,
           batch / best);
    printf("RESULT %s %d %s GFLOP/s (%d thread%s): %.1f GFLOP/s\n", label, img, what, threads, s,
           fb_flops / best / 1e9);
    if (!infer)
        printf("best forward %.1f ms (%.1f GFLOP/s), best backward %.1f ms (%.1f GFLOP/s)\n",
               1e3 * fwd, flops / fwd / 1e9, 1e3 * bwd, (2 * flops - patch_flops) / bwd / 1e9);
    if (do_profile) {
        printf("RESULT sgemm 2048^3 (%d thread%s): %.1f GFLOP/s\n", threads, s, sgemm_rate());
        profile(&ctx, iters, fwd_total, bwd_total, linear, attention, infer);
    }
    free(images), free(d_cls), free(d_patch);
    rd_vit_context_free(&ctx);
    rd_vit_bf16_free(&copies);
    rd_params_free(&set);
    return 0;
}
