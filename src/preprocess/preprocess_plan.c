/* Reconciliation of metadata rows with the image folder; see preprocess_plan.h. */
#include "rdino/preprocess_plan.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdino/file.h"

/* ---- report lines ---- */

rd_status rd_report_add(rd_report *r, int64_t row, const char *file, rd_outcome outcome,
                        const char *reason, const char *detail, rd_error *err) {
    if (r->n == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 256;
        rd_report_line *bigger = realloc(r->lines, cap * sizeof *bigger);
        if (!bigger) return rd_fail(err, RD_ENOMEM, "report: out of memory");
        r->lines = bigger;
        r->cap = cap;
    }
    rd_report_line *l = &r->lines[r->n];
    l->row = row;
    l->outcome = outcome;
    l->file = strdup(file ? file : "");
    l->reason = strdup(reason);
    l->detail = strdup(detail ? detail : "");
    if (!l->file || !l->reason || !l->detail) {
        free(l->file);
        free(l->reason);
        free(l->detail);
        return rd_fail(err, RD_ENOMEM, "report: out of memory");
    }
    r->n++;
    return RD_OK;
}

typedef struct line_order {
    const rd_report_line *line;
    size_t seq;
} line_order;

static int cmp_line_order(const void *a, const void *b) {
    const line_order *x = a, *y = b;
    int64_t rx = x->line->row ? x->line->row : INT64_MAX;
    int64_t ry = y->line->row ? y->line->row : INT64_MAX;
    if (rx != ry) return (rx > ry) - (rx < ry);
    if (rx == INT64_MAX) {
        int c = strcmp(x->line->file, y->line->file);
        if (c) return c;
    }
    return (x->seq > y->seq) - (x->seq < y->seq);
}

rd_status rd_report_sort(rd_report *r, rd_error *err) {
    line_order *order = malloc((r->n + 1) * sizeof *order);
    rd_report_line *sorted = malloc((r->n + 1) * sizeof *sorted);
    if (!order || !sorted) {
        free(order);
        free(sorted);
        return rd_fail(err, RD_ENOMEM, "report: out of memory");
    }
    for (size_t i = 0; i < r->n; i++) order[i] = (line_order){&r->lines[i], i};
    qsort(order, r->n, sizeof *order, cmp_line_order);
    for (size_t i = 0; i < r->n; i++) sorted[i] = *order[i].line;
    free(order);
    free(r->lines);
    r->lines = sorted;
    r->cap = r->n + 1;
    return RD_OK;
}

void rd_report_free(rd_report *r) {
    for (size_t i = 0; i < r->n; i++) {
        free(r->lines[i].file);
        free(r->lines[i].reason);
        free(r->lines[i].detail);
    }
    free(r->lines);
    memset(r, 0, sizeof *r);
}

/* ---- views ---- */

/* 1 when view is in the comma-separated list (case-insensitive), or the list is empty. */
static int view_allowed(const char *list, const char *view) {
    if (!list[0]) return 1;
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == ',') p++;
        size_t n = strcspn(p, ",");
        size_t m = n;
        while (m > 0 && p[m - 1] == ' ') m--;
        if (m > 0 && strlen(view) == m && strncasecmp(p, view, m) == 0) return 1;
        p += n;
    }
    return 0;
}

/* ---- file lookup ---- */

typedef struct by_name {
    const char *name; /* file name part of a listed path */
    const rd_image_file *file;
} by_name;

static int cmp_by_name(const void *a, const void *b) {
    return strcmp(((const by_name *)a)->name, ((const by_name *)b)->name);
}

static const char *file_name(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* The path with its extension (if any) replaced by ".png". */
static int with_png_extension(const char *path, char *out, size_t cap) {
    const char *name = file_name(path);
    const char *dot = strrchr(name, '.');
    size_t stem = dot && dot != name ? (size_t)(dot - path) : strlen(path);
    return snprintf(out, cap, "%.*s.png", (int)stem, path) < (int)cap ? 0 : -1;
}

typedef struct lookup {
    const rd_image_tree *tree;
    by_name *names; /* every listed file, sorted by file name */
    char root_real[RD_PATH_MAX];
} lookup;

/* Finds the file for a normalised path: as given, with a .png extension, then (for bare
 * names only) by unique file name. *ambiguous counts the candidates when the name is not
 * unique. */
static const rd_image_file *find_file(const lookup *lk, const char *path, int *ambiguous) {
    *ambiguous = 0;
    const rd_image_file *f = rd_image_tree_find(lk->tree, path);
    char png[RD_PATH_MAX];
    int have_png = with_png_extension(path, png, sizeof png) == 0;
    if (!f && have_png) f = rd_image_tree_find(lk->tree, png);
    if (f || strchr(path, '/')) return f;
    const char *candidates[2] = {path, have_png ? png : path};
    for (int c = 0; c < 2 && !f; c++) {
        by_name key = {candidates[c], NULL};
        by_name *hit = bsearch(&key, lk->names, lk->tree->nfiles, sizeof key, cmp_by_name);
        if (!hit) continue;
        while (hit > lk->names && strcmp(hit[-1].name, candidates[c]) == 0) hit--;
        int n = 0;
        for (by_name *h = hit; h < lk->names + lk->tree->nfiles && !strcmp(h->name, hit->name);)
            h++, n++;
        if (n == 1)
            f = hit->file;
        else
            *ambiguous = n;
    }
    return f;
}

/* 1 when root/path exists but resolves outside the root (through a symlinked folder). */
static int resolves_outside(const lookup *lk, const char *path) {
    char abs[RD_PATH_MAX], real[RD_PATH_MAX];
    if (snprintf(abs, sizeof abs, "%s/%s", lk->tree->root, path) >= RD_PATH_MAX) return 0;
    if (!realpath(abs, real)) return 0;
    size_t n = strlen(lk->root_real);
    return !(strncmp(real, lk->root_real, n) == 0 && (real[n] == '/' || real[n] == '\0'));
}

/* ---- reconciliation ---- */

typedef struct output_order {
    rd_plan_item *item;
} output_order;

static int cmp_output(const void *a, const void *b) {
    const rd_plan_item *x = ((const output_order *)a)->item, *y = ((const output_order *)b)->item;
    int c = strcmp(x->output, y->output);
    return c ? c : (x->record->row > y->record->row) - (x->record->row < y->record->row);
}

/* Two rows whose files map to the same output (the same file reached twice, "x.PNG" next to
 * "x.png"): the first row keeps it. */
static rd_status reject_shared_outputs(rd_preprocess_plan *plan, rd_error *err) {
    size_t n = plan->nitems;
    output_order *order = malloc((n + 1) * sizeof *order);
    if (!order) return rd_fail(err, RD_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) order[i].item = &plan->items[i];
    qsort(order, n, sizeof *order, cmp_output);
    rd_status st = RD_OK;
    size_t first = 0;
    for (size_t i = 1; i < n && !st; i++) {
        if (strcmp(order[i].item->output, order[first].item->output) != 0) {
            first = i;
            continue;
        }
        const rd_plan_item *dup = order[i].item, *kept = order[first].item;
        char detail[RD_PATH_MAX + 128];
        snprintf(detail, sizeof detail, "file %s is already the image of line %lld",
                 dup->input->path, (long long)kept->record->row);
        st = rd_report_add(&plan->report, dup->record->row, dup->record->image, RD_OUTCOME_REJECTED,
                           RD_REASON_DUPLICATE_ID, detail, err);
        free(order[i].item->output);
        order[i].item->output = NULL; /* marked for removal */
    }
    free(order);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++)
        if (plan->items[i].output) plan->items[kept++] = plan->items[i];
    plan->nitems = kept;
    return st;
}

/* Decides the fate of one metadata record: an item, or a report line. */
static rd_status reconcile_record(rd_preprocess_plan *plan, const lookup *lk, const char *views,
                                  const rd_meta_record *r, unsigned char *claimed, rd_error *err) {
    char path[RD_PATH_MAX], detail[2 * RD_PATH_MAX];
    rd_report *rep = &plan->report;
    if (rd_path_normalize(r->image, path, sizeof path) != 0) {
        snprintf(detail, sizeof detail, "path '%s' is absolute or leaves the image folder",
                 r->image);
        return rd_report_add(rep, r->row, r->image, RD_OUTCOME_REJECTED, RD_REASON_PATH_ESCAPES,
                             detail, err);
    }
    int ambiguous;
    const rd_image_file *f = find_file(lk, path, &ambiguous);
    if (f) claimed[f - lk->tree->files] = 1; /* the file has its row, whatever its fate */
    if (!view_allowed(views, r->view)) {
        snprintf(detail, sizeof detail, "view '%s' is not in preprocess.views (%s)", r->view,
                 views);
        return rd_report_add(rep, r->row, r->image, RD_OUTCOME_EXCLUDED, RD_REASON_VIEW_EXCLUDED,
                             detail, err);
    }
    if (!f) {
        const char *reason = RD_REASON_MISSING;
        if (ambiguous) {
            reason = RD_REASON_AMBIGUOUS;
            snprintf(detail, sizeof detail, "%d files are named %s under %s: give the path",
                     ambiguous, path, lk->tree->root);
        } else if (resolves_outside(lk, path)) {
            reason = RD_REASON_PATH_ESCAPES;
            snprintf(detail, sizeof detail, "%s leads outside %s through a symbolic link", path,
                     lk->tree->root);
        } else {
            snprintf(detail, sizeof detail, "no file %s under %s", path, lk->tree->root);
        }
        return rd_report_add(rep, r->row, r->image, RD_OUTCOME_REJECTED, reason, detail, err);
    }
    if (f->outside) {
        snprintf(detail, sizeof detail, "%s is a symbolic link leading outside %s (or nowhere)",
                 f->path, lk->tree->root);
        return rd_report_add(rep, r->row, r->image, RD_OUTCOME_REJECTED, RD_REASON_PATH_ESCAPES,
                             detail, err);
    }
    rd_plan_item *it = &plan->items[plan->nitems];
    it->record = r;
    it->input = f;
    it->output = malloc(RD_PATH_MAX);
    if (!it->output) return rd_fail(err, RD_ENOMEM, "out of memory");
    if (with_png_extension(f->path, it->output, RD_PATH_MAX)) {
        free(it->output);
        return rd_fail(err, RD_EINVAL, "path too long: %s", f->path);
    }
    plan->nitems++;
    return RD_OK;
}

/* Every listed PNG no row claimed is an input of its own, rejected. */
static rd_status reject_orphans(rd_preprocess_plan *plan, const unsigned char *claimed,
                                rd_error *err) {
    const rd_image_tree *t = &plan->tree;
    for (size_t i = 0; i < t->nfiles; i++) {
        const rd_image_file *f = &t->files[i];
        if (claimed[i] || !rd_path_is_png(f->path)) continue;
        char detail[RD_PATH_MAX + 128];
        snprintf(detail, sizeof detail,
                 f->outside ? "%s is a symbolic link leading outside the image folder and no "
                              "metadata row names it"
                            : "no metadata row names %s",
                 f->path);
        plan->orphans++;
        if (rd_report_add(&plan->report, 0, f->path, RD_OUTCOME_REJECTED,
                          f->outside ? RD_REASON_PATH_ESCAPES : RD_REASON_NO_METADATA, detail, err))
            return err->code;
    }
    return RD_OK;
}

static rd_status reconcile(rd_preprocess_plan *plan, const char *views, rd_error *err) {
    const rd_image_tree *t = &plan->tree;
    lookup lk = {.tree = t};
    if (!realpath(t->root, lk.root_real))
        return rd_fail(err, RD_ENOTFOUND, "image folder %s vanished", t->root);
    lk.names = malloc((t->nfiles + 1) * sizeof *lk.names);
    unsigned char *claimed = calloc(t->nfiles + 1, 1);
    plan->items = calloc(plan->md.nrecords + 1, sizeof *plan->items);
    rd_status st = RD_OK;
    if (!lk.names || !claimed || !plan->items) st = rd_fail(err, RD_ENOMEM, "out of memory");
    for (size_t i = 0; !st && i < t->nfiles; i++)
        lk.names[i] = (by_name){file_name(t->files[i].path), &t->files[i]};
    if (!st) qsort(lk.names, t->nfiles, sizeof *lk.names, cmp_by_name);
    for (size_t i = 0; !st && i < plan->md.nrecords; i++)
        st = reconcile_record(plan, &lk, views, &plan->md.records[i], claimed, err);
    if (!st) st = reject_shared_outputs(plan, err);
    if (!st) st = reject_orphans(plan, claimed, err);
    free(lk.names);
    free(claimed);
    return st;
}

rd_status rd_preprocess_plan_build(const rd_config *cfg, const char *exclude_dir,
                                   rd_preprocess_plan *plan, rd_error *err) {
    memset(plan, 0, sizeof *plan);
    rd_metadata_options opt = {
        .format = rd_cfg_str(cfg, "data.format"),
        .metadata_csv = rd_cfg_str(cfg, "data.metadata_csv"),
        .patients_csv = rd_cfg_str(cfg, "data.patients_csv"),
        .findings_csv = rd_cfg_str(cfg, "data.findings_csv"),
        .col_image = rd_cfg_str(cfg, "data.columns.image"),
        .col_patient = rd_cfg_str(cfg, "data.columns.patient"),
        .col_age = rd_cfg_str(cfg, "data.columns.age"),
        .col_sex = rd_cfg_str(cfg, "data.columns.sex"),
        .col_view = rd_cfg_str(cfg, "data.columns.view"),
        .col_findings = rd_cfg_str(cfg, "data.columns.findings"),
        .uncertain = rd_cfg_str(cfg, "data.findings.uncertain"),
        .blank = rd_cfg_str(cfg, "data.findings.blank"),
    };
    const char *root = rd_cfg_str(cfg, "data.image_root");
    if (!root[0]) return rd_fail(err, RD_EINVAL, "data.image_root is not set");
    if (rd_metadata_read(&opt, &plan->md, err)) return err->code;
    rd_status st = rd_image_tree_list(root, exclude_dir, &plan->tree, err);
    for (size_t i = 0; !st && i < plan->md.nproblems; i++) {
        const rd_meta_problem *p = &plan->md.problems[i];
        st = rd_report_add(&plan->report, p->row, p->file, p->outcome, p->reason, p->detail, err);
    }
    if (!st) st = reconcile(plan, rd_cfg_str(cfg, "preprocess.views"), err);
    if (st) rd_preprocess_plan_free(plan);
    return st;
}

void rd_preprocess_plan_free(rd_preprocess_plan *plan) {
    for (size_t i = 0; i < plan->nitems; i++) free(plan->items[i].output);
    free(plan->items);
    rd_report_free(&plan->report);
    rd_image_tree_free(&plan->tree);
    rd_metadata_free(&plan->md);
    memset(plan, 0, sizeof *plan);
}
