/* What every stage program does first and last: MPI start-up, command line
 * (--config FILE, key.sub=value overrides, program flags, which are overrides by another
 * name), the resolved config printed on rank 0, and a clean exit status that job scripts can
 * act on. A program is start, its stage, finish:
 *
 *     if (rd_app_start(&app, &argc, &argv, "rdino-x", PURPOSE, flags, n, &status))
 *         return rd_app_finish(&app, status);
 *     rd_error err = {0};
 *     rd_status st = rd_x_stage(&app.cfg, MPI_COMM_WORLD, &err);
 *     return rd_app_finish(&app, rd_app_status(&app, st, &err)); */
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

/* A program-specific flag, another name for a configuration override: "--name ARG" means
 * config_key=ARG; a switch "--name" (arg_name NULL) means config_key=switch_value. */
typedef struct rd_app_flag {
    const char *name;
    const char *arg_name; /* NULL for a switch */
    const char *help;
    const char *config_key;
    const char *switch_value;
} rd_app_flag;

typedef struct rd_app {
    const char *name;
    int rank, nranks;
    rd_config cfg;
    double start_time;
    int stop_early; /* --help, --print-config or --print-paths */
} rd_app;

/* Returns 0 to go on. Nonzero means stop now (--help, --print-config, --print-paths, a bad
 * command line or config) and return rd_app_finish(app, *exit_status) from main(). */
int rd_app_start(rd_app *app, int *argc, char ***argv, const char *name, const char *purpose,
                 const rd_app_flag *flags, int nflags, int *exit_status);

/* Reports err and returns RD_EXIT_FAILURE. An agreed error (every rank has it, err->agreed) is
 * printed once, by rank 0. Any other error is printed by this rank and, with several ranks,
 * aborts the job: the others would wait forever in their next collective. */
int rd_app_fail(rd_app *app, const rd_error *err);

/* The exit status of a stage's result: RD_OK -> RD_EXIT_OK, RD_EINTR (stopped by a signal
 * after saving its state) -> RD_EXIT_REQUEUE, anything else -> rd_app_fail. */
int rd_app_status(rd_app *app, rd_status st, const rd_error *err);

/* After a successful run (status OK or REQUEUE) prints the closing summary line (wall time,
 * peak RSS over ranks; collective); finalises MPI. Returns status. */
int rd_app_finish(rd_app *app, int status);

#endif
