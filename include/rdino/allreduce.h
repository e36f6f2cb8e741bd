/* Data-parallel collectives of the training step over MPI:
 *   - an rd_reducer for batch-level sums (Sinkhorn masses, centres, loss values): doubles,
 *     MPI_Allreduce in place;
 *   - the gradient mean over ranks, in buckets: the backward pass declares ranges of the flat
 *     gradient final as it goes (heads first, then the backbone from the last block down), a
 *     bucket starts (MPI_Iallreduce, SUM) once enough is final, and rd_grad_allreduce_finish
 *     waits for all of them and divides by the number of ranks. The bucket boundaries follow
 *     from the declared ranges and the bucket size alone, so every step reduces the same
 *     messages with the same algorithm (a fixed reduction order);
 *   - a cheap check that all ranks hold the same bytes (a checksum compared by all-reduce).
 * Time spent inside MPI calls is counted so the training loop can report its communication
 * fraction. Non-blocking collectives progress only inside MPI calls: each declared range also
 * tests the requests in flight. */
#ifndef RDINO_ALLREDUCE_H
#define RDINO_ALLREDUCE_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "rdino/error.h"
#include "rdino/reduce.h"

/* rd_reducer over a communicator (ctx of the reducer). */
typedef struct rd_mpi_reducer {
    MPI_Comm comm;
    double seconds; /* accumulated time inside MPI_Allreduce */
} rd_mpi_reducer;

/* A reducer whose hook all-reduces over r->comm; r must outlive it. */
rd_reducer rd_mpi_reducer_make(rd_mpi_reducer *r, MPI_Comm comm);

typedef struct rd_grad_allreduce {
    MPI_Comm comm;
    int nranks;
    float *grad; /* the flat gradient [n] */
    size_t n;
    size_t bucket;      /* elements a bucket gathers before it starts; 0 = one blocking call */
    size_t ready_lo;    /* [ready_lo, n) declared final in this step */
    size_t launched_lo; /* [launched_lo, n) handed to MPI */
    MPI_Request *requests;
    int nrequests, max_requests;
    int buckets_last_step; /* messages of the last step (reporting) */
    double seconds;        /* accumulated time inside MPI calls */
} rd_grad_allreduce;

/* For grad [n] over comm; bucket_bytes 0 reduces everything in one MPI_Allreduce after the
 * backward pass (no overlap). */
rd_status rd_grad_allreduce_init(rd_grad_allreduce *g, MPI_Comm comm, float *grad, size_t n,
                                 size_t bucket_bytes, rd_error *err);
void rd_grad_allreduce_free(rd_grad_allreduce *g);

/* grad[begin, end) is final for this step. Ranges come in descending, contiguous order
 * (end == the previous begin, the first end == n); anything else is an error. */
rd_status rd_grad_allreduce_ready(rd_grad_allreduce *g, size_t begin, size_t end, rd_error *err);
/* Starts whatever was not declared, waits for every bucket, divides by the rank count, and
 * re-arms for the next step. */
rd_status rd_grad_allreduce_finish(rd_grad_allreduce *g, rd_error *err);

/* Order-sensitive 64-bit checksum of n bytes (wrapping sum of 64-bit words times odd weights). */
uint64_t rd_checksum64(const void *data, size_t bytes);
/* Collective: *same = 1 when every rank passed the same checksum. */
rd_status rd_replicas_agree(MPI_Comm comm, uint64_t checksum, int *same, rd_error *err);

#endif
