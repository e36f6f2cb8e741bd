/* rdino-pretrain's training loop: synchronous data-parallel DINOv2 over MPI (docs/PRETRAIN.md).
 *
 * Every rank holds the whole student, teacher and optimiser state; a step is
 *   loader (this rank's share of global batch `it`, prefetched) -> rd_trainer_step with the MPI
 *   hooks (batch sums all-reduced as doubles, gradient mean in buckets overlapped with the
 *   backward pass) -> metrics -> checkpoint when due.
 * Batch-level randomness is keyed by global positions and groups (loader.h), batch-level sums
 * are global, so the same seed and global batch give the same model on any number of ranks
 * (up to fp32 reduction order). Checkpoints (checkpoint.h) hold the whole state; the random
 * state is the iteration number, so a resumed run continues bit for bit.
 *
 * Stopping: when *stop becomes nonzero on any rank (a signal handler sets it), the ranks agree
 * at the end of the current step, write a checkpoint and return RD_EINTR. A non-finite loss or
 * gradient returns RD_ENUMERIC before the parameters change, without writing a checkpoint.
 *
 * Test hooks (environment, read at start): RDINO_TEST_NAN_STEP=n poisons a student weight on
 * rank 0 before step n; RDINO_TEST_KILL_STEP=n makes every rank SIGKILL itself after step n
 * (after its checkpoint, if one is due): a deterministic kill -9; RDINO_TEST_STEP_DELAY_MS=m
 * sleeps m ms per step (so a test can signal a run in progress). */
#ifndef RDINO_PRETRAIN_H
#define RDINO_PRETRAIN_H

#include <mpi.h>
#include <signal.h>
#include <stdint.h>

#include "rdino/config.h"
#include "rdino/error.h"

typedef struct rd_pretrain_options {
    int resume;                  /* 1: continue from the newest readable checkpoint */
    volatile sig_atomic_t *stop; /* nonzero: checkpoint at the end of this step and stop */
} rd_pretrain_options;

typedef struct rd_pretrain_result {
    int64_t start_step;      /* first iteration of this run (0, or the resumed checkpoint's) */
    int64_t steps_completed; /* iterations done at exit */
    int64_t total_steps;     /* iterations the run is configured for */
    double seconds;          /* wall time of the loop */
    double images_per_second;
} rd_pretrain_result;

/* Runs (or resumes) the training the configuration describes. Collective on comm.
 * Returns RD_OK when the configured steps are done, RD_EINTR when stopped by *stop (state
 * saved), another status on failure (err names the step, the file or the term; err->agreed
 * when every rank returns it). */
rd_status rd_pretrain_run(const rd_config *cfg, MPI_Comm comm, const rd_pretrain_options *opt,
                          rd_pretrain_result *result, rd_error *err);

/* The stage rdino-pretrain runs: rd_pretrain_run with pretrain.resume, stopped cleanly by
 * SIGUSR1 or SIGTERM (the handlers are installed for the duration of the call): the current
 * step finishes, a checkpoint is written, RD_EINTR is returned (exit status 3: requeue). */
rd_status rd_pretrain_stage(const rd_config *cfg, MPI_Comm comm, rd_error *err);

#endif
