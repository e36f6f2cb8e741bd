/* The study driver: cross-validation, cluster-bootstrap intervals, permutation tests and
 * paired encoder comparisons, each phase a set of work units spread by rd_probe_run_units. */
#include "probe_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- bootstrap ---- */

typedef struct boot_ctx {
    const rd_probe_task *t;
    probe_oof a, b; /* b unused (n == 0) without a second encoder */
    double *weight; /* [nrows] scratch of this rank */
} boot_ctx;

/* Metrics of a, or of a minus those of b, with row weights (NULL = 1). */
static void paired_metrics(boot_ctx *c, const double *weight, double *out) {
    probe_oof_metrics(&c->a, weight, out);
    if (c->b.rows) {
        double other[RD_PROBE_NMETRICS];
        probe_oof_metrics(&c->b, weight, other);
        for (int m = 0; m < RD_PROBE_NMETRICS; m++) out[m] -= other[m];
    }
}

static rd_status boot_unit(void *vctx, int unit, double *result, rd_error *err) {
    (void)err;
    boot_ctx *c = vctx;
    rd_probe_bootstrap_weights(c->t, (uint64_t)unit, c->weight);
    paired_metrics(c, c->weight, result);
    return RD_OK;
}

rd_status rd_probe_bootstrap_ci(MPI_Comm comm, const rd_probe_task *t, const double *pred,
                                const double *pred_b, rd_probe_interval out[RD_PROBE_NMETRICS],
                                rd_error *err) {
    int n = t->nrows, nboot = t->cfg.bootstrap;
    boot_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.t = t;
    ctx.weight = malloc((size_t)(n > 0 ? n : 1) * sizeof *ctx.weight);
    double *reps = malloc((size_t)(nboot > 0 ? nboot : 1) * RD_PROBE_NMETRICS * sizeof *reps);
    double *column = malloc((size_t)(nboot > 0 ? nboot : 1) * sizeof *column);
    rd_status st = RD_OK;
    if (!ctx.weight || !reps || !column) {
        st = rd_fail(err, RD_ENOMEM, "probe: no memory to bootstrap %d rows", n);
        goto out;
    }
    if ((st = probe_oof_init(&ctx.a, t, t->y, pred, err)) != RD_OK) goto out;
    if (pred_b && (st = probe_oof_init(&ctx.b, t, t->y, pred_b, err)) != RD_OK) goto out;
    double estimate[RD_PROBE_NMETRICS];
    paired_metrics(&ctx, NULL, estimate);
    st = rd_probe_run_units(comm, nboot, RD_PROBE_NMETRICS, boot_unit, &ctx, NULL, reps, err);
    if (st != RD_OK) goto out;
    double alpha = 1.0 - t->cfg.ci_level;
    for (int m = 0; m < RD_PROBE_NMETRICS; m++) {
        rd_probe_interval *iv = &out[m];
        iv->estimate = iv->lo = iv->hi = NAN;
        iv->replicates = 0;
        if (!rd_probe_metric_applies(t->kind, (rd_probe_metric)m)) continue;
        iv->estimate = estimate[m];
        int valid = 0;
        for (int b = 0; b < nboot; b++) {
            double v = reps[(size_t)b * RD_PROBE_NMETRICS + m];
            if (isfinite(v)) column[valid++] = v;
        }
        iv->replicates = valid;
        if (valid > 0) {
            iv->lo = rd_probe_quantile(column, valid, 0.5 * alpha);
            iv->hi = rd_probe_quantile(column, valid, 1.0 - 0.5 * alpha);
        }
    }
out:
    probe_oof_free(&ctx.a);
    probe_oof_free(&ctx.b);
    free(ctx.weight);
    free(reps);
    free(column);
    return st;
}

/* ---- macro averages over tasks ---- */

typedef struct macro_ctx {
    const rd_probe_task *const *tasks;
    int ntasks, n, ngroups;
    const int *group;
    rd_probe_metric metric;
    probe_oof *a, *b; /* [ntasks]; b: none (NULL) without a second representation */
    double *count;    /* [ngroups] scratch: draws of each patient */
    double *weight;   /* [max nrows] scratch */
} macro_ctx;

/* Mean over the tasks of the metric (of a, or of a minus b) with the patients weighted by count
 * (NULL = 1); NaN when any task's metric is undefined. */
static double macro_mean(macro_ctx *c, const double *count) {
    double sum = 0.0;
    for (int i = 0; i < c->ntasks; i++) {
        const rd_probe_task *t = c->tasks[i];
        for (int k = 0; count && k < t->nrows; k++) c->weight[k] = count[c->group[t->row[k]]];
        double m[RD_PROBE_NMETRICS], other[RD_PROBE_NMETRICS];
        probe_oof_metrics(&c->a[i], count ? c->weight : NULL, m);
        if (c->b) probe_oof_metrics(&c->b[i], count ? c->weight : NULL, other);
        sum += m[c->metric] - (c->b ? other[c->metric] : 0.0);
    }
    return sum / c->ntasks;
}

static rd_status macro_unit(void *vctx, int unit, double *result, rd_error *err) {
    (void)err;
    macro_ctx *c = vctx;
    rd_rng rng;
    probe_bootstrap_rng(c->tasks[0]->cfg.seed, (uint64_t)unit, &rng);
    for (int g = 0; g < c->ngroups; g++) c->count[g] = 0.0;
    for (int draw = 0; draw < c->ngroups; draw++)
        c->count[rd_rng_randint(&rng, 0, c->ngroups - 1)] += 1.0;
    *result = macro_mean(c, c->count);
    return RD_OK;
}

rd_status rd_probe_macro_ci(MPI_Comm comm, const rd_probe_task *const *tasks,
                            const double *const *pred, const double *const *pred_b, int ntasks,
                            const int *group, int ngroups, rd_probe_metric metric,
                            rd_probe_interval *out, rd_error *err) {
    out->estimate = out->lo = out->hi = NAN;
    out->replicates = 0;
    if (ntasks < 1) return rd_fail(err, RD_EINVAL, "probe: a macro average needs a task");
    const rd_probe_config *cfg = &tasks[0]->cfg;
    int max_rows = 1;
    for (int i = 0; i < ntasks; i++) {
        const rd_probe_config *c = &tasks[i]->cfg;
        if (tasks[i]->n != tasks[0]->n || tasks[i]->kind != tasks[0]->kind ||
            c->seed != cfg->seed || c->bootstrap != cfg->bootstrap || c->ci_level != cfg->ci_level)
            return rd_fail(err, RD_EINVAL,
                           "probe: a macro average needs tasks of one kind on the same rows, with "
                           "the same seed and bootstrap settings");
        if (tasks[i]->nrows > max_rows) max_rows = tasks[i]->nrows;
    }
    if (!rd_probe_metric_applies(tasks[0]->kind, metric))
        return rd_fail(err, RD_EINVAL, "probe: %s does not apply to these tasks",
                       rd_probe_metric_name(metric));
    int nboot = cfg->bootstrap;
    macro_ctx c = {tasks, ntasks, tasks[0]->n, ngroups, group, metric, NULL, NULL, NULL, NULL};
    c.a = calloc((size_t)ntasks, sizeof *c.a);
    c.b = pred_b ? calloc((size_t)ntasks, sizeof *c.b) : NULL;
    c.count = malloc((size_t)(ngroups > 0 ? ngroups : 1) * sizeof *c.count);
    c.weight = malloc((size_t)max_rows * sizeof *c.weight);
    double *reps = malloc((size_t)(nboot > 0 ? nboot : 1) * sizeof *reps);
    rd_status st = RD_OK;
    if (!c.a || (pred_b && !c.b) || !c.count || !c.weight || !reps)
        st = rd_fail(err, RD_ENOMEM, "probe: no memory for a macro average of %d tasks", ntasks);
    for (int i = 0; !st && i < ntasks; i++) {
        st = probe_oof_init(&c.a[i], tasks[i], tasks[i]->y, pred[i], err);
        if (!st && pred_b) st = probe_oof_init(&c.b[i], tasks[i], tasks[i]->y, pred_b[i], err);
    }
    if (!st) out->estimate = macro_mean(&c, NULL);
    if (!st) st = rd_probe_run_units(comm, nboot, 1, macro_unit, &c, NULL, reps, err);
    int valid = 0;
    for (int b = 0; !st && b < nboot; b++)
        if (isfinite(reps[b])) reps[valid++] = reps[b];
    out->replicates = valid;
    if (!st && valid > 0) {
        double alpha = 1.0 - cfg->ci_level;
        out->lo = rd_probe_quantile(reps, valid, 0.5 * alpha);
        out->hi = rd_probe_quantile(reps, valid, 1.0 - 0.5 * alpha);
    }
    for (int i = 0; i < ntasks; i++) {
        if (c.a) probe_oof_free(&c.a[i]);
        if (c.b) probe_oof_free(&c.b[i]);
    }
    free(c.a), free(c.b), free(c.count), free(c.weight), free(reps);
    return st;
}

/* ---- the study ---- */

typedef struct study_ctx {
    rd_probe_task *tasks;
    int ntasks;
    const int *first; /* [ntasks + 1] first unit of each task */
    int len;
    double *scratch; /* [max nrows] */
    int current;     /* task whose ridge cache this rank holds */
} study_ctx;

/* The task of a unit; drops the previous task's cache when moving on (units ascend). */
static rd_probe_task *unit_task(study_ctx *c, int unit, int *index) {
    int ti = 0;
    while (c->first[ti + 1] <= unit) ti++;
    if (ti != c->current && c->current >= 0) rd_probe_task_drop_cache(&c->tasks[c->current]);
    c->current = ti;
    *index = unit - c->first[ti];
    return &c->tasks[ti];
}

/* result = [chosen lambda, predictions of the fold's rows in task-row order, zero padding] */
static rd_status cv_unit(void *vctx, int unit, double *result, rd_error *err) {
    study_ctx *c = vctx;
    int fold;
    rd_probe_task *t = unit_task(c, unit, &fold);
    memset(result, 0, (size_t)c->len * sizeof *result);
    rd_status st = rd_probe_cv_fold(t, fold, NULL, c->scratch, &result[0], err);
    if (st != RD_OK) return st;
    for (int k = 0, j = 1; k < t->nrows; k++)
        if (t->outer_fold[t->patient[k]] == fold) result[j++] = c->scratch[k];
    return RD_OK;
}

static rd_status perm_unit(void *vctx, int unit, double *result, rd_error *err) {
    study_ctx *c = vctx;
    int index;
    rd_probe_task *t = unit_task(c, unit, &index);
    return rd_probe_permutation_stat(t, (uint64_t)index, result, err);
}

static void drop_caches(rd_probe_task *tasks, int ntasks) {
    for (int i = 0; i < ntasks; i++) rd_probe_task_drop_cache(&tasks[i]);
}

/* Unit ranges per task: count(t) units each. */
static int prefix_units(const rd_probe_task *tasks, int ntasks, int per_task_perm, int *first) {
    first[0] = 0;
    for (int i = 0; i < ntasks; i++)
        first[i + 1] =
            first[i] + (per_task_perm ? tasks[i].cfg.permutations : tasks[i].cfg.outer_folds);
    return first[ntasks];
}

static void unpack_cv(const rd_probe_task *t, const double *results, int first, int len,
                      rd_probe_result *r) {
    int nl = t->cfg.nlambda;
    r->lambda_at_edge = 0;
    for (int o = 0; o < t->cfg.outer_folds; o++) {
        const double *u = results + (size_t)(first + o) * len;
        r->lambda[o] = u[0];
        if (nl > 1 && (u[0] == t->cfg.lambda[0] || u[0] == t->cfg.lambda[nl - 1]))
            r->lambda_at_edge++;
        for (int k = 0, j = 1; k < t->nrows; k++)
            if (t->outer_fold[t->patient[k]] == o) r->pred[k] = u[j++];
    }
}

static void summarise_permutations(const rd_probe_task *t, const double *null, rd_probe_result *r) {
    double observed = r->metric[rd_probe_primary_metric(t->kind)].estimate, sum = 0.0;
    int nperm = t->cfg.permutations, as_large = 0, finite = 0;
    r->permutations = nperm;
    r->perm_p = r->perm_null_mean = r->perm_p_holm = NAN;
    if (nperm == 0) return;
    for (int b = 0; b < nperm; b++) {
        if (!isfinite(null[b])) continue;
        finite++;
        sum += null[b];
        /* Ties count against the encoder (conservative), with a rounding margin. */
        if (null[b] >= observed - 1e-12 * fmax(1.0, fabs(observed))) as_large++;
    }
    if (finite > 0) r->perm_null_mean = sum / finite;
    if (isfinite(observed)) r->perm_p = (1.0 + as_large) / (1.0 + nperm);
}

/* The tasks' permutation tests are one family: perm_p_holm of each. */
static rd_status holm_over_tasks(rd_probe_result *results, int ntasks, rd_error *err) {
    double *p = malloc((size_t)(ntasks > 0 ? 2 * ntasks : 1) * sizeof *p);
    if (!p) return rd_fail(err, RD_ENOMEM, "probe: no memory for the Holm adjustment");
    for (int i = 0; i < ntasks; i++) p[i] = results[i].perm_p;
    rd_status st = rd_probe_holm(p, ntasks, p + ntasks, err);
    for (int i = 0; i < ntasks && st == RD_OK; i++) results[i].perm_p_holm = p[ntasks + i];
    free(p);
    return st;
}

rd_status rd_probe_run(MPI_Comm comm, rd_probe_task *tasks, int ntasks, rd_probe_result *results,
                       rd_error *err) {
    for (int i = 0; i < ntasks; i++) memset(&results[i], 0, sizeof results[i]);
    int *first = malloc((size_t)(ntasks + 1) * sizeof *first), max_rows = 1, max_fold = 0;
    for (int i = 0; i < ntasks; i++) {
        if (tasks[i].nrows > max_rows) max_rows = tasks[i].nrows;
        for (int o = 0; o < tasks[i].cfg.outer_folds; o++) {
            int count = 0;
            for (int k = 0; k < tasks[i].nrows; k++)
                count += tasks[i].outer_fold[tasks[i].patient[k]] == o;
            if (count > max_fold) max_fold = count;
        }
    }
    study_ctx c = {tasks, ntasks, first, 1 + max_fold, malloc((size_t)max_rows * sizeof(double)),
                   -1};
    double *unit_results = NULL;
    rd_status st = RD_OK;
    if (!first || !c.scratch) {
        st = rd_fail(err, RD_ENOMEM, "probe: no memory for the study driver");
        goto out;
    }
    /* Cross-validation: tasks x outer folds. */
    int nunits = prefix_units(tasks, ntasks, 0, first);
    unit_results = malloc((size_t)(nunits > 0 ? nunits : 1) * c.len * sizeof *unit_results);
    for (int i = 0; i < ntasks && unit_results; i++) {
        results[i].pred =
            malloc((size_t)(tasks[i].nrows > 0 ? tasks[i].nrows : 1) * sizeof(double));
        if (!results[i].pred) {
            free(unit_results);
            unit_results = NULL;
        }
    }
    if (!unit_results) {
        st = rd_fail(err, RD_ENOMEM, "probe: no memory for out-of-fold predictions");
        goto out;
    }
    st = rd_probe_run_units(comm, nunits, c.len, cv_unit, &c, "probe cross-validation",
                            unit_results, err);
    drop_caches(tasks, ntasks);
    if (st != RD_OK) goto out;
    for (int i = 0; i < ntasks; i++)
        unpack_cv(&tasks[i], unit_results, first[i], c.len, &results[i]);

    /* Bootstrap intervals, task by task (each spread over the ranks). */
    for (int i = 0; i < ntasks && st == RD_OK; i++)
        st = rd_probe_bootstrap_ci(comm, &tasks[i], results[i].pred, NULL, results[i].metric, err);
    if (st != RD_OK) goto out;

    /* Permutation tests: tasks x permutations, each a full nested-CV refit. */
    nunits = prefix_units(tasks, ntasks, 1, first);
    free(unit_results);
    unit_results = malloc((size_t)(nunits > 0 ? nunits : 1) * sizeof *unit_results);
    if (!unit_results) {
        st = rd_fail(err, RD_ENOMEM, "probe: no memory for %d permutation results", nunits);
        goto out;
    }
    c.len = 1;
    c.current = -1;
    st =
        rd_probe_run_units(comm, nunits, 1, perm_unit, &c, "probe permutations", unit_results, err);
    drop_caches(tasks, ntasks);
    if (st != RD_OK) goto out;
    for (int i = 0; i < ntasks; i++)
        summarise_permutations(&tasks[i], unit_results + first[i], &results[i]);
    st = holm_over_tasks(results, ntasks, err);
out:
    free(first);
    free(c.scratch);
    free(unit_results);
    if (st != RD_OK)
        for (int i = 0; i < ntasks; i++) rd_probe_result_free(&results[i]);
    return st;
}

void rd_probe_result_free(rd_probe_result *r) {
    free(r->pred);
    r->pred = NULL;
}

rd_status rd_probe_compare(MPI_Comm comm, const rd_probe_task *ta, const rd_probe_result *ra,
                           const rd_probe_task *tb, const rd_probe_result *rb,
                           rd_probe_interval diff[RD_PROBE_NMETRICS], rd_error *err) {
    int same = ta->kind == tb->kind && ta->nrows == tb->nrows && ta->npatients == tb->npatients &&
               ta->cfg.seed == tb->cfg.seed && ta->cfg.bootstrap == tb->cfg.bootstrap &&
               ta->cfg.ci_level == tb->cfg.ci_level;
    same = same && memcmp(ta->row, tb->row, (size_t)ta->nrows * sizeof *ta->row) == 0 &&
           memcmp(ta->patient, tb->patient, (size_t)ta->nrows * sizeof *ta->patient) == 0 &&
           memcmp(ta->y, tb->y, (size_t)ta->nrows * sizeof *ta->y) == 0;
    if (!same)
        return rd_fail(err, RD_EINVAL,
                       "probe: a paired comparison needs the same target, rows, "
                       "patients, seed and bootstrap settings for both encoders");
    if (!ra->pred || !rb->pred)
        return rd_fail(err, RD_EINVAL, "probe: compare needs the out-of-fold predictions");
    return rd_probe_bootstrap_ci(comm, ta, ra->pred, rb->pred, diff, err);
}
