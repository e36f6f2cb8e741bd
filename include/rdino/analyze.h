/* rdino-analyze as a library: the metadata-correlation study (docs/ANALYSIS.md) from one or more
 * embedding files (docs/FORMATS.md, "Embeddings") and the shards, to a report folder.
 *
 * Steps, each collective over comm:
 *  1. rd_analyze_load: every rank reads every embedding file (features and /meta), checks that
 *     all files describe the same images in the same order, and keeps the rows of the chosen
 *     splits. Each (encoder, feature set) becomes a "representation".
 *  2. rd_analyze_pixel_baseline: a representation made from the shards' images of those rows:
 *     each area-averaged to s x s (ranks read blocks of rows, results gathered), then PCA to k
 *     components. The PCA is fitted on all rows before cross-validation: it sees no label, only
 *     the held-out images' pixels (as the pretrained encoders may have).
 *  3. rd_analyze_run: a probe task per representation x target, rd_probe_run (CV, bootstrap,
 *     permutations), paired comparisons, per-dimension correlations.
 *  4. rd_analyze_write: rank 0 writes report.md, report.json, predictions.csv and the plots
 *     (gnuplot), each atomically; every rank returns rank 0's status.
 * rd_analyze_stage runs them all from the configuration (section "analyze").
 * Everything a rank computes depends only on the inputs and the seed, never on the number of
 * ranks, so report.json is the same on 1 or 64 ranks (at a fixed BLAS thread count). */
#ifndef RDINO_ANALYZE_H
#define RDINO_ANALYZE_H

#include <mpi.h>
#include <stdint.h>

#include "rdino/config.h"
#include "rdino/file.h"
#include "rdino/error.h"
#include "rdino/probe.h"

enum {
    RD_EMBEDDINGS_FORMAT_VERSION = 1, /* the embedding layout this reader understands */
    RD_ANALYZE_NAME_MAX = 64,         /* encoder, feature and target names */
    RD_ANALYZE_MAX_PLOTS = 64         /* a ROC or scatter per target and feature set, and more */
};

/* ---- Parameters (from the "analyze" configuration section) -------------------------------- */
enum { RD_ANALYZE_MAX_COVARIATES = 8 };

/* A confounder adjustment "target ~ cov + cov": the target residualised on the covariates. */
typedef struct rd_analyze_formula {
    char target[RD_ANALYZE_NAME_MAX];
    int ncov;
    char cov[RD_ANALYZE_MAX_COVARIATES][RD_ANALYZE_NAME_MAX];
    char name[RD_ANALYZE_NAME_MAX]; /* the adjusted target's name: "age_given_sex_view" */
} rd_analyze_formula;

typedef struct rd_analyze_params {
    char **embeddings; /* embedding files, in the order given (folders expanded to *.h5) */
    int nembeddings;
    int use_cls, use_patch_mean;            /* feature sets to probe */
    char main_encoder[RD_ANALYZE_NAME_MAX]; /* listed first, plotted; "" or absent: the first */
    char shards_dir[RD_PATH_MAX];           /* for the raw-pixel baseline */
    unsigned splits;                        /* bit s set: rows of split s (0 train..2 test) */
    char **targets; /* "sex", /meta column names, "findings" (every /meta/finding_*); none = auto */
    int ntargets;
    int min_per_class;          /* a 0/1 target with fewer known images of a class, or an outer fold
                                   without both, is not estimable; 0: no check */
    rd_analyze_formula *adjust; /* analyze.adjust, in the order given */
    int nadjust;
    rd_probe_config probe; /* the linear probes' (probe.knn_k is 0) */
    int knn_k;             /* k-NN probes too when > 0 (analyze.knn.*) */
    double knn_temperature;
    int top_dims;                    /* per-dimension correlations listed */
    int pixel_size;                  /* s: images area-averaged to s x s; 0 = no baseline */
    int pixel_components;            /* k PCA components */
    char metrics_jsonl[RD_PATH_MAX]; /* pretraining loss log ("" = none) */
    char plots_dir[RD_PATH_MAX];     /* the gnuplot scripts (analysis/plots) */
    char **compare;                  /* analyze.compare: report folders to put side by side */
    int ncompare;
    char output_dir[RD_PATH_MAX];
} rd_analyze_params;

/* Reads the analyze.* keys (defaults resolved against data.output_dir, comma lists split,
 * folders in analyze.embeddings expanded to their *.h5 files in name order). Errors name the
 * key. Free with rd_analyze_params_free. */
rd_status rd_analyze_params_from_config(const rd_config *cfg, rd_analyze_params *p, rd_error *err);
void rd_analyze_params_free(rd_analyze_params *p);

/* Splits a comma-separated list into trimmed, non-empty items (malloc'd; free each and the
 * array). "a, b,,c" gives {"a", "b", "c"}. */
rd_status rd_analyze_split_list(const char *text, char ***items, int *n, rd_error *err);

/* Parses analyze.adjust: comma-separated "target ~ covariate + covariate" (malloc'd array).
 * Errors name the formula. */
rd_status rd_analyze_parse_adjust(const char *text, rd_analyze_formula **formulas, int *n,
                                  rd_error *err);

/* resid[i] = y[i] minus its least-squares fit on an intercept and the covariates
 * cov[i * stride + 0 .. ncols) over the complete rows (y and every covariate finite); NaN on
 * the other rows. resid may be y. Collinear covariates are allowed (SVD with a rank cut-off). */
rd_status rd_analyze_residualize(const double *y, const double *cov, int n, int ncols, int stride,
                                 double *resid, rd_error *err);

/* ---- The data: rows, targets, representations --------------------------------------------- */
typedef struct rd_analyze_target {
    char name[RD_ANALYZE_NAME_MAX]; /* "sex", "age", "view", a /meta column, or an adjusted
                                       target's formula name */
    rd_probe_kind kind;             /* logistic: sex (1 = M), view (1 = AP) and int8 columns of
                                       0/1 with -1 unknown (finding labels); others: ridge */
    double *y;                      /* [n] NaN = unknown */
    /* Adjusted targets: the residual of a target on covariates (sex and view as 0/1, numeric
     * columns as value and square), probed by ridge. */
    char adjusted_for[RD_ANALYZE_NAME_MAX * 2]; /* "sex, view"; "" for a raw target */
    int raw; /* index of the unadjusted target in the study's targets, -1 if absent */
} rd_analyze_target;

typedef struct rd_analyze_skip {
    char target[RD_ANALYZE_NAME_MAX];
    char reason[256]; /* "not estimable: outer fold 2 holds no positive image ..." */
} rd_analyze_skip;

typedef struct rd_analyze_rep {
    char encoder[RD_ANALYZE_NAME_MAX];  /* the file's "encoder" attribute, or "raw-pixels" */
    char features[RD_ANALYZE_NAME_MAX]; /* "cls", "patch_mean", or "pixels" */
    char source[RD_PATH_MAX];           /* the embedding file, or the shards folder */
    char *checkpoint, *model_config;    /* attributes of the file (malloc'd; "" if absent) */
    double resolution;                  /* attribute "resolution"; NaN if absent */
    int d;
    float *x;                  /* [n, d] */
    double explained_variance; /* pixels: fraction of the pixel variance the PCA keeps; NaN */
    int knn;                   /* probed by k-NN; x is borrowed from the linear representation */
} rd_analyze_rep;

typedef struct rd_analyze_data {
    int n;             /* rows in the study (chosen splits) */
    int64_t file_rows; /* rows in the embedding files */
    int *file_row;     /* [n] row index in the embedding files */
    char *image_id;    /* n strings at image_id + i * id_stride */
    char *patient_id;  /* n strings at patient_id + i * patient_stride */
    size_t id_stride, patient_stride;
    uint8_t *split; /* [n] */
    int8_t *sex;    /* [n] 0 F, 1 M, -1 unknown */
    double *age;    /* [n] years, NaN unknown (for the data description) */
    int ntargets;
    rd_analyze_target *targets;
    int nreps;
    rd_analyze_rep *reps;     /* main encoder first, then the files' order, raw pixels last */
    rd_analyze_skip *skipped; /* targets left out: fewer than two distinct known values, or a
                                 0/1 target that is not estimable (rd_probe_binary_check) */
    int nskipped;
} rd_analyze_data;

/* A finding label target: a /meta/finding_* column probed as such (not adjusted). */
int rd_analyze_is_finding(const rd_analyze_target *t);

/* Reads the embedding files and keeps the rows of p->splits. Errors name the file (and both
 * files when two disagree on their rows). Collective only in that every rank reads the same
 * files and so reaches the same verdict. */
rd_status rd_analyze_load(const rd_analyze_params *p, rd_analyze_data *data, rd_error *err);
void rd_analyze_data_free(rd_analyze_data *data);

/* Appends a k-NN representation for every representation (same features, probed by k-NN; named
 * "<encoder> kNN"), when p->knn_k > 0. */
rd_status rd_analyze_add_knn_reps(const rd_analyze_params *p, rd_analyze_data *data, rd_error *err);

/* Display name of a representation: the encoder, plus " (features)" when several feature
 * sets are probed, plus " kNN" for a k-NN probe. */
void rd_analyze_rep_name(const rd_analyze_data *data, int rep, char *buf, int size);

/* ---- Raw-pixel baseline ------------------------------------------------------------------- */
/* Area average of a w x h float image to out x out: every output pixel is the mean of the
 * input area it covers (fractional pixels weighted by their overlap). dst is [out, out]. */
void rd_area_downsample(const float *src, int w, int h, int out, float *dst);

/* Principal components of x [n, p] (rows are samples). */
typedef struct rd_pca {
    int p, k;
    double *mean;       /* [p] */
    double *components; /* [k, p] orthonormal rows, by decreasing variance; the largest-|.|
                           entry of each row is positive (a deterministic sign) */
    double *variance;   /* [k] sample variance (n - 1) along each component */
    double total_variance;
} rd_pca;

/* Fits k <= min(p, n - 1) components (eigendecomposition of the covariance, LAPACKE). */
rd_status rd_pca_fit(const float *x, int n, int p, int k, rd_pca *pca, rd_error *err);
/* scores [n, k] = (x - mean) components^T. */
void rd_pca_transform(const rd_pca *pca, const float *x, int n, float *scores);
void rd_pca_free(rd_pca *pca);

/* Appends the "raw-pixels" representation: the images of data's rows from the shards in
 * p->shards_dir, matched by image id (an id missing from the shards, or with another patient
 * there, is an error naming the embedding file and the shards folder), area-averaged to
 * p->pixel_size squared, PCA to p->pixel_components. Collective over comm. */
rd_status rd_analyze_pixel_baseline(MPI_Comm comm, const rd_analyze_params *p,
                                    rd_analyze_data *data, rd_error *err);

/* ---- The study ---------------------------------------------------------------------------- */
typedef struct rd_analyze_cell { /* what the study adds to a probe task and its result */
    double majority_rate;        /* logistic: share of the larger class on the task's rows */
    double *dim_r;               /* [d] per-dimension Pearson / point-biserial r */
    int *top;                    /* [top_dims] dimensions of largest |r| */
} rd_analyze_cell;

typedef struct rd_analyze_pair { /* paired comparison of representations a and b */
    int target, a, b;
    rd_probe_interval diff[RD_PROBE_NMETRICS]; /* metric(a) - metric(b) */
} rd_analyze_pair;

typedef struct rd_analyze_study {
    int ntargets, nreps, top_dims;
    int *group; /* [n] patient of each row (0..npatients-1) */
    int npatients;
    rd_probe_task *tasks;     /* [target * nreps + rep] */
    rd_probe_result *results; /* [target * nreps + rep] */
    rd_analyze_cell *cells;   /* [target * nreps + rep] */
    int npairs;
    rd_analyze_pair *pairs;
    /* Finding labels (rd_analyze_is_finding targets), when the study has any: macro AUROC of
     * every representation (mean of the labels' AUROCs; rd_probe_macro_ci) and its paired
     * differences, for the pairs of representations compared per target. */
    int nlabels;
    int *label;                   /* [nlabels] target indices */
    rd_probe_interval *macro;     /* [nreps] */
    int nmacro_pairs;             /* pairs' target is -1 */
    rd_analyze_pair *macro_pairs; /* diff[RD_PROBE_AUROC] only */
} rd_analyze_study;

/* Pairs compared: every two representations of the same feature set (the raw-pixel baseline
 * belongs to every set) probed alike, and each k-NN probe with the linear probe of the same
 * representation, in data order, for every target (and the macro AUROC). Collective over
 * comm. */
rd_status rd_analyze_run(MPI_Comm comm, const rd_analyze_params *p, const rd_analyze_data *data,
                         rd_analyze_study *study, rd_error *err);
void rd_analyze_study_free(rd_analyze_study *study);

/* The sentence that states a comparison's outcome, e.g. "trained predicts sex better than
 * random-init: ΔAUROC 0.120 [0.080, 0.160]" or "trained and random-init: no significant
 * difference for sex (ΔAUROC 0.010 [-0.030, 0.050])"; a pair of target -1 compares the macro
 * AUROC of the finding labels. *significant receives whether the interval excludes 0 and
 * *winner the better representation (-1 if none). */
void rd_analyze_pair_sentence(const rd_analyze_data *data, const rd_analyze_pair *pair, char *buf,
                              int size, int *significant, int *winner);

/* The ROC curve the report draws for a logistic task's out-of-fold predictions pred [nrows]:
 * each outer fold's ROC (ties as diagonal segments, as they count 1/2 in the AUROC) averaged
 * vertically over folds, weighted by the folds' rows, at false-positive rates
 * 0, 1/(npts-1), ..., 1 (tpr is [npts]). Its area is the study's AUROC (the fold-weighted mean
 * of the folds' AUROCs), up to the grid spacing. */
void rd_analyze_mean_roc(const rd_probe_task *t, const double *pred, int npts, double *tpr);

/* ---- Pretraining metrics (metrics.jsonl) -------------------------------------------------- */
enum { RD_LOSS_MAX_TERMS = 16 };
typedef struct rd_loss_curve {
    int nterms;
    char term[RD_LOSS_MAX_TERMS][RD_ANALYZE_NAME_MAX]; /* keys containing "loss", first seen */
    int npoints;
    double *step;  /* [npoints] "step" or "iteration" */
    double *value; /* [npoints * RD_LOSS_MAX_TERMS] NaN where a line lacks the term */
    int bad_lines; /* lines that are not a JSON object with a numeric step (e.g. torn) */
} rd_loss_curve;

/* Reads one JSON object per line; keeps lines with a numeric "step" (or "iteration"), and of
 * them every numeric key whose name contains "loss". RD_ENOTFOUND if the file is missing. */
rd_status rd_loss_curve_read(const char *path, rd_loss_curve *c, rd_error *err);
void rd_loss_curve_free(rd_loss_curve *c);

/* ---- Outputs ------------------------------------------------------------------------------ */
typedef struct rd_analyze_outputs {
    int nplots;
    char plot[RD_ANALYZE_MAX_PLOTS][RD_ANALYZE_NAME_MAX * 2]; /* relative to output_dir */
    char plot_problem[RD_ERROR_MSG_MAX]; /* why plots are missing ("" = none) */
    int have_loss;                       /* metrics.jsonl found and plotted */
    char loss_note[RD_ERROR_MSG_MAX];
} rd_analyze_outputs;

/* Rank 0 writes report.md, report.json, predictions.csv and the PNG plots into p->output_dir
 * (created if missing). Plotting problems (no gnuplot) are warnings recorded in the report;
 * a file that cannot be written is an error. Collective: every rank returns rank 0's status. */
rd_status rd_analyze_write(MPI_Comm comm, const rd_analyze_params *p, const rd_analyze_data *data,
                           const rd_analyze_study *study, rd_analyze_outputs *out, rd_error *err);

/* The closing summary in the log (rank 0): per target the headline metric of every
 * representation, and every comparison's sentence. */
void rd_analyze_log_summary(const rd_analyze_params *p, const rd_analyze_data *data,
                            const rd_analyze_study *study, const rd_analyze_outputs *out);

/* ---- Runs side by side (analyze.compare) ------------------------------------------------- */
typedef struct rd_compare_row {    /* one result of one report */
    char run[RD_ANALYZE_NAME_MAX]; /* the report folder's name (its parent's if "report") */
    double step;                   /* training step of the main encoder's checkpoint
                                      ("step-0001000.h5"); NaN if its name has none */
    char target[RD_ANALYZE_NAME_MAX];
    char rep[2 * RD_ANALYZE_NAME_MAX + 4];
    int logistic; /* metric: AUROC (1) or R2 (0) */
    double estimate, lo, hi, p_holm;
} rd_compare_row;

/* The results of the report.json in each folder, in order (malloc'd). Errors name the file. */
rd_status rd_analyze_compare_read(char *const *reports, int n, rd_compare_row **rows, int *nrows,
                                  rd_error *err);

/* Rank 0 writes compare.md, compare.csv, a forest plot per target and, when two or more
 * reports carry checkpoint steps, a trajectory plot per target into p->output_dir. Collective:
 * every rank returns rank 0's status. */
rd_status rd_analyze_compare(MPI_Comm comm, const rd_analyze_params *p, rd_error *err);

/* The whole stage from the configuration (analyze.compare set: the comparison instead of a
 * study). Collective. */
rd_status rd_analyze_stage(const rd_config *cfg, MPI_Comm comm, rd_error *err);

#endif
