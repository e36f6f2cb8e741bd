/* Shared pieces of the probe module (not part of the public API). */
#ifndef RDINO_PROBE_INTERNAL_H
#define RDINO_PROBE_INTERNAL_H

#include <stddef.h>

#include "rdino/probe.h"
#include "rdino/rng.h"

/* rd_rng epochs of the RD_RNG_PROBE purpose: one stream family per kind of random choice. */
enum {
    PROBE_STREAM_OUTER = 0,
    PROBE_STREAM_INNER = 1,
    PROBE_STREAM_BOOT = 2,
    PROBE_STREAM_PERM = 3
};

/* The generator of bootstrap replicate `index`: npatients draws of rd_rng_randint(rng, 0,
 * npatients - 1) from it are the replicate's patients (rd_probe_bootstrap_weights, and
 * rd_probe_macro_ci over the patients of all rows). */
void probe_bootstrap_rng(uint64_t seed, uint64_t index, rd_rng *rng);

/* z = x - column means of x [n, d] (mean is [d]). */
void probe_center(const double *x, int n, int d, double *mean, double *z);
/* RD_ENUMERIC naming the first non-finite element ("feature 12 is not finite"). */
rd_status probe_check_finite(const double *v, size_t n, const char *what, rd_error *err);

/* An orthonormal basis of the row space of a centred z [n, d] when n < d, so that fits on
 * the n x r matrix z * map are exactly the fits on z (w = map * beta; the penalty is the same
 * because map has orthonormal columns). map == NULL means the identity (r == d). */
typedef struct probe_basis {
    int d, r;
    double *map; /* [d, r] or NULL */
} probe_basis;

rd_status probe_basis_build(const double *z, int n, int d, probe_basis *basis, rd_error *err);
/* out [n, r] = z * map (or a copy of z). */
void probe_basis_project(const probe_basis *basis, const double *z, int n, double *out);
void probe_basis_free(probe_basis *basis);

/* Ridge on a centred z: eigendecomposition of the Gram matrix of z in its basis. */
typedef struct probe_ridge_factor {
    probe_basis basis;
    double *q; /* [r, r] eigenvectors (columns) */
    double *s; /* [r] eigenvalues (clamped at 0) */
} probe_ridge_factor;

rd_status probe_ridge_factor_build(const double *z, int n, int d, probe_ridge_factor *f,
                                   rd_error *err);
/* w [nlambda, d] from h = z^T (y - mean y) [d]. */
rd_status probe_ridge_coefs(const probe_ridge_factor *f, const double *h, const double *lambda,
                            int nlambda, double *w, rd_error *err);
void probe_ridge_factor_free(probe_ridge_factor *f);

/* Newton's method for L2 logistic regression on f [n, r] (see rd_probe_logistic_fit);
 * beta [r] and b hold the start and receive the solution. */
rd_status probe_logistic_newton(const double *f, const double *y, int n, int r, double lambda,
                                double *beta, double *b, int *iterations, rd_error *err);
/* log(1 + exp(m)) - y m, the logistic loss of logit m for label y, without overflow. */
double probe_logloss(double m, double y);
/* A start for the intercept: logit of the smoothed mean label. */
double probe_prior_logit(const double *y, int n);

/* Out-of-fold predictions laid out fold by fold, each fold sorted once, for scoring many
 * bootstrap weightings in O(n) each (see rd_probe_oof_metrics). */
typedef struct probe_oof {
    rd_probe_kind kind;
    int nfolds, n;
    int *rows;          /* [n] task row at each position */
    int *start;         /* [nfolds + 1] */
    double *y;          /* [n] labels by position */
    double *pred;       /* [n] predictions by position */
    int *order;         /* [n] per fold: positions relative to start[f], ascending pred */
    double *train_mean; /* [nfolds] mean label of each fold's training rows (R2 baseline) */
    double *w;          /* [n] scratch: weights by position */
} probe_oof;

rd_status probe_oof_init(probe_oof *o, const rd_probe_task *t, const double *y, const double *pred,
                         rd_error *err);
/* weight: per task row, NULL = 1. */
void probe_oof_metrics(probe_oof *o, const double *weight, double out[RD_PROBE_NMETRICS]);
void probe_oof_free(probe_oof *o);

/* Per-rank cache of one CV split's ridge factorisation (standardisation + factor). */
struct rd_probe_ridge_slot {
    int built;
    double *mean, *inv_std; /* [d] */
    probe_ridge_factor factor;
};

#endif
