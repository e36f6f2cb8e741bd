/* Linear probes of frozen embeddings: the statistics of the metadata-correlation study.
 * Does an encoder's feature space carry patient age and sex, better than the baselines, and how
 * sure are we? Numerical core only, no I/O: the stage program reads the embedding files.
 *
 * Data: features float32 [n, d] row-major; a target per row as double with NaN = unknown (such
 * rows are left out for that target); a patient (group) per row. Sex is a logistic target
 * (values 0/1), age or any numeric column a ridge target.
 * Protocol (docs/ANALYSIS.md says why): grouped k-fold cross-validation by patient, features
 * standardised on each training set, the penalty chosen by nested grouped CV, metrics of the
 * out-of-fold predictions scored per outer fold and averaged (never pooled across fold
 * models), 95% intervals by resampling patients, a permutation test that shuffles labels
 * between patients and refits the whole CV.
 * Determinism: every random choice comes from rng.h keyed by (seed, RD_RNG_PROBE, stream,
 * index), each work unit (outer fold, bootstrap replicate, permutation) depends only on its
 * index, and results are collected by copying, so any number of MPI ranks gives the same
 * bits (at a fixed BLAS thread count per rank). */
#ifndef RDINO_PROBE_H
#define RDINO_PROBE_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "rdino/error.h"

typedef enum {
    RD_PROBE_RIDGE = 0,   /* numeric target: ridge regression, predictions in target units */
    RD_PROBE_LOGISTIC = 1 /* 0/1 target: L2 logistic regression, predictions are logits */
} rd_probe_kind;

typedef enum {
    RD_PROBE_AUROC = 0,    /* logistic: Mann-Whitney AUROC, ties count 1/2 */
    RD_PROBE_ACCURACY = 1, /* logistic: logit > 0 predicts 1 */
    RD_PROBE_MAE = 2,      /* ridge: mean absolute error */
    RD_PROBE_R2 = 3,       /* ridge: 1 - SSE / SS about a baseline mean (see below) */
    RD_PROBE_PEARSON = 4,  /* ridge: Pearson r of prediction and target */
    RD_PROBE_NMETRICS = 5
} rd_probe_metric;

enum { RD_PROBE_MAX_FOLDS = 64, RD_PROBE_MAX_LAMBDAS = 64 };

const char *rd_probe_metric_name(rd_probe_metric m); /* "auroc", "accuracy", "mae", ... */
/* Whether metric m applies to kind (AUROC/accuracy to logistic; MAE/R2/Pearson to ridge). */
int rd_probe_metric_applies(rd_probe_kind kind, rd_probe_metric m);
/* The permutation-test statistic: AUROC (logistic) or R2 (ridge); larger = more signal. */
rd_probe_metric rd_probe_primary_metric(rd_probe_kind kind);

/* ---- Standardisation ----------------------------------------------------------------------
 * rows: indices into x (NULL = rows 0..nrows-1). Mean and population std (ddof 0) per column
 * over those rows only; a column whose std is zero (or below 1e-7 of |mean|, i.e. float
 * rounding of a constant) gets inv_std = 0, so it is 0 everywhere and carries nothing learned
 * from the training rows. */
void rd_probe_standardize_fit(const float *x, int d, const int *rows, int nrows, double *mean,
                              double *inv_std);
/* z[k, j] = (x[rows[k], j] - mean[j]) * inv_std[j]; z is [nrows, d]. */
void rd_probe_standardize_apply(const float *x, int d, const int *rows, int nrows,
                                const double *mean, const double *inv_std, double *z);

/* ---- Solvers (features used as given; both centre internally, intercept unpenalised) ------
 * Ridge: minimises ||y - x w - b||^2 + lambda ||w||^2 for each lambda (> 0), the objective of
 * scikit-learn's Ridge(alpha=lambda, fit_intercept=True). Eigendecomposition of the d x d
 * Gram matrix, or of the n x n kernel when n < d; every lambda then costs O(d^2).
 * x [n, d], y [n]; outputs w [nlambda, d], b [nlambda]. */
rd_status rd_probe_ridge_fit(const double *x, const double *y, int n, int d, const double *lambda,
                             int nlambda, double *w, double *b, rd_error *err);

/* Logistic: minimises sum_i log(1 + exp(-s_i (x_i w + b))) + lambda/2 ||w||^2, s_i = 2 y_i - 1,
 * y_i in {0, 1}, lambda > 0: scikit-learn's LogisticRegression(penalty='l2', C=1/lambda,
 * fit_intercept=True). Newton's method with a Cholesky solve and backtracking line search
 * (on the n x n kernel's row space when n < d); converged when a Newton step moves no
 * coefficient by more than 1e-10 of the largest (the gradient is then at rounding level).
 * With warm_start, w and b hold the starting point; otherwise the start is w = 0,
 * b = logit(mean y). iterations (may be NULL) receives the Newton steps taken.
 * RD_ENUMERIC if it does not converge within 200 steps; RD_EINVAL if y has one class only. */
rd_status rd_probe_logistic_fit(const double *x, const double *y, int n, int d, double lambda,
                                int warm_start, double *w, double *b, int *iterations,
                                rd_error *err);

/* ---- k-NN (DINOv2's evaluation, dinov2/eval/knn.py) --------------------------------------
 * Features L2-normalised, cosine similarity of each test row to every training row, the k most
 * similar (ties to the lower training position), each weighted exp(similarity / T):
 * pred[v] = sum w y / sum w over them. For 0/1 labels this is the share of the vote for class
 * 1, DINOv2's normalised class vote; for a numeric target, the weighted mean. train and test
 * index rows of x [., d]; y_train is [ntrain]; k is capped at ntrain. */
rd_status rd_probe_knn_predict(const float *x, int d, const int *train, int ntrain,
                               const double *y_train, const int *test, int ntest, int k,
                               double temperature, double *pred, rd_error *err);

/* ---- Metrics (weight: per-row weights, NULL = all 1; rows of weight 0 are left out) -------
 * NaN when undefined (one class only, zero variance, no rows). */
double rd_probe_auroc(const double *score, const double *label, const double *weight, int n);
double rd_probe_accuracy(const double *logit, const double *label, const double *weight, int n);
double rd_probe_mae(const double *pred, const double *y, const double *weight, int n);
/* R2 as scikit-learn's r2_score: 1 - SSE / sum of squares about the mean of these rows. */
double rd_probe_r2(const double *pred, const double *y, const double *weight, int n);
double rd_probe_pearson(const double *a, const double *b, const double *weight, int n);
/* order: indices 0..n-1 sorted by ascending pred (rd_probe_sort_order) or NULL (sorted here);
 * fills out[m] for the metrics that apply to kind and NaN for the others. */
void rd_probe_metrics(rd_probe_kind kind, const double *y, const double *pred, const double *weight,
                      const int *order, int n, double out[RD_PROBE_NMETRICS]);
/* order[] = 0..n-1 sorted by ascending value (ties by index); RD_ENUMERIC if a value is NaN. */
rd_status rd_probe_sort_order(const double *value, int n, int *order, rd_error *err);

/* Per-dimension Pearson r of x[:, j] with y over rows with finite y (with a 0/1 target this is
 * the point-biserial correlation); NaN for a constant column. r is [d]. */
void rd_probe_dim_correlations(const float *x, int n, int d, const double *y, double *r);
/* The k dimensions of largest |r| (NaN last, ties by lower index) into top[k]; -1 past d. */
void rd_probe_top_dims(const double *r, int d, int k, int *top);

/* Holm's step-down adjustment of the n p-values p (NaN: not tested, left out of the family, NaN
 * out): the family-wise error rate stays at alpha when each adjusted[i] <= alpha is a rejection. */
rd_status rd_probe_holm(const double *p, int n, double *adjusted, rd_error *err);

/* Linear-interpolated quantile (numpy's default) of v[0..n-1], p in [0, 1]; sorts v. */
double rd_probe_quantile(double *v, int n, double p);

/* ---- Patients -----------------------------------------------------------------------------
 * Maps patient-id strings to 0..ngroups-1 in sorted string order. RD_EINVAL on a NULL or empty
 * id (an image without a patient cannot be kept out of its own training set). */
rd_status rd_probe_group_ids(const char *const *ids, int n, int *group, int *ngroups,
                             rd_error *err);
/* Sex coded int8 (0 F, 1 M, -1 unknown) to a logistic target (1 = M, NaN unknown). */
void rd_probe_sex_target(const int8_t *sex, int n, double *y);

/* ---- A probe task: one feature matrix x one target --------------------------------------- */
typedef struct rd_probe_config {
    uint64_t seed;
    int outer_folds;                     /* default 5 */
    int inner_folds;                     /* default 4; penalty chosen by inner CV */
    int nlambda;                         /* penalty grid; default 10^-2 .. 10^6 per half decade */
    double lambda[RD_PROBE_MAX_LAMBDAS]; /* any order; ridge alpha / logistic 1/C */
    int bootstrap;                       /* cluster-bootstrap replicates (default 1000; 0 off) */
    int permutations;                    /* permutation-test refits (default 199; 0 off) */
    double ci_level;                     /* default 0.95 */
    /* k-NN probe instead of the linear one when knn_k > 0 (default 0): DINOv2's weighted vote
     * (rd_probe_knn_predict) over the outer training rows; no penalty, no inner folds. */
    int knn_k;
    double knn_temperature; /* default 0.07, DINOv2's */
} rd_probe_config;

void rd_probe_config_default(rd_probe_config *cfg);

struct rd_probe_ridge_slot; /* cached ridge factorisations (private) */

/* Built by rd_probe_task_init; fields are read-only for callers. */
typedef struct rd_probe_task {
    rd_probe_kind kind;
    rd_probe_config cfg; /* lambda sorted descending */
    const float *x;      /* borrowed [n, d] */
    int n, d;
    int nrows;       /* rows with a known target */
    int *row;        /* [nrows] their indices into x, ascending */
    double *y;       /* [nrows] target */
    int npatients;   /* patients with at least one known-target row */
    int *patient;    /* [nrows] patient of each row, 0..npatients-1 */
    int *pat_start;  /* [npatients + 1] CSR: patient p owns task rows */
    int *pat_rows;   /*   pat_rows[pat_start[p] .. pat_start[p+1]) */
    int *outer_fold; /* [npatients] */
    int *inner_fold; /* [outer_folds * npatients]; -1 for patients of that outer fold */
    struct rd_probe_ridge_slot *cache; /* ridge only, built lazily */
} rd_probe_task;

/* Selects the rows with a known target, checks the data (finite features on those rows; 0/1
 * targets for logistic, both classes present; enough patients for the folds) and assigns
 * patients to outer folds and, within each outer training set, to inner folds: shuffled by
 * the seed, then greedily given to the fold with the fewest images so far (largest patients
 * first), so folds are balanced by image count. group[i] >= 0 is row i's patient.
 * x must outlive the task. */
rd_status rd_probe_task_init(rd_probe_task *t, rd_probe_kind kind, const float *x, int n, int d,
                             const double *y, const int *group, const rd_probe_config *cfg,
                             rd_error *err);
void rd_probe_task_free(rd_probe_task *t);
/* Frees the cached ridge factorisations (rebuilt on demand). */
void rd_probe_task_drop_cache(rd_probe_task *t);

/* Metrics of out-of-fold predictions pred [nrows] (as from rd_probe_cv) as the study reports
 * them: each outer fold scored on its own rows, then the mean over folds weighted by the
 * folds' total row weight (weight per task row, NULL = 1; folds where a metric is undefined
 * are left out of its mean). MAE and accuracy equal their pooled values; AUROC and r never
 * compare predictions of different fold models. R2 is out of sample: 1 - sum SSE / sum of
 * squares about each fold's training mean, so predicting the training mean scores 0.
 * y: NULL = the task's labels. */
rd_status rd_probe_oof_metrics(const rd_probe_task *t, const double *y, const double *pred,
                               const double *weight, double out[RD_PROBE_NMETRICS], rd_error *err);

/* ---- Work units (each depends only on its arguments) --------------------------------------
 * With cfg.knn_k > 0 an outer fold is a k-NN prediction of its rows from the fold's training
 * rows (logistic tasks: the class-1 vote share minus 1/2, so > 0 is the majority vote; no
 * lambda, *lambda_chosen = NaN). Otherwise, one outer fold of nested CV: chooses lambda by inner
 * grouped CV on the fold's training patients (pooled inner squared error for ridge, log-loss for
 * logistic; ties go to the larger lambda), refits on the whole training set, and writes predictions
 * for the fold's rows into pred[row] (pred is [nrows]; other entries untouched). y: labels per task
 * row (NULL = the task's own; permutations pass shuffled ones). */
rd_status rd_probe_cv_fold(rd_probe_task *t, int fold, const double *y, double *pred,
                           double *lambda_chosen, rd_error *err);
/* All outer folds: out-of-fold predictions pred [nrows], chosen lambda per fold [outer]. */
rd_status rd_probe_cv(rd_probe_task *t, const double *y, double *pred, double *lambda_chosen,
                      rd_error *err);
/* Labels of permutation `index`: patients with the same number of rows swap their label
 * vectors (a uniformly random permutation within each such stratum), which is exchangeable
 * under "features carry no information about the target". y_out is [nrows]. */
rd_status rd_probe_permute_labels(const rd_probe_task *t, uint64_t index, double *y_out,
                                  rd_error *err);
/* Primary metric (rd_probe_oof_metrics) of a full CV refit on the labels of permutation
 * `index`. */
rd_status rd_probe_permutation_stat(rd_probe_task *t, uint64_t index, double *stat, rd_error *err);
/* Row weights of bootstrap replicate `index`: npatients patients drawn with replacement, each
 * row weighted by how often its patient was drawn. weight is [nrows]. */
void rd_probe_bootstrap_weights(const rd_probe_task *t, uint64_t index, double *weight);

/* ---- MPI driver ---------------------------------------------------------------------------
 * results[u * len .. + len) = fn(ctx, u) for u in [0, nunits): unit u runs on rank
 * u % nranks, every rank receives all results (gathered by copying). comm may be
 * MPI_COMM_NULL (serial, MPI need not be initialised). Collective. An error in any unit is
 * returned on every rank with the message of the lowest failing unit. progress_label: a
 * progress line on rank 0 (NULL = none). */
typedef rd_status (*rd_probe_unit_fn)(void *ctx, int unit, double *result, rd_error *err);
rd_status rd_probe_run_units(MPI_Comm comm, int nunits, int len, rd_probe_unit_fn fn, void *ctx,
                             const char *progress_label, double *results, rd_error *err);

typedef struct rd_probe_interval {
    double estimate; /* on all rows; NaN if undefined or not applicable */
    double lo, hi;   /* percentile bootstrap interval at cfg.ci_level */
    int replicates;  /* replicates where the metric was defined */
} rd_probe_interval;

typedef struct rd_probe_result {
    double *pred;                      /* [nrows] out-of-fold predictions (malloc'd) */
    double lambda[RD_PROBE_MAX_FOLDS]; /* chosen in each outer fold */
    int lambda_at_edge;                /* outer folds that chose the grid's end */
    rd_probe_interval metric[RD_PROBE_NMETRICS];
    double perm_p;         /* (1 + #{null >= observed}) / (B + 1); NaN without permutations */
    double perm_null_mean; /* mean null statistic (chance level: AUROC ~0.5, R2 <= 0) */
    double perm_p_holm;    /* perm_p Holm-adjusted over the tasks of one rd_probe_run */
    int permutations;
} rd_probe_result;

/* Cluster-bootstrap intervals over task t's patients of rd_probe_oof_metrics of pred (and,
 * with pred_b, of metric(pred) - metric(pred_b) on the same resamples). Collective. */
rd_status rd_probe_bootstrap_ci(MPI_Comm comm, const rd_probe_task *t, const double *pred,
                                const double *pred_b, rd_probe_interval out[RD_PROBE_NMETRICS],
                                rd_error *err);

/* The whole study for several tasks (e.g. encoders x targets): CV units (tasks x outer folds),
 * then bootstrap replicates, then permutations, each phase spread over comm. Fills results
 * [ntasks] (free with rd_probe_result_free); the tasks' permutation tests form one family for
 * the Holm adjustment. Collective. */
rd_status rd_probe_run(MPI_Comm comm, rd_probe_task *tasks, int ntasks, rd_probe_result *results,
                       rd_error *err);
void rd_probe_result_free(rd_probe_result *r);

/* Macro average of a metric over tasks on the same rows of x (the labels of a multi-label
 * target, one task each, of one representation): the mean over the tasks of each task's
 * rd_probe_oof_metrics value of pred[i], and with pred_b (another representation's predictions
 * for the same tasks, NULL = none) the mean of the differences. The interval's replicates
 * resample the patients of all rows at once (group [n], 0..ngroups-1, rd_probe_group_ids):
 * replicate b draws ngroups patients and every task scores its rows with their patients' draw
 * counts, so the labels of one patient move together. When every task has a known label on
 * every row, replicate b is replicate b of each task's own interval (rd_probe_bootstrap_ci), so
 * the macro replicate is the mean of the per-label ones. A replicate where any task's metric is
 * undefined is dropped (out->replicates counts the others). The tasks must share kind, rows of
 * x, seed and bootstrap settings. Collective. */
rd_status rd_probe_macro_ci(MPI_Comm comm, const rd_probe_task *const *tasks,
                            const double *const *pred, const double *const *pred_b, int ntasks,
                            const int *group, int ngroups, rd_probe_metric metric,
                            rd_probe_interval *out, rd_error *err);

/* Whether a 0/1 target (NaN = unknown) can be scored by AUROC under cfg's folds: at least
 * min_per_class known rows of each class, as many patients as outer folds, and both classes in
 * every outer fold (else that fold's AUROC is undefined). why (why_size bytes) receives "" when
 * it can, else the reason ("3 positive and 530 negative images with a known label; at least 5
 * of each needed", "outer fold 2 holds no positive image ..."). Errors only for memory. */
rd_status rd_probe_binary_check(const double *y, int n, const int *group,
                                const rd_probe_config *cfg, int min_per_class, char *why,
                                size_t why_size, rd_error *err);

/* Paired comparison of two encoders on the same target: interval of metric(a) - metric(b)
 * on the same patient resamples. The tasks must have the same kind, rows, patients and seed
 * (same embedding rows and metadata), else RD_EINVAL. Collective. */
rd_status rd_probe_compare(MPI_Comm comm, const rd_probe_task *ta, const rd_probe_result *ra,
                           const rd_probe_task *tb, const rd_probe_result *rb,
                           rd_probe_interval diff[RD_PROBE_NMETRICS], rd_error *err);

#endif
