/* rdino-preprocess: plan on rank 0, process on every rank through the work queue, journal
 * per rank, assemble manifest/report/summary on rank 0; see preprocess_stage.h. */
#include "rdino/preprocess_stage.h"

#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rdino/agree.h"
#include "rdino/csv.h"
#include "rdino/file.h"
#include "rdino/journal.h"
#include "rdino/log.h"
#include "rdino/paths.h"
#include "rdino/preprocess_image.h"
#include "rdino/preprocess_plan.h"
#include "rdino/workqueue.h"

enum { FORMAT_VERSION = 1 };

/* Journal lines start with this; bump it when the line layout changes. */
#define JOURNAL_MAGIC   "rdino-preprocess-1"
#define REASON_CONSTANT "constant_image" /* warning: flat image, written as zeros */

typedef struct stage_paths {
    char pre[RD_PATH_MAX];     /* <output_dir>/preprocessed */
    char images[RD_PATH_MAX];  /* .../images */
    char journal[RD_PATH_MAX]; /* .../journal */
    const char *root;          /* data.image_root */
} stage_paths;

/* ---- parameters and their fingerprint ---- */

typedef struct stage_params {
    rd_prep_options opt;
    int png_level;
    char canonical[512]; /* every parameter that changes output bytes */
    uint64_t fingerprint;
} stage_params;

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static rd_status params_from_config(const rd_config *cfg, stage_params *p, rd_error *err) {
    rd_prep_options *o = &p->opt;
    if (rd_prep_options_from_config(cfg, o, err)) return err->code;
    p->png_level = (int)rd_cfg_int(cfg, "preprocess.png_level");
    snprintf(p->canonical, sizeof p->canonical,
             "size=%d crop=%s resample=%s normalize=%s percentiles=%.17g,%.17g bit_depth=%d "
             "max_pixels=%zu max_aspect=%.17g png_level=%d",
             o->size, o->center_crop ? "center" : "none", rd_kernel_name(o->kernel),
             rd_norm_name(o->norm), o->lo_pct, o->hi_pct, o->bit_depth, o->max_pixels,
             o->max_aspect, p->png_level);
    p->fingerprint = fnv1a(p->canonical);
    return RD_OK;
}

/* ---- the work list every rank receives ---- */

typedef struct work_item {
    const char *input;  /* relative to the image root */
    const char *output; /* relative to preprocessed/images */
    int64_t size, mtime_ns;
} work_item;

typedef struct work_list {
    work_item *items;
    int64_t n;
    char *blob; /* packed form: per item size, mtime, input\0, output\0 */
    uint64_t blob_len;
} work_list;

static void work_list_free(work_list *w) {
    free(w->items);
    free(w->blob);
    memset(w, 0, sizeof *w);
}

static rd_status pack_work(const rd_plan_item *const *todo, int64_t n, work_list *w,
                           rd_error *err) {
    uint64_t len = 0;
    for (int64_t i = 0; i < n; i++)
        len += 16 + strlen(todo[i]->input->path) + strlen(todo[i]->output) + 2;
    w->blob = malloc(len + 1);
    if (!w->blob) return rd_fail(err, RD_ENOMEM, "out of memory packing the work list");
    char *p = w->blob;
    for (int64_t i = 0; i < n; i++) {
        memcpy(p, &todo[i]->input->size, 8);
        memcpy(p + 8, &todo[i]->input->mtime_ns, 8);
        p += 16;
        p = stpcpy(p, todo[i]->input->path) + 1;
        p = stpcpy(p, todo[i]->output) + 1;
    }
    w->blob_len = len;
    w->n = n;
    return RD_OK;
}

static rd_status unpack_work(work_list *w, rd_error *err) {
    w->items = calloc((size_t)w->n + 1, sizeof *w->items);
    if (!w->items) return rd_fail(err, RD_ENOMEM, "out of memory unpacking the work list");
    const char *p = w->blob;
    for (int64_t i = 0; i < w->n; i++) {
        memcpy(&w->items[i].size, p, 8);
        memcpy(&w->items[i].mtime_ns, p + 8, 8);
        p += 16;
        w->items[i].input = p;
        p += strlen(p) + 1;
        w->items[i].output = p;
        p += strlen(p) + 1;
    }
    return RD_OK;
}

/* Broadcasts the work list (or rank 0's failure) from rank 0. */
static rd_status share_work(MPI_Comm comm, int rank, rd_status planned, work_list *w,
                            rd_error *err) {
    rd_status st = rd_agree(comm, planned, err);
    if (st) return st;
    int64_t header[2] = {w->n, (int64_t)w->blob_len};
    MPI_Bcast(header, 2, MPI_INT64_T, 0, comm);
    if (rank != 0) {
        w->n = header[0];
        w->blob_len = (uint64_t)header[1];
        w->blob = malloc(w->blob_len + 1);
    }
    st = w->blob ? RD_OK : rd_fail(err, RD_ENOMEM, "out of memory for the work list");
    if ((st = rd_agree(comm, st, err))) return st;
    for (uint64_t off = 0; off < w->blob_len; off += 1u << 30) {
        uint64_t part = w->blob_len - off < (1u << 30) ? w->blob_len - off : (1u << 30);
        MPI_Bcast(w->blob + off, (int)part, MPI_CHAR, 0, comm);
    }
    return unpack_work(w, err);
}

/* ---- journal lines ---- */

/* Tabs, newlines and backslashes escaped, so one record is one line of tab-separated fields. */
static void put_escaped(FILE *f, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '\t':
            fputs("\\t", f);
            break;
        case '\n':
            fputs("\\n", f);
            break;
        case '\r':
            fputs("\\r", f);
            break;
        case '\\':
            fputs("\\\\", f);
            break;
        default:
            fputc(*s, f);
        }
    }
}

static void unescape(char *s) {
    char *out = s;
    for (; *s; s++) {
        if (*s == '\\' && s[1]) {
            s++;
            *out++ = *s == 't' ? '\t' : *s == 'n' ? '\n' : *s == 'r' ? '\r' : *s;
        } else {
            *out++ = *s;
        }
    }
    *out = '\0';
}

typedef struct result {
    char *input, *output;
    int64_t size, mtime_ns, out_size;
    uint64_t fingerprint;
    int kept;
    char *reason; /* rejected: why */
    int width, height;
    unsigned warnings; /* RD_PREP_WARN_* bits */
    char *detail;
    size_t seq;
} result;

enum { JOURNAL_FIELDS = 13 };

static char *format_result(const result *r) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return NULL;
    fprintf(f, "%s\t%016" PRIx64 "\t", JOURNAL_MAGIC, r->fingerprint);
    put_escaped(f, r->input);
    fprintf(f, "\t%" PRId64 "\t%" PRId64 "\t", r->size, r->mtime_ns);
    put_escaped(f, r->output);
    fprintf(f, "\t%s\t", r->kept ? "kept" : "rejected");
    put_escaped(f, r->kept ? "-" : r->reason);
    fprintf(f, "\t%d\t%d\t%" PRId64 "\t%x\t", r->width, r->height, r->out_size, r->warnings);
    put_escaped(f, r->detail);
    fclose(f);
    return text;
}

typedef struct results {
    result *v;
    size_t n, cap;
    int64_t unreadable; /* journal lines that do not parse (torn by a kill, other versions) */
} results;

static void results_free(results *rs) {
    for (size_t i = 0; i < rs->n; i++) {
        free(rs->v[i].input);
        free(rs->v[i].output);
        free(rs->v[i].reason);
        free(rs->v[i].detail);
    }
    free(rs->v);
    memset(rs, 0, sizeof *rs);
}

static rd_status parse_journal_line(void *ctx, char *line, rd_error *err) {
    results *rs = ctx;
    char *field[JOURNAL_FIELDS];
    int n = 0;
    for (char *p = line; n < JOURNAL_FIELDS; n++) {
        field[n] = p;
        p = strchr(p, '\t');
        if (!p) {
            n++;
            break;
        }
        *p++ = '\0';
    }
    char *end;
    result r = {0};
    int ok =
        n == JOURNAL_FIELDS && strcmp(field[0], JOURNAL_MAGIC) == 0 && !strchr(field[12], '\t');
    if (ok) {
        r.fingerprint = strtoull(field[1], &end, 16);
        ok = *end == '\0' && (!strcmp(field[6], "kept") || !strcmp(field[6], "rejected"));
    }
    if (!ok) {
        rs->unreadable++;
        return RD_OK;
    }
    for (int i = 2; i < JOURNAL_FIELDS; i++) unescape(field[i]);
    r.size = strtoll(field[3], NULL, 10);
    r.mtime_ns = strtoll(field[4], NULL, 10);
    r.kept = strcmp(field[6], "kept") == 0;
    r.width = atoi(field[8]);
    r.height = atoi(field[9]);
    r.out_size = strtoll(field[10], NULL, 10);
    r.warnings = (unsigned)strtoul(field[11], NULL, 16);
    r.seq = rs->n;
    if (rs->n == rs->cap) {
        size_t cap = rs->cap ? 2 * rs->cap : 1024;
        result *bigger = realloc(rs->v, cap * sizeof *bigger);
        if (!bigger) return rd_fail(err, RD_ENOMEM, "out of memory reading the journal");
        rs->v = bigger;
        rs->cap = cap;
    }
    r.input = strdup(field[2]);
    r.output = strdup(field[5]);
    r.reason = strdup(field[7]);
    r.detail = strdup(field[12]);
    rs->v[rs->n++] = r;
    if (!r.input || !r.output || !r.reason || !r.detail)
        return rd_fail(err, RD_ENOMEM, "out of memory reading the journal");
    return RD_OK;
}

static int cmp_result(const void *a, const void *b) {
    const result *x = a, *y = b;
    int c = strcmp(x->input, y->input);
    return c ? c : (x->seq > y->seq) - (x->seq < y->seq);
}

static rd_status read_journal(const stage_paths *paths, results *rs, rd_error *err) {
    memset(rs, 0, sizeof *rs);
    rd_status st = rd_journal_read_dir(paths->journal, ".tsv", parse_journal_line, rs, err);
    if (st) {
        results_free(rs);
        return st;
    }
    if (rs->n) qsort(rs->v, rs->n, sizeof *rs->v, cmp_result);
    return RD_OK;
}

/* The latest journal result for this input under the current parameters, or NULL. */
static const result *find_result(const results *rs, const rd_plan_item *it, uint64_t fp) {
    result key = {.input = it->input->path, .seq = SIZE_MAX};
    size_t lo = 0, hi = rs->n; /* first entry ordered after key */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cmp_result(&rs->v[mid], &key) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = lo; i-- > 0 && strcmp(rs->v[i].input, it->input->path) == 0;) {
        const result *r = &rs->v[i];
        if (r->fingerprint == fp && r->size == it->input->size &&
            r->mtime_ns == it->input->mtime_ns && strcmp(r->output, it->output) == 0)
            return r;
    }
    return NULL;
}

/* A journal result can stand in for processing when its output is still there, whole. */
static int result_reusable(const stage_paths *paths, const result *r) {
    if (!r) return 0;
    if (!r->kept) return 1;
    char path[2 * RD_PATH_MAX];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", paths->images, r->output);
    return stat(path, &st) == 0 && st.st_size == r->out_size;
}

/* ---- processing (every rank) ---- */

typedef struct worker {
    const stage_paths *paths;
    const stage_params *params;
    rd_prep_workspace *ws;
    void *pixels;
    size_t pixel_bytes;
    rd_journal journal;
    char made_dir[2 * RD_PATH_MAX]; /* the last output folder created */
} worker;

static rd_status make_parent(worker *w, const char *path, rd_error *err) {
    char dir[2 * RD_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash) return RD_OK;
    *slash = '\0';
    if (strcmp(dir, w->made_dir) == 0) return RD_OK;
    if (rd_mkdir_p(dir, err)) return err->code;
    snprintf(w->made_dir, sizeof w->made_dir, "%s", dir);
    return RD_OK;
}

/* Runs one image through the pipeline and journals the outcome. Problems with the image are
 * results; only trouble with our own outputs is an error. */
static rd_status process_item(worker *w, const work_item *it, rd_error *err) {
    char in[2 * RD_PATH_MAX], out[2 * RD_PATH_MAX];
    snprintf(in, sizeof in, "%s/%s", w->paths->root, it->input);
    snprintf(out, sizeof out, "%s/%s", w->paths->images, it->output);
    result r = {.input = (char *)it->input,
                .output = (char *)it->output,
                .size = it->size,
                .mtime_ns = it->mtime_ns,
                .fingerprint = w->params->fingerprint,
                .detail = ""};
    rd_prep_result res;
    rd_error image_err = {0};
    const rd_prep_options *opt = &w->params->opt;
    rd_status st = rd_prep_image(w->ws, in, opt, w->pixels, w->pixel_bytes, &res, &image_err);
    if (st && res.reject == RD_REJECT_NONE) {
        *err = image_err;
        return st;
    }
    if (st) {
        r.reason = (char *)rd_reject_name(res.reject);
        r.detail = image_err.msg;
    } else {
        rd_grey_image img = {res.out_width, res.out_height, opt->bit_depth, w->pixels};
        struct stat s;
        if (make_parent(w, out, err) || rd_png_write_grey(out, &img, w->params->png_level, err))
            return err->code;
        if (stat(out, &s) != 0)
            return rd_fail(err, RD_EIO, "cannot stat %s: %s", out, strerror(errno));
        r.kept = 1;
        r.width = res.out_width;
        r.height = res.out_height;
        r.out_size = (int64_t)s.st_size;
        r.warnings = res.warnings;
    }
    char *line = format_result(&r);
    if (!line) return rd_fail(err, RD_ENOMEM, "out of memory");
    st = rd_journal_add(&w->journal, line, err);
    free(line);
    return st;
}

/* Every rank: takes chunks from the queue, processes them, commits the journal per chunk.
 * Rank 0 also serves the queue between its own images and draws the progress bar. */
static rd_status process_all(MPI_Comm comm, int rank, const work_list *work, int64_t chunk,
                             const stage_paths *paths, const stage_params *params, int64_t reused,
                             rd_error *err) {
    worker w = {.paths = paths, .params = params};
    char journal_path[2 * RD_PATH_MAX], extra[64];
    snprintf(journal_path, sizeof journal_path, "%s/rank-%05d.tsv", paths->journal, rank);
    snprintf(extra, sizeof extra, "(%lld reused from the journal)", (long long)reused);
    w.pixel_bytes = rd_prep_output_bytes(&params->opt);
    w.pixels = malloc(w.pixel_bytes);
    w.ws = rd_prep_workspace_new();
    rd_status st = RD_OK;
    if (!w.pixels || !w.ws) st = rd_fail(err, RD_ENOMEM, "out of memory for the image workspace");
    if (!st) st = rd_journal_open(&w.journal, journal_path, err);
    rd_workqueue q;
    if (!st && !(st = rd_workqueue_init(&q, comm, work->n, chunk, err))) {
        rd_progress bar;
        rd_progress_start(&bar, "preprocess", work->n, 0);
        int64_t begin, end;
        int got;
        while (!st && (got = rd_workqueue_next(&q, &begin, &end, err)) == 1) {
            for (int64_t i = begin; !st && i < end; i++) {
                st = process_item(&w, &work->items[i], err);
                rd_workqueue_item_done(&q);
                if (!st) st = rd_workqueue_poll(&q, err);
                rd_progress_update(&bar, rd_workqueue_done(&q), extra);
            }
            if (!st) st = rd_journal_commit(&w.journal, err);
        }
        if (!st && got < 0) st = err->code;
        /* An error here leaves the other ranks waiting: the caller aborts the job. */
        if (!st) st = rd_workqueue_finish(&q, err);
        if (!st) rd_progress_finish(&bar, extra);
    }
    rd_error close_err = {0};
    if (w.journal.path && rd_journal_close(&w.journal, &close_err) && !st) {
        *err = close_err;
        st = err->code;
    }
    free(w.pixels);
    rd_prep_workspace_free(w.ws);
    return st;
}

/* ---- outputs (rank 0) ---- */

typedef struct tally {
    const char *reason[64];
    int64_t count[64];
    int n;
} tally;

static void tally_add(tally *t, const char *reason) {
    for (int i = 0; i < t->n; i++)
        if (strcmp(t->reason[i], reason) == 0) {
            t->count[i]++;
            return;
        }
    if (t->n == 64) return; /* reason codes are a short fixed list */
    t->reason[t->n] = reason;
    t->count[t->n++] = 1;
}

static int cmp_reason(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void tally_sort(tally *t) {
    for (int i = 0; i < t->n; i++) /* tiny: selection sort keeps the counts paired */
        for (int j = i + 1; j < t->n; j++)
            if (cmp_reason(&t->reason[j], &t->reason[i]) < 0) {
                const char *r = t->reason[i];
                int64_t c = t->count[i];
                t->reason[i] = t->reason[j], t->count[i] = t->count[j];
                t->reason[j] = r, t->count[j] = c;
            }
}

static int64_t tally_total(const tally *t) {
    int64_t s = 0;
    for (int i = 0; i < t->n; i++) s += t->count[i];
    return s;
}

typedef struct outcome_counts {
    tally rejected, excluded, warnings;
} outcome_counts;

static void put_row(FILE *f, int64_t row) {
    if (row > 0) fprintf(f, "%lld", (long long)row);
}

static rd_status write_text(const char *dir, const char *name, char *text, size_t len,
                            rd_error *err) {
    char path[2 * RD_PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    rd_status st = text ? rd_write_file_atomic(path, text, len, err)
                        : rd_fail(err, RD_ENOMEM, "out of memory writing %s", path);
    free(text);
    return st;
}

/* manifest.csv: one row per kept image, by source row, the finding labels last
 * (docs/FORMATS.md). */
static rd_status write_manifest(const stage_paths *paths, const rd_preprocess_plan *plan,
                                const result *const *res, int64_t *kept, rd_error *err) {
    char *text = NULL, num[64];
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return rd_fail(err, RD_ENOMEM, "out of memory");
    const rd_metadata *md = &plan->md;
    fputs("image_id,file,patient_id,age,sex,view,width,height,source_row", f);
    for (int k = 0; k < md->nfindings; k++) fprintf(f, ",%s", md->finding[k]);
    fputc('\n', f);
    *kept = 0;
    for (size_t i = 0; i < plan->nitems; i++) {
        if (!res[i]->kept) continue;
        const rd_meta_record *m = plan->items[i].record;
        char file[RD_PATH_MAX + 8];
        snprintf(file, sizeof file, "images/%s", plan->items[i].output);
        rd_csv_put_field(f, m->image_id);
        fputc(',', f);
        rd_csv_put_field(f, file);
        fputc(',', f);
        rd_csv_put_field(f, m->patient_id);
        fputc(',', f);
        if (!isnan(m->age)) fprintf(f, "%.6g", (double)m->age);
        fprintf(f, ",%s,", m->sex == RD_SEX_MALE ? "M" : m->sex == RD_SEX_FEMALE ? "F" : "");
        rd_csv_put_field(f, m->view);
        snprintf(num, sizeof num, ",%d,%d,%lld", res[i]->width, res[i]->height, (long long)m->row);
        fputs(num, f);
        for (int k = 0; k < md->nfindings; k++) /* 1, 0, or empty when unknown */
            fputs(m->findings[k] == RD_FINDING_POSITIVE   ? ",1"
                  : m->findings[k] == RD_FINDING_NEGATIVE ? ",0"
                                                          : ",",
                  f);
        fputc('\n', f);
        (*kept)++;
    }
    fclose(f);
    return write_text(paths->pre, "manifest.csv", text, len, err);
}

/* Adds the pipeline's verdicts to the report: rejections and warnings of processed images. */
static rd_status add_image_lines(rd_preprocess_plan *plan, const result *const *res,
                                 rd_error *err) {
    rd_status st = RD_OK;
    for (size_t i = 0; !st && i < plan->nitems; i++) {
        const rd_meta_record *m = plan->items[i].record;
        if (!res[i]->kept)
            st = rd_report_add(&plan->report, m->row, m->image, RD_OUTCOME_REJECTED, res[i]->reason,
                               res[i]->detail, err);
        else if (res[i]->warnings & RD_PREP_WARN_CONSTANT)
            st = rd_report_add(&plan->report, m->row, m->image, RD_OUTCOME_WARNING, REASON_CONSTANT,
                               "every pixel has the same value: written as zeros", err);
    }
    return st;
}

/* report.csv, and the tallies of its outcomes. */
static rd_status write_report(const stage_paths *paths, rd_preprocess_plan *plan,
                              outcome_counts *oc, rd_error *err) {
    if (rd_report_sort(&plan->report, err)) return err->code;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return rd_fail(err, RD_ENOMEM, "out of memory");
    fputs("row,file,outcome,reason,detail\n", f);
    memset(oc, 0, sizeof *oc);
    for (size_t i = 0; i < plan->report.n; i++) {
        const rd_report_line *l = &plan->report.lines[i];
        put_row(f, l->row);
        fputc(',', f);
        rd_csv_put_field(f, l->file);
        fprintf(f, ",%s,", rd_outcome_name(l->outcome));
        rd_csv_put_field(f, l->reason);
        fputc(',', f);
        rd_csv_put_field(f, l->detail);
        fputc('\n', f);
        tally_add(l->outcome == RD_OUTCOME_REJECTED   ? &oc->rejected
                  : l->outcome == RD_OUTCOME_EXCLUDED ? &oc->excluded
                                                      : &oc->warnings,
                  l->reason);
    }
    fclose(f);
    tally_sort(&oc->rejected);
    tally_sort(&oc->excluded);
    tally_sort(&oc->warnings);
    return write_text(paths->pre, "report.csv", text, len, err);
}

static void json_tally(FILE *f, const char *name, const tally *t) {
    fprintf(f, "  \"%s\": {", name);
    for (int i = 0; i < t->n; i++)
        fprintf(f, "%s\"%s\": %lld", i ? ", " : "", t->reason[i], (long long)t->count[i]);
    fputs("},\n", f);
}

static rd_status write_summary(const stage_paths *paths, const stage_params *params,
                               const rd_preprocess_counts *c, const outcome_counts *oc, int nranks,
                               rd_error *err) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return rd_fail(err, RD_ENOMEM, "out of memory");
    fprintf(f, "{\n  \"format_version\": %d,\n", FORMAT_VERSION);
    fprintf(f, "  \"inputs\": %lld,\n  \"metadata_rows\": %lld,\n  \"orphan_images\": %lld,\n",
            (long long)c->inputs, (long long)c->metadata_rows, (long long)c->orphan_images);
    fprintf(f, "  \"kept\": %lld,\n  \"rejected\": %lld,\n  \"excluded\": %lld,\n",
            (long long)c->kept, (long long)c->rejected, (long long)c->excluded);
    fprintf(f, "  \"warnings\": %lld,\n", (long long)c->warnings);
    json_tally(f, "rejected_by_reason", &oc->rejected);
    json_tally(f, "excluded_by_reason", &oc->excluded);
    json_tally(f, "warnings_by_reason", &oc->warnings);
    fprintf(f, "  \"processed_this_run\": %lld,\n  \"reused_from_journal\": %lld,\n",
            (long long)c->processed, (long long)c->reused);
    fprintf(f, "  \"ranks\": %d,\n  \"parameters\": \"%s\"\n}\n", nranks, params->canonical);
    fclose(f);
    return write_text(paths->pre, "summary.json", text, len, err);
}

static void log_tally(const char *what, int64_t total, const tally *t) {
    char line[1024];
    int used = snprintf(line, sizeof line, "  %-9s %8lld", what, (long long)total);
    for (int i = 0; i < t->n && used < (int)sizeof line; i++)
        used += snprintf(line + used, sizeof line - (size_t)used, "%s %s %lld", i ? "," : "  ",
                         t->reason[i], (long long)t->count[i]);
    rd_info("%s", line);
}

static void log_summary(const stage_paths *paths, const rd_preprocess_counts *c,
                        const outcome_counts *oc) {
    rd_info("rdino-preprocess: %lld inputs (%lld metadata rows + %lld image files without a "
            "row)",
            (long long)c->inputs, (long long)c->metadata_rows, (long long)c->orphan_images);
    tally none = {0};
    log_tally("kept", c->kept, &none);
    log_tally("rejected", c->rejected, &oc->rejected);
    log_tally("excluded", c->excluded, &oc->excluded);
    log_tally("warnings", c->warnings, &oc->warnings);
    rd_info("  this run: %lld images processed, %lld reused from the journal",
            (long long)c->processed, (long long)c->reused);
    rd_info("  outputs: %s/{manifest.csv,report.csv,summary.json}", paths->pre);
}

/* Rank 0 after the work: the journal holds a result for every item. */
static rd_status assemble(const stage_paths *paths, const stage_params *params,
                          rd_preprocess_plan *plan, rd_preprocess_counts *c, int nranks,
                          rd_error *err) {
    results rs;
    if (read_journal(paths, &rs, err)) return err->code;
    const result **res = calloc(plan->nitems + 1, sizeof *res);
    rd_status st = res ? RD_OK : rd_fail(err, RD_ENOMEM, "out of memory");
    for (size_t i = 0; !st && i < plan->nitems; i++)
        if (!(res[i] = find_result(&rs, &plan->items[i], params->fingerprint)))
            st = rd_fail(err, RD_EIO, "%s: no result in the journal (%s) after processing",
                         plan->items[i].input->path, paths->journal);
    outcome_counts oc;
    if (!st) st = write_manifest(paths, plan, res, &c->kept, err);
    if (!st) st = add_image_lines(plan, res, err);
    if (!st) st = write_report(paths, plan, &oc, err);
    if (!st) {
        c->metadata_rows = plan->md.rows;
        c->orphan_images = plan->orphans;
        c->inputs = c->metadata_rows + c->orphan_images;
        c->rejected = tally_total(&oc.rejected);
        c->excluded = tally_total(&oc.excluded);
        c->warnings = tally_total(&oc.warnings);
        if (c->kept + c->rejected + c->excluded != c->inputs) /* every input has one fate */
            st = rd_fail(err, RD_EINVAL,
                         "internal error: %lld kept + %lld rejected + %lld excluded != %lld "
                         "inputs",
                         (long long)c->kept, (long long)c->rejected, (long long)c->excluded,
                         (long long)c->inputs);
    }
    if (!st) st = write_summary(paths, params, c, &oc, nranks, err);
    if (!st) log_summary(paths, c, &oc);
    if (!st && rs.unreadable)
        rd_info("  (%lld unreadable journal lines ignored: torn by a kill, or older versions)",
                (long long)rs.unreadable);
    free(res);
    results_free(&rs);
    return st;
}

/* ---- the stage ---- */

static int64_t swept;

static int sweep_one(const char *path, const struct stat *st, int type, struct FTW *ftw) {
    (void)st;
    if (type == FTW_F && rd_is_temp_name(path + ftw->base) && unlink(path) == 0) swept++;
    return 0;
}

/* Removes temporaries of an interrupted run (nothing else writes here while we plan). */
static void sweep_temporaries(const stage_paths *paths) {
    swept = 0;
    nftw(paths->pre, sweep_one, 32, FTW_PHYS);
    if (swept)
        rd_info("preprocess: removed %lld temporary files left by an interrupted run",
                (long long)swept);
}

/* Rank 0: the plan, and the items whose journal result cannot be reused. */
static rd_status plan_work(const rd_config *cfg, const stage_paths *paths,
                           const stage_params *params, rd_preprocess_plan *plan, work_list *work,
                           int64_t *reused, rd_error *err) {
    if (rd_mkdir_p(paths->images, err) || rd_mkdir_p(paths->journal, err)) return err->code;
    sweep_temporaries(paths);
    if (rd_preprocess_plan_build(cfg, paths->pre, plan, err)) return err->code;
    results rs;
    if (read_journal(paths, &rs, err)) return err->code;
    const rd_plan_item **todo = calloc(plan->nitems + 1, sizeof *todo);
    if (!todo) {
        results_free(&rs);
        return rd_fail(err, RD_ENOMEM, "out of memory");
    }
    int64_t n = 0;
    *reused = 0;
    for (size_t i = 0; i < plan->nitems; i++) {
        if (result_reusable(paths, find_result(&rs, &plan->items[i], params->fingerprint)))
            (*reused)++;
        else
            todo[n++] = &plan->items[i];
    }
    rd_status st = pack_work(todo, n, work, err);
    free(todo);
    results_free(&rs);
    return st;
}

rd_status rd_preprocess_stage(const rd_config *cfg, MPI_Comm comm, rd_preprocess_counts *counts,
                              rd_error *err) {
    int rank, nranks;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &nranks);
    memset(counts, 0, sizeof *counts);
    stage_paths paths = {.root = rd_cfg_str(cfg, "data.image_root")};
    if (rd_pipeline_path(cfg, RD_DIR_PREPROCESSED, paths.pre, err)) return err->code;
    if (strlen(paths.pre) > RD_PATH_MAX - 64)
        return rd_fail(err, RD_EINVAL, "data.output_dir is too long for a path");
    snprintf(paths.images, sizeof paths.images, "%.*s/images", RD_PATH_MAX - 32, paths.pre);
    snprintf(paths.journal, sizeof paths.journal, "%.*s/journal", RD_PATH_MAX - 32, paths.pre);
    stage_params params;
    /* Every rank checks the same config, so every rank returns here or none does. */
    if (params_from_config(cfg, &params, err)) return err->code;

    rd_preprocess_plan plan = {0};
    work_list work = {0};
    int64_t reused = 0;
    rd_status st = RD_OK;
    if (rank == 0) {
        st = plan_work(cfg, &paths, &params, &plan, &work, &reused, err);
        if (!st)
            rd_info("preprocess: %zu images to read, %lld of them done by an earlier run, %lld "
                    "to process on %d rank%s",
                    plan.nitems, (long long)reused, (long long)work.n, nranks,
                    nranks == 1 ? "" : "s");
    }
    st = share_work(comm, rank, st, &work, err);
    if (!st)
        st = process_all(comm, rank, &work, rd_cfg_int(cfg, "preprocess.chunk"), &paths, &params,
                         reused, err);
    if (!st && rank == 0) {
        counts->processed = work.n;
        counts->reused = reused;
        st = assemble(&paths, &params, &plan, counts, nranks, err);
    }
    work_list_free(&work);
    rd_preprocess_plan_free(&plan);
    return st;
}
