/* The report folder: report.md for people, report.json with every number, predictions.csv with
 * the out-of-fold predictions, and the plots. Rank 0 writes each file atomically (temporary
 * name, fsync, rename); numbers in report.md are the report.json values rounded. */
#include "analyze_internal.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rdino/agree.h"
#include "rdino/csv.h"
#include "rdino/file.h"
#include "rdino/journal.h"
#include "rdino/log.h"

static const char *const split_names[3] = {"train", "val", "test"};

/* ---- numbers ---- */

/* JSON number: the shortest of %.15g/%.16g/%.17g that reads back exactly; null for NaN/inf. */
static void json_num(FILE *f, double v) {
    if (!isfinite(v)) {
        fputs("null", f);
        return;
    }
    char buf[40];
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, v);
        if (strtod(buf, NULL) == v) break;
    }
    fputs(buf, f);
}

static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\')
            fprintf(f, "\\%c", *c);
        else if (*c == '\n')
            fputs("\\n", f);
        else if (*c == '\t')
            fputs("\\t", f);
        else if (*c < 0x20)
            fprintf(f, "\\u%04x", *c);
        else
            fputc(*c, f);
    }
    fputc('"', f);
}

/* prefix, then "key": "value" */
static void json_field(FILE *f, const char *prefix, const char *key, const char *value) {
    fprintf(f, "%s\"%s\": ", prefix, key);
    json_str(f, value);
}

/* Decimals shown for a metric: MAE in the target's units with 2, the rest with 3. */
static int metric_decimals(rd_probe_metric m) {
    return m == RD_PROBE_MAE ? 2 : 3;
}

static void md_num(FILE *f, double v, int decimals) {
    if (isfinite(v))
        fprintf(f, "%.*f", decimals, v);
    else
        fputs("n/a", f);
}

/* "0.912 [0.871, 0.946]" */
static void md_interval(FILE *f, const rd_probe_interval *iv, int decimals) {
    md_num(f, iv->estimate, decimals);
    if (isfinite(iv->lo) && isfinite(iv->hi)) {
        fputs(" [", f);
        md_num(f, iv->lo, decimals);
        fputs(", ", f);
        md_num(f, iv->hi, decimals);
        fputc(']', f);
    }
}

/* p-values keep two significant digits: 0.005, 0.41, 0.0005. */
static void md_p(FILE *f, double p) {
    if (isfinite(p))
        fprintf(f, "%.2g", p);
    else
        fputs("n/a", f);
}

static const char *metric_label(rd_probe_metric m) {
    static const char *const labels[RD_PROBE_NMETRICS] = {"AUROC", "accuracy", "MAE", "R²",
                                                          "Pearson r"};
    return labels[m];
}

/* A comparison as the report words it. */
typedef struct pair_text {
    char a[2 * RD_ANALYZE_NAME_MAX + 4], b[2 * RD_ANALYZE_NAME_MAX + 4], sentence[1024];
    int significant, winner;
} pair_text;

static void describe_pair(const rd_analyze_data *data, const rd_analyze_pair *pair, pair_text *pt) {
    rd_analyze_rep_name(data, pair->a, pt->a, sizeof pt->a);
    rd_analyze_rep_name(data, pair->b, pt->b, sizeof pt->b);
    rd_analyze_pair_sentence(data, pair, pt->sentence, sizeof pt->sentence, &pt->significant,
                             &pt->winner);
}

/* ---- data description ---- */

typedef struct describe {
    int images[3], patients[3], npatients;
    int sex[3]; /* F, M, unknown */
    int age_known;
    double age_mean, age_sd, age_q[5]; /* min, 25%, median, 75%, max */
} describe;

static rd_status describe_data(const rd_analyze_data *data, const rd_analyze_study *s, describe *d,
                               rd_error *err) {
    memset(d, 0, sizeof *d);
    d->npatients = s->npatients;
    unsigned char *seen = calloc((size_t)(s->npatients > 0 ? s->npatients : 1), 1);
    double *ages = malloc((size_t)(data->n > 0 ? data->n : 1) * sizeof *ages);
    if (!seen || !ages) {
        free(seen);
        free(ages);
        return rd_fail(err, RD_ENOMEM, "out of memory");
    }
    double sum = 0.0, sumsq = 0.0;
    for (int i = 0; i < data->n; i++) {
        int sp = data->split[i];
        d->images[sp]++;
        if (!(seen[s->group[i]] & (1u << sp))) d->patients[sp]++;
        seen[s->group[i]] |= (unsigned char)(1u << sp);
        d->sex[data->sex[i] == 0 ? 0 : data->sex[i] == 1 ? 1 : 2]++;
        if (!isnan(data->age[i])) {
            ages[d->age_known++] = data->age[i];
            sum += data->age[i];
        }
    }
    d->age_mean = d->age_known ? sum / d->age_known : NAN;
    for (int i = 0; i < d->age_known; i++)
        sumsq += (ages[i] - d->age_mean) * (ages[i] - d->age_mean);
    d->age_sd = d->age_known > 1 ? sqrt(sumsq / (d->age_known - 1)) : NAN;
    static const double q[5] = {0, 0.25, 0.5, 0.75, 1};
    for (int k = 0; k < 5; k++)
        d->age_q[k] = d->age_known ? rd_probe_quantile(ages, d->age_known, q[k]) : NAN;
    free(seen);
    free(ages);
    return RD_OK;
}

/* ---- report.json ---- */

static void json_interval(FILE *f, const rd_probe_interval *iv) {
    fputs("{\"estimate\": ", f);
    json_num(f, iv->estimate);
    fputs(", \"lo\": ", f);
    json_num(f, iv->lo);
    fputs(", \"hi\": ", f);
    json_num(f, iv->hi);
    fprintf(f, ", \"replicates\": %d}", iv->replicates);
}

static void json_metrics(FILE *f, rd_probe_kind kind, const rd_probe_interval *iv) {
    fputc('{', f);
    for (int m = 0, first = 1; m < RD_PROBE_NMETRICS; m++) {
        if (!rd_probe_metric_applies(kind, (rd_probe_metric)m)) continue;
        fprintf(f, "%s\"%s\": ", first ? "" : ", ", rd_probe_metric_name((rd_probe_metric)m));
        json_interval(f, &iv[m]);
        first = 0;
    }
    fputc('}', f);
}

static void json_settings(FILE *f, const rd_analyze_params *p) {
    const rd_probe_config *c = &p->probe;
    fputs("  \"settings\": {\"features\": [", f);
    fprintf(f, "%s%s%s", p->use_cls ? "\"cls\"" : "", p->use_cls && p->use_patch_mean ? ", " : "",
            p->use_patch_mean ? "\"patch_mean\"" : "");
    fputs("], \"splits\": [", f);
    for (int s = 0, first = 1; s < 3; s++)
        if (p->splits & (1u << s)) {
            fprintf(f, "%s\"%s\"", first ? "" : ", ", split_names[s]);
            first = 0;
        }
    fprintf(f, "], \"seed\": %llu, \"outer_folds\": %d, \"inner_folds\": %d, \"lambdas\": [",
            (unsigned long long)c->seed, c->outer_folds, c->inner_folds);
    for (int l = 0; l < c->nlambda; l++) {
        if (l) fputs(", ", f);
        json_num(f, c->lambda[l]);
    }
    fprintf(f, "], \"bootstrap\": %d, \"permutations\": %d, \"ci_level\": ", c->bootstrap,
            c->permutations);
    json_num(f, c->ci_level);
    fprintf(f,
            ", \"top_dims\": %d, \"pixels\": {\"enabled\": %s, \"size\": %d, "
            "\"components\": %d}},\n",
            p->top_dims, p->pixel_size ? "true" : "false", p->pixel_size, p->pixel_components);
}

static void json_data(FILE *f, const rd_analyze_data *data, const describe *d) {
    fprintf(f, "  \"data\": {\"images\": %d, \"patients\": %d, \"file_rows\": %lld, \"splits\": {",
            data->n, d->npatients, (long long)data->file_rows);
    for (int s = 0; s < 3; s++)
        fprintf(f, "%s\"%s\": {\"images\": %d, \"patients\": %d}", s ? ", " : "", split_names[s],
                d->images[s], d->patients[s]);
    fprintf(f, "},\n    \"sex\": {\"F\": %d, \"M\": %d, \"unknown\": %d},\n", d->sex[0], d->sex[1],
            d->sex[2]);
    fprintf(f, "    \"age\": {\"known\": %d, \"mean\": ", d->age_known);
    json_num(f, d->age_mean);
    fputs(", \"sd\": ", f);
    json_num(f, d->age_sd);
    static const char *const qn[5] = {"min", "q25", "median", "q75", "max"};
    for (int k = 0; k < 5; k++) {
        fprintf(f, ", \"%s\": ", qn[k]);
        json_num(f, d->age_q[k]);
    }
    fputs("},\n    \"skipped_targets\": [", f);
    for (int k = 0; k < data->nskipped; k++) {
        char note[RD_ANALYZE_NAME_MAX + 300];
        snprintf(note, sizeof note, "%s: %s", data->skipped[k].target, data->skipped[k].reason);
        if (k) fputs(", ", f);
        json_str(f, note);
    }
    fputs("]},\n", f);
}

static void json_reps(FILE *f, const rd_analyze_data *data) {
    fputs("  \"representations\": [\n", f);
    for (int r = 0; r < data->nreps; r++) {
        const rd_analyze_rep *rep = &data->reps[r];
        char name[2 * RD_ANALYZE_NAME_MAX + 4];
        rd_analyze_rep_name(data, r, name, sizeof name);
        json_field(f, "    {", "name", name);
        json_field(f, ", ", "encoder", rep->encoder);
        json_field(f, ", ", "features", rep->features);
        json_field(f, ", ", "probe", rep->knn ? "knn" : "linear");
        json_field(f, ", ", "source", rep->source);
        json_field(f, ", ", "checkpoint", rep->checkpoint);
        json_field(f, ", ", "model_config", rep->model_config);
        fputs(", \"resolution\": ", f);
        json_num(f, rep->resolution);
        fprintf(f, ", \"dims\": %d, \"pca_explained_variance\": ", rep->d);
        json_num(f, rep->explained_variance);
        fprintf(f, "}%s\n", r + 1 < data->nreps ? "," : "");
    }
    fputs("  ],\n", f);
}

static void json_results(FILE *f, const rd_analyze_data *data, const rd_analyze_study *s) {
    fputs("  \"results\": [\n", f);
    for (int t = 0; t < s->ntargets; t++)
        for (int r = 0; r < s->nreps; r++) {
            int i = analyze_index(s, t, r);
            const rd_probe_task *task = &s->tasks[i];
            const rd_probe_result *res = &s->results[i];
            const rd_analyze_cell *c = &s->cells[i];
            char name[2 * RD_ANALYZE_NAME_MAX + 4];
            rd_analyze_rep_name(data, r, name, sizeof name);
            json_field(f, "    {", "target", data->targets[t].name);
            json_field(f, ", ", "adjusted_for", data->targets[t].adjusted_for);
            json_field(f, ", ", "representation", name);
            fprintf(f, ", \"model\": \"%s\", \"rows\": %d, \"patients\": %d, \"majority_rate\": ",
                    task->kind == RD_PROBE_LOGISTIC ? "logistic" : "ridge", task->nrows,
                    task->npatients);
            json_num(f, c->majority_rate);
            fputs(",\n     \"metrics\": ", f);
            json_metrics(f, task->kind, res->metric);
            fputs(",\n     \"permutation\": {\"p\": ", f);
            json_num(f, res->perm_p);
            fputs(", \"p_holm\": ", f);
            json_num(f, res->perm_p_holm);
            fputs(", \"null_mean\": ", f);
            json_num(f, res->perm_null_mean);
            fprintf(f, ", \"permutations\": %d},\n     \"lambda\": [", res->permutations);
            for (int o = 0; o < task->cfg.outer_folds; o++) {
                if (o) fputs(", ", f);
                json_num(f, res->lambda[o]);
            }
            fprintf(f, "], \"lambda_at_edge\": %d,\n     \"top_dims\": [", res->lambda_at_edge);
            for (int k = 0, first = 1; k < s->top_dims; k++) {
                if (c->top[k] < 0) continue;
                fprintf(f, "%s{\"dim\": %d, \"r\": ", first ? "" : ", ", c->top[k]);
                json_num(f, c->dim_r[c->top[k]]);
                fputc('}', f);
                first = 0;
            }
            fprintf(f, "]}%s\n", t + 1 < s->ntargets || r + 1 < s->nreps ? "," : "");
        }
    fputs("  ],\n", f);
}

static void json_pairs(FILE *f, const rd_analyze_data *data, const rd_analyze_study *s) {
    fputs("  \"comparisons\": [\n", f);
    for (int k = 0; k < s->npairs; k++) {
        const rd_analyze_pair *pair = &s->pairs[k];
        pair_text pt;
        describe_pair(data, pair, &pt);
        rd_probe_kind kind = data->targets[pair->target].kind;
        json_field(f, "    {", "target", data->targets[pair->target].name);
        json_field(f, ", ", "a", pt.a);
        json_field(f, ", ", "b", pt.b);
        fprintf(f, ", \"metric\": \"%s\", \"significant\": %s, \"better\": ",
                rd_probe_metric_name(rd_probe_primary_metric(kind)),
                pt.significant ? "true" : "false");
        if (pt.winner < 0)
            fputs("null", f);
        else
            json_str(f, pt.winner == pair->a ? pt.a : pt.b);
        fputs(",\n     \"difference\": ", f);
        json_metrics(f, kind, pair->diff);
        json_field(f, ",\n     ", "sentence", pt.sentence);
        fprintf(f, "}%s\n", k + 1 < s->npairs ? "," : "");
    }
    fputs("  ],\n", f);
}

/* ---- finding labels ---- */

/* Whether the study was asked about finding labels: it probes some, or left some out. */
static int has_labels(const rd_analyze_data *data, const rd_analyze_study *s) {
    int any = s->nlabels > 0;
    for (int k = 0; k < data->nskipped; k++)
        any |= strncmp(data->skipped[k].target, "finding_", 8) == 0;
    return any;
}

/* Known rows and positives of label k (the same for every representation). */
static void label_counts(const rd_analyze_study *s, int k, int *rows, int *positives) {
    const rd_probe_task *task = &s->tasks[analyze_index(s, s->label[k], 0)];
    *rows = task->nrows;
    *positives = 0;
    for (int i = 0; i < task->nrows; i++) *positives += task->y[i] == 1.0;
}

static void json_labels(FILE *f, const rd_analyze_data *data, const rd_analyze_study *s) {
    if (!has_labels(data, s)) return;
    fputs("  \"finding_labels\": {\"labels\": [", f);
    for (int k = 0; k < s->nlabels; k++) {
        int rows, positives;
        label_counts(s, k, &rows, &positives);
        json_field(f, k ? ", {" : "{", "label", data->targets[s->label[k]].name);
        fprintf(f, ", \"rows\": %d, \"positives\": %d}", rows, positives);
    }
    fputs("],\n    \"not_estimable\": [", f);
    for (int k = 0, first = 1; k < data->nskipped; k++) {
        if (strncmp(data->skipped[k].target, "finding_", 8) != 0) continue;
        json_field(f, first ? "{" : ", {", "label", data->skipped[k].target);
        json_field(f, ", ", "reason", data->skipped[k].reason);
        fputc('}', f);
        first = 0;
    }
    fputs("],\n    \"macro\": [", f);
    for (int r = 0; s->macro && r < s->nreps; r++) {
        char name[2 * RD_ANALYZE_NAME_MAX + 4];
        rd_analyze_rep_name(data, r, name, sizeof name);
        json_field(f, r ? ",\n      {" : "\n      {", "representation", name);
        fprintf(f, ", \"labels\": %d, \"auroc\": ", s->nlabels);
        json_interval(f, &s->macro[r]);
        fputc('}', f);
    }
    fputs("],\n    \"comparisons\": [", f);
    for (int k = 0; k < s->nmacro_pairs; k++) {
        const rd_analyze_pair *pair = &s->macro_pairs[k];
        pair_text pt;
        describe_pair(data, pair, &pt);
        json_field(f, k ? ",\n      {" : "\n      {", "a", pt.a);
        json_field(f, ", ", "b", pt.b);
        fprintf(f, ", \"significant\": %s, \"better\": ", pt.significant ? "true" : "false");
        if (pt.winner < 0)
            fputs("null", f);
        else
            json_str(f, pt.winner == pair->a ? pt.a : pt.b);
        fputs(", \"difference\": {\"auroc\": ", f);
        json_interval(f, &pair->diff[RD_PROBE_AUROC]);
        json_field(f, "}, ", "sentence", pt.sentence);
        fputc('}', f);
    }
    fputs("]},\n", f);
}

static void md_labels(FILE *f, const rd_analyze_data *data, const rd_analyze_study *s,
                      const rd_probe_config *c) {
    if (!has_labels(data, s)) return;
    int level = (int)lround(100 * c->ci_level);
    fprintf(f,
            "## Finding labels\n\nAUROC [%d%% CI] of each probe for each finding label "
            "(1 = positive against 0 = negative; unknown labels left out), cross-validated by "
            "patient; intervals from patient resamples. The macro AUROC is the mean of the "
            "%d estimable labels' AUROCs; its interval resamples all patients at once, so the "
            "labels of one patient move together (docs/ANALYSIS.md, \"Finding labels\").\n\n"
            "| label | positive / known |",
            level, s->nlabels);
    char name[2 * RD_ANALYZE_NAME_MAX + 4];
    for (int r = 0; r < s->nreps && s->nlabels; r++) {
        rd_analyze_rep_name(data, r, name, sizeof name);
        fprintf(f, " %s |", name);
    }
    fputs("\n|---|---|", f);
    for (int r = 0; r < s->nreps && s->nlabels; r++) fputs("---|", f);
    fputc('\n', f);
    for (int k = 0; k < s->nlabels; k++) {
        int rows, positives;
        label_counts(s, k, &rows, &positives);
        fprintf(f, "| %s | %d / %d |", data->targets[s->label[k]].name, positives, rows);
        for (int r = 0; r < s->nreps; r++) {
            fputc(' ', f);
            md_interval(f, &s->results[analyze_index(s, s->label[k], r)].metric[RD_PROBE_AUROC], 3);
            fputs(" |", f);
        }
        fputc('\n', f);
    }
    if (s->nlabels) {
        fprintf(f, "| **macro AUROC** (%d labels) | |", s->nlabels);
        for (int r = 0; r < s->nreps; r++) {
            fputs(" **", f);
            md_interval(f, &s->macro[r], 3);
            fputs("** |", f);
        }
        fputc('\n', f);
    }
    fputc('\n', f);
    for (int k = 0; k < data->nskipped; k++)
        if (strncmp(data->skipped[k].target, "finding_", 8) == 0)
            fprintf(f, "- %s: %s (left out of the macro AUROC).\n", data->skipped[k].target,
                    data->skipped[k].reason);
    for (int k = 0; k < s->nmacro_pairs; k++) {
        pair_text pt;
        describe_pair(data, &s->macro_pairs[k], &pt);
        fprintf(f, "- %s.\n", pt.sentence);
    }
    fputc('\n', f);
}

/* finding_labels.csv: every representation's AUROC of every label and the macro AUROC, with
 * the not-estimable labels and why. */
static char *labels_csv(const rd_analyze_data *data, const rd_analyze_study *s, size_t *len) {
    char *text = NULL;
    FILE *f = open_memstream(&text, len);
    if (!f) return NULL;
    fputs("representation,label,positives,rows,auroc,lo,hi,replicates,note\n", f);
    for (int r = 0; r < s->nreps; r++) {
        char name[2 * RD_ANALYZE_NAME_MAX + 4];
        rd_analyze_rep_name(data, r, name, sizeof name);
        for (int k = 0; k <= s->nlabels && s->nlabels; k++) {
            int rows = 0, positives = 0;
            const rd_probe_interval *iv = &s->macro[r];
            if (k < s->nlabels) {
                label_counts(s, k, &rows, &positives);
                iv = &s->results[analyze_index(s, s->label[k], r)].metric[RD_PROBE_AUROC];
            }
            rd_csv_put_field(f, name);
            fprintf(f, ",%s,", k < s->nlabels ? data->targets[s->label[k]].name : "macro");
            if (k < s->nlabels)
                fprintf(f, "%d,%d", positives, rows);
            else
                fputc(',', f);
            fprintf(f, ",%.9g,%.9g,%.9g,%d,%s\n", iv->estimate, iv->lo, iv->hi, iv->replicates,
                    k < s->nlabels ? "" : "mean of the labels' AUROCs");
        }
        for (int k = 0; k < data->nskipped; k++) {
            if (strncmp(data->skipped[k].target, "finding_", 8) != 0) continue;
            rd_csv_put_field(f, name);
            fprintf(f, ",%s,,,,,,,", data->skipped[k].target);
            rd_csv_put_field(f, data->skipped[k].reason);
            fputc('\n', f);
        }
    }
    return fclose(f) == 0 ? text : (free(text), NULL);
}

static void json_outputs(FILE *f, const rd_analyze_params *p, const rd_analyze_outputs *out,
                         const rd_loss_curve *loss) {
    json_field(f, "  \"training_loss\": {", "file", p->metrics_jsonl);
    fprintf(f, ", \"found\": %s, \"points\": %d, \"bad_lines\": %d, \"terms\": [",
            out->have_loss ? "true" : "false", loss->npoints, loss->bad_lines);
    for (int t = 0; t < loss->nterms; t++) {
        if (t) fputs(", ", f);
        json_str(f, loss->term[t]);
    }
    json_field(f, "], ", "note", out->loss_note);
    fputs("},\n  \"plots\": [", f);
    for (int k = 0; k < out->nplots; k++) {
        if (k) fputs(", ", f);
        json_str(f, out->plot[k]);
    }
    json_field(f, "], ", "plot_problem", out->plot_problem);
    fputs("\n}\n", f);
}

static char *report_json(const rd_analyze_params *p, const rd_analyze_data *data,
                         const rd_analyze_study *s, const describe *d,
                         const rd_analyze_outputs *out, const rd_loss_curve *loss, size_t *len) {
    char *text = NULL;
    FILE *f = open_memstream(&text, len);
    if (!f) return NULL;
    fprintf(f, "{\n  \"format_version\": 1,\n  \"creator\": \"rdino-analyze\",\n");
    fputs("  \"inputs\": {\"embeddings\": [", f);
    for (int k = 0; k < p->nembeddings; k++) {
        if (k) fputs(", ", f);
        json_str(f, p->embeddings[k]);
    }
    json_field(f, "], ", "shards_dir", p->pixel_size ? p->shards_dir : "");
    fputs("},\n", f);
    json_settings(f, p);
    json_data(f, data, d);
    json_reps(f, data);
    json_results(f, data, s);
    json_pairs(f, data, s);
    json_labels(f, data, s);
    json_outputs(f, p, out, loss);
    return fclose(f) == 0 ? text : (free(text), NULL);
}

/* ---- report.md ---- */

static void md_findings(FILE *f, const rd_analyze_data *data, const rd_analyze_study *s,
                        double alpha) {
    int tested = 0;
    for (int i = 0; i < s->ntargets * s->nreps; i++) tested += isfinite(s->results[i].perm_p) != 0;
    fputs("## Findings\n\n", f);
    for (int t = 0; t < s->ntargets; t++) {
        rd_probe_metric m = rd_probe_primary_metric(data->targets[t].kind);
        fprintf(f, "%s**%s**\n\n", t ? "\n" : "", data->targets[t].name);
        for (int r = 0; r < s->nreps; r++) {
            const rd_probe_result *res = &s->results[analyze_index(s, t, r)];
            char name[2 * RD_ANALYZE_NAME_MAX + 4];
            rd_analyze_rep_name(data, r, name, sizeof name);
            if (!isfinite(res->perm_p)) {
                /* Without a permutation test there is no verdict on "any information". */
                fprintf(f, "- %s, %s: %s ", name, data->targets[t].name, metric_label(m));
                md_interval(f, &res->metric[m], 3);
                fputs(" (no permutation test: analyze.permutations is 0).\n", f);
                continue;
            }
            fprintf(f, "- %s %s %s information: %s ", name,
                    res->perm_p_holm <= alpha ? "carries" : "shows no evidence of",
                    data->targets[t].name, metric_label(m));
            md_interval(f, &res->metric[m], 3);
            fputs(", permutation p = ", f);
            md_p(f, res->perm_p);
            fputs(" (Holm ", f);
            md_p(f, res->perm_p_holm);
            fputs(").\n", f);
        }
        for (int k = 0; k < s->npairs; k++) {
            if (s->pairs[k].target != t) continue;
            pair_text pt;
            describe_pair(data, &s->pairs[k], &pt);
            fprintf(f, "- %s.\n", pt.sentence);
        }
    }
    if (data->nskipped) fputc('\n', f);
    for (int k = 0; k < data->nskipped; k++)
        fprintf(f, "- Not analysed: %s: %s.\n", data->skipped[k].target, data->skipped[k].reason);
    fprintf(f,
            "\nA claim that one representation beats another rests on the paired interval of "
            "the difference clearing 0 by at least 0.001; \"carries\" means the permutation test "
            "rejects \"no "
            "information\" at a Holm-adjusted p <= %.2g (Holm's step-down adjustment over the "
            "%d permutation tests of this report keeps the chance of any false \"carries\" at "
            "%.2g).\n\n",
            alpha, tested, alpha);
    int perms = s->ntargets * s->nreps > 0 ? s->results[0].permutations : 0;
    if (tested > 0 && perms > 0 && (double)tested / (perms + 1) > alpha) {
        /* Holm multiplies the smallest p, 1 / (B + 1), by the number of tests. */
        int needed = (int)ceil(tested / alpha) - 1;
        fprintf(f,
                "With %d permutations and %d tests no finding can reach significance (the "
                "smallest Holm-adjusted p is %.2g): set analyze.permutations to at least %d.\n\n",
                perms, tested, (double)tested / (perms + 1), needed);
        rd_warn("analyze: with %d permutations and %d tests no finding can reach significance; "
                "set analyze.permutations to at least %d",
                perms, tested, needed);
    }
}

static void md_data(FILE *f, const rd_analyze_params *p, const rd_analyze_data *data,
                    const describe *d) {
    fprintf(f,
            "## Data\n\n%d images of %d patients (of %lld rows in the embedding files; "
            "splits used:",
            data->n, d->npatients, (long long)data->file_rows);
    for (int s = 0; s < 3; s++)
        if (p->splits & (1u << s)) fprintf(f, " %s", split_names[s]);
    fputs(").\n\n| split | images | patients |\n|---|---|---|\n", f);
    for (int s = 0; s < 3; s++)
        fprintf(f, "| %s | %d | %d |\n", split_names[s], d->images[s], d->patients[s]);
    fprintf(f, "\nSex: %d F, %d M, %d unknown. ", d->sex[0], d->sex[1], d->sex[2]);
    if (d->age_known)
        fprintf(f,
                "Age (years, %d known): mean %.1f, sd %.1f, min %.1f, quartiles %.1f / %.1f / "
                "%.1f, max %.1f.\n\n",
                d->age_known, d->age_mean, d->age_sd, d->age_q[0], d->age_q[1], d->age_q[2],
                d->age_q[3], d->age_q[4]);
    else
        fputs("Age: unknown for every image.\n\n", f);

    fputs("### Representations\n\n| encoder | features | dims | source | checkpoint |\n"
          "|---|---|---|---|---|\n",
          f);
    for (int r = 0; r < data->nreps; r++) {
        const rd_analyze_rep *rep = &data->reps[r];
        fprintf(f, "| %s | %s | %d | `%s` | %s |\n", rep->encoder,
                strcmp(rep->features, "pixels") == 0 ? rep->model_config : rep->features, rep->d,
                rep->source, *rep->checkpoint ? rep->checkpoint : "unknown");
    }
    for (int r = 0; r < data->nreps; r++)
        if (isfinite(data->reps[r].explained_variance))
            fprintf(f,
                    "\nThe raw-pixel PCA keeps %.1f%% of the downsampled pixels' variance. It "
                    "is fitted on all the study's images before cross-validation: it sees no "
                    "label, only the pixels of images that are later held out, so it cannot "
                    "leak a target into a fold's model.\n",
                    100.0 * data->reps[r].explained_variance);
    fputc('\n', f);
}

static void md_results(FILE *f, const rd_analyze_data *data, const rd_analyze_study *s,
                       const rd_probe_config *c) {
    int level = (int)lround(100 * c->ci_level);
    for (int t = 0; t < s->ntargets; t++) {
        const rd_analyze_target *target = &data->targets[t];
        const rd_probe_task *task0 = &s->tasks[analyze_index(s, t, 0)];
        int logistic = target->kind == RD_PROBE_LOGISTIC;
        fprintf(f, "## Results: %s\n\n%s regression on %d images of %d patients with a known %s",
                target->name, logistic ? "Logistic" : "Ridge", task0->nrows, task0->npatients,
                target->name);
        if (logistic)
            fprintf(f, " (1 = %s; majority class %.1f%%, the accuracy of always guessing it)",
                    strcmp(target->name, "view") == 0  ? "AP, 0 = PA"
                    : strcmp(target->name, "sex") == 0 ? "male"
                                                       : "positive, 0 = negative",
                    100.0 * s->cells[analyze_index(s, t, 0)].majority_rate);
        if (*target->adjusted_for)
            fprintf(f,
                    "; the target is %s minus its least-squares fit on %s (section "
                    "Confounders)",
                    target->name, target->adjusted_for);
        fprintf(f, ".\n\n| encoder | features |");
        for (int m = 0; m < RD_PROBE_NMETRICS; m++)
            if (rd_probe_metric_applies(target->kind, (rd_probe_metric)m))
                fprintf(f, " %s [%d%% CI] |", metric_label((rd_probe_metric)m), level);
        fprintf(f, " permutation p | Holm p | λ at grid edge |\n|---|---|");
        for (int m = 0; m < RD_PROBE_NMETRICS; m++)
            if (rd_probe_metric_applies(target->kind, (rd_probe_metric)m)) fputs("---|", f);
        fputs("---|---|---|\n", f);
        for (int r = 0; r < s->nreps; r++) {
            const rd_probe_result *res = &s->results[analyze_index(s, t, r)];
            fprintf(f, "| %s | %s%s |", data->reps[r].encoder, data->reps[r].features,
                    data->reps[r].knn ? ", k-NN" : "");
            for (int m = 0; m < RD_PROBE_NMETRICS; m++)
                if (rd_probe_metric_applies(target->kind, (rd_probe_metric)m)) {
                    fputc(' ', f);
                    md_interval(f, &res->metric[m], metric_decimals((rd_probe_metric)m));
                    fputs(" |", f);
                }
            fputc(' ', f);
            md_p(f, res->perm_p);
            fputs(" | ", f);
            md_p(f, res->perm_p_holm);
            fprintf(f, " | %d of %d |\n", res->lambda_at_edge, c->outer_folds);
        }
        fputc('\n', f);
    }
}

/* Raw and adjusted effects side by side: for each adjusted target and representation, the
 * unadjusted target's primary metric and the adjusted target's R2 and r, with intervals. */
static void md_confounders(FILE *f, const rd_analyze_data *data, const rd_analyze_study *s,
                           const rd_probe_config *c) {
    int any = 0;
    for (int t = 0; t < s->ntargets; t++) any |= *data->targets[t].adjusted_for != 0;
    if (!any) return;
    int level = (int)lround(100 * c->ci_level);
    fprintf(f,
            "## Confounders\n\nRaw effect: the probe of the target itself. Adjusted effect: a "
            "ridge probe of the target's residual after a least-squares fit on the confounders "
            "(sex and view as 0/1, numeric ones as value and square), so only what the "
            "confounders do not explain counts. R² of the residual is out of sample like any R²: "
            "0 = the embeddings predict nothing beyond the confounders. %d%% intervals from "
            "patient resamples. docs/ANALYSIS.md says why residuals.\n\n"
            "| target | adjusted for | representation | raw effect [%d%% CI] | adjusted R² [%d%% "
            "CI] | adjusted r [%d%% CI] | Holm p (adjusted) |\n|---|---|---|---|---|---|---|\n",
            level, level, level, level);
    for (int t = 0; t < s->ntargets; t++) {
        const rd_analyze_target *target = &data->targets[t];
        if (!*target->adjusted_for) continue;
        for (int r = 0; r < s->nreps; r++) {
            char name[2 * RD_ANALYZE_NAME_MAX + 4];
            rd_analyze_rep_name(data, r, name, sizeof name);
            const rd_probe_result *adj = &s->results[analyze_index(s, t, r)];
            fprintf(f, "| %s | %s | %s | ", target->name, target->adjusted_for, name);
            if (target->raw >= 0) {
                rd_probe_metric m = rd_probe_primary_metric(data->targets[target->raw].kind);
                fprintf(f, "%s ", metric_label(m));
                md_interval(f, &s->results[analyze_index(s, target->raw, r)].metric[m],
                            metric_decimals(m));
            } else {
                fputs("(not in the study's targets)", f);
            }
            fputs(" | ", f);
            md_interval(f, &adj->metric[RD_PROBE_R2], metric_decimals(RD_PROBE_R2));
            fputs(" | ", f);
            md_interval(f, &adj->metric[RD_PROBE_PEARSON], metric_decimals(RD_PROBE_PEARSON));
            fputs(" | ", f);
            md_p(f, adj->perm_p_holm);
            fputs(" |\n", f);
        }
    }
    fputc('\n', f);
}

static void md_pairs(FILE *f, const rd_analyze_data *data, const rd_analyze_study *s,
                     const rd_probe_config *c) {
    if (s->npairs == 0) return;
    fprintf(f,
            "## Paired comparisons\n\nDifference a − b of each metric, recomputed on the same "
            "patient resamples (%d%% intervals; MAE: negative means a errs less).\n\n"
            "| target | a | b | difference [%d%% CI] | significant |\n|---|---|---|---|---|\n",
            (int)lround(100 * c->ci_level), (int)lround(100 * c->ci_level));
    for (int k = 0; k < s->npairs; k++) {
        const rd_analyze_pair *pair = &s->pairs[k];
        pair_text pt;
        describe_pair(data, pair, &pt);
        rd_probe_kind kind = data->targets[pair->target].kind;
        fprintf(f, "| %s | %s | %s |", data->targets[pair->target].name, pt.a, pt.b);
        for (int m = 0, first = 1; m < RD_PROBE_NMETRICS; m++) {
            if (!rd_probe_metric_applies(kind, (rd_probe_metric)m)) continue;
            fprintf(f, "%s Δ%s ", first ? "" : ";", metric_label((rd_probe_metric)m));
            md_interval(f, &pair->diff[m], metric_decimals((rd_probe_metric)m));
            first = 0;
        }
        fprintf(f, " | %s |\n", pt.significant ? "yes" : "no");
    }
    int ntests = s->npairs;
    fprintf(f,
            "\n%d comparisons, each at %d%%: with no true differences at all, about %.1f of "
            "them would exclude 0 by chance. Intervals are not corrected for multiplicity "
            "(set analyze.ci_level: 0.99 for a stricter reading).\n\n",
            ntests, (int)lround(100 * c->ci_level), ntests * (1 - c->ci_level));
}

static void md_dims(FILE *f, const rd_analyze_data *data, const rd_analyze_study *s) {
    if (s->top_dims == 0) return;
    fputs("## Per-dimension correlations (descriptive)\n\nDimensions with the largest |r| "
          "(Pearson; point-biserial for 0/1 targets, 1 = male, AP or positive), over all images "
          "with a known target. "
          "Feature axes are not privileged, so this describes rather than tests: the probes "
          "above are the evidence.\n\n",
          f);
    for (int t = 0; t < s->ntargets; t++)
        for (int r = 0; r < s->nreps; r++) {
            const rd_analyze_cell *c = &s->cells[analyze_index(s, t, r)];
            char name[2 * RD_ANALYZE_NAME_MAX + 4];
            rd_analyze_rep_name(data, r, name, sizeof name);
            fprintf(f, "- %s, %s:", data->targets[t].name, name);
            for (int k = 0; k < s->top_dims; k++)
                if (c->top[k] >= 0)
                    fprintf(f, "%s %d (r = %.3f)", k ? "," : "", c->top[k], c->dim_r[c->top[k]]);
            fputc('\n', f);
        }
    fputc('\n', f);
}

static void md_plots(FILE *f, const rd_analyze_params *p, const rd_analyze_outputs *out,
                     const rd_loss_curve *loss) {
    fputs("## Plots\n\n", f);
    if (*out->plot_problem) fprintf(f, "Plots missing: %s\n\n", out->plot_problem);
    for (int k = 0; k < out->nplots; k++)
        if (strcmp(out->plot[k], "loss.png") != 0)
            fprintf(f, "![%s](%s)\n\n", out->plot[k], out->plot[k]);
    fputs("ROC curves are the mean over the outer folds of each fold's curve (as the AUROC is "
          "the mean of the folds' AUROCs); predicted-vs-true scatters pool the out-of-fold "
          "predictions (predictions.csv has them all).\n\n## Training loss\n\n",
          f);
    if (out->have_loss) {
        fprintf(f, "From `%s`: %d points, terms", p->metrics_jsonl, loss->npoints);
        for (int t = 0; t < loss->nterms; t++) fprintf(f, "%s %s", t ? "," : "", loss->term[t]);
        fputs(".\n\n![loss.png](loss.png)\n\n", f);
    } else {
        fprintf(f, "%s\n\n", out->loss_note);
    }
}

static void md_method(FILE *f, const rd_analyze_params *p) {
    const rd_probe_config *c = &p->probe;
    fprintf(f,
            "## Method\n\n"
            "Frozen features, a linear model per representation and target: L2 logistic "
            "regression for 0/1 targets (sex, view, finding labels), ridge regression for numeric "
            "targets, features standardised on each training set. %d-fold cross-validation grouped "
            "by patient (no patient's images "
            "on both sides of a split); in each outer training set the penalty is chosen from %d "
            "values (%g to %g) by %d inner grouped folds. AUROC and Pearson r are computed "
            "within each outer fold and averaged; R² is out of sample, against each fold's "
            "training mean (0 = no better than the mean). Intervals: %d%% percentile intervals "
            "from %d bootstrap resamples of patients (the models are not refitted). "
            "Permutation test: %d full refits with labels exchanged between patients of the "
            "same image count; p = (1 + #null >= observed) / (permutations + 1). Paired "
            "comparisons recompute both representations' metrics on the same patient "
            "resamples. Seed %llu. Details and why: docs/ANALYSIS.md.\n\n",
            c->outer_folds, c->nlambda, c->lambda[0], c->lambda[c->nlambda - 1], c->inner_folds,
            (int)lround(100 * c->ci_level), c->bootstrap, c->permutations,
            (unsigned long long)c->seed);
    if (p->knn_k > 0)
        fprintf(f,
                "k-NN probes (\"kNN\"): DINOv2's k-NN evaluation on the same outer folds: features "
                "L2-normalised, the %d training images of highest cosine similarity vote with "
                "weights exp(similarity / %g); the prediction is the weighted share of the vote "
                "for class 1 (minus ½, so that > 0 is the majority vote) or the weighted mean of "
                "a numeric target. No penalty is chosen, so no λ is reported.\n\n",
                p->knn_k, p->knn_temperature);
}

static char *report_md(const rd_analyze_params *p, const rd_analyze_data *data,
                       const rd_analyze_study *s, const describe *d, const rd_analyze_outputs *out,
                       const rd_loss_curve *loss, size_t *len) {
    char *text = NULL;
    FILE *f = open_memstream(&text, len);
    if (!f) return NULL;
    fputs("# Metadata-correlation study\n\nDo frozen embeddings carry the patient's sex and age, "
          "and more than a randomly initialised encoder and raw pixels do? Linear probes, "
          "cross-validated by patient (method at the end). Every number here is in "
          "report.json.\n\n",
          f);
    md_findings(f, data, s, 1.0 - p->probe.ci_level);
    md_labels(f, data, s, &p->probe);
    md_results(f, data, s, &p->probe);
    md_confounders(f, data, s, &p->probe);
    md_pairs(f, data, s, &p->probe);
    md_data(f, p, data, d);
    md_dims(f, data, s);
    md_plots(f, p, out, loss);
    md_method(f, p);
    return fclose(f) == 0 ? text : (free(text), NULL);
}

/* ---- predictions.csv ---- */

static char *predictions_csv(const rd_analyze_data *data, const rd_analyze_study *s, size_t *len) {
    char *text = NULL;
    FILE *f = open_memstream(&text, len);
    if (!f) return NULL;
    fputs("image_id,patient_id,split,target,y,fold", f);
    for (int r = 0; r < s->nreps; r++) {
        char name[2 * RD_ANALYZE_NAME_MAX + 4];
        rd_analyze_rep_name(data, r, name, sizeof name);
        fputc(',', f);
        rd_csv_put_field(f, name);
    }
    fputc('\n', f);
    for (int t = 0; t < s->ntargets; t++) {
        const rd_probe_task *task = &s->tasks[analyze_index(s, t, 0)];
        for (int k = 0; k < task->nrows; k++) {
            int i = task->row[k];
            rd_csv_put_field(f, data->image_id + (size_t)i * data->id_stride);
            fputc(',', f);
            rd_csv_put_field(f, data->patient_id + (size_t)i * data->patient_stride);
            fprintf(f, ",%s,%s,%.9g,%d", split_names[data->split[i]], data->targets[t].name,
                    task->y[k], task->outer_fold[task->patient[k]]);
            for (int r = 0; r < s->nreps; r++)
                fprintf(f, ",%.9g", s->results[analyze_index(s, t, r)].pred[k]);
            fputc('\n', f);
        }
    }
    return fclose(f) == 0 ? text : (free(text), NULL);
}

static rd_status write_text(const char *dir, const char *name, char *text, size_t len,
                            rd_error *err) {
    if (!text) return rd_fail(err, RD_ENOMEM, "out of memory composing %s/%s", dir, name);
    char path[RD_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    rd_status st = rd_write_file_atomic(path, text, len, err);
    free(text);
    return st;
}

static rd_status write_all(const rd_analyze_params *p, const rd_analyze_data *data,
                           const rd_analyze_study *s, rd_analyze_outputs *out, rd_error *err) {
    rd_status st = rd_mkdir_p(p->output_dir, err);
    if (st) return st;
    describe d;
    if ((st = describe_data(data, s, &d, err))) return st;
    rd_loss_curve loss = {0};
    rd_error loss_err = {0};
    out->have_loss = 0;
    if (rd_loss_curve_read(p->metrics_jsonl, &loss, &loss_err) != RD_OK)
        snprintf(out->loss_note, sizeof out->loss_note,
                 "No training-loss plot: %.900s (rdino-pretrain writes it; set "
                 "analyze.metrics_jsonl).",
                 loss_err.msg);
    else if (loss.npoints == 0 || loss.nterms == 0)
        snprintf(out->loss_note, sizeof out->loss_note,
                 "No training-loss plot: %.900s has no line with a step and a loss value.",
                 p->metrics_jsonl);
    else
        out->have_loss = 1;
    if (!out->have_loss) {
        /* A loss plot left by an earlier run would contradict this report. */
        char stale[RD_PATH_MAX + 16];
        snprintf(stale, sizeof stale, "%s/loss.png", p->output_dir);
        unlink(stale);
    }
    analyze_plots(p, data, s, &loss, out);
    if (*out->plot_problem) rd_warn("plots: %s", out->plot_problem);
    size_t len = 0;
    char *text = predictions_csv(data, s, &len);
    st = write_text(p->output_dir, "predictions.csv", text, len, err);
    if (!st && has_labels(data, s)) {
        text = labels_csv(data, s, &len);
        st = write_text(p->output_dir, "finding_labels.csv", text, len, err);
    }
    if (!st) {
        text = report_json(p, data, s, &d, out, &loss, &len);
        st = write_text(p->output_dir, "report.json", text, len, err);
    }
    if (!st) {
        text = report_md(p, data, s, &d, out, &loss, &len);
        st = write_text(p->output_dir, "report.md", text, len, err);
    }
    rd_loss_curve_free(&loss);
    return st;
}

rd_status rd_analyze_write(MPI_Comm comm, const rd_analyze_params *p, const rd_analyze_data *data,
                           const rd_analyze_study *study, rd_analyze_outputs *out, rd_error *err) {
    int rank = 0;
    MPI_Comm_rank(comm, &rank);
    memset(out, 0, sizeof *out);
    rd_status st = rank == 0 ? write_all(p, data, study, out, err) : RD_OK;
    return rd_agree(comm, st, err);
}

void rd_analyze_log_summary(const rd_analyze_params *p, const rd_analyze_data *data,
                            const rd_analyze_study *s, const rd_analyze_outputs *out) {
    rd_info("summary: %d images, %d patients, %d representations, %d targets", data->n,
            s->npatients, s->nreps, s->ntargets);
    for (int t = 0; t < s->ntargets; t++) {
        rd_probe_metric m = rd_probe_primary_metric(data->targets[t].kind);
        for (int r = 0; r < s->nreps; r++) {
            const rd_probe_result *res = &s->results[analyze_index(s, t, r)];
            const rd_probe_interval *iv = &res->metric[m];
            char name[2 * RD_ANALYZE_NAME_MAX + 4];
            rd_analyze_rep_name(data, r, name, sizeof name);
            char p_text[48] = "not tested";
            if (isfinite(res->perm_p))
                snprintf(p_text, sizeof p_text, "%.2g (Holm %.2g)", res->perm_p, res->perm_p_holm);
            rd_info("summary: %-6s %-24s %s %.3f [%.3f, %.3f]  permutation p %s",
                    data->targets[t].name, name, metric_label(m), iv->estimate, iv->lo, iv->hi,
                    p_text);
        }
    }
    for (int k = 0; k < s->npairs; k++) {
        pair_text pt;
        describe_pair(data, &s->pairs[k], &pt);
        rd_info("summary: %s", pt.sentence);
    }
    for (int r = 0; s->nlabels && r < s->nreps; r++) {
        char name[2 * RD_ANALYZE_NAME_MAX + 4];
        rd_analyze_rep_name(data, r, name, sizeof name);
        rd_info("summary: macro AUROC over %d finding labels, %-24s %.3f [%.3f, %.3f]", s->nlabels,
                name, s->macro[r].estimate, s->macro[r].lo, s->macro[r].hi);
    }
    for (int k = 0; k < s->nmacro_pairs; k++) {
        pair_text pt;
        describe_pair(data, &s->macro_pairs[k], &pt);
        rd_info("summary: %s", pt.sentence);
    }
    rd_info("summary: report in %s/report.md (numbers: report.json; %d plots%s%s)", p->output_dir,
            out->nplots, *out->plot_problem ? "; " : "", out->plot_problem);
}
