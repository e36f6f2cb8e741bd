/* Benchmark of the probe statistics on a synthetic embedding study (age and sex written
 * into d features, patients with 1-4 images): nested grouped CV (5 outer x 4 inner folds,
 * 17 penalties) for ridge and logistic, 1000 cluster-bootstrap replicates, and one
 * permutation refit. Writes the data and folds to OUTDIR so bench/probe_cv_sklearn.py can
 * run the same nested CV with scikit-learn on the same threads.
 *   build/bench/probe_cv OUTDIR NPATIENTS D */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "rdino/log.h"
#include "rdino/probe.h"
#include "rdino/rng.h"

static int write_file(const char *dir, const char *name, const void *data, size_t bytes) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t wrote = fwrite(data, 1, bytes, f);
    return (fclose(f) == 0 && wrote == bytes) ? 0 : -1;
}

/* Fold of every task row: outer, then inner per outer fold (-1 in the outer test fold). */
static int write_folds(const char *dir, const char *name, const rd_probe_task *t) {
    int nout = t->cfg.outer_folds, m = t->nrows;
    int *folds = malloc(sizeof(int) * (size_t)m * (nout + 2));
    if (!folds) return -1;
    for (int k = 0; k < m; k++) {
        int p = t->patient[k];
        folds[k] = t->row[k];
        folds[m + k] = t->outer_fold[p];
        for (int o = 0; o < nout; o++)
            folds[(size_t)(2 + o) * m + k] = t->inner_fold[o * t->npatients + p];
    }
    int st = write_file(dir, name, folds, sizeof(int) * (size_t)m * (nout + 2));
    free(folds);
    return st;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s OUTDIR NPATIENTS D\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    int npatients = atoi(argv[2]), d = atoi(argv[3]);
    rd_log_set_quiet(1);
    rd_rng r;
    rd_rng_init(&r, 1, RD_RNG_TEST, 0, 0, 0);
    size_t cap = (size_t)npatients * 4;
    float *x = malloc(sizeof(float) * cap * d);
    double *age = malloc(sizeof(double) * cap), *sex = malloc(sizeof(double) * cap);
    double *la = malloc(sizeof(double) * d), *ls = malloc(sizeof(double) * d);
    int *group = malloc(sizeof(int) * cap), n = 0;
    for (int j = 0; j < d; j++) la[j] = rd_rng_normal(&r) * 0.05, ls[j] = rd_rng_normal(&r) * 0.05;
    for (int p = 0; p < npatients; p++) {
        double a = rd_rng_range(&r, 20, 85), s = rd_rng_uniform(&r) < 0.5;
        for (int k = (int)rd_rng_randint(&r, 0, 3); k >= 0; k--, n++) {
            for (int j = 0; j < d; j++)
                x[(size_t)n * d + j] =
                    (float)(la[j] * (a - 50) / 20 + ls[j] * (s - 0.5) + rd_rng_normal(&r));
            age[n] = a, sex[n] = s, group[n] = p;
        }
    }
    if (write_file(dir, "x.f32", x, sizeof(float) * (size_t)n * d) ||
        write_file(dir, "age.f64", age, sizeof(double) * n) ||
        write_file(dir, "sex.f64", sex, sizeof(double) * n) ||
        write_file(dir, "group.i32", group, sizeof(int) * n)) {
        fprintf(stderr, "cannot write to %s\n", dir);
        return 1;
    }
    rd_probe_config cfg;
    rd_probe_config_default(&cfg);
    rd_probe_task task;
    rd_error err;
    double *pred = malloc(sizeof(double) * n), lambda[RD_PROBE_MAX_FOLDS];
    const char *names[2] = {"ridge_age", "logistic_sex"};
    for (int kind = 0; kind < 2; kind++) {
        if (rd_probe_task_init(&task, (rd_probe_kind)kind, x, n, d, kind ? sex : age, group, &cfg,
                               &err) != RD_OK ||
            write_folds(dir, kind ? "folds_sex.i32" : "folds_age.i32", &task)) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        double t0 = rd_now();
        rd_status st = rd_probe_cv(&task, NULL, pred, lambda, &err);
        double t_cv = rd_now() - t0;
        rd_probe_interval iv[RD_PROBE_NMETRICS];
        t0 = rd_now();
        if (st == RD_OK) st = rd_probe_bootstrap_ci(MPI_COMM_NULL, &task, pred, NULL, iv, &err);
        double t_boot = rd_now() - t0, stat = NAN;
        t0 = rd_now();
        if (st == RD_OK) st = rd_probe_permutation_stat(&task, 0, &stat, &err);
        double t_perm = rd_now() - t0;
        if (st != RD_OK) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        rd_probe_metric m = rd_probe_primary_metric(task.kind);
        printf("RESULT probe_nested_cv_%s_%dx%d: %.3f s (%s %.3f [%.3f, %.3f])\n", names[kind], n,
               d, t_cv, rd_probe_metric_name(m), iv[m].estimate, iv[m].lo, iv[m].hi);
        printf("RESULT probe_bootstrap1000_%s_%dx%d: %.3f s\n", names[kind], n, d, t_boot);
        printf("RESULT probe_permutation_refit_%s_%dx%d: %.3f s%s\n", names[kind], n, d, t_perm,
               kind == RD_PROBE_RIDGE ? " (reuses the CV's factorisations)" : "");
        rd_probe_task_free(&task);
    }
    free(x), free(age), free(sex), free(la), free(ls), free(group), free(pred);
    return 0;
}
