/* Spreading probe work units over MPI ranks, and the study driver built on it. Units are
 * dealt round-robin; every unit's randomness is keyed by its own index; results are gathered
 * by copying, never summed, so they are bitwise the same for any number of ranks. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "probe_internal.h"
#include "rdino/log.h"

static int units_of_rank(int nunits, int rank, int nranks) {
    return rank < nunits ? (nunits - rank + nranks - 1) / nranks : 0;
}

/* After a failure somewhere: every rank returns the error of the lowest failing unit. */
static rd_status agree_on_error(MPI_Comm comm, int nranks, int failed_unit, const rd_error *local,
                                rd_error *err) {
    int first = INT_MAX;
    MPI_Allreduce(&failed_unit, &first, 1, MPI_INT, MPI_MIN, comm);
    if (first == INT_MAX) return RD_OK;
    rd_error shared = {RD_OK, ""};
    if (failed_unit == first) shared = *local;
    int code = (int)shared.code;
    MPI_Bcast(&code, 1, MPI_INT, first % nranks, comm);
    MPI_Bcast(shared.msg, RD_ERROR_MSG_MAX, MPI_CHAR, first % nranks, comm);
    shared.msg[RD_ERROR_MSG_MAX - 1] = '\0';
    return rd_fail(err, (rd_status)code, "%s", shared.msg);
}

rd_status rd_probe_run_units(MPI_Comm comm, int nunits, int len, rd_probe_unit_fn fn, void *ctx,
                             const char *progress_label, double *results, rd_error *err) {
    int rank = 0, nranks = 1;
    if (comm != MPI_COMM_NULL) {
        MPI_Comm_rank(comm, &rank);
        MPI_Comm_size(comm, &nranks);
    }
    if ((int64_t)nunits * len > INT_MAX)
        return rd_fail(err, RD_ERANGE, "probe: %d units of %d results exceed one MPI message",
                       nunits, len);
    int mine = units_of_rank(nunits, rank, nranks);
    double *local =
        nranks == 1 ? results : malloc((size_t)(mine > 0 ? mine : 1) * len * sizeof *local);
    if (!local) return rd_fail(err, RD_ENOMEM, "probe: no memory for %d unit results", mine);
    rd_progress progress;
    if (progress_label) rd_progress_start(&progress, progress_label, nunits, 0);
    rd_error local_err = {RD_OK, ""};
    int failed_unit = INT_MAX;
    for (int k = 0; k < mine; k++) {
        int unit = rank + k * nranks;
        if (fn(ctx, unit, local + (size_t)k * len, &local_err) != RD_OK) {
            failed_unit = unit;
            break;
        }
        if (progress_label) {
            int64_t done = (int64_t)(k + 1) * nranks;
            rd_progress_update(&progress, done < nunits ? done : nunits, NULL);
        }
    }
    if (progress_label) rd_progress_finish(&progress, NULL);
    if (nranks == 1)
        return failed_unit == INT_MAX ? RD_OK : rd_fail(err, local_err.code, "%s", local_err.msg);

    rd_status st = agree_on_error(comm, nranks, failed_unit, &local_err, err);
    int *counts = malloc((size_t)nranks * sizeof *counts),
        *displs = malloc((size_t)nranks * sizeof *displs);
    double *all = malloc((size_t)(nunits > 0 ? nunits : 1) * len * sizeof *all);
    if (st == RD_OK && (!counts || !displs || !all))
        st = rd_fail(err, RD_ENOMEM, "probe: no memory to gather %d unit results", nunits);
    /* Every rank knows whether all ranks have the buffers before the collective. */
    int ok = st == RD_OK, all_ok = 0;
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, comm);
    if (all_ok) {
        for (int r = 0, offset = 0; r < nranks; r++) {
            counts[r] = units_of_rank(nunits, r, nranks) * len;
            displs[r] = offset;
            offset += counts[r];
        }
        MPI_Allgatherv(local, mine * len, MPI_DOUBLE, all, counts, displs, MPI_DOUBLE, comm);
        for (int r = 0; r < nranks; r++)
            for (int k = 0; k < units_of_rank(nunits, r, nranks); k++)
                memcpy(results + (size_t)(r + k * nranks) * len, all + displs[r] + (size_t)k * len,
                       (size_t)len * sizeof *results);
    } else if (st == RD_OK) {
        st = rd_fail(err, RD_ENOMEM, "probe: another rank ran out of memory gathering results");
    }
    free(local);
    free(counts);
    free(displs);
    free(all);
    return st;
}
