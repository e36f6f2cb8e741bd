/* Ranks simulated by threads for tests of the cross-rank hooks: every rank posts its buffer,
 * rank 0 combines them in rank order, everyone copies the result back (an in-process
 * MPI_Allreduce). For tests/train/test_*.c. */
#ifndef RDINO_TEST_SIM_RANKS_H
#define RDINO_TEST_SIM_RANKS_H

#include <stddef.h>

#include "rdino/error.h"
#include "rdino/reduce.h"

enum { SIM_MAX_RANKS = 4 };

typedef struct sim_comm sim_comm; /* the ranks' meeting point, private to sim_ranks.c */

typedef struct sim_rank {
    sim_comm *comm;
    int rank;
} sim_rank;

/* rd_reducer hook (SUM or MAX of doubles over the ranks): ctx is a sim_rank. */
rd_status sim_reduce(void *ctx, rd_reduce_op op, double *buf, size_t n, rd_error *err);
/* Gradient-mean hook (mean of floats over the ranks): ctx is a sim_rank. */
rd_status sim_mean_floats(void *ctx, float *buf, size_t n, rd_error *err);
/* Runs fn(args[r]) on W threads; ranks[r] receives (comm, r) before the threads start. */
void sim_run(int W, sim_rank *ranks, void **args, void *(*fn)(void *));

#endif
