/* A probe task: the rows with a known target, their patients, and the grouped folds; plus the
 * two random resamplings of patients (bootstrap draws, label permutations). */
#include "probe_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdino/rng.h"

void rd_probe_config_default(rd_probe_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->seed = 0;
    cfg->outer_folds = 5;
    cfg->inner_folds = 4;
    /* 10^-2 .. 10^6 in half decades: from almost unpenalised to almost constant, for
     * standardised features with the loss summed over up to ~10^5 rows. */
    cfg->nlambda = 17;
    for (int l = 0; l < cfg->nlambda; l++) cfg->lambda[l] = pow(10.0, -2.0 + 0.5 * l);
    cfg->bootstrap = 1000;
    cfg->permutations = 199;
    cfg->ci_level = 0.95;
    cfg->knn_temperature = 0.07;
}

static int by_string(const void *pa, const void *pb, void *ctx) {
    const char *const *ids = ctx;
    int a = *(const int *)pa, b = *(const int *)pb;
    int c = strcmp(ids[a], ids[b]);
    return c ? c : (a > b) - (a < b);
}

rd_status rd_probe_group_ids(const char *const *ids, int n, int *group, int *ngroups,
                             rd_error *err) {
    *ngroups = 0;
    for (int i = 0; i < n; i++)
        if (!ids[i] || !ids[i][0])
            return rd_fail(err, RD_EINVAL, "probe: row %d has no patient id", i);
    int *order = malloc((size_t)(n > 0 ? n : 1) * sizeof *order);
    if (!order) return rd_fail(err, RD_ENOMEM, "probe: no memory for %d patient ids", n);
    for (int i = 0; i < n; i++) order[i] = i;
    qsort_r(order, (size_t)n, sizeof *order, by_string, (void *)ids);
    int g = -1;
    for (int k = 0; k < n; k++) {
        if (k == 0 || strcmp(ids[order[k]], ids[order[k - 1]]) != 0) g++;
        group[order[k]] = g;
    }
    *ngroups = g + 1;
    free(order);
    return RD_OK;
}

void rd_probe_sex_target(const int8_t *sex, int n, double *y) {
    for (int i = 0; i < n; i++) y[i] = (sex[i] == 0 || sex[i] == 1) ? (double)sex[i] : NAN;
}

/* Sort keys for fold assignment: more images first, then the seeded shuffle position. */
typedef struct patient_key {
    int patient, count, shuffle;
} patient_key;

static int by_count_desc(const void *pa, const void *pb) {
    const patient_key *a = pa, *b = pb;
    if (a->count != b->count) return a->count > b->count ? -1 : 1;
    return (a->shuffle > b->shuffle) - (a->shuffle < b->shuffle);
}

/* Deals patients[0..np) to k folds, balancing image counts: shuffle (stream/index), then
 * largest patients first, each to the fold holding the fewest images so far. */
static rd_status assign_folds(const rd_probe_task *t, const int *patients, int np, int k,
                              uint32_t stream, uint64_t index, int *fold_of, rd_error *err) {
    patient_key *keys = malloc((size_t)(np > 0 ? np : 1) * sizeof *keys);
    int *perm = malloc((size_t)(np > 0 ? np : 1) * sizeof *perm);
    int64_t *load = calloc((size_t)k, sizeof *load);
    if (!keys || !perm || !load) {
        free(keys);
        free(perm);
        free(load);
        return rd_fail(err, RD_ENOMEM, "probe: no memory to assign %d patients to folds", np);
    }
    rd_rng rng;
    rd_rng_init(&rng, t->cfg.seed, RD_RNG_PROBE, stream, index, 0);
    rd_rng_permutation(&rng, perm, np);
    for (int i = 0; i < np; i++) {
        int p = patients[perm[i]];
        keys[i] = (patient_key){p, t->pat_start[p + 1] - t->pat_start[p], i};
    }
    qsort(keys, (size_t)np, sizeof *keys, by_count_desc);
    for (int i = 0; i < np; i++) {
        int best = 0;
        for (int f = 1; f < k; f++)
            if (load[f] < load[best]) best = f;
        fold_of[keys[i].patient] = best;
        load[best] += keys[i].count;
    }
    free(keys);
    free(perm);
    free(load);
    return RD_OK;
}

typedef struct row_group {
    int group, row;
} row_group;

static int by_group_then_row(const void *pa, const void *pb) {
    const row_group *a = pa, *b = pb;
    if (a->group != b->group) return a->group < b->group ? -1 : 1;
    return (a->row > b->row) - (a->row < b->row);
}

static rd_status check_config(const rd_probe_config *cfg, rd_error *err) {
    if (cfg->outer_folds < 2 || cfg->outer_folds > RD_PROBE_MAX_FOLDS)
        return rd_fail(err, RD_EINVAL, "probe: outer_folds %d must be in [2, %d]", cfg->outer_folds,
                       RD_PROBE_MAX_FOLDS);
    if (cfg->nlambda < 1 || cfg->nlambda > RD_PROBE_MAX_LAMBDAS)
        return rd_fail(err, RD_EINVAL, "probe: %d penalties; need 1 to %d", cfg->nlambda,
                       RD_PROBE_MAX_LAMBDAS);
    if (cfg->nlambda > 1 && (cfg->inner_folds < 2 || cfg->inner_folds > RD_PROBE_MAX_FOLDS))
        return rd_fail(err, RD_EINVAL, "probe: inner_folds %d must be in [2, %d]", cfg->inner_folds,
                       RD_PROBE_MAX_FOLDS);
    for (int l = 0; l < cfg->nlambda; l++)
        if (!(cfg->lambda[l] > 0.0) || !isfinite(cfg->lambda[l]))
            return rd_fail(err, RD_EINVAL, "probe: penalty %g must be positive and finite",
                           cfg->lambda[l]);
    if (cfg->bootstrap < 0 || cfg->permutations < 0)
        return rd_fail(err, RD_EINVAL, "probe: negative bootstrap or permutation count");
    if (!(cfg->ci_level > 0.0 && cfg->ci_level < 1.0))
        return rd_fail(err, RD_EINVAL, "probe: ci_level %g must be in (0, 1)", cfg->ci_level);
    return RD_OK;
}

static int by_double_desc(const void *pa, const void *pb) {
    double a = *(const double *)pa, b = *(const double *)pb;
    return (a < b) - (a > b);
}

/* Rows with a known target, checked; patients compacted to 0..npatients-1 (ascending group). */
static rd_status select_rows(rd_probe_task *t, const double *y, const int *group, rd_error *err) {
    row_group *rg = malloc((size_t)(t->n > 0 ? t->n : 1) * sizeof *rg);
    if (!rg) return rd_fail(err, RD_ENOMEM, "probe: no memory for %d rows", t->n);
    int m = 0, npos = 0;
    rd_status st = RD_OK;
    for (int i = 0; i < t->n && st == RD_OK; i++) {
        if (isnan(y[i])) continue;
        if (t->kind == RD_PROBE_LOGISTIC && y[i] != 0.0 && y[i] != 1.0)
            st = rd_fail(err, RD_EINVAL, "probe: row %d: binary target %g is not 0 or 1", i, y[i]);
        else if (!isfinite(y[i]))
            st = rd_fail(err, RD_ENUMERIC, "probe: row %d: target %g is not finite", i, y[i]);
        else if (group[i] < 0)
            st = rd_fail(err, RD_EINVAL, "probe: row %d: patient %d is negative", i, group[i]);
        for (int j = 0; j < t->d && st == RD_OK; j++)
            if (!isfinite(t->x[(size_t)i * t->d + j]))
                st = rd_fail(err, RD_ENUMERIC, "probe: row %d: feature %d is not finite", i, j);
        npos += y[i] == 1.0;
        rg[m++] = (row_group){group[i], i};
    }
    if (st == RD_OK && t->kind == RD_PROBE_LOGISTIC && (npos == 0 || npos == m))
        st = rd_fail(err, RD_EINVAL,
                     "probe: binary target has one class only (%d of %d rows "
                     "positive)",
                     npos, m);
    if (st != RD_OK) {
        free(rg);
        return st;
    }
    t->nrows = m;
    t->row = malloc((size_t)(m > 0 ? m : 1) * sizeof *t->row);
    t->y = malloc((size_t)(m > 0 ? m : 1) * sizeof *t->y);
    t->patient = malloc((size_t)(m > 0 ? m : 1) * sizeof *t->patient);
    t->pat_rows = malloc((size_t)(m > 0 ? m : 1) * sizeof *t->pat_rows);
    t->pat_start = malloc((size_t)(m + 1) * sizeof *t->pat_start);
    if (!t->row || !t->y || !t->patient || !t->pat_rows || !t->pat_start) {
        free(rg);
        return rd_fail(err, RD_ENOMEM, "probe: no memory for %d rows", m);
    }
    /* Task rows keep x's order; then (group, task row) sorted gives each patient's rows. */
    for (int k = 0; k < m; k++) {
        t->row[k] = rg[k].row;
        t->y[k] = y[rg[k].row];
        rg[k].row = k;
    }
    qsort(rg, (size_t)m, sizeof *rg, by_group_then_row);
    int np = 0;
    for (int k = 0; k < m; k++) {
        if (k == 0 || rg[k].group != rg[k - 1].group) t->pat_start[np++] = k;
        t->pat_rows[k] = rg[k].row;
        t->patient[rg[k].row] = np - 1;
    }
    t->pat_start[np] = m;
    t->npatients = np;
    free(rg);
    return RD_OK;
}

rd_status rd_probe_task_init(rd_probe_task *t, rd_probe_kind kind, const float *x, int n, int d,
                             const double *y, const int *group, const rd_probe_config *cfg,
                             rd_error *err) {
    memset(t, 0, sizeof *t);
    if (kind != RD_PROBE_RIDGE && kind != RD_PROBE_LOGISTIC)
        return rd_fail(err, RD_EINVAL, "probe: unknown model kind %d", (int)kind);
    if (n < 1 || d < 1 || !x || !y || !group)
        return rd_fail(err, RD_EINVAL, "probe: need features, targets and patients for n, d >= 1");
    rd_status st = check_config(cfg, err);
    if (st != RD_OK) return st;
    t->kind = kind;
    t->cfg = *cfg;
    qsort(t->cfg.lambda, (size_t)t->cfg.nlambda, sizeof t->cfg.lambda[0], by_double_desc);
    t->x = x;
    t->n = n;
    t->d = d;
    if ((st = select_rows(t, y, group, err)) != RD_OK) goto fail;
    int np = t->npatients, nout = t->cfg.outer_folds, nin = t->cfg.inner_folds;
    if (np < nout) {
        st = rd_fail(err, RD_EINVAL,
                     "probe: %d patients with a known target; %d outer folds "
                     "need at least %d",
                     np, nout, nout);
        goto fail;
    }
    int *patients = malloc((size_t)np * sizeof *patients);
    t->outer_fold = malloc((size_t)np * sizeof *t->outer_fold);
    if (t->cfg.nlambda > 1) t->inner_fold = malloc((size_t)nout * np * sizeof *t->inner_fold);
    if (!patients || !t->outer_fold || (t->cfg.nlambda > 1 && !t->inner_fold)) {
        free(patients);
        st = rd_fail(err, RD_ENOMEM, "probe: no memory for the folds of %d patients", np);
        goto fail;
    }
    for (int p = 0; p < np; p++) patients[p] = p;
    st = assign_folds(t, patients, np, nout, PROBE_STREAM_OUTER, 0, t->outer_fold, err);
    for (int o = 0; o < nout && t->inner_fold && st == RD_OK; o++) {
        int *inner = t->inner_fold + (size_t)o * np, ntrain = 0;
        for (int p = 0; p < np; p++) {
            inner[p] = -1;
            if (t->outer_fold[p] != o) patients[ntrain++] = p;
        }
        if (ntrain < nin)
            st = rd_fail(err, RD_EINVAL,
                         "probe: outer fold %d leaves %d training patients; %d "
                         "inner folds need more",
                         o, ntrain, nin);
        else
            st =
                assign_folds(t, patients, ntrain, nin, PROBE_STREAM_INNER, (uint64_t)o, inner, err);
    }
    free(patients);
    if (st == RD_OK) return RD_OK;
fail:
    rd_probe_task_free(t);
    return st;
}

void rd_probe_task_free(rd_probe_task *t) {
    rd_probe_task_drop_cache(t);
    free(t->row);
    free(t->y);
    free(t->patient);
    free(t->pat_start);
    free(t->pat_rows);
    free(t->outer_fold);
    free(t->inner_fold);
    memset(t, 0, sizeof *t);
}

static int by_int(const void *pa, const void *pb) {
    int a = *(const int *)pa, b = *(const int *)pb;
    return (a > b) - (a < b);
}

rd_status rd_probe_binary_check(const double *y, int n, const int *group,
                                const rd_probe_config *cfg, int min_per_class, char *why,
                                size_t why_size, rd_error *err) {
    why[0] = '\0';
    int count[2] = {0, 0}, known = 0, patients = 0;
    int *groups = malloc((size_t)(n > 0 ? n : 1) * sizeof *groups);
    if (!groups) return rd_fail(err, RD_ENOMEM, "probe: no memory for %d rows", n);
    for (int i = 0; i < n; i++)
        if (!isnan(y[i])) count[y[i] == 1.0]++, groups[known++] = group[i];
    qsort(groups, (size_t)known, sizeof *groups, by_int);
    for (int k = 0; k < known; k++) patients += k == 0 || groups[k] != groups[k - 1];
    free(groups);
    if (count[1] < min_per_class || count[0] < min_per_class) {
        snprintf(why, why_size,
                 "%d positive and %d negative images with a known label; at least %d of each "
                 "needed",
                 count[1], count[0], min_per_class);
        return RD_OK;
    }
    if (patients < cfg->outer_folds) {
        snprintf(why, why_size, "%d patients with a known label; %d outer folds need at least %d",
                 patients, cfg->outer_folds, cfg->outer_folds);
        return RD_OK;
    }
    /* The folds depend only on the rows with a known label, the patients and the seed: a task
     * on a dummy feature has the study's folds. */
    float *zero = calloc((size_t)n, sizeof *zero);
    if (!zero) return rd_fail(err, RD_ENOMEM, "probe: no memory for %d rows", n);
    rd_probe_config outer_only = *cfg;
    outer_only.nlambda = 1; /* no inner folds */
    outer_only.knn_k = 0;
    rd_probe_task t;
    rd_status st =
        rd_probe_task_init(&t, RD_PROBE_LOGISTIC, zero, n, 1, y, group, &outer_only, err);
    int(*fold)[2] = st ? NULL : calloc((size_t)t.cfg.outer_folds, sizeof *fold);
    if (!st && !fold) st = rd_fail(err, RD_ENOMEM, "probe: no memory for the folds");
    for (int k = 0; !st && k < t.nrows; k++) fold[t.outer_fold[t.patient[k]]][t.y[k] == 1.0]++;
    for (int f = 0; !st && f < t.cfg.outer_folds && !why[0]; f++)
        if (!fold[f][0] || !fold[f][1])
            snprintf(why, why_size,
                     "outer fold %d holds no %s image (%d positive of %d known, %d patients): its "
                     "AUROC is undefined",
                     f, fold[f][1] ? "negative" : "positive", count[1], count[0] + count[1],
                     patients);
    free(fold);
    if (!st) rd_probe_task_free(&t);
    free(zero);
    return st;
}

rd_status rd_probe_permute_labels(const rd_probe_task *t, uint64_t index, double *y_out,
                                  rd_error *err) {
    int np = t->npatients;
    patient_key *keys = malloc((size_t)np * sizeof *keys);
    int *perm = malloc((size_t)np * sizeof *perm);
    if (!keys || !perm) {
        free(keys);
        free(perm);
        return rd_fail(err, RD_ENOMEM, "probe: no memory to permute %d patients", np);
    }
    for (int p = 0; p < np; p++)
        keys[p] = (patient_key){p, t->pat_start[p + 1] - t->pat_start[p], p};
    qsort(keys, (size_t)np, sizeof *keys, by_count_desc);
    rd_rng rng;
    rd_rng_init(&rng, t->cfg.seed, RD_RNG_PROBE, PROBE_STREAM_PERM, index, 0);
    for (int s = 0; s < np;) {
        int e = s;
        while (e < np && keys[e].count == keys[s].count) e++;
        /* Patient keys[s + i] receives the labels of keys[s + perm[i]], row by row. */
        rd_rng_permutation(&rng, perm, e - s);
        for (int i = 0; i < e - s; i++) {
            const int *dst = t->pat_rows + t->pat_start[keys[s + i].patient];
            const int *src = t->pat_rows + t->pat_start[keys[s + perm[i]].patient];
            for (int k = 0; k < keys[s].count; k++) y_out[dst[k]] = t->y[src[k]];
        }
        s = e;
    }
    free(keys);
    free(perm);
    return RD_OK;
}

void probe_bootstrap_rng(uint64_t seed, uint64_t index, rd_rng *rng) {
    rd_rng_init(rng, seed, RD_RNG_PROBE, PROBE_STREAM_BOOT, index, 0);
}

void rd_probe_bootstrap_weights(const rd_probe_task *t, uint64_t index, double *weight) {
    for (int k = 0; k < t->nrows; k++) weight[k] = 0.0;
    rd_rng rng;
    probe_bootstrap_rng(t->cfg.seed, index, &rng);
    for (int draw = 0; draw < t->npatients; draw++) {
        int p = (int)rd_rng_randint(&rng, 0, t->npatients - 1);
        for (int k = t->pat_start[p]; k < t->pat_start[p + 1]; k++) weight[t->pat_rows[k]] += 1.0;
    }
}
