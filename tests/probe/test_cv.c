/* Grouped nested cross-validation: folds keep patients together and balance images, unknown
 * targets are left out, no patient leaks across a split, the nested penalty choice equals a
 * by-hand refit with the public solvers, and the patient-level resamplings are what they
 * claim to be. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "probe_test_util.h"
#include "rdino/probe.h"

static rd_probe_config small_config(uint64_t seed) {
    rd_probe_config cfg;
    rd_probe_config_default(&cfg);
    cfg.seed = seed;
    cfg.nlambda = 5;
    for (int l = 0; l < 5; l++) cfg.lambda[l] = pow(10.0, -1.0 + l);
    return cfg;
}

static void folds_keep_patients_together_and_balance(rd_test *t) {
    synth_study s;
    synth_study_make(&s, 97, 4, 1.0, 1);
    rd_probe_config cfg = small_config(11);
    rd_probe_task a, b;
    rd_error err;
    CHECK_OK(rd_probe_task_init(&a, RD_PROBE_RIDGE, s.x, s.n, s.d, s.age, s.group, &cfg, &err),
             &err);
    int np = a.npatients, nout = cfg.outer_folds, nin = cfg.inner_folds;
    /* Rows of one patient (one group id) share the patient and hence the fold. */
    for (int k = 0; k < a.nrows; k++)
        for (int k2 = k + 1; k2 < a.nrows && k2 < k + 8; k2++)
            CHECK((s.group[a.row[k]] == s.group[a.row[k2]]) == (a.patient[k] == a.patient[k2]));
    int load[64] = {0}, max_count = 0;
    for (int p = 0; p < np; p++) {
        int count = a.pat_start[p + 1] - a.pat_start[p];
        CHECK(a.outer_fold[p] >= 0 && a.outer_fold[p] < nout);
        if (a.outer_fold[p] >= 0 && a.outer_fold[p] < nout) load[a.outer_fold[p]] += count;
        if (count > max_count) max_count = count;
        for (int o = 0; o < nout; o++) {
            int in = a.inner_fold[o * np + p];
            CHECK(a.outer_fold[p] == o ? in == -1 : (in >= 0 && in < nin));
        }
    }
    int lo = a.nrows, hi = 0;
    for (int o = 0; o < nout; o++)
        lo = load[o] < lo ? load[o] : lo, hi = load[o] > hi ? load[o] : hi;
    CHECK_MSG(hi - lo <= max_count, "outer folds hold %d to %d images", lo, hi);
    /* Same seed, same folds; another seed, other folds. */
    CHECK_OK(rd_probe_task_init(&b, RD_PROBE_RIDGE, s.x, s.n, s.d, s.age, s.group, &cfg, &err),
             &err);
    CHECK(memcmp(a.outer_fold, b.outer_fold, sizeof(int) * np) == 0);
    CHECK(memcmp(a.inner_fold, b.inner_fold, sizeof(int) * np * nout) == 0);
    rd_probe_task_free(&b);
    cfg.seed = 12;
    CHECK_OK(rd_probe_task_init(&b, RD_PROBE_RIDGE, s.x, s.n, s.d, s.age, s.group, &cfg, &err),
             &err);
    CHECK(memcmp(a.outer_fold, b.outer_fold, sizeof(int) * np) != 0);
    rd_probe_task_free(&a);
    rd_probe_task_free(&b);
    synth_study_free(&s);
}

static void unknown_targets_are_left_out(rd_test *t) {
    synth_study s;
    synth_study_make(&s, 60, 3, 1.0, 2);
    s.sex[0] = s.sex[1] = s.sex[2] = s.sex[3] = NAN; /* patient 0 may vanish entirely */
    rd_probe_config cfg = small_config(1);
    rd_probe_task task;
    rd_error err;
    CHECK_OK(
        rd_probe_task_init(&task, RD_PROBE_LOGISTIC, s.x, s.n, s.d, s.sex, s.group, &cfg, &err),
        &err);
    int known = 0, patients_known = 0;
    for (int i = 0; i < s.n; i++) {
        known += !isnan(s.sex[i]);
        int first_known = !isnan(s.sex[i]);
        for (int k = 0; k < i && first_known; k++)
            if (s.group[k] == s.group[i] && !isnan(s.sex[k])) first_known = 0;
        patients_known += first_known;
    }
    CHECK(task.nrows == known);
    CHECK(task.npatients == patients_known);
    for (int k = 0; k < task.nrows; k++)
        CHECK(!isnan(s.sex[task.row[k]]) && task.y[k] == s.sex[task.row[k]]);
    rd_probe_task_free(&task);
    /* Bad inputs are refused with a reason. */
    s.sex[10] = 2;
    CHECK(rd_probe_task_init(&task, RD_PROBE_LOGISTIC, s.x, s.n, s.d, s.sex, s.group, &cfg, &err) ==
          RD_EINVAL);
    s.x[5 * s.d + 1] = NAN;
    CHECK(rd_probe_task_init(&task, RD_PROBE_RIDGE, s.x, s.n, s.d, s.age, s.group, &cfg, &err) ==
          RD_ENUMERIC);
    CHECK_MSG(strstr(err.msg, "row 5") != NULL, "message: %s", err.msg);
    s.x[5 * s.d + 1] = 0;
    cfg.outer_folds = 100;
    CHECK(rd_probe_task_init(&task, RD_PROBE_RIDGE, s.x, s.n, s.d, s.age, s.group, &cfg, &err) ==
          RD_EINVAL);
    synth_study_free(&s);
}

/* Features are a one-hot patient code and the target a per-patient random number: a model
 * that saw a patient in training can recall its target, one that did not can only predict
 * the training mean. Out-of-fold R2 near or below 0 shows no patient crossed a split. */
static void no_patient_crosses_a_split(rd_test *t) {
    enum { NP = 40 };
    int group[4 * NP], n = 0;
    double y[4 * NP];
    float *x = calloc((size_t)4 * NP * NP, sizeof *x);
    rd_rng r;
    rd_rng_init(&r, 8, RD_RNG_TEST, 0, 0, 0);
    for (int p = 0; p < NP; p++) {
        double target = rd_rng_normal(&r);
        for (int k = 0; k < 1 + p % 4; k++, n++) {
            group[n] = p;
            y[n] = target;
            x[(size_t)n * NP + p] = 1.0f;
        }
    }
    rd_probe_config cfg = small_config(3);
    cfg.nlambda = 2;
    cfg.lambda[0] = 1e-3, cfg.lambda[1] = 1e-2; /* nearly unpenalised: would memorise */
    rd_probe_task task;
    rd_error err;
    double pred[4 * NP], lambda[RD_PROBE_MAX_FOLDS], m[RD_PROBE_NMETRICS];
    CHECK_OK(rd_probe_task_init(&task, RD_PROBE_RIDGE, x, n, NP, y, group, &cfg, &err), &err);
    CHECK_OK(rd_probe_cv(&task, NULL, pred, lambda, &err), &err);
    rd_probe_metrics(RD_PROBE_RIDGE, task.y, pred, NULL, NULL, task.nrows, m);
    CHECK_MSG(m[RD_PROBE_R2] < 0.05, "out-of-fold R2 %.3f: a patient's target leaked",
              m[RD_PROBE_R2]);
    /* Sanity: if every row were its own patient, the same model would recall the targets. */
    int own[4 * NP];
    for (int i = 0; i < n; i++) own[i] = i;
    rd_probe_task leaky;
    CHECK_OK(rd_probe_task_init(&leaky, RD_PROBE_RIDGE, x, n, NP, y, own, &cfg, &err), &err);
    CHECK_OK(rd_probe_cv(&leaky, NULL, pred, lambda, &err), &err);
    rd_probe_metrics(RD_PROBE_RIDGE, leaky.y, pred, NULL, NULL, leaky.nrows, m);
    CHECK_MSG(m[RD_PROBE_R2] > 0.5, "row-level split R2 %.3f: the leak detector is blind",
              m[RD_PROBE_R2]);
    rd_probe_task_free(&task);
    rd_probe_task_free(&leaky);
    free(x);
}

/* Rows of task t on one side of a split, as x rows and labels. */
static int pick(const rd_probe_task *t, int outer, int inner, int train, int *xrow, double *y) {
    int m = 0;
    for (int k = 0; k < t->nrows; k++) {
        int p = t->patient[k], side;
        if (inner < 0) {
            side = t->outer_fold[p] != outer;
        } else {
            if (t->outer_fold[p] == outer) continue;
            side = t->inner_fold[outer * t->npatients + p] != inner;
        }
        if (side != train) continue;
        xrow[m] = t->row[k];
        y[m++] = t->y[k];
    }
    return m;
}

/* Standardises on the training side and predicts the validation side with the public
 * solvers at every penalty: out [nlambda, nval]. */
static void refit_by_hand(rd_test *t, const rd_probe_task *task, int outer, int inner,
                          const double *lambda, int nl, double *out, double *yval, int *nval) {
    int d = task->d, *xt = malloc(sizeof(int) * task->nrows),
        *xv = malloc(sizeof(int) * task->nrows);
    double *yt = malloc(sizeof(double) * task->nrows);
    int nt = pick(task, outer, inner, 1, xt, yt);
    *nval = pick(task, outer, inner, 0, xv, yval);
    double *mean = malloc(sizeof(double) * d), *inv = malloc(sizeof(double) * d);
    double *zt = malloc(sizeof(double) * nt * d), *zv = malloc(sizeof(double) * *nval * d);
    double *w = malloc(sizeof(double) * nl * d), *b = malloc(sizeof(double) * nl);
    rd_probe_standardize_fit(task->x, d, xt, nt, mean, inv);
    rd_probe_standardize_apply(task->x, d, xt, nt, mean, inv, zt);
    rd_probe_standardize_apply(task->x, d, xv, *nval, mean, inv, zv);
    rd_error err;
    if (task->kind == RD_PROBE_RIDGE)
        CHECK_OK(rd_probe_ridge_fit(zt, yt, nt, d, lambda, nl, w, b, &err), &err);
    else
        for (int l = 0; l < nl; l++)
            CHECK_OK(
                rd_probe_logistic_fit(zt, yt, nt, d, lambda[l], 0, w + l * d, &b[l], NULL, &err),
                &err);
    for (int l = 0; l < nl; l++)
        for (int v = 0; v < *nval; v++) {
            double acc = b[l];
            for (int j = 0; j < d; j++) acc += zv[v * d + j] * w[l * d + j];
            out[l * *nval + v] = acc;
        }
    free(xt), free(xv), free(yt), free(mean), free(inv), free(zt), free(zv), free(w), free(b);
}

static void nested_choice_matches_refit_by_hand(rd_test *t) {
    synth_study s;
    /* 5 features (Gram route) and 60 features (kernel route: inner training sets < 60 rows). */
    const int dims[2] = {5, 60};
    for (int di = 0; di < 2; di++)
        for (int kind = 0; kind < 2; kind++) {
            synth_study_make(&s, 30, dims[di], 0.4, 3 + di);
            rd_probe_config cfg = small_config(5);
            rd_probe_task task;
            rd_error err;
            const double *y = kind == RD_PROBE_RIDGE ? s.age : s.sex;
            CHECK_OK(rd_probe_task_init(&task, (rd_probe_kind)kind, s.x, s.n, s.d, y, s.group, &cfg,
                                        &err),
                     &err);
            int m = task.nrows, nl = cfg.nlambda, nval, best = 0;
            double *out = malloc(sizeof(double) * nl * m), *yv = malloc(sizeof(double) * m);
            double *pred = malloc(sizeof(double) * m), score[RD_PROBE_MAX_LAMBDAS] = {0},
                   lambda_got;
            const int outer = 2;
            for (int i = 0; i < cfg.inner_folds; i++) {
                refit_by_hand(t, &task, outer, i, task.cfg.lambda, nl, out, yv, &nval);
                for (int l = 0; l < nl; l++)
                    for (int v = 0; v < nval; v++) {
                        double p = out[l * nval + v];
                        score[l] += kind == RD_PROBE_RIDGE
                                        ? (p - yv[v]) * (p - yv[v])
                                        : log1p(exp(-fabs(p))) + fmax(p, 0) - yv[v] * p;
                    }
            }
            for (int l = 1; l < nl; l++)
                if (score[l] < score[best]) best = l;
            refit_by_hand(t, &task, outer, -1, &task.cfg.lambda[best], 1, out, yv, &nval);
            CHECK_OK(rd_probe_cv_fold(&task, outer, NULL, pred, &lambda_got, &err), &err);
            CHECK_MSG(lambda_got == task.cfg.lambda[best], "d %d kind %d: lambda %g, by hand %g",
                      s.d, kind, lambda_got, task.cfg.lambda[best]);
            for (int k = 0, v = 0; k < m; k++) {
                if (task.outer_fold[task.patient[k]] != outer) continue;
                CHECK_MSG(fabs(pred[k] - out[v]) <= 1e-8 * (1 + fabs(out[v])),
                          "d %d kind %d row %d: %.12g, by hand %.12g", s.d, kind, k, pred[k],
                          out[v]);
                v++;
            }
            free(out), free(yv), free(pred);
            rd_probe_task_free(&task);
            synth_study_free(&s);
        }
}

/* Nested CV of one target of s: the study's metrics, and the AUROC pooled over folds. */
static void cv_metrics(rd_test *t, const synth_study *s, rd_probe_kind kind,
                       const rd_probe_config *cfg, double m[RD_PROBE_NMETRICS], double *pooled) {
    rd_probe_task task;
    rd_error err;
    const double *y = kind == RD_PROBE_RIDGE ? s->age : s->sex;
    CHECK_OK(rd_probe_task_init(&task, kind, s->x, s->n, s->d, y, s->group, cfg, &err), &err);
    double *pred = malloc(sizeof(double) * task.nrows), lambda[RD_PROBE_MAX_FOLDS];
    CHECK_OK(rd_probe_cv(&task, NULL, pred, lambda, &err), &err);
    CHECK_OK(rd_probe_oof_metrics(&task, NULL, pred, NULL, m, &err), &err);
    *pooled = rd_probe_auroc(pred, task.y, NULL, task.nrows);
    free(pred);
    rd_probe_task_free(&task);
}

static void cv_recovers_signal(rd_test *t) {
    synth_study s;
    synth_study_make(&s, 150, 20, 1.0, 7);
    rd_probe_config cfg = small_config(2);
    double m[RD_PROBE_NMETRICS], pooled;
    cv_metrics(t, &s, RD_PROBE_RIDGE, &cfg, m, &pooled);
    CHECK_MSG(m[RD_PROBE_R2] > 0.6 && m[RD_PROBE_PEARSON] > 0.8, "R2 %.3f r %.3f", m[RD_PROBE_R2],
              m[RD_PROBE_PEARSON]);
    cv_metrics(t, &s, RD_PROBE_LOGISTIC, &cfg, m, &pooled);
    CHECK_MSG(m[RD_PROBE_AUROC] > 0.9, "AUROC %.3f", m[RD_PROBE_AUROC]);
    synth_study_free(&s);
}

/* Features independent of the target must score at chance. Fold models that learn nothing
 * predict their training prior, which is anti-correlated with the held-out fold's labels:
 * AUROC pooled over folds is biased below 0.5, per-fold AUROC is not. */
static void noise_features_score_chance_per_fold(rd_test *t) {
    enum { SIMS_NOISE = 30 };
    double per_fold = 0, per_fold_sq = 0, pooled = 0;
    for (int sim = 0; sim < SIMS_NOISE; sim++) {
        synth_study s;
        synth_study_make(&s, 60, 40, 0.0, 300 + sim);
        rd_probe_config cfg = small_config((uint64_t)sim);
        double m[RD_PROBE_NMETRICS], pooled_one;
        cv_metrics(t, &s, RD_PROBE_LOGISTIC, &cfg, m, &pooled_one);
        per_fold += m[RD_PROBE_AUROC] / SIMS_NOISE;
        per_fold_sq += m[RD_PROBE_AUROC] * m[RD_PROBE_AUROC] / SIMS_NOISE;
        pooled += pooled_one / SIMS_NOISE;
        synth_study_free(&s);
    }
    double sd_mean = sqrt((per_fold_sq - per_fold * per_fold) / (SIMS_NOISE - 1));
    CHECK_MSG(fabs(per_fold - 0.5) < 4 * sd_mean,
              "noise features: mean per-fold AUROC %.3f +- %.3f", per_fold, sd_mean);
    CHECK_MSG(pooled < per_fold, "pooled %.3f vs per-fold %.3f", pooled, per_fold);
    fprintf(stderr, "noise features: mean AUROC per fold %.3f +- %.3f, pooled %.3f\n", per_fold,
            sd_mean, pooled);
}

static void permutations_swap_whole_patients_within_strata(rd_test *t) {
    synth_study s;
    synth_study_make(&s, 80, 2, 0.0, 9);
    rd_probe_config cfg = small_config(4);
    rd_probe_task task;
    rd_error err;
    CHECK_OK(rd_probe_task_init(&task, RD_PROBE_RIDGE, s.x, s.n, s.d, s.age, s.group, &cfg, &err),
             &err);
    int m = task.nrows, np = task.npatients, moved = 0;
    double *a = malloc(sizeof(double) * m), *b = malloc(sizeof(double) * m);
    CHECK_OK(rd_probe_permute_labels(&task, 5, a, &err), &err);
    CHECK_OK(rd_probe_permute_labels(&task, 5, b, &err), &err);
    CHECK(memcmp(a, b, sizeof(double) * m) == 0);
    CHECK_OK(rd_probe_permute_labels(&task, 6, b, &err), &err);
    CHECK(memcmp(a, b, sizeof(double) * m) != 0);
    /* Each patient now carries, in order, the label vector of a patient with as many rows. */
    int *used = calloc((size_t)np, sizeof *used);
    for (int p = 0; p < np; p++) {
        int cnt = task.pat_start[p + 1] - task.pat_start[p], found = -1;
        for (int q = 0; q < np && found < 0; q++) {
            if (used[q] || task.pat_start[q + 1] - task.pat_start[q] != cnt) continue;
            int same = 1;
            for (int k = 0; k < cnt; k++)
                same &= a[task.pat_rows[task.pat_start[p] + k]] ==
                        task.y[task.pat_rows[task.pat_start[q] + k]];
            if (same) found = q;
        }
        CHECK_MSG(found >= 0, "patient %d got labels of no same-size patient", p);
        if (found >= 0) used[found] = 1;
        moved += found != p;
    }
    CHECK_MSG(moved > np / 2, "only %d of %d patients got other labels", moved, np);
    /* Bootstrap weights: whole patients, npatients draws, deterministic by index. */
    rd_probe_bootstrap_weights(&task, 3, a);
    rd_probe_bootstrap_weights(&task, 3, b);
    CHECK(memcmp(a, b, sizeof(double) * m) == 0);
    double draws = 0;
    for (int p = 0; p < np; p++) {
        const int *rows = task.pat_rows + task.pat_start[p];
        for (int k = 1; k < task.pat_start[p + 1] - task.pat_start[p]; k++)
            CHECK(a[rows[k]] == a[rows[0]]);
        draws += a[rows[0]];
    }
    CHECK_NEAR(draws, np, 0);
    free(used), free(a), free(b);
    rd_probe_task_free(&task);
    synth_study_free(&s);
}

static const rd_test_case cases[] = {
    {"folds_keep_patients_together_and_balance", folds_keep_patients_together_and_balance},
    {"unknown_targets_are_left_out", unknown_targets_are_left_out},
    {"no_patient_crosses_a_split", no_patient_crosses_a_split},
    {"nested_choice_matches_refit_by_hand", nested_choice_matches_refit_by_hand},
    {"cv_recovers_signal", cv_recovers_signal},
    {"noise_features_score_chance_per_fold", noise_features_score_chance_per_fold},
    {"permutations_swap_whole_patients_within_strata",
     permutations_swap_whole_patients_within_strata},
};
RD_TEST_MAIN("probe/cv", cases)
