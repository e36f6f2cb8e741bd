/* Shard read throughput through the one reader (rd_shard_set_read_images, one image per call as
 * the pretraining loader reads), with and without the per-image CRC32C verification, alternating
 * runs over the whole set (from the page cache after the first pass):
 *   build/bench/bench_shard_read DIR [ROUNDS]
 * Prints "RESULT shard_read_verify ratio: X" (verified / unverified, best runs; goal >= 0.95). */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

#include "rdino/log.h"
#include "rdino/shard_reader.h"

static double read_all(rd_shard_set *s, void *pixels, rd_error *err) {
    double t0 = rd_now();
    for (int64_t row = 0; row < s->n; row++)
        if (rd_shard_set_read_images(s, row, 1, pixels, err)) return -1;
    return rd_now() - t0;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    rd_log_set_quiet(1);
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR [ROUNDS]\n", argv[0]);
        MPI_Finalize();
        return 2;
    }
    int rounds = argc > 2 ? atoi(argv[2]) : 3;
    rd_shard_set s;
    rd_error err = {0};
    int status = 1;
    if (rd_shard_set_open(&s, argv[1], 64, MPI_COMM_SELF, &err)) {
        fprintf(stderr, "bench_shard_read: %s\n", err.msg);
        MPI_Finalize();
        return 1;
    }
    size_t bytes = (size_t)s.image_size * s.image_size * (s.bit_depth > 8 ? 2 : 1);
    void *pixels = malloc(bytes);
    double best[2] = {1e30, 1e30};
    s.verify = 0;
    if (pixels && read_all(&s, pixels, &err) >= 0) { /* warm the page cache */
        status = 0;
        for (int r = 0; r < rounds && !status; r++)
            for (int v = 0; v < 2 && !status; v++) {
                s.verify = v;
                double t = read_all(&s, pixels, &err);
                if (t < 0) status = 1;
                if (t >= 0 && t < best[v]) best[v] = t;
            }
    }
    if (status) {
        fprintf(stderr, "bench_shard_read: %s\n", err.msg);
    } else {
        double mb = (double)s.n * (double)bytes / 1e6;
        printf("RESULT shard_read_plain: %.1f MB/s (%lld images %dx%d, one per call, best of %d)\n",
               mb / best[0], (long long)s.n, s.image_size, s.image_size, rounds);
        printf("RESULT shard_read_verified: %.1f MB/s (CRC32C of every image checked)\n",
               mb / best[1]);
        printf("RESULT shard_read_verify ratio: %.3f (verified / plain, best runs; goal >= 0.95)\n",
               best[0] / best[1]);
    }
    free(pixels);
    rd_shard_set_close(&s);
    MPI_Finalize();
    return status;
}
