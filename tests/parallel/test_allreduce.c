/* The data-parallel collectives on however many ranks mpirun gives (tests/pretrain/
 * test_allreduce.sh runs 1, 2 and 3): batch-sum reducer, bucketed gradient mean with ranges
 * declared during "backward", the blocking variant, order checks, replica checksums. Values are
 * small integers so sums are exact and the checks are equalities. */
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "mpi_once.h"
#include "rdino/allreduce.h"
#include "rdino/log.h"

enum { N = 1000 };

static int rank_, size_;

static void start(void) {
    rd_test_need_mpi();
    rd_log_set_quiet(1);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
}

static void test_reducer(rd_test *t) {
    start();
    rd_mpi_reducer m;
    rd_reducer red = rd_mpi_reducer_make(&m, MPI_COMM_WORLD);
    rd_error err = {0};
    double v[3] = {1.0, (double)rank_, -(double)rank_};
    CHECK_OK(rd_reduce(&red, RD_REDUCE_SUM, v, 3, &err), &err);
    CHECK(v[0] == size_ && v[1] == size_ * (size_ - 1) / 2.0);
    double w[2] = {(double)rank_, -(double)rank_};
    CHECK_OK(rd_reduce(&red, RD_REDUCE_MAX, w, 2, &err), &err);
    CHECK(w[0] == size_ - 1 && w[1] == 0.0);
}

static void fill(float *g) {
    for (int i = 0; i < N; i++) g[i] = (float)(rank_ + i % 7);
}

/* The mean over ranks of fill(): (size - 1) / 2 + i % 7, exact in float for small sizes. */
static int is_mean(const float *g) {
    for (int i = 0; i < N; i++)
        if (g[i] != (float)((size_ - 1) / 2.0 + i % 7)) return 0;
    return 1;
}

static void test_buckets(rd_test *t) {
    start();
    float *g = malloc(N * sizeof *g);
    rd_grad_allreduce ga;
    rd_error err = {0};
    CHECK_OK(rd_grad_allreduce_init(&ga, MPI_COMM_WORLD, g, N, 128 * sizeof(float), &err), &err);
    for (int step = 0; step < 2; step++) { /* re-armed after finish */
        fill(g);
        const size_t cuts[] = {N, 990, 700, 650, 100, 0};
        for (int k = 0; k + 1 < 6; k++)
            CHECK_OK(rd_grad_allreduce_ready(&ga, cuts[k + 1], cuts[k], &err), &err);
        CHECK_OK(rd_grad_allreduce_finish(&ga, &err), &err);
        CHECK(is_mean(g));
        /* [990, 1000) waits (10 < 128 floats) and leaves with [700, 990); [650, 700) with
         * [100, 650); [0, 100) at finish */
        if (size_ > 1) CHECK_MSG(ga.buckets_last_step == 3, "%d buckets", ga.buckets_last_step);
    }
    rd_grad_allreduce_free(&ga);
    free(g);
}

static void test_blocking(rd_test *t) {
    start();
    float *g = malloc(N * sizeof *g);
    rd_grad_allreduce ga;
    rd_error err = {0};
    CHECK_OK(rd_grad_allreduce_init(&ga, MPI_COMM_WORLD, g, N, 0, &err), &err);
    fill(g);
    /* nothing declared: finish reduces everything in one message */
    CHECK_OK(rd_grad_allreduce_finish(&ga, &err), &err);
    CHECK(is_mean(g));
    if (size_ > 1) CHECK(ga.buckets_last_step == 1);
    rd_grad_allreduce_free(&ga);
    free(g);
}

static void test_order(rd_test *t) {
    start();
    float g[16] = {0};
    rd_grad_allreduce ga;
    rd_error err = {0};
    CHECK_OK(rd_grad_allreduce_init(&ga, MPI_COMM_WORLD, g, 16, 1024, &err), &err);
    CHECK(rd_grad_allreduce_ready(&ga, 0, 8, &err) == RD_EINVAL); /* must start at the top */
    CHECK(strstr(err.msg, "descending") != NULL);
    CHECK_OK(rd_grad_allreduce_ready(&ga, 8, 16, &err), &err);
    CHECK(rd_grad_allreduce_ready(&ga, 2, 4, &err) == RD_EINVAL); /* a gap */
    CHECK_OK(rd_grad_allreduce_finish(&ga, &err), &err);
    rd_grad_allreduce_free(&ga);
}

static void test_replicas(rd_test *t) {
    start();
    rd_error err = {0};
    float x[33];
    for (int i = 0; i < 33; i++) x[i] = (float)i * 0.25f;
    int same = 0;
    CHECK_OK(rd_replicas_agree(MPI_COMM_WORLD, rd_checksum64(x, sizeof x), &same, &err), &err);
    CHECK(same == 1);
    if (rank_ == size_ - 1) x[32] = 1e-30f; /* one rank differs in one value */
    CHECK_OK(rd_replicas_agree(MPI_COMM_WORLD, rd_checksum64(x, sizeof x), &same, &err), &err);
    CHECK(same == (size_ == 1));
    /* swapping two words changes the checksum (weights depend on the position) */
    uint64_t w[2] = {1, 2}, v[2] = {2, 1};
    CHECK(rd_checksum64(w, sizeof w) != rd_checksum64(v, sizeof v));
}

static const rd_test_case cases[] = {{"reducer", test_reducer},
                                     {"buckets", test_buckets},
                                     {"blocking", test_blocking},
                                     {"order", test_order},
                                     {"replicas", test_replicas}};
RD_TEST_MAIN("parallel/allreduce", cases)
