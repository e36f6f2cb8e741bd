/* Spreading probe work units over MPI ranks, and the study driver built on it. Units are
 * dealt round-robin; every unit's randomness is keyed by its own index; results are gathered
 * by copying, never summed, so they are bitwise the same for any number of ranks. */
#include "probe_internal.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rdino/agree.h"
#include "rdino/log.h"

static int units_of_rank(int nunits, int rank, int nranks) {
    return rank < nunits ? (nunits - rank + nranks - 1) / nranks : 0;
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
    rd_status st = RD_OK;
    int failed_unit = 0;
    for (int k = 0; k < mine && !st; k++) {
        failed_unit = rank + k * nranks;
        st = fn(ctx, failed_unit, local + (size_t)k * len, err);
        if (st) break;
        if (progress_label) {
            int64_t done = (int64_t)(k + 1) * nranks;
            rd_progress_update(&progress, done < nunits ? done : nunits, NULL);
        }
    }
    if (progress_label) rd_progress_finish(&progress, NULL);
    if (nranks == 1) return st;

    /* the first failing unit's error, whatever the number of ranks */
    st = rd_agree_first(comm, st, failed_unit, err);
    if (st) {
        free(local);
        return st;
    }
    int *counts = malloc((size_t)nranks * sizeof *counts),
        *displs = malloc((size_t)nranks * sizeof *displs);
    double *all = malloc((size_t)(nunits > 0 ? nunits : 1) * len * sizeof *all);
    if (!counts || !displs || !all)
        st = rd_fail(err, RD_ENOMEM, "probe: no memory to gather %d unit results", nunits);
    /* Every rank knows whether all ranks have the buffers before the collective. */
    st = rd_agree(comm, st, err);
    if (!st) {
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
    }
    free(local);
    free(counts);
    free(displs);
    free(all);
    return st;
}
