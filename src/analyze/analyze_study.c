/* The study proper: a probe task per representation x target, all run together by
 * rd_probe_run (so the ranks share one pool of units), then the paired comparisons and the
 * per-dimension correlations. */
#include "analyze_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdino/log.h"

/* Representations a and b answer the same question (same feature set; the pixel baseline
 * stands next to every set). A k-NN probe is compared with the other k-NN probes so, and with
 * the linear probe of its own representation only. */
static int comparable(const rd_analyze_rep *a, const rd_analyze_rep *b) {
    if (a->knn != b->knn)
        return strcmp(a->encoder, b->encoder) == 0 && strcmp(a->features, b->features) == 0;
    return strcmp(a->features, b->features) == 0 || strcmp(a->features, "pixels") == 0 ||
           strcmp(b->features, "pixels") == 0;
}

static rd_status init_cells(const rd_analyze_params *p, const rd_analyze_data *data,
                            rd_analyze_study *s, rd_error *err) {
    for (int t = 0; t < s->ntargets; t++) {
        const rd_analyze_target *target = &data->targets[t];
        for (int r = 0; r < s->nreps; r++) {
            const rd_analyze_rep *rep = &data->reps[r];
            int i = analyze_index(s, t, r);
            rd_probe_config cfg = p->probe;
            if (rep->knn) {
                cfg.knn_k = p->knn_k;
                cfg.knn_temperature = p->knn_temperature;
            }
            rd_status st = rd_probe_task_init(&s->tasks[i], target->kind, rep->x, data->n, rep->d,
                                              target->y, s->group, &cfg, err);
            if (st)
                return rd_wrap(err, "%s from %s (%s)", target->name, rep->encoder, rep->features);
            rd_analyze_cell *c = &s->cells[i];
            const rd_probe_task *task = &s->tasks[i];
            c->majority_rate = NAN;
            if (target->kind == RD_PROBE_LOGISTIC) {
                double ones = 0.0;
                for (int k = 0; k < task->nrows; k++) ones += task->y[k];
                c->majority_rate = fmax(ones, task->nrows - ones) / task->nrows;
            }
            c->dim_r = malloc((size_t)rep->d * sizeof *c->dim_r);
            c->top = malloc((size_t)(s->top_dims > 0 ? s->top_dims : 1) * sizeof *c->top);
            if (!c->dim_r || !c->top) return rd_fail(err, RD_ENOMEM, "out of memory");
            rd_probe_dim_correlations(rep->x, data->n, rep->d, target->y, c->dim_r);
            rd_probe_top_dims(c->dim_r, rep->d, s->top_dims, c->top);
        }
    }
    return RD_OK;
}

/* The macro AUROC over the finding labels, of one representation or (b >= 0) of a minus b. */
static rd_status macro_of(MPI_Comm comm, rd_analyze_study *s, int a, int b, rd_probe_interval *out,
                          rd_error *err) {
    const rd_probe_task **tasks = malloc((size_t)s->nlabels * sizeof *tasks);
    const double **pred = malloc((size_t)s->nlabels * sizeof *pred);
    const double **pred_b = malloc((size_t)s->nlabels * sizeof *pred_b);
    rd_status st = tasks && pred && pred_b ? RD_OK : rd_fail(err, RD_ENOMEM, "out of memory");
    for (int k = 0; !st && k < s->nlabels; k++) {
        tasks[k] = &s->tasks[analyze_index(s, s->label[k], a)];
        pred[k] = s->results[analyze_index(s, s->label[k], a)].pred;
        if (b >= 0) pred_b[k] = s->results[analyze_index(s, s->label[k], b)].pred;
    }
    if (!st)
        st = rd_probe_macro_ci(comm, tasks, pred, b >= 0 ? pred_b : NULL, s->nlabels, s->group,
                               s->npatients, RD_PROBE_AUROC, out, err);
    free(tasks), free(pred), free(pred_b);
    return st;
}

/* Macro AUROC of every representation over the finding labels, and its paired differences for
 * the pairs compared on each label. */
static rd_status macro_aurocs(MPI_Comm comm, const rd_analyze_data *data, rd_analyze_study *s,
                              rd_error *err) {
    for (int t = 0; t < s->ntargets; t++) s->nlabels += rd_analyze_is_finding(&data->targets[t]);
    if (s->nlabels == 0) return RD_OK;
    s->label = malloc((size_t)s->nlabels * sizeof *s->label);
    s->macro = calloc((size_t)s->nreps, sizeof *s->macro);
    s->macro_pairs = calloc((size_t)(s->npairs > 0 ? s->npairs : 1), sizeof *s->macro_pairs);
    if (!s->label || !s->macro || !s->macro_pairs)
        return rd_fail(err, RD_ENOMEM, "out of memory for the macro AUROC");
    for (int t = 0, k = 0; t < s->ntargets; t++)
        if (rd_analyze_is_finding(&data->targets[t])) s->label[k++] = t;
    rd_info("study: macro AUROC over %d finding labels", s->nlabels);
    rd_status st = RD_OK;
    for (int r = 0; r < s->nreps && !st; r++) st = macro_of(comm, s, r, -1, &s->macro[r], err);
    for (int k = 0; k < s->npairs && !st; k++) {
        if (s->pairs[k].target != s->label[0]) continue; /* every label has the same pairs */
        rd_analyze_pair *m = &s->macro_pairs[s->nmacro_pairs++];
        *m = s->pairs[k];
        m->target = -1;
        for (int i = 0; i < RD_PROBE_NMETRICS; i++)
            m->diff[i] = (rd_probe_interval){NAN, NAN, NAN, 0};
        st = macro_of(comm, s, m->a, m->b, &m->diff[RD_PROBE_AUROC], err);
    }
    return st;
}

rd_status rd_analyze_run(MPI_Comm comm, const rd_analyze_params *p, const rd_analyze_data *data,
                         rd_analyze_study *s, rd_error *err) {
    memset(s, 0, sizeof *s);
    s->ntargets = data->ntargets;
    s->nreps = data->nreps;
    s->top_dims = p->top_dims;
    int ncells = s->ntargets * s->nreps;
    s->group = malloc((size_t)(data->n > 0 ? data->n : 1) * sizeof *s->group);
    const char **ids = malloc((size_t)(data->n > 0 ? data->n : 1) * sizeof *ids);
    s->tasks = calloc((size_t)(ncells > 0 ? ncells : 1), sizeof *s->tasks);
    s->results = calloc((size_t)(ncells > 0 ? ncells : 1), sizeof *s->results);
    s->cells = calloc((size_t)(ncells > 0 ? ncells : 1), sizeof *s->cells);
    int max_pairs = s->ntargets * s->nreps * (s->nreps - 1) / 2;
    s->pairs = calloc((size_t)(max_pairs > 0 ? max_pairs : 1), sizeof *s->pairs);
    rd_status st = RD_OK;
    if (!s->group || !ids || !s->tasks || !s->results || !s->cells || !s->pairs) {
        free(ids);
        st = rd_fail(err, RD_ENOMEM, "out of memory for the study");
        goto out;
    }
    for (int i = 0; i < data->n; i++) ids[i] = data->patient_id + (size_t)i * data->patient_stride;
    st = rd_probe_group_ids(ids, data->n, s->group, &s->npatients, err);
    free(ids);
    if (st) goto out;
    if ((st = init_cells(p, data, s, err))) goto out;

    rd_info("study: %d targets x %d representations = %d probe tasks; %d outer x %d inner folds, "
            "%d penalties, %d bootstrap replicates, %d permutations each",
            s->ntargets, s->nreps, ncells, p->probe.outer_folds, p->probe.inner_folds,
            p->probe.nlambda, p->probe.bootstrap, p->probe.permutations);
    if ((st = rd_probe_run(comm, s->tasks, ncells, s->results, err))) goto out;

    for (int t = 0; t < s->ntargets; t++)
        for (int a = 0; a < s->nreps; a++)
            for (int b = a + 1; b < s->nreps; b++)
                if (comparable(&data->reps[a], &data->reps[b])) {
                    rd_analyze_pair *pair = &s->pairs[s->npairs++];
                    pair->target = t;
                    pair->a = a;
                    pair->b = b;
                }
    rd_info("study: %d paired comparisons", s->npairs);
    for (int k = 0; k < s->npairs && !st; k++) {
        rd_analyze_pair *pair = &s->pairs[k];
        int ia = analyze_index(s, pair->target, pair->a),
            ib = analyze_index(s, pair->target, pair->b);
        st = rd_probe_compare(comm, &s->tasks[ia], &s->results[ia], &s->tasks[ib], &s->results[ib],
                              pair->diff, err);
    }
    if (!st) st = macro_aurocs(comm, data, s, err);
out:
    if (st) rd_analyze_study_free(s);
    return st;
}

void rd_analyze_study_free(rd_analyze_study *s) {
    int ncells = s->ntargets * s->nreps;
    for (int i = 0; i < ncells; i++) {
        if (s->results) rd_probe_result_free(&s->results[i]);
        if (s->tasks) rd_probe_task_free(&s->tasks[i]);
        if (s->cells) {
            free(s->cells[i].dim_r);
            free(s->cells[i].top);
        }
    }
    free(s->group);
    free(s->tasks);
    free(s->results);
    free(s->cells);
    free(s->pairs);
    free(s->label);
    free(s->macro);
    free(s->macro_pairs);
    memset(s, 0, sizeof *s);
}

void rd_analyze_pair_sentence(const rd_analyze_data *data, const rd_analyze_pair *pair, char *buf,
                              int size, int *significant, int *winner) {
    /* target -1: the macro AUROC over the finding labels */
    rd_analyze_target macro = {.name = "the finding labels (macro)", .kind = RD_PROBE_LOGISTIC};
    const rd_analyze_target *target = pair->target >= 0 ? &data->targets[pair->target] : &macro;
    rd_probe_metric m = rd_probe_primary_metric(target->kind);
    const char *label = m == RD_PROBE_AUROC ? "AUROC" : "R²";
    const rd_probe_interval *d = &pair->diff[m];
    char a[2 * RD_ANALYZE_NAME_MAX + 4], b[2 * RD_ANALYZE_NAME_MAX + 4], extra[96] = "";
    rd_analyze_rep_name(data, pair->a, a, sizeof a);
    rd_analyze_rep_name(data, pair->b, b, sizeof b);
    int has_ci = isfinite(d->lo) && isfinite(d->hi);
    /* The interval must clear 0 by the printed resolution: two probes that both predict a
     * constant (R² -0.000 each) differ by rounding, with an interval like [1e-7, 3e-6]. */
    const double resolution = 0.001;
    *significant = has_ci && (d->lo >= resolution || d->hi <= -resolution);
    *winner = !*significant ? -1 : d->lo > 0 ? pair->a : pair->b;
    if (target->kind == RD_PROBE_RIDGE) {
        /* MAE moves the other way (lower is better): its difference is shown, not judged. */
        const rd_probe_interval *mae = &pair->diff[RD_PROBE_MAE];
        double sign = *winner == pair->b ? -1.0 : 1.0;
        snprintf(extra, sizeof extra, "; ΔMAE %.2f [%.2f, %.2f]", sign * mae->estimate,
                 sign > 0 ? mae->lo : -mae->hi, sign > 0 ? mae->hi : -mae->lo);
    }
    if (!has_ci)
        snprintf(buf, (size_t)size, "%s vs %s for %s: Δ%s %.3f (no interval: no bootstrap)", a, b,
                 target->name, label, d->estimate);
    else if (*winner == pair->a)
        snprintf(buf, (size_t)size, "%s predicts %s better than %s: Δ%s %.3f [%.3f, %.3f]%s", a,
                 target->name, b, label, d->estimate, d->lo, d->hi, extra);
    else if (*winner == pair->b)
        snprintf(buf, (size_t)size, "%s predicts %s better than %s: Δ%s %.3f [%.3f, %.3f]%s", b,
                 target->name, a, label, -d->estimate, -d->hi, -d->lo, extra);
    else
        snprintf(buf, (size_t)size,
                 "%s and %s: no significant difference for %s (Δ%s %.3f [%.3f, %.3f]%s; the "
                 "interval %s)",
                 a, b, target->name, label, d->estimate, d->lo, d->hi, extra,
                 d->lo <= 0 && d->hi >= 0 ? "includes 0" : "clears 0 by less than 0.001");
}
