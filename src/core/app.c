#include "rdino/app.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdino/file.h"
#include "rdino/log.h"
#include "rdino/paths.h"
#include "rdino/threads.h"

enum { STOP_AFTER_HELP = 1, STOP_AFTER_PRINT_CONFIG = 2, STOP_AFTER_PRINT_PATHS = 3 };

static void print_usage(const char *name, const char *purpose, const rd_app_flag *flags,
                        int nflags) {
    printf("usage: %s [--config FILE]... [key.sub=value]... [options]\n\n%s\n\noptions:\n", name,
           purpose);
    printf("  --config FILE        YAML configuration (repeatable; later files win)\n");
    printf("  --print-config       print the resolved configuration and exit\n");
    printf("  --print-paths        print the pipeline's folders (name=path lines) and exit\n");
    printf("  --help               this text\n");
    for (int i = 0; i < nflags; i++) {
        char left[64];
        snprintf(left, sizeof left, "--%s%s%s", flags[i].name, flags[i].arg_name ? " " : "",
                 flags[i].arg_name ? flags[i].arg_name : "");
        printf("  %-20s %s\n", left, flags[i].help);
    }
    printf("\nkey.sub=value overrides any configuration key, e.g. optim.base_lr=0.001\n");
}

static const rd_app_flag *find_flag(const char *arg, const rd_app_flag *flags, int nflags) {
    for (int i = 0; i < nflags; i++)
        if (strcmp(arg + 2, flags[i].name) == 0) return &flags[i];
    return NULL;
}

/* Parses the command line into app->cfg and the flags. Every rank parses the same arguments
 * and files, so every rank reaches the same verdict; only rank 0 prints. */
static int parse_command_line(rd_app *app, int argc, char **argv, const char *purpose,
                              const rd_app_flag *flags, int nflags, rd_error *err) {
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            if (app->rank == 0) print_usage(app->name, purpose, flags, nflags);
            app->stop_early = STOP_AFTER_HELP;
            return RD_EXIT_OK;
        } else if (strcmp(arg, "--config") == 0) {
            if (i + 1 >= argc)
                return rd_fail(err, RD_EINVAL, "--config needs a file name"), RD_EXIT_USAGE;
            if (rd_config_load_file(&app->cfg, argv[++i], err)) return RD_EXIT_FAILURE;
        } else if (strcmp(arg, "--print-config") == 0) {
            app->stop_early = STOP_AFTER_PRINT_CONFIG;
        } else if (strcmp(arg, "--print-paths") == 0) {
            app->stop_early = STOP_AFTER_PRINT_PATHS;
        } else if (strncmp(arg, "--", 2) == 0) {
            const rd_app_flag *f = find_flag(arg, flags, nflags);
            if (!f) {
                rd_fail(err, RD_EINVAL, "unknown option '%s' (see %s --help)", arg, app->name);
                return RD_EXIT_USAGE;
            }
            if (f->arg_name && i + 1 >= argc) {
                rd_fail(err, RD_EINVAL, "option '%s' needs %s", arg, f->arg_name);
                return RD_EXIT_USAGE;
            }
            char assignment[RD_PATH_MAX + 128];
            const char *value = f->arg_name ? argv[++i] : f->switch_value;
            if (snprintf(assignment, sizeof assignment, "%s=%s", f->config_key, value) >=
                (int)sizeof assignment) {
                rd_fail(err, RD_EINVAL, "option '%s': value too long", arg);
                return RD_EXIT_USAGE;
            }
            if (rd_config_override(&app->cfg, assignment, err)) {
                rd_wrap(err, "option '%s'", arg);
                return RD_EXIT_FAILURE;
            }
        } else if (strchr(arg, '=')) {
            if (rd_config_override(&app->cfg, arg, err)) return RD_EXIT_FAILURE;
        } else {
            rd_fail(err, RD_EINVAL, "unexpected argument '%s' (overrides look like key.sub=value)",
                    arg);
            return RD_EXIT_USAGE;
        }
    }
    return RD_EXIT_OK;
}

/* A job step of several Slurm tasks in which MPI sees one rank: the program was started
 * without srun or mpirun (or with an MPI that cannot read Slurm's PMI), so every task would do
 * the whole job alone. */
static void warn_lone_rank_in_slurm_job(int nranks) {
    const char *ntasks = getenv("SLURM_NTASKS");
    if (nranks == 1 && ntasks && atoi(ntasks) > 1)
        rd_warn("SLURM_NTASKS=%s but MPI sees 1 rank: start the program with srun or mpirun, "
                "else each of the %s tasks runs the whole job on its own",
                ntasks, ntasks);
}

/* --print-paths: the pipeline layout as name=path lines (for job scripts). */
static rd_status print_paths(const rd_config *cfg, rd_error *err) {
    for (int d = 0; d < RD_DIR_COUNT; d++) {
        char path[RD_PATH_MAX];
        if (rd_pipeline_path(cfg, (rd_pipeline_dir)d, path, err)) return err->code;
        printf("%s=%s\n", rd_pipeline_dir_name((rd_pipeline_dir)d), path);
    }
    return RD_OK;
}

int rd_app_start(rd_app *app, int *argc, char ***argv, const char *name, const char *purpose,
                 const rd_app_flag *flags, int nflags, int *exit_status) {
    int provided;
    /* Whole lines to mpirun or slurmstepd, which merge stdout and stderr into one log: a
     * block-buffered stdout splits a line wherever 4 KiB ends, and an error lands inside it. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    app->name = name;
    app->start_time = rd_now();
    app->stop_early = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &app->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &app->nranks);
    rd_log_set_rank(app->rank, app->nranks);

    rd_error err = {0};
    *exit_status = RD_EXIT_OK;
    if (rd_config_init(&app->cfg, &err))
        *exit_status = RD_EXIT_FAILURE;
    else
        *exit_status = parse_command_line(app, *argc, *argv, purpose, flags, nflags, &err);
    if (*exit_status != RD_EXIT_OK) {
        if (app->rank == 0) rd_error_print("%s: %s", name, err.msg);
        return 1;
    }
    if (app->stop_early == STOP_AFTER_PRINT_PATHS) {
        if (app->rank == 0 && print_paths(&app->cfg, &err)) {
            rd_error_print("%s: %s", name, err.msg);
            *exit_status = RD_EXIT_FAILURE;
        }
        return 1;
    }
    int threads = app->stop_early ? 0 : rd_threads_setup(0, NULL);
    if (app->rank == 0 && app->stop_early != STOP_AFTER_HELP) {
        char *dump = rd_config_dump(&app->cfg);
        if (app->stop_early == STOP_AFTER_PRINT_CONFIG) {
            fputs(dump ? dump : "", stdout);
        } else {
            rd_info("%s: %d rank%s x %d OpenMP thread%s; resolved configuration:", name,
                    app->nranks, app->nranks == 1 ? "" : "s", threads, threads == 1 ? "" : "s");
            rd_info("---\n%s---", dump ? dump : "(out of memory)");
            warn_lone_rank_in_slurm_job(app->nranks);
        }
        free(dump);
    }
    return app->stop_early != 0;
}

int rd_app_fail(rd_app *app, const rd_error *err) {
    if (err->agreed) {
        if (app->rank == 0) rd_error_print("%s: %s", app->name, err->msg);
        return RD_EXIT_FAILURE;
    }
    rd_error_print("%s: %s", app->name, err->msg);
    if (app->nranks > 1) MPI_Abort(MPI_COMM_WORLD, RD_EXIT_FAILURE);
    return RD_EXIT_FAILURE;
}

int rd_app_status(rd_app *app, rd_status st, const rd_error *err) {
    if (st == RD_OK) return RD_EXIT_OK;
    if (st == RD_EINTR) return RD_EXIT_REQUEUE;
    return rd_app_fail(app, err);
}

int rd_app_finish(rd_app *app, int status) {
    double rss = rd_peak_rss_mib(), max_rss = rss, sum_rss = rss;
    if (!app->stop_early && (status == RD_EXIT_OK || status == RD_EXIT_REQUEUE)) {
        MPI_Reduce(&rss, &max_rss, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
        MPI_Reduce(&rss, &sum_rss, 1, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
        rd_info("%s: done in %.1f s; peak RSS %.1f MiB (largest rank of %d), %.1f MiB summed",
                app->name, rd_now() - app->start_time, max_rss, app->nranks, sum_rss);
    }
    rd_config_free(&app->cfg);
    MPI_Finalize();
    return status;
}
