/* Cross-rank reductions as a hook, so training code that needs a batch-level sum (Sinkhorn
 * masses, centres, loss values) is written once and works on one process (no hook: identity)
 * or under MPI (the training program plugs in MPI_Allreduce). Partial sums are doubles so the
 * result does not depend on how the rows were split over ranks beyond double rounding. */
#ifndef RDINO_REDUCE_H
#define RDINO_REDUCE_H

#include <stddef.h>

#include "rdino/error.h"

typedef enum { RD_REDUCE_SUM, RD_REDUCE_MAX } rd_reduce_op;

typedef struct rd_reducer {
    /* In place over all ranks: buf[i] = op over ranks of buf[i], for i < n. Must be
     * deterministic (same result on every rank). */
    rd_status (*reduce)(void *ctx, rd_reduce_op op, double *buf, size_t n, rd_error *err);
    void *ctx;
} rd_reducer;

/* Applies the hook; a NULL reducer (or NULL hook) is one process: nothing to do. */
static inline rd_status rd_reduce(const rd_reducer *r, rd_reduce_op op, double *buf, size_t n,
                                  rd_error *err) {
    if (!r || !r->reduce || n == 0) return RD_OK;
    return r->reduce(r->ctx, op, buf, n, err);
}

#endif
