/* Data-parallel collectives of the training step: see include/rdino/allreduce.h. */
#include "rdino/allreduce.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "rdino/log.h"
#include "rdino/threads.h"

/* Elements per MPI call: counts are ints. */
#define MAX_MESSAGE ((size_t)1 << 30)

static rd_status mpi_fail(rd_error *err, int code, const char *what) {
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(code, text, &len);
    return rd_fail(err, RD_EMPI, "%s failed: %s", what, text);
}

static rd_status reduce_doubles(void *ctx, rd_reduce_op op, double *buf, size_t n, rd_error *err) {
    rd_mpi_reducer *r = ctx;
    if (n > INT_MAX) return rd_fail(err, RD_ERANGE, "all-reduce of %zu doubles is too large", n);
    double t0 = rd_now();
    int rc = MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_DOUBLE,
                           op == RD_REDUCE_MAX ? MPI_MAX : MPI_SUM, r->comm);
    r->seconds += rd_now() - t0;
    return rc == MPI_SUCCESS ? RD_OK : mpi_fail(err, rc, "MPI_Allreduce of batch sums");
}

rd_reducer rd_mpi_reducer_make(rd_mpi_reducer *r, MPI_Comm comm) {
    r->comm = comm;
    r->seconds = 0.0;
    return (rd_reducer){.reduce = reduce_doubles, .ctx = r};
}

rd_status rd_grad_allreduce_init(rd_grad_allreduce *g, MPI_Comm comm, float *grad, size_t n,
                                 size_t bucket_bytes, rd_error *err) {
    memset(g, 0, sizeof *g);
    g->comm = comm;
    MPI_Comm_size(comm, &g->nranks);
    g->grad = grad;
    g->n = n;
    g->bucket = bucket_bytes / sizeof(float);
    if (bucket_bytes > 0 && g->bucket == 0) g->bucket = 1;
    g->ready_lo = g->launched_lo = n;
    /* at most one launch per full bucket plus the final one, each split into messages */
    size_t launches = g->bucket ? n / g->bucket + 1 : 1;
    g->max_requests = (int)(launches + n / MAX_MESSAGE + 2);
    g->requests = malloc((size_t)g->max_requests * sizeof *g->requests);
    if (!g->requests) return rd_fail(err, RD_ENOMEM, "gradient all-reduce: out of memory");
    return RD_OK;
}

void rd_grad_allreduce_free(rd_grad_allreduce *g) {
    free(g->requests);
    memset(g, 0, sizeof *g);
}

/* Starts the reduction of grad[lo, hi) in messages of at most MAX_MESSAGE elements. */
static rd_status launch(rd_grad_allreduce *g, size_t lo, size_t hi, rd_error *err) {
    for (size_t a = lo; a < hi; a += MAX_MESSAGE) {
        size_t count = hi - a < MAX_MESSAGE ? hi - a : MAX_MESSAGE;
        if (g->nrequests == g->max_requests)
            return rd_fail(err, RD_ERANGE, "gradient all-reduce: more buckets than planned");
        int rc = MPI_Iallreduce(MPI_IN_PLACE, g->grad + a, (int)count, MPI_FLOAT, MPI_SUM, g->comm,
                                &g->requests[g->nrequests++]);
        if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "MPI_Iallreduce of gradients");
    }
    return RD_OK;
}

rd_status rd_grad_allreduce_ready(rd_grad_allreduce *g, size_t begin, size_t end, rd_error *err) {
    if (end != g->ready_lo || begin > end)
        return rd_fail(err, RD_EINVAL,
                       "gradient all-reduce: range [%zu, %zu) declared after [%zu, %zu): ranges "
                       "must be contiguous and descending",
                       begin, end, g->ready_lo, g->n);
    g->ready_lo = begin;
    if (g->nranks == 1 || g->bucket == 0) return RD_OK;
    double t0 = rd_now();
    rd_status st = RD_OK;
    if (g->launched_lo - g->ready_lo >= g->bucket) {
        st = launch(g, g->ready_lo, g->launched_lo, err);
        g->launched_lo = g->ready_lo;
    }
    int done;
    if (!st && g->nrequests > 0) MPI_Testall(g->nrequests, g->requests, &done, MPI_STATUSES_IGNORE);
    g->seconds += rd_now() - t0;
    return st;
}

rd_status rd_grad_allreduce_finish(rd_grad_allreduce *g, rd_error *err) {
    rd_status st = RD_OK;
    if (g->nranks > 1) {
        double t0 = rd_now();
        st = launch(g, 0, g->launched_lo, err);
        g->buckets_last_step = g->nrequests;
        if (!st) {
            int rc = MPI_Waitall(g->nrequests, g->requests, MPI_STATUSES_IGNORE);
            if (rc != MPI_SUCCESS) st = mpi_fail(err, rc, "waiting for the gradient all-reduce");
        }
        g->seconds += rd_now() - t0;
        const float inv = 1.0f / (float)g->nranks;
        float *x = g->grad;
        const long n = (long)g->n;
#pragma omp parallel for schedule(static) if (n > RD_PARALLEL_MIN)
        for (long i = 0; i < n; i++) x[i] *= inv;
    }
    g->nrequests = 0;
    g->ready_lo = g->launched_lo = g->n;
    return st;
}

uint64_t rd_checksum64(const void *data, size_t bytes) {
    const unsigned char *p = data;
    const long words = (long)(bytes / 8);
    uint64_t sum = 0;
#pragma omp parallel for reduction(+ : sum) schedule(static) if (words > RD_PARALLEL_MIN)
    for (long i = 0; i < words; i++) {
        uint64_t w;
        memcpy(&w, p + (size_t)i * 8, 8);
        sum += w * (2 * (uint64_t)i + 1);
    }
    uint64_t tail = 0;
    memcpy(&tail, p + (size_t)words * 8, bytes % 8);
    return sum + tail * (2 * (uint64_t)words + 1);
}

rd_status rd_replicas_agree(MPI_Comm comm, uint64_t checksum, int *same, rd_error *err) {
    uint64_t range[2] = {checksum, ~checksum}; /* max of both = (max, ~min) */
    int rc = MPI_Allreduce(MPI_IN_PLACE, range, 2, MPI_UINT64_T, MPI_MAX, comm);
    if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "MPI_Allreduce of the replica checksum");
    *same = range[0] == ~range[1];
    return RD_OK;
}
