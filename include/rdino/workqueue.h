/* Dynamic load balancing of items of very different cost over MPI ranks.
 *
 * Items are indices 0..n-1. Rank 0 owns the counter: it hands out chunks of `chunk`
 * consecutive indices on request, and works on items itself, answering pending requests
 * (MPI_Iprobe) between its own items when the caller calls rd_workqueue_poll. Other ranks
 * send a request carrying how many items they finished since their last request and wait for
 * a chunk or "done". Rank 0 therefore knows the number of finished items over all ranks,
 * up to each worker's current chunk, which is what the progress bar shows.
 *
 * Deadlock freedom: a worker blocks only in its request/reply pair, and rank 0 answers every
 * request, between its own items (poll) and, once its own work is over, in
 * rd_workqueue_finish, which serves requests until every worker has been told "done". Every
 * request gets exactly one reply and workers stop asking after "done", so no message is left
 * pending. With one rank nothing is sent at all.
 *
 * Typical loop, identical on every rank:
 *     rd_workqueue q;
 *     rd_workqueue_init(&q, comm, n, chunk, &err);
 *     int64_t begin, end;
 *     while (rd_workqueue_next(&q, &begin, &end, &err) == 1)
 *         for (int64_t i = begin; i < end; i++) {
 *             work(i);
 *             rd_workqueue_item_done(&q);
 *             rd_workqueue_poll(&q, &err);       // rank 0 serves; no-op elsewhere
 *         }
 *     rd_workqueue_finish(&q, &err);              // collective */
#ifndef RDINO_WORKQUEUE_H
#define RDINO_WORKQUEUE_H

#include <mpi.h>
#include <stdint.h>

#include "rdino/error.h"

typedef struct rd_workqueue {
    MPI_Comm comm;
    int rank, nranks;
    int64_t nitems, chunk;
    int64_t next;        /* rank 0: first index not yet handed out */
    int64_t done_global; /* rank 0: items reported finished over all ranks */
    int workers_done;    /* rank 0: workers that were sent "done" */
    int64_t unreported;  /* items this rank finished since its last request */
    int64_t chunks;      /* chunks this rank received (for tests and statistics) */
} rd_workqueue;

rd_status rd_workqueue_init(rd_workqueue *q, MPI_Comm comm, int64_t nitems, int64_t chunk,
                            rd_error *err);

/* The next chunk [*begin, *end) for this rank: returns 1, or 0 when no work is left, or -1 on
 * an MPI error. Workers send their count of finished items with the request. */
int rd_workqueue_next(rd_workqueue *q, int64_t *begin, int64_t *end, rd_error *err);

/* Counts one finished item of this rank. */
void rd_workqueue_item_done(rd_workqueue *q);

/* Rank 0: answers every request already waiting, without blocking. Other ranks: no-op. */
rd_status rd_workqueue_poll(rd_workqueue *q, rd_error *err);

/* Items finished over all ranks as rank 0 knows them (0 on other ranks). */
int64_t rd_workqueue_done(const rd_workqueue *q);

/* Collective end: rank 0 serves requests until every worker has been told "done", then all
 * ranks synchronise. Call after rd_workqueue_next returned 0. Afterwards rd_workqueue_done is
 * the total on rank 0. */
rd_status rd_workqueue_finish(rd_workqueue *q, rd_error *err);

#endif
