/* Metrics of out-of-fold predictions as the study reports them: each outer fold scored on its
 * own rows, then averaged over folds weighted by their rows' total weight. Pooling all folds'
 * predictions into one AUROC or r would compare scores of different models: with little
 * signal each fold's model is nearly its training prior, which is anti-correlated with the
 * held-out fold's labels, and the pooled AUROC falls well below 0.5 (docs/ANALYSIS.md).
 * R2 is out-of-sample: 1 - SSE / SS about each fold's training mean, summed over folds, so
 * predicting the training mean scores exactly 0 (R2 about the held-out fold's own mean would
 * credit the baseline with knowledge of the test labels and bias small folds downwards). */
#include "probe_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

rd_status probe_oof_init(probe_oof *o, const rd_probe_task *t, const double *y, const double *pred,
                         rd_error *err) {
    memset(o, 0, sizeof *o);
    int n = t->nrows, nf = t->cfg.outer_folds;
    size_t nn = (size_t)(n > 0 ? n : 1);
    o->kind = t->kind;
    o->nfolds = nf;
    o->n = n;
    o->rows = malloc(nn * sizeof *o->rows);
    o->start = calloc((size_t)nf + 1, sizeof *o->start);
    o->y = malloc(nn * sizeof *o->y);
    o->pred = malloc(nn * sizeof *o->pred);
    o->order = malloc(nn * sizeof *o->order);
    o->w = malloc(nn * sizeof *o->w);
    o->train_mean = calloc((size_t)nf, sizeof *o->train_mean);
    if (!o->rows || !o->start || !o->y || !o->pred || !o->order || !o->w || !o->train_mean) {
        probe_oof_free(o);
        return rd_fail(err, RD_ENOMEM, "probe: no memory to score %d predictions", n);
    }
    /* Fold-contiguous layout, task-row order within a fold. */
    for (int k = 0; k < n; k++) o->start[t->outer_fold[t->patient[k]] + 1]++;
    for (int f = 0; f < nf; f++) o->start[f + 1] += o->start[f];
    int *fill = malloc((size_t)nf * sizeof *fill);
    if (!fill) {
        probe_oof_free(o);
        return rd_fail(err, RD_ENOMEM, "probe: no memory to score %d predictions", n);
    }
    memcpy(fill, o->start, (size_t)nf * sizeof *fill);
    for (int k = 0; k < n; k++) {
        int pos = fill[t->outer_fold[t->patient[k]]]++;
        o->rows[pos] = k;
        o->y[pos] = y[k];
        o->pred[pos] = pred[k];
    }
    free(fill);
    double total = 0.0;
    for (int k = 0; k < n; k++) total += y[k];
    for (int f = 0; f < nf; f++) {
        double in_fold = 0.0;
        for (int pos = o->start[f]; pos < o->start[f + 1]; pos++) in_fold += o->y[pos];
        int ntrain = n - (o->start[f + 1] - o->start[f]);
        o->train_mean[f] = ntrain > 0 ? (total - in_fold) / ntrain : NAN;
    }
    for (int f = 0; f < nf; f++) {
        int s = o->start[f];
        rd_status st = rd_probe_sort_order(o->pred + s, o->start[f + 1] - s, o->order + s, err);
        if (st != RD_OK) {
            probe_oof_free(o);
            return st;
        }
    }
    return RD_OK;
}

void probe_oof_metrics(probe_oof *o, const double *weight, double out[RD_PROBE_NMETRICS]) {
    double sum[RD_PROBE_NMETRICS] = {0}, total[RD_PROBE_NMETRICS] = {0}, sse = 0.0, sst = 0.0;
    for (int pos = 0; pos < o->n; pos++) o->w[pos] = weight ? weight[o->rows[pos]] : 1.0;
    for (int f = 0; f < o->nfolds; f++) {
        int s = o->start[f], nf = o->start[f + 1] - s;
        double fold[RD_PROBE_NMETRICS], fold_weight = 0.0;
        for (int k = 0; k < nf; k++) fold_weight += o->w[s + k];
        if (fold_weight <= 0.0) continue;
        rd_probe_metrics(o->kind, o->y + s, o->pred + s, o->w + s, o->order + s, nf, fold);
        for (int k = s; k < s + nf; k++) {
            sse += o->w[k] * (o->y[k] - o->pred[k]) * (o->y[k] - o->pred[k]);
            sst += o->w[k] * (o->y[k] - o->train_mean[f]) * (o->y[k] - o->train_mean[f]);
        }
        for (int m = 0; m < RD_PROBE_NMETRICS; m++)
            if (isfinite(fold[m])) { /* e.g. a fold with one class has no AUROC */
                sum[m] += fold_weight * fold[m];
                total[m] += fold_weight;
            }
    }
    for (int m = 0; m < RD_PROBE_NMETRICS; m++) out[m] = total[m] > 0.0 ? sum[m] / total[m] : NAN;
    if (o->kind == RD_PROBE_RIDGE) out[RD_PROBE_R2] = sst > 0.0 ? 1.0 - sse / sst : NAN;
}

void probe_oof_free(probe_oof *o) {
    free(o->rows);
    free(o->start);
    free(o->y);
    free(o->pred);
    free(o->order);
    free(o->w);
    free(o->train_mean);
    memset(o, 0, sizeof *o);
}

rd_status rd_probe_oof_metrics(const rd_probe_task *t, const double *y, const double *pred,
                               const double *weight, double out[RD_PROBE_NMETRICS], rd_error *err) {
    probe_oof o;
    rd_status st = probe_oof_init(&o, t, y ? y : t->y, pred, err);
    if (st != RD_OK) return st;
    probe_oof_metrics(&o, weight, out);
    probe_oof_free(&o);
    return RD_OK;
}
