/* What every stage program does first and last: MPI start-up, command line
 * (--config FILE, key.sub=value overrides, program flags), the resolved config printed on
 * rank 0, and a clean exit status that job scripts can act on. */
#ifndef RDINO_APP_H
#define RDINO_APP_H

#include <mpi.h>

#include "rdino/config.h"
#include "rdino/error.h"

/* Exit statuses shared by all stages and their job scripts. */
enum {
    RD_EXIT_OK = 0,
    RD_EXIT_FAILURE = 1,
    RD_EXIT_USAGE = 2,
    RD_EXIT_REQUEUE = 3 /* stopped by a signal after saving its state: resubmit to continue */
};

/* A program-specific flag: "--name" (switch, value becomes "1") or "--name ARG". */
typedef struct rd_app_flag {
    const char *name;
    const char *arg_name; /* NULL for a switch */
    const char *help;
    const char **value; /* where the value goes; keep the default there before parsing */
} rd_app_flag;

typedef struct rd_app {
    const char *name;
    int rank, nranks;
    rd_config cfg;
    double start_time;
    int stop_early; /* --help or --print-config */
} rd_app;

/* Returns 0 to go on. Nonzero means stop now (--help, --print-config, a bad command line or
 * config) and return rd_app_finish(app, *exit_status) from main(). */
int rd_app_start(rd_app *app, int *argc, char ***argv, const char *name, const char *purpose,
                 const rd_app_flag *flags, int nflags, int *exit_status);

/* Prints err on this rank. With several ranks, an error on one rank would leave the others
 * waiting in a collective, so it aborts the job; returns RD_EXIT_FAILURE otherwise. */
int rd_app_fail(rd_app *app, const rd_error *err);

/* After a successful run (status OK or REQUEUE) prints the closing summary line (wall time,
 * peak RSS over ranks; collective); finalises MPI. Returns status. */
int rd_app_finish(rd_app *app, int status);

#endif
