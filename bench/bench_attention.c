/* Attention core speed: rd_attention_forward / _backward (tiled, online softmax, nothing of size
 * [T, T] kept) against the materialised form it replaced (whole [T, T] probabilities per head,
 * kept for backward: two GEMMs and a softmax forward, four GEMMs backward), on the same inputs,
 * in alternating rounds, best round of each (the machine is shared). Threads: OMP_NUM_THREADS.
 *   bench_attention [--T 1370] [--b 4] [--D 768] [--H 12] [--rounds 5]
 * Prints "RESULT attention T=<T> b=<b> D=<D> H=<H> <tiled|materialised> <fwd|fwd+bwd> (<t>
 * threads): <ms> ms" and the largest relative difference between the two. */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdino/log.h"
#include "rdino/nn.h"
#include "rdino/rng.h"
#include "../src/nn/vecmath.h" /* the same vectorised exp as the library */

/* ---- the materialised baseline ----------------------------------------------------------- */

/* src/nn/attention.c before the tiled version (commit ecf3e80), loop for loop. */
static void softmax_rows(float *s, int T) {
    for (int r = 0; r < T; r++) {
        float *row = s + (size_t)r * T, mx = row[0], sum = 0.0f;
#pragma omp simd reduction(max : mx)
        for (int c = 1; c < T; c++) mx = row[c] > mx ? row[c] : mx;
#pragma omp simd reduction(+ : sum)
        for (int c = 0; c < T; c++) {
            row[c] = rd_vexpf(row[c] - mx);
            sum += row[c];
        }
        float inv = 1.0f / sum;
#pragma omp simd
        for (int c = 0; c < T; c++) row[c] *= inv;
    }
}

/* att [b, H, T, T] = softmax(q k^T / sqrt(hd)); out [b, T, D] = att v */
static void materialised_forward(float *out, float *att, const float *qkv, int b, int T, int D,
                                 int H) {
    int hd = D / H, ld = 3 * D;
    float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel for collapse(2) schedule(dynamic) if ((long)b * H * T * T > RD_PARALLEL_MIN)
    for (int i = 0; i < b; i++)
        for (int h = 0; h < H; h++) {
            const float *q = qkv + (size_t)i * T * ld + (size_t)h * hd, *k = q + D, *v = q + 2 * D;
            float *p = att + ((size_t)i * H + h) * T * T;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, scale, q, ld, k, ld,
                        0.0f, p, T);
            softmax_rows(p, T);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, 1.0f, p, T, v, ld,
                        0.0f, out + (size_t)i * T * D + (size_t)h * hd, D);
        }
}

/* dqkv += gradient from dout; ds: [T, T] per thread */
static void materialised_backward(float *dqkv, float *ds_all, const float *dout, const float *qkv,
                                  const float *att, int b, int T, int D, int H) {
    int hd = D / H, ld = 3 * D;
    float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel for collapse(2) schedule(dynamic) if ((long)b * H * T * T > RD_PARALLEL_MIN)
    for (int i = 0; i < b; i++)
        for (int h = 0; h < H; h++) {
            size_t head = (size_t)i * T * ld + (size_t)h * hd;
            const float *q = qkv + head, *k = q + D, *v = q + 2 * D;
            float *dq = dqkv + head, *dk = dq + D, *dv = dq + 2 * D;
            const float *p = att + ((size_t)i * H + h) * T * T;
            const float *dO = dout + (size_t)i * T * D + (size_t)h * hd;
            float *ds = ds_all + (size_t)omp_get_thread_num() * T * T;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, 1.0f, dO, D, v, ld, 0.0f,
                        ds, T);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hd, T, 1.0f, p, T, dO, D, 1.0f,
                        dv, ld);
            for (int r = 0; r < T; r++) {
                float *d = ds + (size_t)r * T, dot = 0.0f;
                const float *pr = p + (size_t)r * T;
#pragma omp simd reduction(+ : dot)
                for (int c = 0; c < T; c++) dot += d[c] * pr[c];
#pragma omp simd
                for (int c = 0; c < T; c++) d[c] = pr[c] * (d[c] - dot);
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, scale, ds, T, k, ld,
                        1.0f, dq, ld);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hd, T, scale, ds, T, q, ld,
                        1.0f, dk, ld);
        }
}

/* ---- measurement ------------------------------------------------------------------------- */

static float *buffer(size_t n, uint64_t index, float scale) {
    float *x = malloc(n * sizeof(float));
    if (!x) {
        fprintf(stderr, "bench_attention: out of memory (%zu floats)\n", n);
        exit(1);
    }
    rd_rng r;
    rd_rng_init(&r, 5, RD_RNG_TEST, 0, index, 0);
    for (size_t i = 0; i < n; i++) x[i] = scale * (float)rd_rng_normal(&r);
    return x;
}

static double max_rel_diff(const float *a, const float *b, size_t n) {
    double worst = 0, big = 0;
    for (size_t i = 0; i < n; i++) big = fmax(big, fabs(b[i]));
    for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs(a[i] - b[i]));
    return worst / big;
}

int main(int argc, char **argv) {
    int T = 1370, b = 4, D = 768, H = 12, rounds = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
        int v = atoi(argv[i + 1]);
        if (!strcmp(argv[i], "--T"))
            T = v;
        else if (!strcmp(argv[i], "--b"))
            b = v;
        else if (!strcmp(argv[i], "--D"))
            D = v;
        else if (!strcmp(argv[i], "--H"))
            H = v;
        else if (!strcmp(argv[i], "--rounds"))
            rounds = v;
        else {
            fprintf(stderr, "bench_attention: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    int threads = omp_get_max_threads();
    size_t nqkv = (size_t)b * T * 3 * D, nout = (size_t)b * T * D;
    /* q and k of standard deviation 1: scores of standard deviation 1, like a trained ViT's */
    float *qkv = buffer(nqkv, 1, 1.0f), *dout = buffer(nout, 2, 1.0f);
    float *out = buffer(nout, 3, 0), *ref = buffer(nout, 4, 0);
    float *dqkv = buffer(nqkv, 5, 0), *dref = buffer(nqkv, 6, 0);
    float *lse = buffer((size_t)b * H * 2 * T, 7, 0);
    float *scratch = buffer((size_t)threads * rd_attention_scratch_floats(T, D / H), 8, 0);
    float *att = buffer((size_t)b * H * T * T, 9, 0), *ds = buffer((size_t)threads * T * T, 10, 0);
    rd_blas_one_thread();
    double best[2][2] = {{INFINITY, INFINITY}, {INFINITY, INFINITY}}; /* [tiled?][fwd, fwd+bwd] */
    for (int round = 0; round <= rounds; round++)                     /* round 0 warms up */
        for (int tiled = 1; tiled >= 0; tiled--) {
            memset(tiled ? dqkv : dref, 0, nqkv * sizeof(float));
            double t0 = rd_now();
            if (tiled)
                rd_attention_forward(out, lse, scratch, qkv, b, T, D, H);
            else
                materialised_forward(ref, att, qkv, b, T, D, H);
            double t1 = rd_now();
            if (tiled)
                rd_attention_backward(dqkv, scratch, dout, out, qkv, lse, b, T, D, H);
            else
                materialised_backward(dref, ds, dout, qkv, att, b, T, D, H);
            double t2 = rd_now();
            if (round == 0) continue;
            best[tiled][0] = fmin(best[tiled][0], t1 - t0);
            best[tiled][1] = fmin(best[tiled][1], t2 - t0);
        }
    const char *s = threads > 1 ? "s" : "";
    for (int tiled = 1; tiled >= 0; tiled--)
        for (int pass = 0; pass < 2; pass++)
            printf("RESULT attention T=%d b=%d D=%d H=%d %s %s (%d thread%s): %.2f ms\n", T, b, D,
                   H, tiled ? "tiled" : "materialised", pass ? "fwd+bwd" : "fwd", threads, s,
                   1e3 * best[tiled][pass]);
    printf("max |tiled - materialised| / max |materialised|: out %.2g, dqkv %.2g\n",
           max_rel_diff(out, ref, nout), max_rel_diff(dqkv, dref, nqkv));
    printf("memory kept for backward: tiled %.1f MiB (lse), materialised %.1f MiB (att)\n",
           (double)b * H * 2 * T * 4 / 1048576.0, (double)b * H * T * T * 4 / 1048576.0);
    free(qkv), free(dout), free(out), free(ref), free(dqkv), free(dref), free(lse), free(scratch);
    free(att), free(ds);
    return 0;
}
