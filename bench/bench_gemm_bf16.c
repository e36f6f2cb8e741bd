/* bf16 linear products (src/nn/gemm_bf16.c) against rd_sgemm on the ViT-B/14 linears, at
 * 518 px (rows = 4 x 1370 = 5480) and 224 px (rows = 4 x 257 = 1028), on OMP_NUM_THREADS.
 *   fwd:   out[rows, OC] = inp[rows, C] W^T + bias, the inference product; the bf16 time
 *          includes converting inp (weights are packed once, reported apart).
 *   train: the forward plus dinp += dout W and dW += dout^T inp, and for bf16 the per-step
 *          refresh of both weight copies: 3 x 2 rows OC C FLOPs per step.
 * Each measurement is the best of --iters runs, sgemm and bf16 alternating (the machine is
 * shared). bench_gemm_bf16 [--iters 3] [--img 518|224|all] [--shape qkv|proj|fc1|fc2|all]
 * Prints per shape "RESULT gemm_bf16_<shape><img>_t<threads> fwd GFLOP/s: ...", the same for
 * train, and "... ratio_vs_sgemm: X" (bf16 / sgemm). */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdino/gemm_bf16.h"
#include "rdino/log.h"
#include "rdino/nn.h"
#include "rdino/rng.h"

typedef struct layer {
    const char *name;
    int OC, C;
} layer;

static const layer layers[] = {
    {"qkv", 2304, 768}, {"proj", 768, 768}, {"fc1", 3072, 768}, {"fc2", 768, 3072}};
static const int images[][2] = {{518, 4 * 1370}, {224, 4 * 257}}; /* px, rows = batch 4 x T */

static float *buffer(size_t n, uint64_t index) {
    float *x = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
    if (!x) {
        fprintf(stderr, "bench_gemm_bf16: out of memory (%zu floats)\n", n);
        exit(1);
    }
    rd_rng r;
    rd_rng_init(&r, 9, RD_RNG_TEST, 0, index, 0);
    for (size_t i = 0; i < n; i++) x[i] = (float)(rd_rng_uniform(&r) - 0.5);
    return x;
}

typedef struct buffers {
    int rows, OC, C;
    float *inp, *W, *bias, *out, *dout, *dinp, *dW;
    rd_bf16_weight w;
    void *packed, *scratch;
} buffers;

static void sgemm_fwd(buffers *b) {
    rd_linear_forward(b->out, b->inp, b->W, b->bias, b->rows, b->C, b->OC);
}
static void sgemm_train(buffers *b) {
    sgemm_fwd(b);
    rd_linear_backward(b->dinp, b->dW, NULL, b->dout, b->inp, b->W, b->rows, b->C, b->OC);
}
static void bf16_fwd(buffers *b) {
    rd_bf16_linear_forward(b->out, b->inp, &b->w, b->bias, b->rows, b->scratch);
}
static void bf16_train(buffers *b) {
    rd_bf16_weight_refresh(&b->w);
    bf16_fwd(b);
    rd_bf16_linear_backward(b->dinp, 1, b->dW, NULL, b->dout, b->inp, &b->w, b->rows, b->scratch);
}

typedef void run_fn(buffers *b);
/* Measured in this order, alternating sgemm and bf16. */
static run_fn *const runs[4] = {sgemm_fwd, bf16_fwd, sgemm_train, bf16_train};

int main(int argc, char **argv) {
    int iters = 3;
    const char *only_img = "all", *only_shape = "all";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
        if (!strcmp(a, "--iters"))
            iters = atoi(v), i++;
        else if (!strcmp(a, "--img"))
            only_img = v, i++;
        else if (!strcmp(a, "--shape"))
            only_shape = v, i++;
        else {
            fprintf(stderr, "bench_gemm_bf16: unknown option %s\n", a);
            return 2;
        }
    }
    rd_error err;
    rd_bf16_path path;
    if (rd_bf16_select_path(&path, &err)) {
        fprintf(stderr, "bench_gemm_bf16: %s\n", err.msg);
        return 2;
    }
    int threads = omp_get_max_threads();
    printf("bf16 path: %s; %d thread%s; best of %d\n", rd_bf16_path_name(path), threads,
           threads > 1 ? "s" : "", iters);
    for (size_t im = 0; im < sizeof images / sizeof images[0]; im++) {
        char img[16];
        snprintf(img, sizeof img, "%d", images[im][0]);
        if (strcmp(only_img, "all") && strcmp(only_img, img)) continue;
        for (size_t l = 0; l < sizeof layers / sizeof layers[0]; l++) {
            if (strcmp(only_shape, "all") && strcmp(only_shape, layers[l].name)) continue;
            buffers b = {.rows = images[im][1], .OC = layers[l].OC, .C = layers[l].C};
            size_t nin = (size_t)b.rows * b.C, nout = (size_t)b.rows * b.OC,
                   nw = (size_t)b.OC * b.C;
            b.inp = buffer(nin, 1), b.W = buffer(nw, 2), b.bias = buffer((size_t)b.OC, 3);
            b.out = buffer(nout, 4), b.dout = buffer(nout, 5), b.dinp = buffer(nin, 6);
            b.dW = buffer(nw, 7);
            b.packed = aligned_alloc(64, rd_bf16_weight_bytes(b.OC, b.C, 1) + 64);
            b.scratch = aligned_alloc(64, rd_bf16_scratch_bytes() * (size_t)threads);
            double t0 = rd_now();
            if (rd_bf16_weight_init(&b.w, b.packed, b.W, b.OC, b.C, 1, &err)) {
                fprintf(stderr, "bench_gemm_bf16: %s\n", err.msg);
                return 1;
            }
            double pack_ms = 1e3 * (rd_now() - t0);
            double best[4] = {INFINITY, INFINITY, INFINITY, INFINITY};
            for (int it = 0; it <= iters; it++) /* iteration 0 warms up */
                for (int r = 0; r < 4; r++) {
                    double s = rd_now();
                    runs[r](&b);
                    s = rd_now() - s;
                    if (it > 0 && s < best[r]) best[r] = s;
                }
            double flops = 2.0 * b.rows * b.OC * b.C, rate[4];
            for (int r = 0; r < 4; r++) rate[r] = (r < 2 ? 1 : 3) * flops / best[r] / 1e9;
            printf("%s%s rows %d OC %d C %d: fwd sgemm %.1f bf16 %.1f GFLOP/s (%.2fx); train "
                   "sgemm %.1f bf16 %.1f GFLOP/s (%.2fx); weight init+pack %.1f ms\n",
                   layers[l].name, img, b.rows, b.OC, b.C, rate[0], rate[1], rate[1] / rate[0],
                   rate[2], rate[3], rate[3] / rate[2], pack_ms);
            printf("RESULT gemm_bf16_%s%s_t%d fwd GFLOP/s: %.1f GFLOP/s (sgemm %.1f)\n",
                   layers[l].name, img, threads, rate[1], rate[0]);
            printf("RESULT gemm_bf16_%s%s_t%d ratio_vs_sgemm: %.2f\n", layers[l].name, img, threads,
                   rate[1] / rate[0]);
            printf("RESULT gemm_bf16_%s%s_train_t%d GFLOP/s: %.1f GFLOP/s (sgemm %.1f)\n",
                   layers[l].name, img, threads, rate[3], rate[2]);
            printf("RESULT gemm_bf16_%s%s_train_t%d ratio_vs_sgemm: %.2f\n", layers[l].name, img,
                   threads, rate[3] / rate[2]);
            fflush(stdout);
            free(b.inp), free(b.W), free(b.bias), free(b.out), free(b.dout), free(b.dinp);
            free(b.dW), free(b.packed), free(b.scratch);
        }
    }
    return 0;
}
