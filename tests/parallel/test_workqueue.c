/* The work queue on however many ranks this runs on (tests/parallel/test_workqueue.sh runs it on
 * 1, 2 and 3 ranks): every item processed exactly once, progress counts add up, no message
 * left pending, for uneven item costs, any chunk size, and fewer items than ranks. */
#include <mpi.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "rdino/workqueue.h"

/* Runs the queue over n items; item cost varies (0..0.6 ms) so the chunks spread unevenly.
 * Every rank returns the same verdict. */
static void run_queue(rd_test *t, int64_t n, int64_t chunk, int slow_rank0) {
    int rank, nranks;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    int *seen = calloc((size_t)n + 1, sizeof *seen);
    rd_workqueue q;
    rd_error err = {0};
    CHECK_OK(rd_workqueue_init(&q, MPI_COMM_WORLD, n, chunk, &err), &err);
    int64_t begin, end, mine = 0, last_progress = 0;
    int got, monotonic = 1;
    while ((got = rd_workqueue_next(&q, &begin, &end, &err)) == 1) {
        CHECK(begin >= 0 && end <= n && end - begin <= chunk && begin < end);
        for (int64_t i = begin; i < end; i++) {
            seen[i]++;
            mine++;
            usleep((useconds_t)((i * 7919) % 7) * 100 + (slow_rank0 && rank == 0 ? 2000 : 0));
            rd_workqueue_item_done(&q);
            CHECK_OK(rd_workqueue_poll(&q, &err), &err);
            if (rd_workqueue_done(&q) < last_progress) monotonic = 0;
            last_progress = rd_workqueue_done(&q);
        }
    }
    CHECK(got == 0);
    CHECK(rd_workqueue_next(&q, &begin, &end, &err) == 0); /* stays done */
    CHECK_OK(rd_workqueue_finish(&q, &err), &err);
    CHECK(monotonic);

    int *total = calloc((size_t)n + 1, sizeof *total);
    MPI_Allreduce(seen, total, (int)n + 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    int64_t wrong = 0;
    for (int64_t i = 0; i < n; i++) wrong += total[i] != 1;
    CHECK_MSG(wrong == 0, "%lld of %lld items not processed exactly once", (long long)wrong,
              (long long)n);
    int64_t sum = 0;
    MPI_Allreduce(&mine, &sum, 1, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
    CHECK(sum == n);
    if (rank == 0)
        CHECK_MSG(rd_workqueue_done(&q) == n, "rank 0 counted %lld of %lld",
                  (long long)rd_workqueue_done(&q), (long long)n);

    /* Nothing pending on the world communicator either (the queue used its own). */
    MPI_Barrier(MPI_COMM_WORLD);
    int pending = 0;
    MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &pending, MPI_STATUS_IGNORE);
    CHECK(!pending);
    free(seen);
    free(total);
}

static void every_item_once_chunk_1(rd_test *t) {
    run_queue(t, 97, 1, 0);
}
static void every_item_once_chunk_4(rd_test *t) {
    run_queue(t, 200, 4, 0);
}
static void chunk_larger_than_the_work(rd_test *t) {
    run_queue(t, 5, 1000, 0);
}
static void no_items(rd_test *t) {
    run_queue(t, 0, 3, 0);
}
static void fewer_items_than_ranks(rd_test *t) {
    run_queue(t, 1, 1, 0);
}
/* Rank 0 is slow: workers must still be served between its items and take most chunks. */
static void slow_rank0_still_serves(rd_test *t) {
    run_queue(t, 60, 2, 1);
}

static void bad_arguments_are_refused(rd_test *t) {
    rd_workqueue q;
    rd_error err = {0};
    CHECK(rd_workqueue_init(&q, MPI_COMM_WORLD, 10, 0, &err) == RD_EINVAL);
    CHECK(rd_workqueue_init(&q, MPI_COMM_WORLD, -1, 1, &err) == RD_EINVAL);
}

static const rd_test_case cases[] = {
    {"every_item_once_chunk_1", every_item_once_chunk_1},
    {"every_item_once_chunk_4", every_item_once_chunk_4},
    {"chunk_larger_than_the_work", chunk_larger_than_the_work},
    {"no_items", no_items},
    {"fewer_items_than_ranks", fewer_items_than_ranks},
    {"slow_rank0_still_serves", slow_rank0_still_serves},
    {"bad_arguments_are_refused", bad_arguments_are_refused},
};

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int status = rd_test_main(argc, argv, "parallel/workqueue", cases,
                              (int)(sizeof cases / sizeof cases[0]));
    MPI_Finalize();
    return status;
}
