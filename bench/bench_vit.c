/* ViT backbone throughput: forward + backward images per second of a DINOv2 ViT on random
 * images (the student's work per crop set), a per-layer time profile measured on the model's own
 * shapes, achieved GFLOP/s of the matrix products, and the rate of one large SGEMM in the same
 * run as the machine's reference. Threads: OMP_NUM_THREADS (BLAS runs single-threaded inside).
 *   bench_vit [--arch vit_small] [--patch 16] [--native 224] [--img 224] [--batch 8]
 *             [--iters 3] [--profile] [--label vit-s16]
 * Prints "RESULT <label> <img> fwd+bwd img/s (<t> threads): <x> img/s" and, with --profile,
 * "PROFILE ..." lines. */
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

/* ---- per-layer profile on the model's shapes --------------------------------------------- */

typedef struct layer_shapes {
    int b, T, D, H, hid, rows;
} layer_shapes;

typedef struct bufs {
    float *x, *y, *z, *w, *dw, *big, *big2, *dbig, *att, *scratch, *mean, *rstd, *gamma, *dg;
} bufs;

enum { PROFILE_REPEATS = 3 };

/* Seconds per call of one of the layer kernels (best of PROFILE_REPEATS). */
static double time_kernel(int which, const layer_shapes *s, bufs *B) {
    int rows = s->rows, D = s->D, hid = s->hid;
    double best = INFINITY;
    for (int r = 0; r < PROFILE_REPEATS; r++) {
        double t0 = rd_now();
        switch (which) {
        case 0: /* GEMMs forward: qkv, proj, fc1, fc2 */
            rd_linear_forward(B->big, B->x, B->w, B->gamma, rows, D, 3 * D);
            rd_linear_forward(B->y, B->x, B->w, B->gamma, rows, D, D);
            rd_linear_forward(B->big, B->x, B->w, B->gamma, rows, D, hid);
            rd_linear_forward(B->y, B->big2, B->w, B->gamma, rows, hid, D);
            break;
        case 1: /* GEMMs backward */
            rd_linear_backward(B->z, B->dw, B->dg, B->big, B->x, B->w, rows, D, 3 * D);
            rd_linear_backward(B->z, B->dw, B->dg, B->y, B->x, B->w, rows, D, D);
            rd_linear_backward(B->z, B->dw, B->dg, B->big, B->x, B->w, rows, D, hid);
            rd_linear_backward(B->dbig, B->dw, B->dg, B->y, B->big2, B->w, rows, hid, D);
            break;
        case 2:
            rd_attention_forward(B->y, B->att, B->scratch, B->big, s->b, s->T, D, s->H);
            break;
        case 3:
            rd_attention_backward(B->dbig, B->scratch, B->y, B->big, B->att, s->b, s->T, D, s->H);
            break;
        case 4: /* two LayerNorms per block */
            for (int k = 0; k < 2; k++)
                rd_layernorm_forward(B->y, B->mean, B->rstd, B->x, B->gamma, B->gamma, rows, D);
            break;
        case 5:
            for (int k = 0; k < 2; k++)
                rd_layernorm_backward(B->z, B->dg, B->dg, B->y, B->x, B->mean, B->rstd, B->gamma,
                                      rows, D);
            break;
        case 6:
            rd_gelu_forward(B->big2, B->big, (size_t)rows * hid);
            break;
        case 7:
            rd_gelu_backward(B->dbig, B->big, B->big2, (size_t)rows * hid);
            break;
        case 8: /* two residual adds and two branch-input copies per block */
            for (int k = 0; k < 2; k++) {
                rd_gather_samples(B->z, B->x, NULL, s->b, (size_t)s->T * D);
                rd_residual_forward(B->x, B->y, B->gamma, NULL, s->b, s->T, D, 1.0f);
            }
            break;
        case 9:
            for (int k = 0; k < 2; k++)
                rd_residual_backward(B->z, B->dg, B->x, B->y, B->gamma, NULL, s->b, s->T, D, 1.0f);
            break;
        }
        double t = rd_now() - t0;
        best = t < best ? t : best;
    }
    return best;
}

static void profile(const rd_vit *vit, int b, int n, double fwd, double bwd) {
    const rd_vit_config *c = &vit->cfg;
    layer_shapes s = {b, 1 + c->num_register_tokens + n, c->embed_dim, c->num_heads, vit->hidden,
                      0};
    s.rows = s.b * s.T;
    size_t rD = (size_t)s.rows * s.D, rH = (size_t)s.rows * (s.hid > 3 * s.D ? s.hid : 3 * s.D);
    bufs B;
    B.x = buffer(rD, 1), B.y = buffer(rD, 2), B.z = buffer(rD, 3);
    B.w = buffer((size_t)s.D * (s.hid > 3 * s.D ? s.hid : 3 * s.D), 4);
    B.dw = buffer((size_t)s.D * (s.hid > 3 * s.D ? s.hid : 3 * s.D), 5);
    B.big = buffer(rH, 6), B.big2 = buffer(rH, 7), B.dbig = buffer(rH, 8);
    B.att = buffer((size_t)s.b * s.H * s.T * s.T, 9);
    B.scratch = buffer((size_t)omp_get_max_threads() * rd_attention_scratch_floats(s.T), 10);
    B.mean = buffer((size_t)s.rows, 11), B.rstd = buffer((size_t)s.rows, 12);
    B.gamma = buffer((size_t)(s.hid > 3 * s.D ? s.hid : 3 * s.D), 13);
    B.dg = buffer((size_t)(s.hid > 3 * s.D ? s.hid : 3 * s.D), 14);
    static const char *names[] = {"GEMM (qkv, proj, fc1, fc2)", "attention (QK^T, softmax, PV)",
                                  "layernorm", "GELU", "residual + branch copies"};
    double fwd_parts[5], bwd_parts[5], fsum = 0, bsum = 0;
    for (int k = 0; k < 5; k++) {
        fwd_parts[k] = c->depth * time_kernel(2 * k, &s, &B);
        bwd_parts[k] = c->depth * time_kernel(2 * k + 1, &s, &B);
        fsum += fwd_parts[k];
        bsum += bwd_parts[k];
    }
    printf("PROFILE %-31s %9s %6s %9s %6s\n", "layer (all blocks)", "fwd ms", "fwd %", "bwd ms",
           "bwd %");
    for (int k = 0; k < 5; k++)
        printf("PROFILE %-31s %9.1f %5.1f%% %9.1f %5.1f%%\n", names[k], 1e3 * fwd_parts[k],
               100 * fwd_parts[k] / fwd, 1e3 * bwd_parts[k], 100 * bwd_parts[k] / bwd);
    printf("PROFILE %-31s %9.1f %5.1f%% %9.1f %5.1f%%\n", "rest (embedding, final norm, ...)",
           1e3 * (fwd - fsum), 100 * (fwd - fsum) / fwd, 1e3 * (bwd - bsum),
           100 * (bwd - bsum) / bwd);
    printf("PROFILE %-31s %9.1f %6s %9.1f\n", "measured total", 1e3 * fwd, "", 1e3 * bwd);
    float *all[] = {B.x,    B.y,   B.z,       B.w,    B.dw,   B.big,   B.big2,
                    B.dbig, B.att, B.scratch, B.mean, B.rstd, B.gamma, B.dg};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) free(all[k]);
}

/* Multiply-add FLOPs (x2) of the matrix products of one forward; backward does twice as many
 * (input and weight gradients), except the patch embedding (weight gradient only). */
static double forward_flops(const rd_vit *vit, int b, int n, double *patch_flops) {
    const rd_vit_config *c = &vit->cfg;
    double T = 1 + c->num_register_tokens + n, D = c->embed_dim, rows = b * T;
    double F = vit->cfg.ffn == RD_VIT_FFN_SWIGLU ? 2.0 * vit->hidden : vit->hidden;
    double block = 2 * rows * D * 3 * D + 2 * rows * D * D + 2 * rows * D * F +
                   2 * rows * vit->hidden * D + 2 * 2 * b * T * T * D;
    *patch_flops = 2.0 * b * n * c->in_chans * c->patch_size * c->patch_size * D;
    return c->depth * block + *patch_flops;
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
    const char *arch = "vit_small", *label = "vit-s16";
    int patch = 16, native = 224, img = 224, batch = 8, iters = 3, do_profile = 0;
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
        else {
            fprintf(stderr, "bench_vit: unknown option %s\n", a);
            return 2;
        }
    }
    rd_error err;
    rd_vit_config cfg;
    rd_vit vit;
    rd_param_set set;
    rd_vit_context ctx;
    rd_params_init(&set);
    if (rd_vit_config_default(&cfg, arch, patch, native, &err) ||
        rd_vit_declare(&vit, &cfg, &set, &err) || rd_params_alloc(&set, 1, &err) ||
        rd_vit_context_init(&ctx, &vit, batch, img, img, RD_VIT_TRAIN, &err)) {
        fprintf(stderr, "bench_vit: %s\n", err.msg);
        return 1;
    }
    rd_vit_init_params(&vit, &set, 1);
    int n = (img / patch) * (img / patch), D = cfg.embed_dim, threads = omp_get_max_threads();
    float *images = buffer((size_t)batch * 3 * img * img, 30);
    float *d_cls = buffer((size_t)batch * D, 31), *d_patch = buffer((size_t)batch * n * D, 32);
    double fwd = INFINITY, bwd = INFINITY, best = INFINITY;
    for (int it = 0; it <= iters; it++) { /* iteration 0 warms up */
        rd_vit_output out;
        memset(set.grad, 0, set.numel * sizeof(float));
        double t0 = rd_now();
        if (rd_vit_forward(&ctx, &set, images, batch, 3, img, img, NULL, NULL, &out, &err)) break;
        double t1 = rd_now();
        if (rd_vit_backward(&ctx, &set, d_cls, d_patch, &err)) break;
        double t2 = rd_now();
        if (it == 0) continue;
        fwd = t1 - t0 < fwd ? t1 - t0 : fwd;
        bwd = t2 - t1 < bwd ? t2 - t1 : bwd;
        best = t2 - t0 < best ? t2 - t0 : best;
    }
    if (err.code) {
        fprintf(stderr, "bench_vit: %s\n", err.msg);
        return 1;
    }
    double per_iter = best, patch_flops; /* best iteration: the machine is shared */
    double flops = forward_flops(&vit, batch, n, &patch_flops);
    double fb_flops = 3 * flops - patch_flops;
    printf("context: %.1f MiB of activations for %d x %dx%d (train)\n",
           (double)rd_vit_context_bytes(&vit, batch, img, img, RD_VIT_TRAIN) / 1048576.0, batch,
           img, img);
    printf("RESULT %s %d fwd+bwd img/s (%d thread%s): %.3f img/s\n", label, img, threads,
           threads > 1 ? "s" : "", batch / per_iter);
    printf("RESULT %s %d fwd+bwd GFLOP/s (%d thread%s): %.1f GFLOP/s\n", label, img, threads,
           threads > 1 ? "s" : "", fb_flops / per_iter / 1e9);
    printf("best forward %.1f ms (%.1f GFLOP/s), best backward %.1f ms (%.1f GFLOP/s)\n", 1e3 * fwd,
           flops / fwd / 1e9, 1e3 * bwd, (2 * flops - patch_flops) / bwd / 1e9);
    if (do_profile) {
        printf("RESULT sgemm 2048^3 (%d thread%s): %.1f GFLOP/s\n", threads, threads > 1 ? "s" : "",
               sgemm_rate());
        profile(&vit, batch, n, fwd, bwd);
    }
    free(images), free(d_cls), free(d_patch);
    rd_vit_context_free(&ctx);
    rd_params_free(&set);
    return 0;
}
