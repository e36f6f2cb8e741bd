#include "rdino/targets.h"

#include <math.h>
#include <string.h>

/* sums[k] = sum over rows of x[r, k], rows in order (deterministic for any thread count). */
static void column_sums(double *sums, const float *x, int rows, int K) {
#pragma omp parallel for schedule(static)
    for (int k0 = 0; k0 < K; k0 += 256) {
        int k1 = k0 + 256 < K ? k0 + 256 : K;
        for (int k = k0; k < k1; k++) sums[k] = 0.0;
        for (int r = 0; r < rows; r++) {
            const float *row = x + (size_t)r * K;
            for (int k = k0; k < k1; k++) sums[k] += row[k];
        }
    }
}

rd_status rd_sinkhorn_targets(float *q, const float *logits, int rows, int K, double temp,
                              int iterations, const rd_reducer *red, double *work, rd_error *err) {
    size_t n = (size_t)rows * K;
    /* A global max subtracted before exp cancels in the first normalisation. */
    double gmax = -INFINITY;
    for (size_t i = 0; i < n; i++) gmax = fmax(gmax, (double)logits[i]);
    gmax /= temp;
    rd_status st = rd_reduce(red, RD_REDUCE_MAX, &gmax, 1, err);
    if (st) return st;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) q[i] = expf((float)((double)logits[i] / temp - gmax));
    column_sums(work, q, rows, K);
    double mass = 0.0;
    for (int k = 0; k < K; k++) mass += work[k];
    double totals[2] = {mass, (double)rows};
    if ((st = rd_reduce(red, RD_REDUCE_SUM, totals, 2, err))) return st;
    double b_tot = totals[1];
    if (b_tot <= 0) return RD_OK; /* no rows on any rank */
    float inv_mass = (float)(1.0 / totals[0]);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) q[i] *= inv_mass;
    for (int it = 0; it < iterations; it++) {
        column_sums(work, q, rows, K);
        if ((st = rd_reduce(red, RD_REDUCE_SUM, work, (size_t)K, err))) return st;
        for (int k = 0; k < K; k++) work[k] = 1.0 / (work[k] * K);
        /* Each row: prototype scaling, then divide by its mass (and by B_tot except in the
         * last iteration, where the final "Q *= B_tot" cancels it). */
        double row_scale = it == iterations - 1 ? 1.0 : b_tot;
#pragma omp parallel for schedule(static)
        for (int r = 0; r < rows; r++) {
            float *row = q + (size_t)r * K;
            double c = 0.0;
            for (int k = 0; k < K; k++) {
                row[k] = (float)(row[k] * work[k]);
                c += row[k];
            }
            float inv = (float)(1.0 / (c * row_scale));
            for (int k = 0; k < K; k++) row[k] *= inv;
        }
    }
    if (iterations == 0) {
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) q[i] = (float)(q[i] * b_tot);
    }
    return RD_OK;
}

void rd_centering_targets(float *q, const float *logits, const float *center, int rows, int K,
                          double temp) {
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) {
        const float *t = logits + (size_t)r * K;
        float *out = q + (size_t)r * K;
        double mx = -INFINITY;
        for (int k = 0; k < K; k++) mx = fmax(mx, ((double)t[k] - center[k]) / temp);
        double s = 0.0;
        for (int k = 0; k < K; k++) {
            out[k] = expf((float)(((double)t[k] - center[k]) / temp - mx));
            s += out[k];
        }
        float inv = (float)(1.0 / s);
        for (int k = 0; k < K; k++) out[k] *= inv;
    }
}

rd_status rd_center_init(rd_center *c, int K, double momentum, rd_center_mode mode, rd_arena *arena,
                         rd_error *err) {
    memset(c, 0, sizeof *c);
    c->K = K;
    c->momentum = momentum;
    c->mode = mode;
    c->value = rd_arena_floats(arena, (size_t)K);
    c->pending = rd_arena_alloc(arena, (size_t)(K + 1) * sizeof(double));
    if (arena->base && (!c->value || !c->pending))
        return rd_fail(err, RD_ENOMEM, "arena '%s' too small for a centre of %d prototypes",
                       arena->name, K);
    if (c->value) memset(c->value, 0, (size_t)K * sizeof(float));
    return RD_OK;
}

void rd_center_apply_pending(rd_center *c) {
    if (!c->has_pending) return;
    const float m = (float)c->momentum, one_m = (float)(1.0 - c->momentum);
    double count = c->pending[c->K];
    for (int k = 0; k < c->K; k++)
        c->value[k] = c->value[k] * m + (float)(c->pending[k] / count) * one_m;
    c->has_pending = 0;
}

rd_status rd_center_accumulate(rd_center *c, const float *logits, int rows, const rd_reducer *red,
                               rd_error *err) {
    const int K = c->K;
    column_sums(c->pending, logits, rows, K);
    c->pending[K] = rows;
    if (c->mode == RD_CENTER_MEAN_OF_RANK_MEANS) {
        /* Each rank contributes its mean with weight 1; a rank without rows contributes
         * nothing (DINOv2 would produce NaN). */
        for (int k = 0; k < K; k++) c->pending[k] = rows > 0 ? c->pending[k] / rows : 0.0;
        c->pending[K] = rows > 0 ? 1.0 : 0.0;
    }
    rd_status st = rd_reduce(red, RD_REDUCE_SUM, c->pending, (size_t)K + 1, err);
    if (st) return st;
    c->has_pending = c->pending[K] > 0;
    return RD_OK;
}
