/* Uncertainty: cluster-bootstrap intervals cover known true values at about the nominal rate
 * (and are not just wide), permutation p-values are uniform under the null and minimal under a
 * strong signal, and paired encoder comparisons behave. Simulations are small so the file
 * runs in seconds; tolerances are binomial (3.5 sigma). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>

#include "harness.h"
#include "probe/probe_internal.h"
#include "probe_test_util.h"
#include "rdino/probe.h"

enum { SIMS = 200, MAX_ROWS = 400 };

static double normal_cdf(double z) {
    return 0.5 * erfc(-z / sqrt(2.0));
}

typedef struct coverage {
    int covered;
    double width_sum, est_sum, est_sq;
} coverage;

static void coverage_add(coverage *c, const rd_probe_interval *iv, double truth) {
    c->covered += iv->lo <= truth && truth <= iv->hi;
    c->width_sum += iv->hi - iv->lo;
    c->est_sum += iv->estimate;
    c->est_sq += iv->estimate * iv->estimate;
}

/* Coverage within 3.5 binomial sigma of the level, and mean width within 25% of what the
 * spread of the estimates across simulations says a 95% interval should be. */
static void coverage_check(rd_test *t, const char *what, const coverage *c) {
    double rate = (double)c->covered / SIMS, sigma = sqrt(0.95 * 0.05 / SIMS);
    double mean = c->est_sum / SIMS, sd = sqrt(c->est_sq / SIMS - mean * mean);
    double width_ratio = (c->width_sum / SIMS) / (2 * 1.959964 * sd);
    fprintf(stderr, "%s: coverage %.3f width ratio %.3f\n", what, rate, width_ratio);
    CHECK_MSG(fabs(rate - 0.95) <= 3.5 * sigma, "%s: coverage %.3f of nominal 0.95", what, rate);
    CHECK_MSG(width_ratio > 0.8 && width_ratio < 1.25,
              "%s: mean width %.3f is %.2f x the width implied by the estimates' spread", what,
              c->width_sum / SIMS, width_ratio);
}

/* A task over n rows whose features are irrelevant (the intervals use given predictions). */
static void dummy_task(rd_test *t, rd_probe_task *task, rd_probe_kind kind, const double *y,
                       const int *group, int n, uint64_t seed) {
    static float zeros[MAX_ROWS];
    rd_probe_config cfg;
    rd_probe_config_default(&cfg);
    cfg.seed = seed;
    cfg.bootstrap = 500;
    rd_error err;
    CHECK_OK(rd_probe_task_init(task, kind, zeros, n, 1, y, group, &cfg, &err), &err);
}

/* Patients with 1-4 images and a shared patient effect, so rows are not independent: an
 * interval resampling rows instead of patients would be too narrow. */
static void bootstrap_intervals_cover_true_values(rd_test *t) {
    coverage auroc = {0}, delta = {0}, r = {0}, mae = {0}, r2 = {0};
    /* AUROC of mu * y + u + e (u, e unit normal) is Phi(mu / 2). */
    const double auroc_true = normal_cdf(0.5), delta_true = normal_cdf(0.5) - normal_cdf(0.25);
    /* pred = u + e, target = v + f with corr(u, v) 0.8, corr(e, f) 0.6, unit variances. */
    const double r_true = 0.7, mse = 0.4 + 0.8, r2_true = 1 - mse / 2,
                 mae_true = sqrt(mse * 2 / M_PI);
    double y[MAX_ROWS], a[MAX_ROWS], b[MAX_ROWS], age[MAX_ROWS], pred[MAX_ROWS];
    int group[MAX_ROWS];
    for (int sim = 0; sim < SIMS; sim++) {
        rd_rng rng;
        rd_rng_init(&rng, 1000 + sim, RD_RNG_TEST, 2, 0, 0);
        int n = 0;
        for (int p = 0; p < 100; p++) {
            double label = rd_rng_uniform(&rng) < 0.5, ua = rd_rng_normal(&rng),
                   ub = rd_rng_normal(&rng);
            double u = rd_rng_normal(&rng), v = 0.8 * u + 0.6 * rd_rng_normal(&rng);
            for (int k = (int)rd_rng_randint(&rng, 0, 3); k >= 0; k--, n++) {
                group[n] = p;
                y[n] = label;
                a[n] = 1.0 * label + ua + rd_rng_normal(&rng);
                b[n] = 0.5 * label + ub + rd_rng_normal(&rng);
                double e = rd_rng_normal(&rng), f = 0.6 * e + 0.8 * rd_rng_normal(&rng);
                pred[n] = u + e;
                age[n] = v + f;
            }
        }
        rd_probe_task task;
        rd_probe_interval iv[RD_PROBE_NMETRICS], dv[RD_PROBE_NMETRICS];
        rd_error err;
        dummy_task(t, &task, RD_PROBE_LOGISTIC, y, group, n, (uint64_t)sim);
        CHECK_OK(rd_probe_bootstrap_ci(MPI_COMM_NULL, &task, a, NULL, iv, &err), &err);
        CHECK_OK(rd_probe_bootstrap_ci(MPI_COMM_NULL, &task, a, b, dv, &err), &err);
        rd_probe_task_free(&task);
        coverage_add(&auroc, &iv[RD_PROBE_AUROC], auroc_true);
        coverage_add(&delta, &dv[RD_PROBE_AUROC], delta_true);
        dummy_task(t, &task, RD_PROBE_RIDGE, age, group, n, (uint64_t)sim);
        CHECK_OK(rd_probe_bootstrap_ci(MPI_COMM_NULL, &task, pred, NULL, iv, &err), &err);
        rd_probe_task_free(&task);
        coverage_add(&r, &iv[RD_PROBE_PEARSON], r_true);
        coverage_add(&r2, &iv[RD_PROBE_R2], r2_true);
        coverage_add(&mae, &iv[RD_PROBE_MAE], mae_true);
        CHECK(iv[RD_PROBE_MAE].replicates == 500 && isnan(iv[RD_PROBE_AUROC].estimate));
        if (t->failures) return;
    }
    coverage_check(t, "AUROC", &auroc);
    coverage_check(t, "paired AUROC difference", &delta);
    coverage_check(t, "Pearson r", &r);
    coverage_check(t, "R2", &r2);
    coverage_check(t, "MAE", &mae);
}

static rd_probe_config perm_config(uint64_t seed, int permutations) {
    rd_probe_config cfg;
    rd_probe_config_default(&cfg);
    cfg.seed = seed;
    cfg.outer_folds = 4;
    cfg.inner_folds = 3;
    cfg.nlambda = 3;
    cfg.lambda[0] = 1, cfg.lambda[1] = 30, cfg.lambda[2] = 1000;
    cfg.bootstrap = 0;
    cfg.permutations = permutations;
    return cfg;
}

/* Runs the study on nsims null data sets; returns p-values. */
static void null_pvalues(rd_test *t, rd_probe_kind kind, int nsims, int perms, double *p) {
    for (int sim = 0; sim < nsims; sim++) {
        synth_study s;
        synth_study_make(&s, 30, 3, 0.0, 5000 + sim);
        rd_probe_config cfg = perm_config((uint64_t)sim, perms);
        rd_probe_task task;
        rd_probe_result res;
        rd_error err;
        const double *y = kind == RD_PROBE_RIDGE ? s.age : s.sex;
        CHECK_OK(rd_probe_task_init(&task, kind, s.x, s.n, s.d, y, s.group, &cfg, &err), &err);
        CHECK_OK(rd_probe_run(MPI_COMM_NULL, &task, 1, &res, &err), &err);
        p[sim] = res.perm_p;
        rd_probe_result_free(&res);
        rd_probe_task_free(&task);
        synth_study_free(&s);
        if (t->failures) return;
    }
}

/* Under exchangeability P(p <= k / (B + 1)) = k / (B + 1) exactly. */
static void check_uniform(rd_test *t, const char *what, const double *p, int nsims, int perms) {
    double worst = 0, mean = 0;
    for (int i = 0; i < nsims; i++) mean += p[i] / nsims;
    for (int k = 1; k <= perms; k++) {
        double level = (double)k / (perms + 1), frac = 0;
        for (int i = 0; i < nsims; i++) frac += p[i] <= level + 1e-12;
        worst = fmax(worst, fabs(frac / nsims - level));
    }
    double mean_want = (perms + 2.0) / (2.0 * (perms + 1));
    fprintf(stderr, "%s: mean p %.3f (want %.3f) worst %.3f (limit %.3f)\n", what, mean, mean_want,
            worst, 1.63 / sqrt(nsims));
    CHECK_MSG(fabs(mean - mean_want) <= 3.5 * sqrt(1.0 / 12 / nsims), "%s: mean p %.3f, want %.3f",
              what, mean, mean_want);
    /* 1.63 / sqrt(n): the 1% Kolmogorov-Smirnov critical value (conservative when discrete). */
    CHECK_MSG(worst <= 1.63 / sqrt(nsims), "%s: p-value CDF deviates by %.3f from uniform", what,
              worst);
}

static void permutation_pvalues_uniform_under_null(rd_test *t) {
    double p[500];
    null_pvalues(t, RD_PROBE_RIDGE, 500, 39, p);
    check_uniform(t, "ridge", p, 500, 39);
    null_pvalues(t, RD_PROBE_LOGISTIC, 80, 19, p);
    check_uniform(t, "logistic", p, 80, 19);
}

static void permutation_pvalue_minimal_under_strong_signal(rd_test *t) {
    synth_study s;
    synth_study_make(&s, 60, 6, 2.0, 77);
    for (int kind = 0; kind < 2; kind++) {
        rd_probe_config cfg = perm_config(3, 99);
        rd_probe_task task;
        rd_probe_result res;
        rd_error err;
        const double *y = kind == RD_PROBE_RIDGE ? s.age : s.sex;
        CHECK_OK(
            rd_probe_task_init(&task, (rd_probe_kind)kind, s.x, s.n, s.d, y, s.group, &cfg, &err),
            &err);
        CHECK_OK(rd_probe_run(MPI_COMM_NULL, &task, 1, &res, &err), &err);
        CHECK_MSG(res.perm_p == 1.0 / 100, "kind %d: p %.4f with a strong signal", kind,
                  res.perm_p);
        CHECK(res.permutations == 99);
        if (kind == RD_PROBE_LOGISTIC)
            CHECK_MSG(fabs(res.perm_null_mean - 0.5) < 0.1, "null AUROC mean %.3f",
                      res.perm_null_mean);
        else
            CHECK_MSG(res.perm_null_mean < 0.05, "null R2 mean %.3f", res.perm_null_mean);
        rd_probe_result_free(&res);
        rd_probe_task_free(&task);
    }
    synth_study_free(&s);
}

/* "Trained" features carry sex, "random" ones are noise on the same rows and patients. */
static void paired_comparison_of_encoders(rd_test *t) {
    synth_study s;
    synth_study_make(&s, 120, 8, 1.0, 31);
    float *noise = malloc(sizeof(float) * s.n * s.d);
    rd_rng rng;
    rd_rng_init(&rng, 4, RD_RNG_TEST, 0, 0, 0);
    for (int i = 0; i < s.n * s.d; i++) noise[i] = (float)rd_rng_normal(&rng);
    rd_probe_config cfg = perm_config(8, 0);
    cfg.bootstrap = 300;
    rd_probe_task tasks[2], other;
    rd_probe_result res[2];
    rd_probe_interval diff[RD_PROBE_NMETRICS], self[RD_PROBE_NMETRICS];
    rd_error err;
    CHECK_OK(
        rd_probe_task_init(&tasks[0], RD_PROBE_LOGISTIC, s.x, s.n, s.d, s.sex, s.group, &cfg, &err),
        &err);
    CHECK_OK(rd_probe_task_init(&tasks[1], RD_PROBE_LOGISTIC, noise, s.n, s.d, s.sex, s.group, &cfg,
                                &err),
             &err);
    CHECK_OK(rd_probe_run(MPI_COMM_NULL, tasks, 2, res, &err), &err);
    CHECK_OK(rd_probe_compare(MPI_COMM_NULL, &tasks[0], &res[0], &tasks[1], &res[1], diff, &err),
             &err);
    const rd_probe_interval *d = &diff[RD_PROBE_AUROC];
    CHECK_NEAR(d->estimate,
               res[0].metric[RD_PROBE_AUROC].estimate - res[1].metric[RD_PROBE_AUROC].estimate,
               1e-12);
    CHECK_MSG(d->lo > 0.1 && d->lo <= d->estimate && d->estimate <= d->hi,
              "trained - random AUROC %.3f [%.3f, %.3f]", d->estimate, d->lo, d->hi);
    CHECK(res[0].metric[RD_PROBE_AUROC].lo > 0.5 && res[1].metric[RD_PROBE_AUROC].lo < 0.5);
    /* The same predictions against themselves: exactly zero on every resample. */
    CHECK_OK(rd_probe_compare(MPI_COMM_NULL, &tasks[0], &res[0], &tasks[0], &res[0], self, &err),
             &err);
    CHECK(self[RD_PROBE_AUROC].lo == 0 && self[RD_PROBE_AUROC].hi == 0 &&
          self[RD_PROBE_AUROC].estimate == 0);
    /* Another target's rows cannot be paired. */
    CHECK_OK(rd_probe_task_init(&other, RD_PROBE_LOGISTIC, noise, s.n - 3, s.d, s.sex, s.group,
                                &cfg, &err),
             &err);
    CHECK(rd_probe_compare(MPI_COMM_NULL, &tasks[0], &res[0], &other, &res[1], diff, &err) ==
          RD_EINVAL);
    rd_probe_task_free(&other);
    for (int i = 0; i < 2; i++) {
        rd_probe_result_free(&res[i]);
        rd_probe_task_free(&tasks[i]);
    }
    free(noise);
    synth_study_free(&s);
}

/* The joint resample of rd_probe_macro_ci written out: replicate b draws the study's patients
 * from the bootstrap stream of b, each task scores its rows with their patients' counts. */
static double brute_macro(const rd_probe_task *tasks, double *const *pred, double *const *pred_b,
                          int ntasks, const int *group, int ngroups, uint64_t b) {
    double *count = calloc((size_t)ngroups, sizeof *count), sum = 0.0;
    double w[4 * MAX_ROWS], m[RD_PROBE_NMETRICS], o[RD_PROBE_NMETRICS];
    rd_rng rng;
    probe_bootstrap_rng(tasks[0].cfg.seed, b, &rng);
    for (int draw = 0; draw < ngroups; draw++) count[rd_rng_randint(&rng, 0, ngroups - 1)] += 1;
    rd_error err;
    for (int i = 0; i < ntasks; i++) {
        for (int k = 0; k < tasks[i].nrows; k++) w[k] = count[group[tasks[i].row[k]]];
        rd_probe_oof_metrics(&tasks[i], NULL, pred[i], w, m, &err);
        if (pred_b) rd_probe_oof_metrics(&tasks[i], NULL, pred_b[i], w, o, &err);
        sum += m[RD_PROBE_AUROC] - (pred_b ? o[RD_PROBE_AUROC] : 0.0);
    }
    free(count);
    return sum / ntasks;
}

/* Macro AUROC: the mean of the labels' AUROCs, its interval the percentiles of the joint
 * patient resamples written out here (with unknown labels on some rows, and as a paired
 * difference); with every label known on every row, replicate b of the macro is the mean of
 * replicate b of each label's own interval (rd_probe_bootstrap_weights). */
static void macro_auroc_is_the_mean_over_joint_resamples(rd_test *t) {
    synth_study s;
    synth_study_make(&s, 90, 6, 1.0, 41);
    enum { L = 3, B = 200 };
    int group[4 * MAX_ROWS], ngroups = s.npatients;
    double y[L][4 * MAX_ROWS];
    for (int i = 0; i < s.n; i++) {
        group[i] = (s.group[i] - 1000) / 7; /* patients 0..npatients-1 */
        y[0][i] = isnan(s.sex[i]) ? (double)(i % 2) : s.sex[i];
        y[1][i] = isnan(s.age[i]) ? 0.0 : s.age[i] > 55;
        y[2][i] = i % 7 == 0 ? NAN : (double)((i * 37) % 3 == 0); /* some unknown, noise */
    }
    float *noise = malloc(sizeof(float) * s.n * s.d);
    rd_rng rng;
    rd_rng_init(&rng, 5, RD_RNG_TEST, 0, 0, 0);
    for (int i = 0; i < s.n * s.d; i++) noise[i] = (float)rd_rng_normal(&rng);
    rd_probe_config cfg = perm_config(8, 0);
    cfg.bootstrap = B;
    rd_probe_task tasks[2][L];
    rd_probe_result res[2][L];
    rd_error err;
    for (int r = 0; r < 2; r++) {
        for (int l = 0; l < L; l++)
            CHECK_OK(rd_probe_task_init(&tasks[r][l], RD_PROBE_LOGISTIC, r ? noise : s.x, s.n, s.d,
                                        y[l], group, &cfg, &err),
                     &err);
        CHECK_OK(rd_probe_run(MPI_COMM_NULL, tasks[r], L, res[r], &err), &err);
    }
    if (t->failures) return;
    double *pred[2][L], reps[B];
    for (int r = 0; r < 2; r++)
        for (int l = 0; l < L; l++) pred[r][l] = res[r][l].pred;
    const rd_probe_task *tp[L] = {&tasks[0][0], &tasks[0][1], &tasks[0][2]};
    for (int paired = 0; paired < 2; paired++)
        for (int nl = 2; nl <= L; nl++) { /* 2: every row known; 3: one label with unknowns */
            rd_probe_interval iv;
            CHECK_OK(rd_probe_macro_ci(MPI_COMM_NULL, tp, (const double *const *)pred[0],
                                       paired ? (const double *const *)pred[1] : NULL, nl, group,
                                       ngroups, RD_PROBE_AUROC, &iv, &err),
                     &err);
            double mean = 0.0;
            for (int l = 0; l < nl; l++)
                mean += res[0][l].metric[RD_PROBE_AUROC].estimate -
                        (paired ? res[1][l].metric[RD_PROBE_AUROC].estimate : 0.0);
            CHECK_NEAR(iv.estimate, mean / nl, 1e-12);
            for (int b = 0; b < B; b++)
                reps[b] = brute_macro(tasks[0], pred[0], paired ? pred[1] : NULL, nl, group,
                                      ngroups, (uint64_t)b);
            CHECK(iv.replicates == B);
            CHECK_NEAR(iv.lo, rd_probe_quantile(reps, B, 0.025), 1e-12);
            CHECK_NEAR(iv.hi, rd_probe_quantile(reps, B, 0.975), 1e-12);
        }
    /* every row known: the macro replicate is the mean of the labels' own replicates */
    double w[4 * MAX_ROWS], m[RD_PROBE_NMETRICS];
    for (int b = 0; b < 20; b++) {
        double mean = 0.0;
        for (int l = 0; l < 2; l++) {
            rd_probe_bootstrap_weights(&tasks[0][l], (uint64_t)b, w);
            rd_probe_oof_metrics(&tasks[0][l], NULL, pred[0][l], w, m, &err);
            mean += m[RD_PROBE_AUROC] / 2;
        }
        CHECK_NEAR(brute_macro(tasks[0], pred[0], NULL, 2, group, ngroups, (uint64_t)b), mean,
                   1e-12);
    }
    rd_probe_interval iv;
    CHECK(rd_probe_macro_ci(MPI_COMM_NULL, tp, (const double *const *)pred[0], NULL, 0, group,
                            ngroups, RD_PROBE_AUROC, &iv, &err) == RD_EINVAL);
    CHECK(rd_probe_macro_ci(MPI_COMM_NULL, tp, (const double *const *)pred[0], NULL, 2, group,
                            ngroups, RD_PROBE_R2, &iv, &err) == RD_EINVAL);
    for (int r = 0; r < 2; r++)
        for (int l = 0; l < L; l++) {
            rd_probe_result_free(&res[r][l]);
            rd_probe_task_free(&tasks[r][l]);
        }
    free(noise);
    synth_study_free(&s);
}

/* A 0/1 target is estimable with min_per_class images of each class and both classes in every
 * outer fold; otherwise the reason says which. */
static void binary_check_names_the_reason(rd_test *t) {
    enum { P = 40, R = 2 * P };
    double y[R];
    int group[R];
    char why[256];
    rd_error err;
    rd_probe_config cfg;
    rd_probe_config_default(&cfg);
    for (int i = 0; i < R; i++) group[i] = 3 * (i / 2) + 11, y[i] = (i / 2) % 2;
    CHECK_OK(rd_probe_binary_check(y, R, group, &cfg, 5, why, sizeof why, &err), &err);
    CHECK_MSG(why[0] == '\0', "balanced target: %s", why);
    /* 5 positive images of 3 patients: at most 3 of the 5 folds hold one */
    for (int i = 0; i < R; i++) y[i] = i < 5 ? 1 : 0;
    CHECK_OK(rd_probe_binary_check(y, R, group, &cfg, 5, why, sizeof why, &err), &err);
    CHECK_MSG(strstr(why, "holds no positive image (5 positive of 80 known, 40 patients)"), "%s",
              why);
    CHECK_OK(rd_probe_binary_check(y, R, group, &cfg, 6, why, sizeof why, &err), &err);
    CHECK_MSG(strstr(why, "5 positive and 75 negative images") && strstr(why, "at least 6"), "%s",
              why);
    /* unknown rows do not count; 4 patients cannot fill 5 folds */
    for (int i = 0; i < R; i++) y[i] = i < 8 ? (double)(i % 2) : NAN;
    CHECK_OK(rd_probe_binary_check(y, R, group, &cfg, 2, why, sizeof why, &err), &err);
    CHECK_MSG(strstr(why, "4 patients with a known label; 5 outer folds"), "%s", why);
}

static const rd_test_case cases[] = {
    {"bootstrap_intervals_cover_true_values", bootstrap_intervals_cover_true_values},
    {"permutation_pvalues_uniform_under_null", permutation_pvalues_uniform_under_null},
    {"permutation_pvalue_minimal_under_strong_signal",
     permutation_pvalue_minimal_under_strong_signal},
    {"paired_comparison_of_encoders", paired_comparison_of_encoders},
    {"macro_auroc_is_the_mean_over_joint_resamples", macro_auroc_is_the_mean_over_joint_resamples},
    {"binary_check_names_the_reason", binary_check_names_the_reason},
};
RD_TEST_MAIN("probe/inference", cases)
