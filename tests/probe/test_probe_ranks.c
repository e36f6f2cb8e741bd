/* The probe study over MPI. Run directly (by tests/run.sh) it checks that one MPI rank gives
 * the serial bits; with "--dump FILE" it runs a small study (2 encoders x 2 targets, with
 * permutations, bootstrap and paired comparisons) on MPI_COMM_WORLD and rank 0 writes every
 * number in hex floats, so test_probe_ranks.sh can compare 1 and 3 ranks byte for byte. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define LSAN_IGNORE(stmt) (__lsan_disable(), (stmt), __lsan_enable())
#else
#define LSAN_IGNORE(stmt) (stmt)
#endif

#include "harness.h"
#include "probe_test_util.h"
#include "rdino/probe.h"

enum { NTASKS = 4 };

typedef struct study {
    synth_study s;
    float *noise; /* a second "encoder": noise features, wider than the training sets */
    int noise_dim;
    rd_probe_task tasks[NTASKS]; /* trained age, trained sex, noise age, noise sex */
    rd_probe_result res[NTASKS];
} study;

static rd_status study_run(study *st, MPI_Comm comm, rd_error *err) {
    memset(st, 0, sizeof *st);
    synth_study_make(&st->s, 50, 8, 1.5, 21);
    st->noise_dim = 200;
    st->noise = malloc(sizeof(float) * st->s.n * st->noise_dim);
    rd_rng r;
    rd_rng_init(&r, 2, RD_RNG_TEST, 0, 0, 0);
    for (int i = 0; i < st->s.n * st->noise_dim; i++) st->noise[i] = (float)rd_rng_normal(&r);
    rd_probe_config cfg;
    rd_probe_config_default(&cfg);
    cfg.seed = 17;
    cfg.nlambda = 5;
    for (int l = 0; l < 5; l++) cfg.lambda[l] = 0.1 * pow(10.0, l);
    cfg.bootstrap = 60;
    cfg.permutations = 7;
    for (int i = 0; i < NTASKS; i++) {
        rd_probe_kind kind = i % 2 ? RD_PROBE_LOGISTIC : RD_PROBE_RIDGE;
        const float *x = i < 2 ? st->s.x : st->noise;
        int d = i < 2 ? st->s.d : st->noise_dim;
        rd_status status =
            rd_probe_task_init(&st->tasks[i], kind, x, st->s.n, d, i % 2 ? st->s.sex : st->s.age,
                               st->s.group, &cfg, err);
        if (status != RD_OK) return status;
    }
    return rd_probe_run(comm, st->tasks, NTASKS, st->res, err);
}

static void study_free(study *st) {
    for (int i = 0; i < NTASKS; i++) {
        rd_probe_result_free(&st->res[i]);
        rd_probe_task_free(&st->tasks[i]);
    }
    free(st->noise);
    synth_study_free(&st->s);
}

static void write_intervals(FILE *f, const rd_probe_interval *iv) {
    for (int m = 0; m < RD_PROBE_NMETRICS; m++)
        fprintf(f, "  %s %a [%a, %a] %d\n", rd_probe_metric_name((rd_probe_metric)m),
                iv[m].estimate, iv[m].lo, iv[m].hi, iv[m].replicates);
}

/* A unit that fails from unit 4 on, each with its own message. */
static rd_status failing_unit(void *ctx, int unit, double *result, rd_error *err) {
    (void)ctx;
    result[0] = unit;
    return unit >= 4 ? rd_fail(err, RD_ERANGE, "unit %d failed", unit) : RD_OK;
}

static int dump_study(const char *path) {
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    study st;
    rd_error err;
    rd_status status = study_run(&st, MPI_COMM_WORLD, &err);
    rd_probe_interval diff[2][RD_PROBE_NMETRICS];
    for (int k = 0; k < 2 && status == RD_OK; k++)
        status = rd_probe_compare(MPI_COMM_WORLD, &st.tasks[k], &st.res[k], &st.tasks[k + 2],
                                  &st.res[k + 2], diff[k], &err);
    if (status != RD_OK) {
        fprintf(stderr, "rank %d: %s\n", rank, err.msg);
        return 1;
    }
    /* Errors: every rank must return the lowest failing unit's message. */
    double unit_out[12];
    rd_error unit_err;
    rd_status unit_status =
        rd_probe_run_units(MPI_COMM_WORLD, 12, 1, failing_unit, NULL, NULL, unit_out, &unit_err);
    int agree = unit_status == RD_ERANGE && strcmp(unit_err.msg, "unit 4 failed") == 0, all = 0;
    MPI_Allreduce(&agree, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (rank == 0) {
        FILE *f = fopen(path, "w");
        if (!f) return 1;
        for (int i = 0; i < NTASKS; i++) {
            const rd_probe_result *r = &st.res[i];
            fprintf(f, "task %d: %d rows, %d patients\n", i, st.tasks[i].nrows,
                    st.tasks[i].npatients);
            for (int o = 0; o < st.tasks[i].cfg.outer_folds; o++)
                fprintf(f, "  lambda %a\n", r->lambda[o]);
            for (int k = 0; k < st.tasks[i].nrows; k++) fprintf(f, "  pred %a\n", r->pred[k]);
            write_intervals(f, r->metric);
            fprintf(f, "  permutation p %a null mean %a\n", r->perm_p, r->perm_null_mean);
        }
        for (int k = 0; k < 2; k++) {
            fprintf(f, "trained - noise, target %d\n", k);
            write_intervals(f, diff[k]);
        }
        fprintf(f, "failing units: every rank agrees: %d\n", all);
        fclose(f);
    }
    study_free(&st);
    return all ? 0 : 1;
}

static void one_rank_matches_serial(rd_test *t) {
    study a, b;
    rd_error err;
    CHECK_OK(study_run(&a, MPI_COMM_NULL, &err), &err);
    CHECK_OK(study_run(&b, MPI_COMM_WORLD, &err), &err);
    for (int i = 0; i < NTASKS && !t->failures; i++) {
        CHECK(memcmp(a.res[i].pred, b.res[i].pred, sizeof(double) * a.tasks[i].nrows) == 0);
        CHECK(memcmp(a.res[i].metric, b.res[i].metric, sizeof a.res[i].metric) == 0);
        CHECK(memcmp(a.res[i].lambda, b.res[i].lambda, sizeof a.res[i].lambda) == 0);
        CHECK(a.res[i].perm_p == b.res[i].perm_p);
        /* The trained encoder finds the signal; the noise one does not. */
        rd_probe_metric m = rd_probe_primary_metric(a.tasks[i].kind);
        double chance = a.tasks[i].kind == RD_PROBE_LOGISTIC ? 0.5 : 0.0;
        if (i < 2)
            CHECK_MSG(a.res[i].metric[m].lo > chance, "task %d: %s interval [%.3f, %.3f]", i,
                      rd_probe_metric_name(m), a.res[i].metric[m].lo, a.res[i].metric[m].hi);
    }
    study_free(&a);
    study_free(&b);
}

static void unit_errors_are_reported(rd_test *t) {
    double out[12];
    rd_error err;
    CHECK(rd_probe_run_units(MPI_COMM_WORLD, 12, 1, failing_unit, NULL, NULL, out, &err) ==
          RD_ERANGE);
    CHECK_MSG(strcmp(err.msg, "unit 4 failed") == 0, "message: %s", err.msg);
    CHECK_OK(rd_probe_run_units(MPI_COMM_WORLD, 4, 1, failing_unit, NULL, NULL, out, &err), &err);
    for (int u = 0; u < 4; u++) CHECK(out[u] == u);
}

static const rd_test_case cases[] = {
    {"one_rank_matches_serial", one_rank_matches_serial},
    {"unit_errors_are_reported", unit_errors_are_reported},
};

int main(int argc, char **argv) {
    /* Open MPI leaks in components it dlopens and unloads before the leak check, where no
     * suppression can name them; our own allocations are still checked. */
    LSAN_IGNORE(MPI_Init(&argc, &argv));
    int status =
        (argc == 3 && strcmp(argv[1], "--dump") == 0)
            ? dump_study(argv[2])
            : rd_test_main(argc, argv, "probe/ranks", cases, (int)(sizeof cases / sizeof cases[0]));
    LSAN_IGNORE(MPI_Finalize());
    return status;
}
