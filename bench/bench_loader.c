/* The pretraining data path (include/rdino/loader.h) on one process:
 *   bench_loader make DIR N S             writes N synthetic S x S 8-bit images as shards
 *   bench_loader rate DIR B STEPS         batches/s with prefetch off: read + 2 global (224) and
 *                                         8 local (96) crops per image, masks, drop-path subsets
 *   bench_loader overlap DIR B STEPS SEC  prefetch on, each step followed by SEC seconds of
 *                                         simulated compute (an OpenMP busy loop on every thread,
 *                                         like rd_trainer_step); prints the data-wait fraction
 * rate prints "rate B=<B>: <batches/s> ..." (bench/bench_loader.sh takes medians), overlap a
 * "RESULT loader_wait_fraction_B<B>: ..." line. */
#include <math.h>
#include <mpi.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdino/loader.h"
#include "rdino/log.h"
#include "rdino/shard.h"

/* A chest-X-ray-like texture: smooth shapes plus noise, different per image. */
static rd_status fill_image(void *ctx, const rd_shard_image *img, int64_t index, void *dst,
                            rd_error *err) {
    (void)img, (void)err;
    const int size = *(const int *)ctx;
    rd_rng r;
    rd_rng_init(&r, 1, RD_RNG_TEST, 0, (uint64_t)index, 0);
    uint8_t *px = dst;
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++) {
            double v = 0.5 + 0.3 * sin(6.0 * x / size + (double)index) * cos(4.0 * y / size) +
                       0.05 * (rd_rng_uniform(&r) - 0.5);
            px[(size_t)y * size + x] = (uint8_t)(v < 0 ? 0 : v > 1 ? 255 : v * 255.0);
        }
    return RD_OK;
}

static int make(const char *dir, int64_t n, int size) {
    rd_shard_image *images = calloc((size_t)n, sizeof *images);
    char(*ids)[24] = calloc((size_t)n, sizeof *ids);
    for (int64_t i = 0; i < n; i++) {
        snprintf(ids[i], sizeof ids[i], "%012lld", (long long)i);
        images[i] = (rd_shard_image){ids[i], ids[i], "PA", ids[i], 50.0f, 1, i + 2, NULL};
    }
    rd_shard_params p = {.output_dir = dir,
                         .num_shards = rd_shard_count(n, 0, 128),
                         .size = size,
                         .bit_depth = 8,
                         .batch = 32,
                         .force = 1,
                         .config_yaml = "",
                         .manifest_sha256 = "",
                         .manifest_path = "",
                         .preprocess_yaml = "",
                         .tool_version = "bench_loader"};
    rd_shard_stats stats;
    rd_error err = {0};
    rd_status st =
        rd_shard_write_all(&p, images, n, fill_image, &size, MPI_COMM_WORLD, &stats, &err);
    if (st) fprintf(stderr, "bench_loader: %s\n", err.msg);
    free(images);
    free(ids);
    return st != RD_OK;
}

/* DINOv2's crops and masks (vitl16: 224 / 96, 8 local, patch 16) with drop path 0.3 over 24
 * blocks, grey crops, B images per step on one rank, groups of min(B, 8). */
static rd_status open_loader(const char *dir, int B, int prefetch, rd_loader **l, rd_error *err) {
    rd_config cfg;
    rd_status st = rd_config_init(&cfg, err);
    if (st) return st;
    rd_vit_config vc;
    st = rd_vit_config_from(&cfg, &vc, err);
    rd_loader_params p;
    if (!st) st = rd_loader_params_from_config(&cfg, &vc, 1, B, 1, 0, &p, err);
    rd_config_free(&cfg);
    if (st) return st;
    snprintf(p.shards_dir, sizeof p.shards_dir, "%s", dir);
    p.group_size = B < 8 ? B : 8;
    p.prefetch = prefetch;
    return rd_loader_open(l, &p, err);
}

static int rate(const char *dir, int B, int steps) {
    rd_error err = {0};
    rd_loader *l;
    if (open_loader(dir, B, 0, &l, &err)) {
        fprintf(stderr, "bench_loader: %s\n", err.msg);
        return 1;
    }
    rd_step_batch b;
    rd_status st = rd_loader_next(l, 0, &b, &err); /* warm-up: page faults, shard opens */
    double start = rd_now();
    for (int s = 1; s <= steps && !st; s++) st = rd_loader_next(l, s, &b, &err);
    double secs = rd_now() - start;
    rd_loader_stats stats;
    rd_loader_get_stats(l, &stats);
    rd_loader_close(l);
    if (st) {
        fprintf(stderr, "bench_loader: %s\n", err.msg);
        return 1;
    }
    printf("rate B=%d: %.3f batches/s (%.1f images/s; read %.1f %%, "
           "augment+masks %.1f %% of the time; one thread)\n",
           B, steps / secs, steps * B / secs,
           100 * stats.read_seconds / (stats.read_seconds + stats.augment_seconds),
           100 * stats.augment_seconds / (stats.read_seconds + stats.augment_seconds));
    return 0;
}

/* Busy work on every OpenMP thread for `seconds`. */
static double compute(double seconds) {
    double sink = 0;
    const double until = rd_now() + seconds;
#pragma omp parallel reduction(+ : sink)
    {
        double x = 1.0 + omp_get_thread_num();
        while (rd_now() < until)
            for (int i = 0; i < 100000; i++) x = x * 0.9999999 + 1e-7;
        sink += x;
    }
    return sink;
}

static int overlap(const char *dir, int B, int steps, double seconds) {
    rd_error err = {0};
    rd_loader *l;
    if (open_loader(dir, B, 1, &l, &err)) {
        fprintf(stderr, "bench_loader: %s\n", err.msg);
        return 1;
    }
    rd_step_batch b;
    double wait = 0, total = 0, first = 0, sink = 0;
    rd_status st = RD_OK;
    for (int s = 0; s <= steps && !st; s++) {
        double t0 = rd_now();
        st = rd_loader_next(l, s, &b, &err);
        rd_loader_stats stats;
        rd_loader_get_stats(l, &stats);
        if (s == 0) { /* nothing to overlap with yet */
            first = stats.last_wait_seconds;
        } else {
            wait += stats.last_wait_seconds;
        }
        sink += compute(seconds);
        if (s > 0) total += rd_now() - t0;
    }
    rd_loader_stats stats;
    rd_loader_get_stats(l, &stats);
    rd_loader_close(l);
    if (st) {
        fprintf(stderr, "bench_loader: %s\n", err.msg);
        return 1;
    }
    printf("RESULT loader_wait_fraction_B%d: %.4f (data wait / step time over %d steps after the "
           "first; %.4f s wait per step, %.2f s simulated compute on %d threads; first batch %.2f "
           "s; producer %.2f s per batch; checksum %g)\n",
           B, wait / total, steps, wait / steps, seconds, omp_get_max_threads(), first,
           (stats.read_seconds + stats.augment_seconds) / (steps + 1), sink > 0 ? 1.0 : 0.0);
    return 0;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    rd_log_set_quiet(1);
    int rc = 2;
    if (argc == 5 && strcmp(argv[1], "make") == 0)
        rc = make(argv[2], atoll(argv[3]), atoi(argv[4]));
    else if (argc == 5 && strcmp(argv[1], "rate") == 0)
        rc = rate(argv[2], atoi(argv[3]), atoi(argv[4]));
    else if (argc == 6 && strcmp(argv[1], "overlap") == 0)
        rc = overlap(argv[2], atoi(argv[3]), atoi(argv[4]), atof(argv[5]));
    else
        fprintf(stderr, "usage: %s make DIR N S | rate DIR B STEPS | overlap DIR B STEPS SECONDS\n",
                argv[0]);
    MPI_Finalize();
    return rc;
}
