/* Metrics of predictions, all with optional row weights: a cluster-bootstrap replicate is the
 * same rows weighted by how often their patient was drawn, so one sort serves every
 * replicate and AUROC stays O(n) per replicate. */
#include "probe_internal.h"

#include <math.h>
#include <stdlib.h>

static const char *const metric_names[RD_PROBE_NMETRICS] = {"auroc", "accuracy", "mae", "r2",
                                                            "pearson_r"};

const char *rd_probe_metric_name(rd_probe_metric m) {
    return (m >= 0 && m < RD_PROBE_NMETRICS) ? metric_names[m] : "?";
}

int rd_probe_metric_applies(rd_probe_kind kind, rd_probe_metric m) {
    if (kind == RD_PROBE_LOGISTIC) return m == RD_PROBE_AUROC || m == RD_PROBE_ACCURACY;
    return m == RD_PROBE_MAE || m == RD_PROBE_R2 || m == RD_PROBE_PEARSON;
}

rd_probe_metric rd_probe_primary_metric(rd_probe_kind kind) {
    return kind == RD_PROBE_LOGISTIC ? RD_PROBE_AUROC : RD_PROBE_R2;
}

static inline double weight_at(const double *w, int i) {
    return w ? w[i] : 1.0;
}

/* Total order: by value, then by index (deterministic whatever qsort does with ties). */
static int by_value(const void *pa, const void *pb, void *ctx) {
    const double *v = ctx;
    int a = *(const int *)pa, b = *(const int *)pb;
    if (v[a] < v[b]) return -1;
    if (v[a] > v[b]) return 1;
    return (a > b) - (a < b);
}

rd_status rd_probe_sort_order(const double *value, int n, int *order, rd_error *err) {
    for (int i = 0; i < n; i++) {
        if (isnan(value[i])) return rd_fail(err, RD_ENUMERIC, "probe: value %d is NaN", i);
        order[i] = i;
    }
    qsort_r(order, (size_t)n, sizeof *order, by_value, (void *)value);
    return RD_OK;
}

/* Mann-Whitney: each positive-negative pair counts 1 if the positive scores higher, 1/2 if
 * tied; a sweep over tie groups in ascending score order. */
static double auroc_sorted(const double *score, const double *label, const double *weight,
                           const int *order, int n) {
    double num = 0.0, neg_below = 0.0, pos_total = 0.0;
    for (int i = 0; i < n;) {
        double pos = 0.0, neg = 0.0, s = score[order[i]];
        int j = i;
        for (; j < n && score[order[j]] == s; j++) {
            int k = order[j];
            if (label[k] > 0.5)
                pos += weight_at(weight, k);
            else
                neg += weight_at(weight, k);
        }
        num += pos * (neg_below + 0.5 * neg);
        neg_below += neg;
        pos_total += pos;
        i = j;
    }
    if (pos_total <= 0.0 || neg_below <= 0.0) return NAN;
    return num / (pos_total * neg_below);
}

double rd_probe_auroc(const double *score, const double *label, const double *weight, int n) {
    int *order = malloc((size_t)(n > 0 ? n : 1) * sizeof *order);
    double auc = NAN;
    if (order && rd_probe_sort_order(score, n, order, NULL) == RD_OK)
        auc = auroc_sorted(score, label, weight, order, n);
    free(order);
    return auc;
}

double rd_probe_accuracy(const double *logit, const double *label, const double *weight, int n) {
    double right = 0.0, total = 0.0;
    for (int i = 0; i < n; i++) {
        double w = weight_at(weight, i);
        total += w;
        if ((logit[i] > 0.0) == (label[i] > 0.5)) right += w;
    }
    return total > 0.0 ? right / total : NAN;
}

double rd_probe_mae(const double *pred, const double *y, const double *weight, int n) {
    double sum = 0.0, total = 0.0;
    for (int i = 0; i < n; i++) {
        double w = weight_at(weight, i);
        total += w;
        if (w != 0.0) sum += w * fabs(pred[i] - y[i]);
    }
    return total > 0.0 ? sum / total : NAN;
}

static double weighted_mean(const double *v, const double *weight, int n) {
    double sum = 0.0, total = 0.0;
    for (int i = 0; i < n; i++) {
        double w = weight_at(weight, i);
        total += w;
        if (w != 0.0) sum += w * v[i];
    }
    return total > 0.0 ? sum / total : NAN;
}

double rd_probe_r2(const double *pred, const double *y, const double *weight, int n) {
    double ym = weighted_mean(y, weight, n), sse = 0.0, sst = 0.0;
    for (int i = 0; i < n; i++) {
        double w = weight_at(weight, i);
        if (w == 0.0) continue;
        sse += w * (y[i] - pred[i]) * (y[i] - pred[i]);
        sst += w * (y[i] - ym) * (y[i] - ym);
    }
    return sst > 0.0 ? 1.0 - sse / sst : NAN;
}

double rd_probe_pearson(const double *a, const double *b, const double *weight, int n) {
    double am = weighted_mean(a, weight, n), bm = weighted_mean(b, weight, n);
    double sab = 0.0, saa = 0.0, sbb = 0.0;
    for (int i = 0; i < n; i++) {
        double w = weight_at(weight, i);
        if (w == 0.0) continue;
        sab += w * (a[i] - am) * (b[i] - bm);
        saa += w * (a[i] - am) * (a[i] - am);
        sbb += w * (b[i] - bm) * (b[i] - bm);
    }
    return (saa > 0.0 && sbb > 0.0) ? sab / sqrt(saa * sbb) : NAN;
}

void rd_probe_metrics(rd_probe_kind kind, const double *y, const double *pred, const double *weight,
                      const int *order, int n, double out[RD_PROBE_NMETRICS]) {
    for (int m = 0; m < RD_PROBE_NMETRICS; m++) out[m] = NAN;
    if (kind == RD_PROBE_LOGISTIC) {
        out[RD_PROBE_AUROC] =
            order ? auroc_sorted(pred, y, weight, order, n) : rd_probe_auroc(pred, y, weight, n);
        out[RD_PROBE_ACCURACY] = rd_probe_accuracy(pred, y, weight, n);
    } else {
        out[RD_PROBE_MAE] = rd_probe_mae(pred, y, weight, n);
        out[RD_PROBE_R2] = rd_probe_r2(pred, y, weight, n);
        out[RD_PROBE_PEARSON] = rd_probe_pearson(pred, y, weight, n);
    }
}

void rd_probe_dim_correlations(const float *x, int n, int d, const double *y, double *r) {
    double *xm = calloc((size_t)d, sizeof *xm), *sxx = calloc((size_t)d, sizeof *sxx);
    double *sxy = calloc((size_t)d, sizeof *sxy);
    for (int j = 0; j < d; j++) r[j] = NAN;
    if (!xm || !sxx || !sxy) goto out;
    int count = 0;
    double ym = 0.0, syy = 0.0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(y[i])) continue;
        count++;
        ym += y[i];
        const float *xi = x + (size_t)i * d;
        for (int j = 0; j < d; j++) xm[j] += xi[j];
    }
    if (count == 0) goto out;
    ym /= count;
    for (int j = 0; j < d; j++) xm[j] /= count;
    for (int i = 0; i < n; i++) {
        if (!isfinite(y[i])) continue;
        double dy = y[i] - ym;
        syy += dy * dy;
        const float *xi = x + (size_t)i * d;
        for (int j = 0; j < d; j++) {
            double dx = xi[j] - xm[j];
            sxx[j] += dx * dx;
            sxy[j] += dx * dy;
        }
    }
    for (int j = 0; j < d; j++)
        if (sxx[j] > 0.0 && syy > 0.0) r[j] = sxy[j] / sqrt(sxx[j] * syy);
out:
    free(xm);
    free(sxx);
    free(sxy);
}

/* Larger |r| first, NaN last, ties by index. */
static int by_abs_desc(const void *pa, const void *pb, void *ctx) {
    const double *r = ctx;
    int a = *(const int *)pa, b = *(const int *)pb;
    double ra = isnan(r[a]) ? -1.0 : fabs(r[a]), rb = isnan(r[b]) ? -1.0 : fabs(r[b]);
    if (ra > rb) return -1;
    if (ra < rb) return 1;
    return (a > b) - (a < b);
}

void rd_probe_top_dims(const double *r, int d, int k, int *top) {
    int *idx = malloc((size_t)(d > 0 ? d : 1) * sizeof *idx);
    if (!idx) {
        for (int i = 0; i < k; i++) top[i] = -1;
        return;
    }
    for (int j = 0; j < d; j++) idx[j] = j;
    qsort_r(idx, (size_t)d, sizeof *idx, by_abs_desc, (void *)r);
    for (int i = 0; i < k; i++) top[i] = i < d ? idx[i] : -1;
    free(idx);
}

static int by_double(const void *pa, const void *pb) {
    double a = *(const double *)pa, b = *(const double *)pb;
    return (a > b) - (a < b);
}

double rd_probe_quantile(double *v, int n, double p) {
    if (n <= 0) return NAN;
    qsort(v, (size_t)n, sizeof *v, by_double);
    double h = (n - 1) * p;
    int lo = (int)floor(h);
    if (lo >= n - 1) return v[n - 1];
    if (lo < 0) return v[0];
    return v[lo] + (h - lo) * (v[lo + 1] - v[lo]);
}

rd_status rd_probe_holm(const double *p, int n, double *adjusted, rd_error *err) {
    int *order = malloc((size_t)(n > 0 ? n : 1) * sizeof *order);
    if (!order) return rd_fail(err, RD_ENOMEM, "probe: no memory for the Holm adjustment");
    int m = 0; /* the family: the tested hypotheses */
    for (int i = 0; i < n; i++) {
        adjusted[i] = NAN;
        if (isfinite(p[i])) order[m++] = i;
    }
    /* Ascending p (ties by index); adjusted = running max of (m - rank) p, capped at 1. */
    qsort_r(order, (size_t)m, sizeof *order, by_value, (void *)p);
    double running = 0.0;
    for (int rank = 0; rank < m; rank++) {
        running = fmax(running, fmin(1.0, (m - rank) * p[order[rank]]));
        adjusted[order[rank]] = running;
    }
    free(order);
    return RD_OK;
}
