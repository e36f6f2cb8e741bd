/* Shard write throughput from memory: N synthetic S x S uint8 images through rd_shard_write_all
 * (each rank writing whole shards, per-image CRC32C, no deflate; HDF5's Fletcher32 too when
 * FLETCHER32 is 1), so the time is HDF5 writing and checksumming only (BATCH sizes only the reads
 * that check existing shards, which --force skips).
 *   mpirun -np R build/bench/bench_shard_write DIR [N] [S] [IMAGES_PER_SHARD] [BATCH] [FLETCHER32]
 * Prints "RESULT shard_write_memory_npR: <MB/s> MB/s" and the peak RSS of the largest rank. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdino/log.h"
#include "rdino/shard.h"

typedef struct {
    int size;
} synthetic;

/* Cheap, image-dependent pixels: the loader costs next to nothing. */
static rd_status fill_image(void *ctx, const rd_shard_image *img, int64_t index, void *dst,
                            rd_error *err) {
    (void)img, (void)err;
    const synthetic *s = ctx;
    size_t n = (size_t)s->size * (size_t)s->size;
    memset(dst, (int)(index & 0xff), n);
    ((unsigned char *)dst)[index % (int64_t)n] ^= 0x5a;
    return RD_OK;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, nranks;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    rd_log_set_rank(rank, nranks);
    rd_log_set_quiet(1);
    if (argc < 2) {
        if (rank == 0)
            fprintf(stderr, "usage: %s DIR [N] [S] [IMAGES_PER_SHARD] [BATCH]\n", argv[0]);
        MPI_Finalize();
        return 2;
    }
    int64_t n = argc > 2 ? atoll(argv[2]) : 2000;
    synthetic s = {argc > 3 ? atoi(argv[3]) : 518};
    int64_t per_shard = argc > 4 ? atoll(argv[4]) : 500;
    rd_shard_image *images = calloc((size_t)n, sizeof *images);
    char(*ids)[24] = calloc((size_t)n, sizeof *ids);
    for (int64_t i = 0; i < n; i++) {
        snprintf(ids[i], sizeof ids[i], "%012lld", (long long)i);
        images[i] = (rd_shard_image){ids[i], ids[i], "PA", ids[i], 50.0f, 1, i + 2, NULL};
    }
    rd_shard_params p = {.output_dir = argv[1],
                         .num_shards = rd_shard_count(n, 0, per_shard),
                         .val_fraction = 0.1,
                         .test_fraction = 0.1,
                         .size = s.size,
                         .bit_depth = 8,
                         .batch = argc > 5 ? atoi(argv[5]) : 64,
                         .force = 1,
                         .hdf5_checksum = argc > 6 && atoi(argv[6]) != 0,
                         .config_yaml = "",
                         .manifest_sha256 = "",
                         .manifest_path = "",
                         .preprocess_yaml = "",
                         .tool_version = "bench_shard_write"};
    rd_shard_stats stats;
    rd_error err = {0};
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = rd_now();
    rd_status st = rd_shard_write_all(&p, images, n, fill_image, &s, MPI_COMM_WORLD, &stats, &err);
    double seconds = rd_now() - t0;
    double rss = rd_peak_rss_mib(), max_rss = rss;
    MPI_Reduce(&rss, &max_rss, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
    if (st)
        fprintf(stderr, "bench_shard_write: %s\n", err.msg);
    else if (rank == 0) {
        double mb = stats.bytes_written / 1e6;
        printf("RESULT shard_write_memory_np%d: %.1f MB/s (%lld images %dx%d, %d shards, %.0f MB "
               "in %.2f s)\n",
               nranks, mb / seconds, (long long)n, s.size, s.size, p.num_shards, mb, seconds);
        printf("RESULT shard_write_memory_np%d peak RSS: %.1f MiB (largest rank)\n", nranks,
               max_rss);
    }
    free(ids);
    free(images);
    MPI_Finalize();
    return st ? 1 : 0;
}
