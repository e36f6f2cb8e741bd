/* Work queue over MPI: rank 0 hands out chunks of item indices; see workqueue.h. */
#include "rdino/workqueue.h"

#include <string.h>

enum { TAG_REQUEST = 1, TAG_REPLY = 2 };

static rd_status mpi_fail(rd_error *err, int rc, const char *what) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return rd_fail(err, RD_EMPI, "work queue: %s failed: %s", what, msg);
}

rd_status rd_workqueue_init(rd_workqueue *q, MPI_Comm comm, int64_t nitems, int64_t chunk,
                            rd_error *err) {
    memset(q, 0, sizeof *q);
    if (nitems < 0 || chunk < 1)
        return rd_fail(err, RD_EINVAL, "work queue: %lld items in chunks of %lld",
                       (long long)nitems, (long long)chunk);
    /* A private communicator: our tags cannot meet anybody else's messages. */
    int rc = MPI_Comm_dup(comm, &q->comm);
    if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "MPI_Comm_dup");
    MPI_Comm_rank(q->comm, &q->rank);
    MPI_Comm_size(q->comm, &q->nranks);
    q->nitems = nitems;
    q->chunk = chunk;
    return RD_OK;
}

/* Rank 0: the next chunk, or an empty one at the end. */
static void take_chunk(rd_workqueue *q, int64_t range[2]) {
    range[0] = q->next;
    range[1] = q->next + q->chunk < q->nitems ? q->next + q->chunk : q->nitems;
    if (range[1] < range[0]) range[1] = range[0];
    q->next = range[1];
}

/* Rank 0: receives the request waiting from source and answers it. */
static rd_status serve(rd_workqueue *q, int source, rd_error *err) {
    int64_t finished = 0, range[2];
    int rc = MPI_Recv(&finished, 1, MPI_INT64_T, source, TAG_REQUEST, q->comm, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "MPI_Recv of a request");
    q->done_global += finished;
    take_chunk(q, range);
    if (range[0] == range[1]) q->workers_done++;
    rc = MPI_Send(range, 2, MPI_INT64_T, source, TAG_REPLY, q->comm);
    if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "MPI_Send of a chunk");
    return RD_OK;
}

rd_status rd_workqueue_poll(rd_workqueue *q, rd_error *err) {
    if (q->rank != 0) return RD_OK;
    for (;;) {
        int waiting = 0;
        MPI_Status st;
        int rc = MPI_Iprobe(MPI_ANY_SOURCE, TAG_REQUEST, q->comm, &waiting, &st);
        if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "MPI_Iprobe");
        if (!waiting) return RD_OK;
        if (serve(q, st.MPI_SOURCE, err)) return err->code;
    }
}

int rd_workqueue_next(rd_workqueue *q, int64_t *begin, int64_t *end, rd_error *err) {
    int64_t range[2];
    if (q->rank == 0) {
        if (rd_workqueue_poll(q, err)) return -1;
        take_chunk(q, range);
    } else if (q->unreported < 0) { /* already told "done" */
        range[0] = range[1] = q->nitems;
    } else {
        int rc = MPI_Send(&q->unreported, 1, MPI_INT64_T, 0, TAG_REQUEST, q->comm);
        if (rc == MPI_SUCCESS)
            rc = MPI_Recv(range, 2, MPI_INT64_T, 0, TAG_REPLY, q->comm, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "request for work"), -1;
        q->unreported = range[0] == range[1] ? -1 : 0;
    }
    *begin = range[0];
    *end = range[1];
    if (range[0] == range[1]) return 0;
    q->chunks++;
    return 1;
}

void rd_workqueue_item_done(rd_workqueue *q) {
    if (q->rank == 0)
        q->done_global++;
    else if (q->unreported >= 0)
        q->unreported++;
}

int64_t rd_workqueue_done(const rd_workqueue *q) {
    return q->rank == 0 ? q->done_global : 0;
}

rd_status rd_workqueue_finish(rd_workqueue *q, rd_error *err) {
    rd_status status = RD_OK;
    if (q->rank == 0) {
        q->next = q->nitems; /* whatever is left now, nobody gets it: every answer is "done" */
        while (!status && q->workers_done < q->nranks - 1) {
            MPI_Status st;
            int rc = MPI_Probe(MPI_ANY_SOURCE, TAG_REQUEST, q->comm, &st);
            status =
                rc != MPI_SUCCESS ? mpi_fail(err, rc, "MPI_Probe") : serve(q, st.MPI_SOURCE, err);
        }
    }
    int rc = MPI_Barrier(q->comm);
    if (!status && rc != MPI_SUCCESS) status = mpi_fail(err, rc, "MPI_Barrier");
    MPI_Comm_free(&q->comm);
    return status;
}
