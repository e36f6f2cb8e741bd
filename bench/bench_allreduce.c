/* Communication costs for the step-time model of docs/SCALING.md, on however many ranks mpirun
 * gives (at least 2):
 *   - ping-pong between ranks 0 and 1: one-way time t(n) for n = 8 B .. 64 MiB; latency alpha =
 *     t(8 B), inverse bandwidth beta = slope of t(n) over the large messages (least squares);
 *   - MPI_Allreduce (in place, float sum) of n bytes, min over repetitions, against the ring
 *     model 2 (W-1) alpha + 2 (W-1)/W n beta;
 *   - the gradient mean of rdino's trainer: n = gradient bytes (argv[1], e.g. ViT-S/16 with a
 *     K = 65536 head: 176 MB), one blocking all-reduce and 16 MiB buckets (rd_grad_allreduce).
 *   mpirun -np 2 build/bench/bench_allreduce [gradient_bytes]
 * Prints "RESULT" lines. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdino/allreduce.h"
#include "rdino/log.h"

static int rank, size;

/* One-way time of n bytes between ranks 0 and 1 (half the best round trip of reps). */
static double ping_pong(void *buf, size_t n, int reps) {
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        if (rank == 0) {
            MPI_Send(buf, (int)n, MPI_BYTE, 1, 0, MPI_COMM_WORLD);
            MPI_Recv(buf, (int)n, MPI_BYTE, 1, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        } else if (rank == 1) {
            MPI_Recv(buf, (int)n, MPI_BYTE, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            MPI_Send(buf, (int)n, MPI_BYTE, 0, 0, MPI_COMM_WORLD);
        }
        double dt = (MPI_Wtime() - t0) / 2;
        if (dt < best) best = dt;
    }
    MPI_Bcast(&best, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    return best;
}

/* Slowest rank's time of one all-reduce of n floats, min over reps. */
static double allreduce_time(float *buf, size_t n, int reps) {
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        double dt = MPI_Wtime() - t0;
        MPI_Allreduce(MPI_IN_PLACE, &dt, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        if (dt < best) best = dt;
    }
    return best;
}

/* The trainer's path: gradient declared in 16 ranges (as backward would), then finish. */
static double bucketed_time(float *buf, size_t n, size_t bucket_bytes, int reps) {
    rd_grad_allreduce g;
    rd_error err = {0};
    if (rd_grad_allreduce_init(&g, MPI_COMM_WORLD, buf, n, bucket_bytes, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        for (int k = 16; k > 0; k--)
            rd_grad_allreduce_ready(&g, n * (size_t)(k - 1) / 16, n * (size_t)k / 16, &err);
        rd_grad_allreduce_finish(&g, &err);
        double dt = MPI_Wtime() - t0;
        MPI_Allreduce(MPI_IN_PLACE, &dt, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        if (dt < best) best = dt;
    }
    rd_grad_allreduce_free(&g);
    return best;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    rd_log_set_rank(rank, size);
    const size_t grad_bytes = argc > 1 ? (size_t)atoll(argv[1]) : (size_t)176 << 20;
    if (size < 2) {
        if (rank == 0) printf("bench_allreduce: needs at least 2 ranks\n");
        MPI_Finalize();
        return 1;
    }
    const size_t max_bytes = grad_bytes > ((size_t)64 << 20) ? grad_bytes : (size_t)64 << 20;
    void *buf = calloc(max_bytes, 1);

    /* ping-pong: alpha from 8 B, beta from a least-squares line over 1..64 MiB */
    double sx = 0, sy = 0, sxx = 0, sxy = 0, alpha = 0;
    int m = 0;
    if (rank == 0) printf("ping-pong (ranks 0-1), one-way:\n");
    for (size_t n = 8; n <= ((size_t)64 << 20); n *= 8) {
        double t = ping_pong(buf, n, n < (1 << 20) ? 200 : 10);
        if (n == 8) alpha = t;
        if (n >= (1 << 20)) {
            sx += (double)n, sy += t, sxx += (double)n * n, sxy += (double)n * t;
            m++;
        }
        if (rank == 0)
            printf("  %10zu B  %10.2f us  %8.2f GB/s\n", n, t * 1e6, (double)n / t * 1e-9);
    }
    double beta = (m * sxy - sx * sy) / (m * sxx - sx * sx);
    if (rank == 0) {
        printf("RESULT ping-pong latency alpha: %.2f us\n", alpha * 1e6);
        printf("RESULT ping-pong bandwidth 1/beta: %.2f GB/s\n", 1e-9 / beta);
        printf("all-reduce (%d ranks, float sum, in place) vs ring model 2(W-1) alpha + "
               "2(W-1)/W n beta:\n",
               size);
    }
    float *f = buf;
    for (size_t n = 1024; n <= max_bytes; n *= 4) {
        double t = allreduce_time(f, n / sizeof(float), n < (1 << 20) ? 100 : 5);
        double model = 2.0 * (size - 1) * alpha + 2.0 * (size - 1) / size * (double)n * beta;
        if (rank == 0)
            printf("  %10zu B  %10.1f us  model %10.1f us  (%.2f x)\n", n, t * 1e6, model * 1e6,
                   t / model);
    }
    size_t gn = grad_bytes / sizeof(float);
    double whole = allreduce_time(f, gn, 3);
    double buckets = bucketed_time(f, gn, (size_t)16 << 20, 3);
    double model = 2.0 * (size - 1) * alpha + 2.0 * (size - 1) / size * (double)grad_bytes * beta;
    if (rank == 0) {
        printf("RESULT gradient all-reduce %.0f MB on %d ranks, one call: %.3f s (ring model "
               "%.3f s)\n",
               grad_bytes / 1e6, size, whole, model);
        printf("RESULT gradient all-reduce %.0f MB on %d ranks, 16 MiB buckets: %.3f s\n",
               grad_bytes / 1e6, size, buckets);
    }
    free(buf);
    MPI_Finalize();
    return 0;
}
