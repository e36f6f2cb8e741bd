/* Agreement on errors between ranks; see agree.h. */
#include "rdino/agree.h"

#include <limits.h>

rd_status rd_agree_first(MPI_Comm comm, rd_status st, int order, rd_error *err) {
    int rank = 0, nranks = 1;
    if (comm != MPI_COMM_NULL) {
        MPI_Comm_rank(comm, &rank);
        MPI_Comm_size(comm, &nranks);
    }
    if (nranks == 1) {
        if (st && err) err->agreed = 1;
        return st;
    }
    /* the smallest (order, rank) among the failing ranks: MINLOC on order, rank as location;
     * INT_MAX marks success, so a failing rank's order is kept below it */
    struct {
        int order, rank;
    } mine = {st ? (order < INT_MAX ? order : INT_MAX - 1) : INT_MAX, rank}, first;
    if (MPI_Allreduce(&mine, &first, 1, MPI_2INT, MPI_MINLOC, comm) != MPI_SUCCESS)
        return rd_fail(err, RD_EMPI, "MPI_Allreduce failed while agreeing on errors");
    if (first.order == INT_MAX) return RD_OK;
    rd_error shared = {0};
    if (st && err) shared = *err;
    shared.code = st;
    if (MPI_Bcast(&shared, (int)sizeof shared, MPI_BYTE, first.rank, comm) != MPI_SUCCESS)
        return rd_fail(err, RD_EMPI, "MPI_Bcast failed while agreeing on errors");
    shared.agreed = 1;
    if (err) *err = shared;
    return shared.code;
}

rd_status rd_agree(MPI_Comm comm, rd_status st, rd_error *err) {
    int rank = 0;
    if (comm != MPI_COMM_NULL) MPI_Comm_rank(comm, &rank);
    return rd_agree_first(comm, st, rank, err);
}

rd_status rd_bcast_floats(float *x, size_t n, int root, MPI_Comm comm, rd_error *err) {
    const size_t chunk = (size_t)1 << 28;
    for (size_t i = 0; i < n; i += chunk)
        if (MPI_Bcast(x + i, (int)(n - i < chunk ? n - i : chunk), MPI_FLOAT, root, comm) !=
            MPI_SUCCESS)
            return rd_fail(err, RD_EMPI, "MPI_Bcast of %zu floats failed", n);
    return RD_OK;
}
