/* Agreement on errors between the ranks of a communicator: after a step in which ranks may
 * fail on their own, every rank returns the same error (the first failing rank's code and
 * message), so that every rank stops at the same place and whichever rank reports the error
 * names the real cause, not "failed on another rank".
 *
 *     st = do_my_part(..., err);
 *     st = rd_agree(comm, st, err);   // collective; OK on every rank or the same error on all
 *
 * An agreed error carries err->agreed = 1: the program reports it once and exits cleanly
 * (rd_app_fail), where a one-rank error has to abort the job. */
#ifndef RDINO_AGREE_H
#define RDINO_AGREE_H

#include <mpi.h>
#include <stddef.h>

#include "rdino/error.h"

/* Collective on comm. st and err are this rank's outcome (err is read only when st != RD_OK;
 * order < INT_MAX).
 * Returns RD_OK when every rank succeeded; else every rank's err becomes the error of the
 * failing rank with the smallest order (ties: the lowest rank), with agreed = 1. order lets a
 * caller make the reported error independent of the rank count (e.g. the first failing work
 * unit); rd_agree uses the rank. With comm MPI_COMM_NULL or one rank, st is returned as is
 * (err->agreed = 1 on failure). An MPI failure returns RD_EMPI. */
rd_status rd_agree_first(MPI_Comm comm, rd_status st, int order, rd_error *err);
rd_status rd_agree(MPI_Comm comm, rd_status st, rd_error *err);

/* Collective: x[0, n) of root to every rank, in messages of at most 2^28 floats (MPI counts
 * are ints), for arrays larger than one message: parameter sets, optimiser moments. */
rd_status rd_bcast_floats(float *x, size_t n, int root, MPI_Comm comm, rd_error *err);

#endif
