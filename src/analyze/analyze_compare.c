/* Runs side by side (analyze.compare): the primary effects of several reports in one table and
 * one forest plot per target (the finding labels' macro AUROC as the target "findings_macro"),
 * and, when the reports come from checkpoints of one run, each effect against the training step. */
#include "analyze_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdino/file.h"
#include "rdino/json.h"
#include "rdino/log.h"

/* The run's label: the report folder's name, or its parent's when it is called "report". */
static void run_label(const char *dir, char *label, size_t size) {
    char path[RD_PATH_MAX];
    snprintf(path, sizeof path, "%s", dir);
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/') path[--len] = '\0';
    char *base = strrchr(path, '/');
    const char *name = base ? base + 1 : path;
    if (base && strcmp(base + 1, "report") == 0 && base > path) {
        *base = '\0';
        const char *parent = strrchr(path, '/');
        name = parent ? parent + 1 : path;
    }
    snprintf(label, size, "%.*s", (int)size - 1, name); /* long names are cut */
}

/* The training step of a checkpoint path ".../step-0001000.h5" (rdino-pretrain's names); NaN
 * when the name has none. */
static double checkpoint_step(const char *checkpoint) {
    const char *s = strstr(checkpoint, "step-");
    if (!s) return NAN;
    char *end;
    double step = strtod(s + 5, &end);
    return end > s + 5 ? step : NAN;
}

/* A new row of the run LABEL at STEP (its metric values NaN until read), or NULL when out of
 * memory. */
static rd_compare_row *append_row(rd_compare_row **rows, int *nrows, int *cap, const char *label,
                                  double step, const char *target, const char *rep, int logistic) {
    if (*nrows == *cap) {
        int grown_cap = *cap ? 2 * *cap : 64;
        rd_compare_row *grown = realloc(*rows, (size_t)grown_cap * sizeof *grown);
        if (!grown) return NULL;
        *rows = grown;
        *cap = grown_cap;
    }
    rd_compare_row *row = &(*rows)[(*nrows)++];
    memset(row, 0, sizeof *row);
    snprintf(row->run, sizeof row->run, "%s", label);
    snprintf(row->target, sizeof row->target, "%s", target);
    snprintf(row->rep, sizeof row->rep, "%s", rep);
    row->logistic = logistic;
    row->step = step;
    row->estimate = row->lo = row->hi = row->p_holm = NAN;
    return row;
}

/* estimate, lo and hi of a metric object {estimate, lo, hi}; null (undefined) values stay NaN. */
static void read_interval(const json_t *m, const char *path, rd_compare_row *row, rd_error *err) {
    if (!m) return;
    rd_json_get_number(m, "estimate", RD_JSON_OPTIONAL, path, &row->estimate, err);
    rd_json_get_number(m, "lo", RD_JSON_OPTIONAL, path, &row->lo, err);
    rd_json_get_number(m, "hi", RD_JSON_OPTIONAL, path, &row->hi, err);
}

static rd_status read_report(const char *dir, rd_compare_row **rows, int *nrows, int *cap,
                             rd_error *err) {
    char path[RD_PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/report.json", dir);
    json_t *root;
    rd_status st = rd_json_load(path, &root, err);
    if (st) return rd_wrap(err, "analyze.compare");
    char label[RD_ANALYZE_NAME_MAX];
    run_label(dir, label, sizeof label);
    double step = NAN;
    const json_t *reps = json_object_get(root, "representations");
    const json_t *results = json_object_get(root, "results");
    if (!json_is_array(reps) || !json_is_array(results)) {
        json_decref(root);
        return rd_fail(err, RD_EFORMAT, "%s: no representations or results (not a report.json?)",
                       path);
    }
    const char *checkpoint = NULL;
    if (json_array_size(reps) > 0 &&
        rd_json_get_string(json_array_get(reps, 0), "checkpoint", RD_JSON_OPTIONAL, path,
                           &checkpoint, err) == RD_OK &&
        checkpoint)
        step = checkpoint_step(checkpoint);
    for (size_t i = 0; !st && i < json_array_size(results); i++) {
        const json_t *r = json_array_get(results, i);
        const char *target = NULL, *rep = NULL, *model = NULL;
        st = rd_json_get_string(r, "target", RD_JSON_REQUIRED, path, &target, err);
        if (!st) st = rd_json_get_string(r, "representation", RD_JSON_REQUIRED, path, &rep, err);
        if (!st) st = rd_json_get_string(r, "model", RD_JSON_REQUIRED, path, &model, err);
        if (st) break;
        const int logistic = strcmp(model, "logistic") == 0;
        rd_compare_row *row = append_row(rows, nrows, cap, label, step, target, rep, logistic);
        if (!row) {
            st = rd_fail(err, RD_ENOMEM, "out of memory comparing reports");
            break;
        }
        read_interval(json_object_get(json_object_get(r, "metrics"), logistic ? "auroc" : "r2"),
                      path, row, err);
        rd_json_get_number(json_object_get(r, "permutation"), "p_holm", RD_JSON_OPTIONAL, path,
                           &row->p_holm, err);
    }
    /* The macro AUROC over the finding labels, one row per representation (no permutation
     * test: its Holm p stays n/a). */
    const json_t *macro = json_object_get(json_object_get(root, "finding_labels"), "macro");
    for (size_t i = 0; !st && i < json_array_size(macro); i++) {
        const json_t *m = json_array_get(macro, i);
        const char *rep = NULL;
        st = rd_json_get_string(m, "representation", RD_JSON_REQUIRED, path, &rep, err);
        if (st) break;
        rd_compare_row *row = append_row(rows, nrows, cap, label, step, "findings_macro", rep, 1);
        if (!row) {
            st = rd_fail(err, RD_ENOMEM, "out of memory comparing reports");
            break;
        }
        read_interval(json_object_get(m, "auroc"), path, row, err);
    }
    json_decref(root);
    return st;
}

rd_status rd_analyze_compare_read(char *const *reports, int n, rd_compare_row **rows, int *nrows,
                                  rd_error *err) {
    *rows = NULL;
    *nrows = 0;
    int cap = 0;
    rd_status st = RD_OK;
    for (int k = 0; !st && k < n; k++) st = read_report(reports[k], rows, nrows, &cap, err);
    if (st) {
        free(*rows);
        *rows = NULL;
        *nrows = 0;
    }
    return st;
}

static void md_number(FILE *f, double v) {
    if (isfinite(v))
        fprintf(f, "%.3f", v);
    else
        fputs("n/a", f);
}

static char *compare_md(const rd_analyze_params *p, const rd_compare_row *rows, int n,
                        const rd_analyze_outputs *out, size_t *len) {
    char *text = NULL;
    FILE *f = open_memstream(&text, len);
    if (!f) return NULL;
    fprintf(f,
            "# Runs side by side\n\n%d reports (analyze.compare). Each row is one run's probe of "
            "one representation: AUROC for 0/1 targets, out-of-sample R² for numeric ones, with "
            "the run's own bootstrap interval and Holm-adjusted permutation p. Intervals of "
            "different runs are independent: two runs differ clearly when their intervals do "
            "not overlap; a paired comparison needs both encoders in one report.\n\n",
            p->ncompare);
    for (int i = 0; i < n; i++) {
        int first = 1;
        for (int j = 0; j < i; j++) first &= strcmp(rows[j].target, rows[i].target) != 0;
        if (!first) continue;
        fprintf(f,
                "## %s\n\n| run | step | representation | %s [CI] | Holm p |\n"
                "|---|---|---|---|---|\n",
                rows[i].target, rows[i].logistic ? "AUROC" : "R²");
        for (int j = i; j < n; j++) {
            if (strcmp(rows[j].target, rows[i].target) != 0) continue;
            fprintf(f, "| %s | ", rows[j].run);
            if (isfinite(rows[j].step))
                fprintf(f, "%.0f", rows[j].step);
            else
                fputs("-", f);
            fprintf(f, " | %s | ", rows[j].rep);
            md_number(f, rows[j].estimate);
            fputs(" [", f);
            md_number(f, rows[j].lo);
            fputs(", ", f);
            md_number(f, rows[j].hi);
            fputs("] | ", f);
            md_number(f, rows[j].p_holm);
            fputs(" |\n", f);
        }
        fputc('\n', f);
    }
    if (*out->plot_problem) fprintf(f, "Plots missing: %s\n\n", out->plot_problem);
    for (int k = 0; k < out->nplots; k++) fprintf(f, "![%s](%s)\n\n", out->plot[k], out->plot[k]);
    return fclose(f) == 0 ? text : (free(text), NULL);
}

static char *compare_csv(const rd_compare_row *rows, int n, size_t *len) {
    char *text = NULL;
    FILE *f = open_memstream(&text, len);
    if (!f) return NULL;
    fputs("run,step,target,representation,metric,estimate,lo,hi,p_holm\n", f);
    for (int i = 0; i < n; i++) {
        const rd_compare_row *r = &rows[i];
        fprintf(f, "\"%s\",%.17g,\"%s\",\"%s\",%s,%.17g,%.17g,%.17g,%.17g\n", r->run, r->step,
                r->target, r->rep, r->logistic ? "auroc" : "r2", r->estimate, r->lo, r->hi,
                r->p_holm);
    }
    return fclose(f) == 0 ? text : (free(text), NULL);
}

rd_status rd_analyze_compare(MPI_Comm comm, const rd_analyze_params *p, rd_error *err) {
    int rank = 0;
    if (comm != MPI_COMM_NULL) MPI_Comm_rank(comm, &rank);
    rd_status st = RD_OK;
    if (rank == 0) {
        rd_compare_row *rows = NULL;
        int n = 0;
        rd_analyze_outputs out;
        memset(&out, 0, sizeof out);
        st = rd_analyze_compare_read(p->compare, p->ncompare, &rows, &n, err);
        if (!st && rd_mkdir_p(p->output_dir, err) != RD_OK) st = err->code;
        if (!st) analyze_compare_plots(p, rows, n, &out);
        const char *names[2] = {"compare.md", "compare.csv"};
        for (int k = 0; !st && k < 2; k++) {
            size_t len = 0;
            char *text = k == 0 ? compare_md(p, rows, n, &out, &len) : compare_csv(rows, n, &len);
            char path[RD_PATH_MAX + 16];
            snprintf(path, sizeof path, "%s/%s", p->output_dir, names[k]);
            if (!text)
                st = rd_fail(err, RD_ENOMEM, "out of memory writing %s", path);
            else
                st = rd_write_file_atomic(path, text, len, err);
            free(text);
        }
        if (!st)
            rd_info("summary: %d reports side by side in %s/compare.md (%d plots)", p->ncompare,
                    p->output_dir, out.nplots);
        free(rows);
    }
    if (comm != MPI_COMM_NULL) {
        int code = st;
        MPI_Bcast(&code, 1, MPI_INT, 0, comm);
        if (rank != 0 && code)
            st = rd_fail(err, (rd_status)code, "rank 0 failed comparing reports");
    }
    return st;
}
