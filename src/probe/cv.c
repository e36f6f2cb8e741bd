/* Nested grouped cross-validation. A "split" is one training/validation pair of task rows:
 * the outer fold o (train on the other folds' patients, predict fold o), or inner fold i
 * within outer fold o's training patients. Features are standardised on each split's
 * training rows. Ridge keeps each split's factorisation (slot) because permutation refits
 * change only the labels, so they cost O(n d) per split instead of O(n d^2). */
#include "probe_internal.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int inner_count(const rd_probe_task *t) {
    return t->cfg.nlambda > 1 ? t->cfg.inner_folds : 0;
}

static int slot_count(const rd_probe_task *t) {
    return t->cfg.outer_folds * (inner_count(t) + 1);
}

/* The slot of a split: inner < 0 is the outer split. */
static int slot_of(const rd_probe_task *t, int outer, int inner) {
    return outer * (inner_count(t) + 1) + (inner < 0 ? inner_count(t) : inner);
}

/* Task rows of one side of a split, ascending. */
static int split_rows(const rd_probe_task *t, int outer, int inner, int train, int *out) {
    int m = 0;
    for (int k = 0; k < t->nrows; k++) {
        int p = t->patient[k];
        int side;
        if (inner < 0) {
            side = t->outer_fold[p] != outer;
        } else {
            if (t->outer_fold[p] == outer) continue;
            side = t->inner_fold[(size_t)outer * t->npatients + p] != inner;
        }
        if (side == train) out[m++] = k;
    }
    return m;
}

void rd_probe_task_drop_cache(rd_probe_task *t) {
    if (!t->cache) return;
    for (int s = 0; s < slot_count(t); s++) {
        free(t->cache[s].mean);
        free(t->cache[s].inv_std);
        probe_ridge_factor_free(&t->cache[s].factor);
    }
    free(t->cache);
    t->cache = NULL;
}

/* x row indices of task rows. */
static int *x_rows(const rd_probe_task *t, const int *rows, int m) {
    int *xr = malloc((size_t)(m > 0 ? m : 1) * sizeof *xr);
    if (xr)
        for (int k = 0; k < m; k++) xr[k] = t->row[rows[k]];
    return xr;
}

static rd_status ridge_slot(rd_probe_task *t, int slot, const int *train, int ntrain,
                            struct rd_probe_ridge_slot **out, rd_error *err) {
    if (!t->cache) {
        t->cache = calloc((size_t)slot_count(t), sizeof *t->cache);
        if (!t->cache) return rd_fail(err, RD_ENOMEM, "probe: no memory for the ridge cache");
    }
    struct rd_probe_ridge_slot *s = &t->cache[slot];
    *out = s;
    if (s->built) return RD_OK;
    int d = t->d;
    int *xr = x_rows(t, train, ntrain);
    double *z = malloc((size_t)(ntrain > 0 ? ntrain : 1) * d * sizeof *z);
    s->mean = malloc((size_t)d * sizeof *s->mean);
    s->inv_std = malloc((size_t)d * sizeof *s->inv_std);
    rd_status st = RD_OK;
    if (!xr || !z || !s->mean || !s->inv_std) {
        st = rd_fail(err, RD_ENOMEM, "probe: no memory to standardise %d x %d", ntrain, d);
    } else {
        rd_probe_standardize_fit(t->x, d, xr, ntrain, s->mean, s->inv_std);
        rd_probe_standardize_apply(t->x, d, xr, ntrain, s->mean, s->inv_std, z);
        st = probe_ridge_factor_build(z, ntrain, d, &s->factor, err);
    }
    free(xr);
    free(z);
    if (st == RD_OK) {
        s->built = 1;
    } else {
        free(s->mean);
        free(s->inv_std);
        s->mean = s->inv_std = NULL;
    }
    return st;
}

/* out [nlambda, nval]: predictions for the validation rows, one row per penalty. */
static rd_status ridge_predict(rd_probe_task *t, int slot, const int *train, int ntrain,
                               const int *val, int nval, const double *y, const double *lambda,
                               int nlambda, double *out, rd_error *err) {
    struct rd_probe_ridge_slot *s = NULL;
    rd_status st = ridge_slot(t, slot, train, ntrain, &s, err);
    if (st != RD_OK) return st;
    int d = t->d;
    double *h = calloc((size_t)d, sizeof *h), *w = malloc((size_t)nlambda * d * sizeof *w);
    if (!h || !w) {
        st = rd_fail(err, RD_ENOMEM, "probe: no memory for ridge predictions");
        goto out;
    }
    double ymean = 0.0;
    for (int k = 0; k < ntrain; k++) ymean += y[train[k]];
    ymean /= ntrain;
    /* h = Z^T (y - mean y), Z the standardised training rows, computed from x directly. */
    for (int k = 0; k < ntrain; k++) {
        const float *xr = t->x + (size_t)t->row[train[k]] * d;
        double yc = y[train[k]] - ymean;
        for (int j = 0; j < d; j++) h[j] += (xr[j] - s->mean[j]) * yc;
    }
    for (int j = 0; j < d; j++) h[j] *= s->inv_std[j];
    if ((st = probe_ridge_coefs(&s->factor, h, lambda, nlambda, w, err)) != RD_OK) goto out;
    for (int l = 0; l < nlambda; l++) {
        double *wl = w + (size_t)l * d, offset = ymean;
        for (int j = 0; j < d; j++) {
            wl[j] *= s->inv_std[j]; /* weights on raw x */
            offset -= s->mean[j] * wl[j];
        }
        for (int v = 0; v < nval; v++) {
            const float *xr = t->x + (size_t)t->row[val[v]] * d;
            double acc = offset;
            for (int j = 0; j < d; j++) acc += xr[j] * wl[j];
            out[(size_t)l * nval + v] = acc;
        }
    }
out:
    free(h);
    free(w);
    return st;
}

/* out [nlambda, nval]: logits for the validation rows along the penalty path (descending,
 * each fit warm-started from the previous). */
static rd_status logistic_predict(const rd_probe_task *t, const int *train, int ntrain,
                                  const int *val, int nval, const double *y, const double *lambda,
                                  int nlambda, double *out, rd_error *err) {
    int d = t->d;
    double *ytr = malloc((size_t)ntrain * sizeof *ytr);
    if (!ytr) return rd_fail(err, RD_ENOMEM, "probe: no memory for %d labels", ntrain);
    int npos = 0;
    for (int k = 0; k < ntrain; k++) npos += (ytr[k] = y[train[k]]) == 1.0;
    if (npos == 0 || npos == ntrain) {
        /* One class only: no slope can be learnt; predict the smoothed training prior. */
        double prior = probe_prior_logit(ytr, ntrain);
        for (size_t i = 0; i < (size_t)nlambda * nval; i++) out[i] = prior;
        free(ytr);
        return RD_OK;
    }
    int *xtr = x_rows(t, train, ntrain), *xva = x_rows(t, val, nval);
    double *mean = malloc((size_t)d * sizeof *mean), *inv_std = malloc((size_t)d * sizeof *inv_std);
    double *ztr = malloc((size_t)ntrain * d * sizeof *ztr);
    double *zva = malloc((size_t)(nval > 0 ? nval : 1) * d * sizeof *zva);
    double *ftr = NULL, *fva = NULL, *beta = NULL;
    probe_basis basis = {d, d, NULL};
    rd_status st = RD_OK;
    if (!xtr || !xva || !mean || !inv_std || !ztr || !zva) {
        st = rd_fail(err, RD_ENOMEM, "probe: no memory to standardise %d x %d", ntrain, d);
        goto out;
    }
    rd_probe_standardize_fit(t->x, d, xtr, ntrain, mean, inv_std);
    rd_probe_standardize_apply(t->x, d, xtr, ntrain, mean, inv_std, ztr);
    rd_probe_standardize_apply(t->x, d, xva, nval, mean, inv_std, zva);
    if ((st = probe_basis_build(ztr, ntrain, d, &basis, err)) != RD_OK) goto out;
    int r = basis.r;
    beta = calloc((size_t)(r > 0 ? r : 1), sizeof *beta);
    if (basis.map) {
        ftr = malloc((size_t)ntrain * (r > 0 ? r : 1) * sizeof *ftr);
        fva = malloc((size_t)(nval > 0 ? nval : 1) * (r > 0 ? r : 1) * sizeof *fva);
    }
    if (!beta || (basis.map && (!ftr || !fva))) {
        st = rd_fail(err, RD_ENOMEM, "probe: no memory for logistic features");
        goto out;
    }
    if (basis.map) {
        probe_basis_project(&basis, ztr, ntrain, ftr);
        probe_basis_project(&basis, zva, nval, fva);
    }
    const double *f = ftr ? ftr : ztr, *fv = fva ? fva : zva;
    double b = probe_prior_logit(ytr, ntrain);
    for (int l = 0; l < nlambda; l++) {
        st = probe_logistic_newton(f, ytr, ntrain, r, lambda[l], beta, &b, NULL, err);
        if (st != RD_OK) goto out;
        double *ol = out + (size_t)l * nval;
        for (int v = 0; v < nval; v++) ol[v] = b;
        if (r > 0 && nval > 0)
            cblas_dgemv(CblasRowMajor, CblasNoTrans, nval, r, 1.0, fv, r, beta, 1, 1.0, ol, 1);
    }
out:
    probe_basis_free(&basis);
    free(ytr);
    free(xtr);
    free(xva);
    free(mean);
    free(inv_std);
    free(ztr);
    free(zva);
    free(ftr);
    free(fva);
    free(beta);
    return st;
}

static rd_status split_predict(rd_probe_task *t, int outer, int inner, const int *train, int ntrain,
                               const int *val, int nval, const double *y, const double *lambda,
                               int nlambda, double *out, rd_error *err) {
    if (t->kind == RD_PROBE_RIDGE)
        return ridge_predict(t, slot_of(t, outer, inner), train, ntrain, val, nval, y, lambda,
                             nlambda, out, err);
    return logistic_predict(t, train, ntrain, val, nval, y, lambda, nlambda, out, err);
}

/* Validation loss used to choose the penalty: squared error or log-loss. */
static double split_loss(rd_probe_kind kind, double pred, double y) {
    return kind == RD_PROBE_RIDGE ? (pred - y) * (pred - y) : probe_logloss(pred, y);
}

/* An outer fold of the k-NN probe: the fold's rows from the other folds' rows. */
static rd_status knn_fold(const rd_probe_task *t, int fold, const double *y, double *pred,
                          rd_error *err) {
    int m = t->nrows;
    int *train = malloc((size_t)m * sizeof *train), *test = malloc((size_t)m * sizeof *test);
    double *ytrain = malloc((size_t)m * sizeof *ytrain), *out = malloc((size_t)m * sizeof *out);
    rd_status st = RD_OK;
    if (!train || !test || !ytrain || !out) {
        st = rd_fail(err, RD_ENOMEM, "probe: no memory for a fold of %d rows", m);
    } else {
        int ntrain = split_rows(t, fold, -1, 1, train), ntest = split_rows(t, fold, -1, 0, test);
        for (int k = 0; k < ntrain; k++) ytrain[k] = y[train[k]];
        /* Task rows to rows of x, in place of the row lists. */
        for (int k = 0; k < ntrain; k++) train[k] = t->row[train[k]];
        int *xrow = malloc((size_t)(ntest > 0 ? ntest : 1) * sizeof *xrow);
        if (!xrow) st = rd_fail(err, RD_ENOMEM, "probe: no memory for a fold of %d rows", m);
        for (int v = 0; !st && v < ntest; v++) xrow[v] = t->row[test[v]];
        if (!st)
            st = rd_probe_knn_predict(t->x, t->d, train, ntrain, ytrain, xrow, ntest, t->cfg.knn_k,
                                      t->cfg.knn_temperature, out, err);
        double shift = t->kind == RD_PROBE_LOGISTIC ? 0.5 : 0.0;
        for (int v = 0; !st && v < ntest; v++) pred[test[v]] = out[v] - shift;
        free(xrow);
    }
    free(train);
    free(test);
    free(ytrain);
    free(out);
    return st;
}

rd_status rd_probe_cv_fold(rd_probe_task *t, int fold, const double *y, double *pred,
                           double *lambda_chosen, rd_error *err) {
    if (fold < 0 || fold >= t->cfg.outer_folds)
        return rd_fail(err, RD_EINVAL, "probe: outer fold %d of %d", fold, t->cfg.outer_folds);
    if (!y) y = t->y;
    if (t->cfg.knn_k > 0) {
        *lambda_chosen = NAN;
        rd_status knn = knn_fold(t, fold, y, pred, err);
        return knn != RD_OK ? rd_wrap(err, "outer fold %d", fold) : RD_OK;
    }
    int nl = t->cfg.nlambda, m = t->nrows;
    int *train = malloc((size_t)m * sizeof *train), *val = malloc((size_t)m * sizeof *val);
    double *out = malloc((size_t)nl * m * sizeof *out), score[RD_PROBE_MAX_LAMBDAS] = {0};
    rd_status st = RD_OK;
    if (!train || !val || !out) {
        st = rd_fail(err, RD_ENOMEM, "probe: no memory for a fold of %d rows", m);
        goto out;
    }
    int best = 0;
    for (int i = 0; i < inner_count(t); i++) {
        int ntrain = split_rows(t, fold, i, 1, train), nval = split_rows(t, fold, i, 0, val);
        st = split_predict(t, fold, i, train, ntrain, val, nval, y, t->cfg.lambda, nl, out, err);
        if (st != RD_OK) goto out;
        for (int l = 0; l < nl; l++)
            for (int v = 0; v < nval; v++)
                score[l] += split_loss(t->kind, out[(size_t)l * nval + v], y[val[v]]);
    }
    /* Lambdas descend, so the strict < keeps the larger penalty on ties. */
    for (int l = 1; l < nl; l++)
        if (score[l] < score[best]) best = l;
    /* Refit on the whole training set; logistic follows the path down to the chosen penalty. */
    int first = t->kind == RD_PROBE_RIDGE ? best : 0, count = best - first + 1;
    int ntrain = split_rows(t, fold, -1, 1, train), ntest = split_rows(t, fold, -1, 0, val);
    st = split_predict(t, fold, -1, train, ntrain, val, ntest, y, t->cfg.lambda + first, count, out,
                       err);
    if (st != RD_OK) goto out;
    for (int v = 0; v < ntest; v++) pred[val[v]] = out[(size_t)(count - 1) * ntest + v];
    *lambda_chosen = t->cfg.lambda[best];
out:
    free(train);
    free(val);
    free(out);
    if (st != RD_OK) rd_wrap(err, "outer fold %d", fold);
    return st;
}

rd_status rd_probe_cv(rd_probe_task *t, const double *y, double *pred, double *lambda_chosen,
                      rd_error *err) {
    for (int o = 0; o < t->cfg.outer_folds; o++) {
        rd_status st = rd_probe_cv_fold(t, o, y, pred, &lambda_chosen[o], err);
        if (st != RD_OK) return st;
    }
    return RD_OK;
}

rd_status rd_probe_permutation_stat(rd_probe_task *t, uint64_t index, double *stat, rd_error *err) {
    double *yp = malloc((size_t)t->nrows * sizeof *yp),
           *pred = malloc((size_t)t->nrows * sizeof *pred);
    double lambda[RD_PROBE_MAX_FOLDS], m[RD_PROBE_NMETRICS];
    rd_status st = RD_OK;
    if (!yp || !pred)
        st = rd_fail(err, RD_ENOMEM, "probe: no memory for a permutation of %d rows", t->nrows);
    if (st == RD_OK) st = rd_probe_permute_labels(t, index, yp, err);
    if (st == RD_OK) st = rd_probe_cv(t, yp, pred, lambda, err);
    if (st == RD_OK) st = rd_probe_oof_metrics(t, yp, pred, NULL, m, err);
    if (st == RD_OK) *stat = m[rd_probe_primary_metric(t->kind)];
    free(yp);
    free(pred);
    return st;
}
