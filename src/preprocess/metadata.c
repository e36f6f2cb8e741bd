/* Metadata readers for NIH, CheXpert, PadChest, MIMIC-CXR and generic CSVs; see metadata.h.
 * All formats go through one table reader (header -> column positions, rows checked against
 * the field count the header implies) and one row converter with the few format-specific
 * rules (CheXpert views and patient ids, PadChest ages, the MIMIC joins, NIH's finding list)
 * spelled out in it. */
#include "rdino/metadata.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdino/csv.h"

const char *rd_outcome_name(rd_outcome outcome) {
    switch (outcome) {
    case RD_OUTCOME_WARNING:
        return "warning";
    case RD_OUTCOME_REJECTED:
        return "rejected";
    case RD_OUTCOME_EXCLUDED:
        return "excluded";
    }
    return "?";
}

/* ---- field parsers ---- */

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t')) s[--n] = '\0';
    return s;
}

static int is_unknown_word(const char *s) {
    static const char *words[] = {"", "unknown", "nan", "none", "na", "n/a", "null", "?"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strcasecmp(s, words[i]) == 0) return 1;
    return 0;
}

/* Parses an unsigned decimal number "ddd" or "ddd.ddd" spanning [s, *end). */
static int parse_decimal(const char *s, double *value, const char **end) {
    const char *p = s;
    int digits = 0;
    double v = 0;
    while (isdigit((unsigned char)*p)) v = 10 * v + (*p++ - '0'), digits++;
    if (*p == '.') {
        double scale = 0.1;
        for (p++; isdigit((unsigned char)*p); p++, scale /= 10) v += scale * (*p - '0'), digits++;
    }
    *value = v;
    *end = p;
    return digits > 0;
}

float rd_parse_age(const char *text, const char **reason) {
    char buf[64];
    snprintf(buf, sizeof buf, "%s", text);
    const char *s = trim(buf);
    *reason = NULL;
    if (is_unknown_word(s)) {
        *reason = RD_REASON_MISSING_AGE;
        return NAN;
    }
    double v, per_year = 1;
    const char *end;
    if (!parse_decimal(s, &v, &end)) {
        *reason = RD_REASON_IMPOSSIBLE_AGE;
        return NAN;
    }
    switch (toupper((unsigned char)*end)) { /* DICOM age string units */
    case 'Y':
        per_year = 1, end++;
        break;
    case 'M':
        per_year = 12, end++;
        break;
    case 'W':
        per_year = 365.25 / 7, end++;
        break;
    case 'D':
        per_year = 365.25, end++;
        break;
    default:
        break;
    }
    v /= per_year;
    if (*end != '\0' || !(v <= RD_MAX_AGE)) {
        *reason = RD_REASON_IMPOSSIBLE_AGE;
        return NAN;
    }
    return (float)v;
}

rd_sex rd_parse_sex(const char *text) {
    char buf[32];
    snprintf(buf, sizeof buf, "%s", text);
    const char *s = trim(buf);
    if (strcasecmp(s, "M") == 0 || strcasecmp(s, "male") == 0) return RD_SEX_MALE;
    if (strcasecmp(s, "F") == 0 || strcasecmp(s, "female") == 0) return RD_SEX_FEMALE;
    return RD_SEX_UNKNOWN;
}

int rd_finding_column_name(const char *label, char *out, size_t cap) {
    char buf[RD_FINDING_NAME_MAX + 8];
    snprintf(buf, sizeof buf, "%s", label);
    const char *s = trim(buf);
    int n = snprintf(out, cap, "finding_%s", s);
    if (n < 0 || (size_t)n >= cap || !*s) return -1;
    for (char *c = out + 8; *c; c++) {
        *c = (char)tolower((unsigned char)*c);
        if (!isalnum((unsigned char)*c) && *c != '_') *c = '_';
    }
    return 0;
}

/* The finding label policy: what an uncertain (-1) and a blank cell become. */
typedef struct label_policy {
    int8_t uncertain, blank;
} label_policy;

static rd_status parse_policy(const rd_metadata_options *opt, label_policy *lp, rd_error *err) {
    const char *u = opt->uncertain && *opt->uncertain ? opt->uncertain : "unknown";
    const char *b = opt->blank && *opt->blank ? opt->blank : "negative";
    static const char *const words[3] = {"unknown", "negative", "positive"};
    int iu = -1, ib = -1;
    for (int i = 0; i < 3; i++) {
        if (strcmp(u, words[i]) == 0) iu = i;
        if (i < 2 && strcmp(b, words[i]) == 0) ib = i;
    }
    if (iu < 0 || ib < 0)
        return rd_fail(err, RD_EINVAL,
                       "finding label policy: uncertain '%s' (unknown, negative or positive), "
                       "blank '%s' (negative or unknown)",
                       u, b);
    lp->uncertain = (int8_t)(iu - 1); /* the words are in RD_FINDING_* order from -1 */
    lp->blank = (int8_t)(ib - 1);
    return RD_OK;
}

/* A CheXpert-style label cell: 1 positive, 0 negative, -1 uncertain, blank ("1.0", "-1.0", ""
 * and pandas' "nan" too), mapped by the policy; -2 when it is none of these. */
static int label_cell(const char *text, const label_policy *lp) {
    char buf[32];
    snprintf(buf, sizeof buf, "%s", text);
    const char *s = trim(buf);
    if (is_unknown_word(s)) return lp->blank;
    char *end;
    double v = strtod(s, &end);
    if (*end || end == s) return -2;
    return v == 1    ? RD_FINDING_POSITIVE
           : v == 0  ? RD_FINDING_NEGATIVE
           : v == -1 ? lp->uncertain
                     : -2;
}

/* Parses a whole field as a signed integer. */
static int parse_int(const char *text, int64_t *value) {
    char buf[64];
    snprintf(buf, sizeof buf, "%s", text);
    const char *s = trim(buf);
    char *end;
    if (!isdigit((unsigned char)s[s[0] == '-']) || strlen(s) > 18) return 0;
    long long v = strtoll(s, &end, 10);
    if (*end == '.') /* "1945.0", as pandas writes integer columns with gaps */
        for (end++; *end == '0'; end++) {
        }
    if (*end) return 0;
    *value = v;
    return 1;
}

/* ---- result lists ---- */

static rd_status oom(rd_error *err, const char *path) {
    return rd_fail(err, RD_ENOMEM, "%s: out of memory", path);
}

static rd_status add_problem(rd_metadata *md, int64_t row, const char *file, rd_outcome outcome,
                             const char *reason, rd_error *err, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

static rd_status add_problem(rd_metadata *md, int64_t row, const char *file, rd_outcome outcome,
                             const char *reason, rd_error *err, const char *fmt, ...) {
    if (md->nproblems == md->problems_cap) {
        size_t cap = md->problems_cap ? 2 * md->problems_cap : 64;
        rd_meta_problem *bigger = realloc(md->problems, cap * sizeof *bigger);
        if (!bigger) return oom(err, "metadata problems");
        md->problems = bigger;
        md->problems_cap = cap;
    }
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    rd_meta_problem *p = &md->problems[md->nproblems];
    p->row = row;
    p->outcome = outcome;
    p->reason = reason;
    p->file = strdup(file ? file : "");
    p->detail = strdup(detail);
    if (!p->file || !p->detail) {
        free(p->file);
        free(p->detail);
        return oom(err, "metadata problems");
    }
    md->nproblems++;
    return RD_OK;
}

static void free_record(rd_meta_record *r) {
    free(r->image);
    free(r->image_id);
    free(r->patient_id);
    free(r->view);
}

static rd_status add_record(rd_metadata *md, const rd_meta_record *r, rd_error *err) {
    if (md->nrecords == md->records_cap) {
        size_t cap = md->records_cap ? 2 * md->records_cap : 1024;
        rd_meta_record *bigger = realloc(md->records, cap * sizeof *bigger);
        if (!bigger) return oom(err, "metadata records");
        md->records = bigger;
        md->records_cap = cap;
    }
    rd_meta_record *d = &md->records[md->nrecords];
    *d = *r;
    d->image = strdup(r->image);
    d->image_id = strdup(r->image_id);
    d->patient_id = strdup(r->patient_id);
    d->view = strdup(r->view);
    if (!d->image || !d->image_id || !d->patient_id || !d->view) {
        free_record(d);
        return oom(err, "metadata records");
    }
    for (char *c = d->view; *c; c++) *c = (char)toupper((unsigned char)*c);
    md->nrecords++;
    return RD_OK;
}

void rd_metadata_free(rd_metadata *md) {
    for (size_t i = 0; i < md->nrecords; i++) free_record(&md->records[i]);
    for (size_t i = 0; i < md->nproblems; i++) {
        free(md->problems[i].file);
        free(md->problems[i].detail);
    }
    free(md->records);
    free(md->problems);
    memset(md, 0, sizeof *md);
}

/* ---- tables: a CSV with a header ---- */

typedef struct table {
    rd_csv csv;
    char **names;     /* logical column names */
    int *first_field; /* field index where each logical column starts */
    int nnames;
    int nfields;  /* fields a row must have */
    int file_col; /* field shown as "file" in problems, -1 if none */
    int64_t rows;
} table;

static void table_close(table *t) {
    for (int i = 0; i < t->nnames; i++) free(t->names[i]);
    free(t->names);
    free(t->first_field);
    rd_csv_close(&t->csv);
}

/* Reads the header. Unquoted names with a bracketed comma list (NIH's
 * "OriginalImage[Width,Height]") arrive as several fields; they are joined back into one name
 * that stands for that many fields in every row. A trailing empty name is a trailing comma. */
static rd_status table_open(table *t, const char *path, rd_error *err) {
    memset(t, 0, sizeof *t);
    t->file_col = -1;
    if (rd_csv_open(&t->csv, path, err)) return err->code;
    rd_csv_record h;
    int got = rd_csv_next(&t->csv, &h, err);
    if (got < 0) goto fail;
    if (got == 0) {
        rd_fail(err, RD_EFORMAT, "%s: empty file (no header line)", path);
        goto fail;
    }
    if (h.problem) {
        rd_fail(err, RD_EFORMAT, "%s line %lld: header: %s", path, (long long)h.line, h.problem);
        goto fail;
    }
    int n = h.nfields;
    if (n > 1 && trim(h.fields[n - 1])[0] == '\0') n--;
    t->names = calloc((size_t)n, sizeof *t->names);
    t->first_field = calloc((size_t)n, sizeof *t->first_field);
    if (!t->names || !t->first_field) goto nomem;
    for (int f = 0; f < n;) {
        int width = 1;
        if (strchr(h.fields[f], '[') && !strchr(h.fields[f], ']'))
            while (f + width < n && !strchr(h.fields[f + width - 1], ']')) width++;
        size_t len = 0;
        for (int k = 0; k < width; k++) len += strlen(h.fields[f + k]) + 1;
        char *name = malloc(len);
        if (!name) goto nomem;
        name[0] = '\0';
        for (int k = 0; k < width; k++) {
            if (k) strcat(name, ",");
            strcat(name, h.fields[f + k]);
        }
        char *trimmed = trim(name);
        memmove(name, trimmed, strlen(trimmed) + 1);
        t->first_field[t->nnames] = f;
        t->names[t->nnames++] = name;
        f += width;
    }
    t->nfields = n;
    return RD_OK;
nomem:
    oom(err, path);
fail:
    table_close(t);
    return err->code;
}

/* Field index of a named column, or -1. */
static int table_column(const table *t, const char *name) {
    for (int i = 0; i < t->nnames; i++)
        if (strcmp(t->names[i], name) == 0) return t->first_field[i];
    return -1;
}

static rd_status require_column(const table *t, const char *name, int *field, rd_error *err) {
    *field = table_column(t, name);
    if (*field >= 0) return RD_OK;
    char list[600] = "";
    for (int i = 0; i < t->nnames; i++) {
        size_t used = strlen(list);
        snprintf(list + used, sizeof list - used, "%s'%s'", i ? ", " : "", t->names[i]);
    }
    return rd_fail(err, RD_EFORMAT, "%s: no column '%s' in the header (columns: %s)", t->csv.name,
                   name, list);
}

/* Next row with the right number of fields. Rows that break the CSV grammar or have the
 * wrong field count are recorded in md with the given outcome. Returns 1, 0 at the end, -1 on
 * error. */
static int table_next(table *t, rd_csv_record *rec, rd_metadata *md, rd_outcome bad_row_outcome,
                      rd_error *err) {
    for (;;) {
        int got = rd_csv_next(&t->csv, rec, err);
        if (got <= 0) return got;
        t->rows++;
        if (rec->nfields == t->nfields + 1 && trim(rec->fields[t->nfields])[0] == '\0')
            rec->nfields--; /* trailing comma */
        const char *file =
            t->file_col >= 0 && t->file_col < rec->nfields ? rec->fields[t->file_col] : "";
        if (rec->problem) {
            if (add_problem(md, rec->line, file, bad_row_outcome, RD_REASON_MALFORMED_ROW, err,
                            "%s line %lld: %s", t->csv.name, (long long)rec->line, rec->problem))
                return -1;
            continue;
        }
        if (rec->nfields != t->nfields) {
            if (add_problem(md, rec->line, file, bad_row_outcome, RD_REASON_MALFORMED_ROW, err,
                            "%s line %lld: %d fields, the header implies %d", t->csv.name,
                            (long long)rec->line, rec->nfields, t->nfields))
                return -1;
            continue;
        }
        return 1;
    }
}

/* ---- MIMIC patients.csv ---- */

typedef struct mimic_patient {
    int64_t subject_id, anchor_age, anchor_year;
    rd_sex sex;
    char gender[16];
} mimic_patient;

typedef struct patient_table {
    mimic_patient *rows;
    size_t n;
} patient_table;

static int cmp_patient(const void *a, const void *b) {
    int64_t x = ((const mimic_patient *)a)->subject_id, y = ((const mimic_patient *)b)->subject_id;
    return (x > y) - (x < y);
}

/* Appends the size-byte row item to *rows (*n rows, room for *cap), growing it by doubling;
 * -1 when out of memory. */
static int append_row(void **rows, size_t *n, size_t *cap, const void *item, size_t size) {
    if (*n == *cap) {
        size_t grown = *cap ? 2 * *cap : 1024;
        void *bigger = realloc(*rows, grown * size);
        if (!bigger) return -1;
        *rows = bigger;
        *cap = grown;
    }
    memcpy((char *)*rows + (*n)++ * size, item, size);
    return 0;
}

/* Problems [first, nproblems) are about a side table (patients.csv, the findings CSV), not
 * an image row: row 0 and the table's path as their file (the detail names the line). */
static rd_status attribute_problems(rd_metadata *md, size_t first, const char *path,
                                    rd_error *err) {
    for (size_t i = first; i < md->nproblems; i++) {
        char *file = strdup(path);
        if (!file) return oom(err, path);
        free(md->problems[i].file);
        md->problems[i].file = file;
        md->problems[i].row = 0;
    }
    return RD_OK;
}

/* Bad rows of patients.csv are warnings with row 0 (they are not images; the detail names
 * the line). Their subjects' images then get "no_patient_row" warnings. */
static rd_status read_mimic_patients(const char *path, rd_metadata *md, patient_table *pt,
                                     rd_error *err) {
    memset(pt, 0, sizeof *pt);
    size_t first_problem = md->nproblems;
    table t;
    if (table_open(&t, path, err)) return err->code;
    int c_subject, c_gender, c_age, c_year;
    if (require_column(&t, "subject_id", &c_subject, err) ||
        require_column(&t, "gender", &c_gender, err) ||
        require_column(&t, "anchor_age", &c_age, err) ||
        require_column(&t, "anchor_year", &c_year, err))
        goto fail;
    size_t cap = 0;
    rd_csv_record rec;
    int got;
    while ((got = table_next(&t, &rec, md, RD_OUTCOME_WARNING, err)) == 1) {
        mimic_patient p = {0};
        char **f = rec.fields;
        if (!parse_int(f[c_subject], &p.subject_id) || !parse_int(f[c_age], &p.anchor_age) ||
            !parse_int(f[c_year], &p.anchor_year)) {
            if (add_problem(md, 0, path, RD_OUTCOME_WARNING, RD_REASON_MALFORMED_ROW, err,
                            "%s line %lld: subject_id, anchor_age or anchor_year is not an "
                            "integer",
                            path, (long long)rec.line))
                goto fail;
            continue;
        }
        p.sex = rd_parse_sex(f[c_gender]);
        snprintf(p.gender, sizeof p.gender, "%s", trim(f[c_gender]));
        if (append_row((void **)&pt->rows, &pt->n, &cap, &p, sizeof p)) {
            oom(err, path);
            goto fail;
        }
    }
    if (got < 0 || attribute_problems(md, first_problem, path, err)) goto fail;
    /* An empty table has no rows array: qsort and bsearch must not see its NULL. */
    if (pt->n) qsort(pt->rows, pt->n, sizeof *pt->rows, cmp_patient);
    table_close(&t);
    return RD_OK;
fail:
    free(pt->rows);
    pt->rows = NULL;
    table_close(&t);
    return err->code;
}

/* ---- finding labels ---- */

enum { N_LABELS = 14 };
/* NIH ChestX-ray14's findings ("Finding Labels"), in the order of its documentation. */
static const char *const nih_labels[N_LABELS] = {
    "Atelectasis", "Cardiomegaly", "Effusion",           "Infiltration",  "Mass",
    "Nodule",      "Pneumonia",    "Pneumothorax",       "Consolidation", "Edema",
    "Emphysema",   "Fibrosis",     "Pleural_Thickening", "Hernia"};
/* CheXpert's label columns (train.csv; MIMIC-CXR-JPG's mimic-cxr-2.0.0-chexpert.csv). */
static const char *const chexpert_labels[N_LABELS] = {
    "No Finding",       "Enlarged Cardiomediastinum",
    "Cardiomegaly",     "Lung Opacity",
    "Lung Lesion",      "Edema",
    "Consolidation",    "Pneumonia",
    "Atelectasis",      "Pneumothorax",
    "Pleural Effusion", "Pleural Other",
    "Fracture",         "Support Devices"};

/* Appends a finding label to md under its column name; source names the file for errors. */
static rd_status add_finding(rd_metadata *md, const char *label, const char *source,
                             rd_error *err) {
    if (md->nfindings == RD_MAX_FINDINGS)
        return rd_fail(err, RD_EINVAL, "%s: more than %d finding label columns", source,
                       RD_MAX_FINDINGS);
    char *name = md->finding[md->nfindings];
    if (rd_finding_column_name(label, name, RD_FINDING_NAME_MAX))
        return rd_fail(err, RD_EINVAL,
                       "%s: finding label '%s' gives no column name (empty, or over %d bytes)",
                       source, label, RD_FINDING_NAME_MAX - 1);
    for (int i = 0; i < md->nfindings; i++)
        if (strcmp(md->finding[i], name) == 0)
            return rd_fail(err, RD_EINVAL, "%s: two finding labels make the column %s ('%s')",
                           source, name, label);
    md->nfindings++;
    return RD_OK;
}

/* The columns of t named in labels[0..n) (those absent skipped unless required) become md's
 * findings; field[k] receives finding k's field. */
static rd_status label_columns(const table *t, const char *const *labels, int n, int required,
                               rd_metadata *md, int *field, rd_error *err) {
    for (int i = 0; i < n; i++) {
        int f = table_column(t, labels[i]);
        if (f < 0 && required) return require_column(t, labels[i], &f, err);
        if (f < 0) continue;
        field[md->nfindings] = f;
        if (add_finding(md, labels[i], t->csv.name, err)) return err->code;
    }
    return RD_OK;
}

/* Cells of one row into out[0..n) by the policy; a cell not understood is unknown, warned
 * about on row (0 for a side table) naming file. */
static rd_status label_cells(const rd_csv_record *rec, const int *field, int n,
                             const label_policy *lp, rd_metadata *md, int64_t row, const char *file,
                             int8_t *out, rd_error *err) {
    for (int k = 0; k < n; k++) {
        const char *text = rec->fields[field[k]];
        int v = label_cell(text, lp);
        out[k] = (int8_t)(v < -1 ? RD_FINDING_UNKNOWN : v);
        if (v < -1 && add_problem(md, row, file, RD_OUTCOME_WARNING, RD_REASON_UNKNOWN_FINDING, err,
                                  "line %lld: %s is '%s', not 1, 0, -1 or blank: unknown",
                                  (long long)rec->line, md->finding[k] + 8, text))
            return err->code;
    }
    return RD_OK;
}

/* MIMIC-CXR-JPG's findings, one row per study. */
typedef struct study_findings {
    int64_t study_id;
    int8_t v[RD_MAX_FINDINGS];
} study_findings;

typedef struct findings_table {
    study_findings *rows;
    size_t n;
} findings_table;

static int cmp_study(const void *a, const void *b) {
    int64_t x = ((const study_findings *)a)->study_id, y = ((const study_findings *)b)->study_id;
    return (x > y) - (x < y);
}

/* mimic-cxr-2.0.0-chexpert.csv: study_id and CheXpert's label columns (those present) become
 * md's findings. Bad rows and cells are warnings with row 0, as for patients.csv. */
static rd_status read_mimic_findings(const char *path, const label_policy *lp, rd_metadata *md,
                                     findings_table *ft, rd_error *err) {
    memset(ft, 0, sizeof *ft);
    size_t first_problem = md->nproblems, cap = 0;
    table t;
    if (table_open(&t, path, err)) return err->code;
    int c_study, field[RD_MAX_FINDINGS];
    if (require_column(&t, "study_id", &c_study, err) ||
        label_columns(&t, chexpert_labels, N_LABELS, 0, md, field, err))
        goto fail;
    rd_csv_record rec;
    int got;
    while ((got = table_next(&t, &rec, md, RD_OUTCOME_WARNING, err)) == 1) {
        study_findings sf = {0};
        if (!parse_int(rec.fields[c_study], &sf.study_id)) {
            if (add_problem(md, 0, path, RD_OUTCOME_WARNING, RD_REASON_MALFORMED_ROW, err,
                            "%s line %lld: study_id '%s' is not an integer", path,
                            (long long)rec.line, rec.fields[c_study]))
                goto fail;
            continue;
        }
        if (label_cells(&rec, field, md->nfindings, lp, md, 0, path, sf.v, err)) goto fail;
        if (append_row((void **)&ft->rows, &ft->n, &cap, &sf, sizeof sf)) {
            oom(err, path);
            goto fail;
        }
    }
    if (got < 0 || attribute_problems(md, first_problem, path, err)) goto fail;
    if (ft->n) qsort(ft->rows, ft->n, sizeof *ft->rows, cmp_study);
    table_close(&t);
    return RD_OK;
fail:
    free(ft->rows);
    ft->rows = NULL;
    table_close(&t);
    return err->code;
}

/* NIH's "Finding Labels": pipe-separated names of the 14, or "No Finding"; the findings not
 * listed are negative. An empty field leaves all 14 unknown; a name not among the 14 is warned
 * about and ignored. */
static rd_status nih_findings(const char *text, rd_metadata *md, int64_t row, const char *image,
                              int8_t *out, rd_error *err) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", text);
    char *s = trim(buf);
    if (is_unknown_word(s)) {
        memset(out, RD_FINDING_UNKNOWN, N_LABELS);
        return add_problem(md, row, image, RD_OUTCOME_WARNING, RD_REASON_UNKNOWN_FINDING, err,
                           "Finding Labels is '%s': the 14 findings unknown", s);
    }
    memset(out, RD_FINDING_NEGATIVE, N_LABELS);
    char *save = NULL;
    for (char *tok = strtok_r(s, "|", &save); tok; tok = strtok_r(NULL, "|", &save)) {
        char name[RD_FINDING_NAME_MAX];
        tok = trim(tok);
        int k = 0, ok = *tok && rd_finding_column_name(tok, name, sizeof name) == 0;
        if (ok && strcmp(name, "finding_no_finding") == 0) continue;
        while (ok && k < N_LABELS && strcmp(name, md->finding[k]) != 0) k++;
        if (ok && k < N_LABELS) {
            out[k] = RD_FINDING_POSITIVE;
        } else if (*tok &&
                   add_problem(md, row, image, RD_OUTCOME_WARNING, RD_REASON_UNKNOWN_FINDING, err,
                               "finding label '%s' is not one of NIH's 14 (Atelectasis, "
                               "..., Hernia) nor 'No Finding': ignored",
                               tok)) {
            return err->code;
        }
    }
    return RD_OK;
}

/* ---- rows to records ---- */

typedef enum { FMT_NIH, FMT_CHEXPERT, FMT_PADCHEST, FMT_MIMIC, FMT_GENERIC } format;

/* Field positions; -1 = absent. */
typedef struct columns {
    int image, patient, age, sex, view;
    int lateral;                  /* CheXpert Frontal/Lateral */
    int birth;                    /* PadChest PatientBirth */
    int study_date;               /* PadChest StudyDate_DICOM, MIMIC StudyDate */
    int subject, study;           /* MIMIC */
    int labels;                   /* NIH Finding Labels */
    int finding[RD_MAX_FINDINGS]; /* CheXpert, generic: the field of each of md's findings */
} columns;

static rd_status find_columns(const table *t, format fmt, const rd_metadata_options *opt,
                              columns *c, rd_error *err) {
    c->lateral = c->birth = c->study_date = c->subject = c->study = c->labels = -1;
    const char *image = NULL, *patient = NULL, *age = NULL, *sex = NULL, *view = NULL;
    rd_status st = RD_OK;
    switch (fmt) {
    case FMT_NIH:
        image = "Image Index", patient = "Patient ID", age = "Patient Age";
        sex = "Patient Gender", view = "View Position";
        break;
    case FMT_CHEXPERT:
        image = "Path", age = "Age", sex = "Sex", view = "AP/PA";
        st = require_column(t, "Frontal/Lateral", &c->lateral, err);
        break;
    case FMT_PADCHEST:
        image = "ImageID", patient = "PatientID", sex = "PatientSex_DICOM", view = "Projection";
        if (!(st = require_column(t, "PatientBirth", &c->birth, err)))
            st = require_column(t, "StudyDate_DICOM", &c->study_date, err);
        break;
    case FMT_MIMIC:
        image = "dicom_id", view = "ViewPosition";
        if (!(st = require_column(t, "subject_id", &c->subject, err)) &&
            !(st = require_column(t, "study_id", &c->study, err)))
            st = require_column(t, "StudyDate", &c->study_date, err);
        break;
    case FMT_GENERIC:
        image = opt->col_image, patient = opt->col_patient, age = opt->col_age;
        sex = opt->col_sex, view = opt->col_view;
        if (!image || !image[0])
            return rd_fail(err, RD_EINVAL, "data.columns.image must name the image column");
        break;
    }
    if (st) return st;
    const char *names[] = {image, patient, age, sex, view};
    int *fields[] = {&c->image, &c->patient, &c->age, &c->sex, &c->view};
    for (int i = 0; i < 5; i++) {
        *fields[i] = -1;
        if (names[i] && names[i][0] && (st = require_column(t, names[i], fields[i], err)))
            return st;
    }
    return RD_OK;
}

/* The metadata CSV's own finding columns (MIMIC's come from data.findings_csv). */
static rd_status find_label_columns(const table *t, format fmt, const rd_metadata_options *opt,
                                    rd_metadata *md, columns *c, rd_error *err) {
    if (fmt == FMT_NIH) {
        c->labels = table_column(t, "Finding Labels");
        for (int i = 0; c->labels >= 0 && i < N_LABELS; i++)
            if (add_finding(md, nih_labels[i], t->csv.name, err)) return err->code;
        return RD_OK;
    }
    if (fmt == FMT_CHEXPERT)
        return label_columns(t, chexpert_labels, N_LABELS, 0, md, c->finding, err);
    if (fmt != FMT_GENERIC || !opt->col_findings) return RD_OK;
    /* data.columns.findings: a comma-separated list of column names, each required */
    char list[4096], *save = NULL;
    const char *names[RD_MAX_FINDINGS + 1];
    int n = 0;
    snprintf(list, sizeof list, "%s", opt->col_findings);
    for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        tok = trim(tok);
        if (!*tok) continue;
        if (n == RD_MAX_FINDINGS + 1) break;
        names[n++] = tok;
    }
    return label_columns(t, names, n, 1, md, c->finding, err);
}

static int all_digits(const char *s, size_t min_len) {
    size_t n = strlen(s);
    if (n < min_len) return 0;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i])) return 0;
    return 1;
}

/* Year of a YYYYMMDD date (PadChest, MIMIC), or -1. */
static int64_t date_year(const char *text) {
    char buf[32];
    snprintf(buf, sizeof buf, "%s", text);
    char *s = trim(buf);
    if (strlen(s) > 8 && s[8] == '.') s[8] = '\0'; /* "21800506.0" */
    if (strlen(s) != 8 || !all_digits(s, 8)) return -1;
    return (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
}

/* Age from a birth/anchor year and a study date; NaN with *reason when it cannot be told. */
static float age_from_years(int have_base, double base_age, int64_t base_year,
                            const char *study_date, const char **reason) {
    int64_t year = date_year(study_date);
    *reason = NULL;
    if (!have_base || year < 0) {
        *reason = RD_REASON_MISSING_AGE;
        return NAN;
    }
    double age = base_age + (double)(year - base_year);
    if (age < 0 || age > RD_MAX_AGE) {
        *reason = RD_REASON_IMPOSSIBLE_AGE;
        return NAN;
    }
    return (float)age;
}

/* CheXpert's patient id is the "patientNNNNN" path component. */
static void chexpert_patient(const char *path, char *out, size_t cap) {
    out[0] = '\0';
    const char *p = strstr(path, "patient");
    while (p && (p != path && p[-1] != '/')) p = strstr(p + 1, "patient");
    if (!p) return;
    size_t n = strcspn(p, "/");
    snprintf(out, cap, "%.*s", (int)n, p);
}

typedef struct row_context {
    format fmt;
    const columns *c;
    const patient_table *patients;
    const findings_table *findings; /* MIMIC */
    const label_policy *policy;
    const char *csv_name;
} row_context;

static const char *field(const rd_csv_record *rec, int col) {
    return col >= 0 ? trim(rec->fields[col]) : "";
}

/* The finding labels of a kept row into out (all unknown when the data set has none). */
static rd_status row_findings(const row_context *ctx, const rd_csv_record *rec, const char *image,
                              rd_metadata *md, int8_t *out, rd_error *err) {
    const columns *c = ctx->c;
    memset(out, RD_FINDING_UNKNOWN, RD_MAX_FINDINGS);
    if (md->nfindings == 0) return RD_OK;
    if (ctx->fmt == FMT_NIH)
        return nih_findings(field(rec, c->labels), md, rec->line, image, out, err);
    if (ctx->fmt != FMT_MIMIC)
        return label_cells(rec, c->finding, md->nfindings, ctx->policy, md, rec->line, image, out,
                           err);
    study_findings key = {0};
    const study_findings *hit = NULL;
    if (parse_int(field(rec, c->study), &key.study_id) && ctx->findings->n)
        hit = bsearch(&key, ctx->findings->rows, ctx->findings->n, sizeof key, cmp_study);
    if (hit) {
        memcpy(out, hit->v, (size_t)md->nfindings);
        return RD_OK;
    }
    return add_problem(md, rec->line, image, RD_OUTCOME_WARNING, RD_REASON_NO_FINDINGS, err,
                       "study_id %s is not in the findings CSV: its findings unknown",
                       field(rec, c->study));
}

/* Converts one well-formed row; rejects it (return 0) when it names no image. */
static rd_status convert_row(const row_context *ctx, const rd_csv_record *rec, rd_metadata *md,
                             rd_error *err) {
    const columns *c = ctx->c;
    rd_meta_record r = {0};
    char image[1024], patient[256], view[64];
    const char *id = field(rec, c->image);
    const char *age_reason = NULL;
    snprintf(image, sizeof image, "%s", id);
    snprintf(patient, sizeof patient, "%s", field(rec, c->patient));
    snprintf(view, sizeof view, "%s", field(rec, c->view));
    const char *sex_text = field(rec, c->sex);
    r.sex = rd_parse_sex(sex_text);
    r.age = c->age >= 0 ? rd_parse_age(field(rec, c->age), &age_reason) : NAN;
    if (c->age < 0) age_reason = RD_REASON_MISSING_AGE;
    const char *age_text = field(rec, c->age);

    if (ctx->fmt == FMT_CHEXPERT) {
        chexpert_patient(id, patient, sizeof patient);
        if (strcasecmp(field(rec, c->lateral), "Lateral") == 0)
            snprintf(view, sizeof view, "LATERAL");
        else if (!view[0])
            snprintf(view, sizeof view, "FRONTAL");
    } else if (ctx->fmt == FMT_PADCHEST) {
        int64_t birth = 0;
        int have = parse_int(field(rec, c->birth), &birth);
        r.age = age_from_years(have, 0, birth, field(rec, c->study_date), &age_reason);
        age_text = field(rec, c->birth);
    } else if (ctx->fmt == FMT_MIMIC) {
        const char *subject = field(rec, c->subject), *study = field(rec, c->study);
        if (!all_digits(subject, 2) || !all_digits(study, 1) || !id[0] || strchr(id, '/'))
            return add_problem(md, rec->line, id, RD_OUTCOME_REJECTED, RD_REASON_MALFORMED_ROW, err,
                               "%s line %lld: bad subject_id '%s', study_id '%s' or "
                               "dicom_id '%s'",
                               ctx->csv_name, (long long)rec->line, subject, study, id);
        snprintf(image, sizeof image, "files/p%.2s/p%s/s%s/%s.png", subject, subject, study, id);
        snprintf(patient, sizeof patient, "%s", subject);
        mimic_patient key = {0};
        key.subject_id = strtoll(subject, NULL, 10);
        const mimic_patient *p =
            ctx->patients->n
                ? bsearch(&key, ctx->patients->rows, ctx->patients->n, sizeof key, cmp_patient)
                : NULL;
        r.sex = p ? p->sex : RD_SEX_UNKNOWN;
        sex_text = p ? p->gender : "";
        r.age = age_from_years(p != NULL, p ? (double)p->anchor_age : 0, p ? p->anchor_year : 0,
                               field(rec, c->study_date), &age_reason);
        age_text = field(rec, c->study_date);
        if (!p && add_problem(md, rec->line, image, RD_OUTCOME_WARNING, RD_REASON_NO_PATIENT, err,
                              "subject_id %s is not in patients.csv: age and sex unknown", subject))
            return err->code;
    }
    if (!id[0])
        return add_problem(md, rec->line, "", RD_OUTCOME_REJECTED, RD_REASON_MALFORMED_ROW, err,
                           "%s line %lld: empty image name", ctx->csv_name, (long long)rec->line);
    r.image = image;
    r.image_id = (char *)id;
    r.patient_id = patient;
    r.view = view;
    r.row = rec->line;
    if (r.sex == RD_SEX_UNKNOWN &&
        add_problem(md, rec->line, image, RD_OUTCOME_WARNING, RD_REASON_UNKNOWN_SEX, err,
                    "sex '%s' is not M/F/Male/Female: unknown", sex_text))
        return err->code;
    if (age_reason && add_problem(md, rec->line, image, RD_OUTCOME_WARNING, age_reason, err,
                                  strcmp(age_reason, RD_REASON_MISSING_AGE) == 0
                                      ? "age missing ('%s'): unknown"
                                      : "age '%s' is impossible: unknown",
                                  age_text))
        return err->code;
    if (row_findings(ctx, rec, image, md, r.findings, err)) return err->code;
    return add_record(md, &r, err);
}

/* ---- duplicates ---- */

static int cmp_record_id(const void *a, const void *b) {
    const rd_meta_record *x = *(rd_meta_record *const *)a, *y = *(rd_meta_record *const *)b;
    int c = strcmp(x->image_id, y->image_id);
    return c ? c : (x->row > y->row) - (x->row < y->row);
}

/* Rejects every record whose image id an earlier row already has. */
static rd_status reject_duplicates(rd_metadata *md, rd_error *err) {
    if (md->nrecords < 2) return RD_OK;
    rd_meta_record **by_id = malloc(md->nrecords * sizeof *by_id);
    if (!by_id) return oom(err, "metadata");
    for (size_t i = 0; i < md->nrecords; i++) by_id[i] = &md->records[i];
    qsort(by_id, md->nrecords, sizeof *by_id, cmp_record_id);
    rd_status st = RD_OK;
    for (size_t i = 1; i < md->nrecords && !st; i++) {
        size_t first = i - 1;
        while (first > 0 && strcmp(by_id[first]->image_id, by_id[i]->image_id) == 0) first--;
        if (strcmp(by_id[first]->image_id, by_id[i]->image_id) != 0) first++;
        if (first == i) continue;
        st = add_problem(md, by_id[i]->row, by_id[i]->image, RD_OUTCOME_REJECTED,
                         RD_REASON_DUPLICATE_ID, err, "image id '%s' already on line %lld",
                         by_id[i]->image_id, (long long)by_id[first]->row);
        by_id[i]->row = -by_id[i]->row; /* marked for removal */
    }
    free(by_id);
    size_t kept = 0;
    for (size_t i = 0; i < md->nrecords; i++) {
        if (md->records[i].row < 0)
            free_record(&md->records[i]);
        else
            md->records[kept++] = md->records[i];
    }
    md->nrecords = kept;
    return st;
}

typedef struct problem_order {
    int64_t row;
    size_t seq;
} problem_order;

static int cmp_problem_order(const void *a, const void *b) {
    const problem_order *x = a, *y = b;
    if (x->row != y->row) return (x->row > y->row) - (x->row < y->row);
    return (x->seq > y->seq) - (x->seq < y->seq);
}

/* Problems sorted by row, stable (warnings of a row stay in the order they were found). */
static rd_status sort_problems(rd_metadata *md, rd_error *err) {
    problem_order *order = malloc((md->nproblems + 1) * sizeof *order);
    rd_meta_problem *sorted = malloc((md->nproblems + 1) * sizeof *sorted);
    if (!order || !sorted) {
        free(order);
        free(sorted);
        return oom(err, "metadata problems");
    }
    for (size_t i = 0; i < md->nproblems; i++) order[i] = (problem_order){md->problems[i].row, i};
    qsort(order, md->nproblems, sizeof *order, cmp_problem_order);
    for (size_t i = 0; i < md->nproblems; i++) sorted[i] = md->problems[order[i].seq];
    free(order);
    free(md->problems);
    md->problems = sorted;
    md->problems_cap = md->nproblems + 1;
    return RD_OK;
}

static int parse_format(const char *name, format *fmt) {
    static const char *names[] = {"nih", "chexpert", "padchest", "mimic", "generic"};
    for (int i = 0; i < 5; i++)
        if (name && strcmp(name, names[i]) == 0) return *fmt = (format)i, 1;
    return 0;
}

rd_status rd_metadata_read(const rd_metadata_options *opt, rd_metadata *md, rd_error *err) {
    memset(md, 0, sizeof *md);
    format fmt;
    if (!parse_format(opt->format, &fmt))
        return rd_fail(err, RD_EINVAL, "unknown metadata format '%s'",
                       opt->format ? opt->format : "(null)");
    if (!opt->metadata_csv || !opt->metadata_csv[0])
        return rd_fail(err, RD_EINVAL, "no metadata CSV given (data.metadata_csv)");
    label_policy policy;
    if (parse_policy(opt, &policy, err)) return err->code;
    patient_table patients = {0};
    findings_table findings = {0};
    if (fmt == FMT_MIMIC) {
        if (!opt->patients_csv || !opt->patients_csv[0])
            return rd_fail(err, RD_EINVAL, "MIMIC-CXR needs patients.csv (data.patients_csv)");
        rd_status side = read_mimic_patients(opt->patients_csv, md, &patients, err);
        if (!side && opt->findings_csv && opt->findings_csv[0])
            side = read_mimic_findings(opt->findings_csv, &policy, md, &findings, err);
        if (side) {
            free(patients.rows);
            rd_metadata_free(md);
            return err->code;
        }
    }
    table t;
    if (table_open(&t, opt->metadata_csv, err)) {
        free(patients.rows);
        free(findings.rows);
        rd_metadata_free(md);
        return err->code;
    }
    columns c = {.image = -1};
    rd_status st = find_columns(&t, fmt, opt, &c, err);
    if (!st) st = find_label_columns(&t, fmt, opt, md, &c, err);
    t.file_col = c.image;
    row_context ctx = {fmt, &c, &patients, &findings, &policy, t.csv.name};
    rd_csv_record rec;
    int got = 0;
    while (!st && (got = table_next(&t, &rec, md, RD_OUTCOME_REJECTED, err)) == 1)
        st = convert_row(&ctx, &rec, md, err);
    if (!st && got < 0) st = err->code;
    md->rows = t.rows;
    table_close(&t);
    free(patients.rows);
    free(findings.rows);
    if (!st) st = reject_duplicates(md, err);
    if (!st) st = sort_problems(md, err);
    if (st) rd_metadata_free(md);
    return st;
}
