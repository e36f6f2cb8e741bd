/* Reading the embedding files (docs/FORMATS.md, "Embeddings") into the study's rows, targets
 * and representations, with the checks that make a wrong input fail loudly: the layout, the
 * format version, finite features, and identical rows (same images, same order) in every
 * file. */
#include "analyze_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdino/h5store.h"
#include "rdino/log.h"

static const char *const feature_names[2] = {"cls", "patch_mean"};

/* One embedding file's /meta, all its rows. */
typedef struct file_meta {
    int64_t n;
    char *image_id, *patient_id;
    size_t id_stride, patient_stride;
} file_meta;

static void file_meta_free(file_meta *m) {
    free(m->image_id);
    free(m->patient_id);
    memset(m, 0, sizeof *m);
}

/* Rows of a 1-D /meta dataset, which must have n rows (n < 0: any; *rows receives it). */
static rd_status meta_rows(const rd_h5file *f, const char *name, int64_t n, int64_t *rows,
                           size_t *width, rd_error *err) {
    int64_t dims[RD_H5_MAX_DIMS];
    int ndim = 0;
    if (!rd_h5_exists(f, name))
        return rd_fail(err, RD_EFORMAT, "%s: no dataset %s (not an rdino embedding file?)", f->path,
                       name);
    rd_status st = rd_h5_shape(f, name, dims, &ndim, width, err);
    if (st) return st;
    if (ndim != 1 || (n >= 0 && dims[0] != n))
        return rd_fail(err, RD_EFORMAT,
                       "%s: %s has shape %s%lld, expected [%lld] like /meta/image_id", f->path,
                       name, ndim == 1 ? "" : "of rank > 1, first dim ", (long long)dims[0],
                       (long long)n);
    if (rows) *rows = dims[0];
    return RD_OK;
}

static rd_status read_string_column(const rd_h5file *f, const char *name, int64_t n, char **out,
                                    size_t *stride, rd_error *err) {
    size_t width = 0;
    rd_status st = meta_rows(f, name, n, NULL, &width, err);
    if (st) return st;
    if (width == 0)
        return rd_fail(err, RD_EFORMAT, "%s: %s is not a fixed-length string dataset", f->path,
                       name);
    *stride = width + 1;
    *out = malloc((size_t)(n > 0 ? n : 1) * *stride);
    if (!*out) return rd_fail(err, RD_ENOMEM, "%s: no memory for %s", f->path, name);
    return rd_h5_read_strings(f, name, 0, n, *out, *stride, err);
}

static rd_status read_file_meta(const rd_h5file *f, file_meta *m, rd_error *err) {
    memset(m, 0, sizeof *m);
    size_t width;
    rd_status st = meta_rows(f, "/meta/image_id", -1, &m->n, &width, err);
    if (!st && m->n > INT32_MAX)
        st = rd_fail(err, RD_ERANGE, "%s: %lld rows; at most %d", f->path, (long long)m->n,
                     INT32_MAX);
    if (!st) st = read_string_column(f, "/meta/image_id", m->n, &m->image_id, &m->id_stride, err);
    if (!st)
        st = read_string_column(f, "/meta/patient_id", m->n, &m->patient_id, &m->patient_stride,
                                err);
    return st;
}

static rd_status open_embedding(rd_h5file *f, const char *path, rd_error *err) {
    rd_status st = rd_h5_open(f, path, MPI_COMM_SELF, err);
    if (st) return rd_wrap(err, "embedding file");
    int64_t version = 0;
    if (rd_h5_get_attr_int(f, "/", "format_version", &version, err)) {
        rd_h5_close(f);
        return rd_fail(err, RD_EFORMAT,
                       "%s is not an rdino embedding file: no format_version attribute", path);
    }
    if (version != RD_EMBEDDINGS_FORMAT_VERSION) {
        rd_h5_close(f);
        return rd_fail(err, RD_EFORMAT, "%s has format_version %lld; this rdino-analyze reads %d",
                       path, (long long)version, RD_EMBEDDINGS_FORMAT_VERSION);
    }
    return RD_OK;
}

/* The string attribute, or "" when absent (malloc'd; NULL only when out of memory). */
static char *optional_attr(const rd_h5file *f, const char *name) {
    char *value = NULL;
    rd_error ignored;
    if (rd_h5_get_attr_str(f, "/", name, &value, &ignored) != RD_OK) value = strdup("");
    return value;
}

static const char *base_name(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* Reads feature set /name [n_file, d] and keeps the study's rows (data->file_row). */
static rd_status read_features(const rd_h5file *f, const char *name, const rd_analyze_data *data,
                               int64_t n_file, float **x, int *d, rd_error *err) {
    int64_t dims[RD_H5_MAX_DIMS];
    int ndim = 0;
    if (!rd_h5_exists(f, name))
        return rd_fail(err, RD_EFORMAT, "%s: no dataset %s (analyze.features asks for it)", f->path,
                       name);
    rd_status st = rd_h5_shape(f, name, dims, &ndim, NULL, err);
    if (st) return st;
    if (ndim != 2 || dims[0] != n_file || dims[1] < 1 || dims[1] > INT32_MAX)
        return rd_fail(err, RD_EFORMAT, "%s: %s must be [%lld, D] (one row per /meta row)", f->path,
                       name, (long long)n_file);
    *d = (int)dims[1];
    *x = malloc((size_t)(n_file > 0 ? n_file : 1) * (size_t)*d * sizeof **x);
    if (!*x) return rd_fail(err, RD_ENOMEM, "%s: no memory for %s", f->path, name);
    st = rd_h5_read_rows(f, name, RD_H5_F32, 0, n_file, *x, err);
    if (st) return st;
    size_t row = (size_t)*d;
    for (int i = 0; i < data->n; i++) {
        const float *src = *x + (size_t)data->file_row[i] * row;
        for (size_t j = 0; j < row; j++)
            if (!isfinite(src[j]))
                return rd_fail(err, RD_ENUMERIC,
                               "%s: %s row %d (image %s) has a non-finite value in dimension %zu",
                               f->path, name, data->file_row[i],
                               data->image_id + (size_t)i * data->id_stride, j);
        memmove(*x + (size_t)i * row, src, row * sizeof **x);
    }
    return RD_OK;
}

/* The representations of one file (one per chosen feature set). */
static rd_status add_file_reps(const rd_analyze_params *p, const rd_h5file *f, int64_t n_file,
                               rd_analyze_data *data, rd_error *err) {
    char *encoder = optional_attr(f, "encoder");
    if (!encoder) return rd_fail(err, RD_ENOMEM, "out of memory");
    if (!*encoder) {
        /* No attribute: the file name without .h5 names the encoder. */
        free(encoder);
        encoder = strdup(base_name(f->path));
        if (encoder && strlen(encoder) > 3 && strcmp(encoder + strlen(encoder) - 3, ".h5") == 0)
            encoder[strlen(encoder) - 3] = '\0';
        if (!encoder) return rd_fail(err, RD_ENOMEM, "out of memory");
    }
    rd_status st = RD_OK;
    if (strlen(encoder) >= RD_ANALYZE_NAME_MAX)
        st = rd_fail(err, RD_EFORMAT, "%s: encoder name '%s' is longer than %d bytes", f->path,
                     encoder, RD_ANALYZE_NAME_MAX - 1);
    for (int r = 0; !st && r < data->nreps; r++)
        if (strcmp(data->reps[r].encoder, encoder) == 0)
            st = rd_fail(err, RD_EINVAL,
                         "%s and %s both name their encoder '%s' (attribute \"encoder\"); the "
                         "report needs distinct names",
                         data->reps[r].source, f->path, encoder);
    double resolution = NAN;
    rd_error ignored;
    if (rd_h5_get_attr_float(f, "/", "resolution", &resolution, &ignored)) resolution = NAN;
    for (int k = 0; k < 2 && !st; k++) {
        if (!(k == 0 ? p->use_cls : p->use_patch_mean)) continue;
        rd_analyze_rep *rep = &data->reps[data->nreps];
        memset(rep, 0, sizeof *rep);
        snprintf(rep->encoder, sizeof rep->encoder, "%s", encoder);
        snprintf(rep->features, sizeof rep->features, "%s", feature_names[k]);
        snprintf(rep->source, sizeof rep->source, "%s", f->path);
        rep->resolution = resolution;
        rep->explained_variance = NAN;
        rep->checkpoint = optional_attr(f, "checkpoint");
        rep->model_config = optional_attr(f, "model_config");
        data->nreps++;
        char name[16];
        snprintf(name, sizeof name, "/%s", feature_names[k]);
        if (!rep->checkpoint || !rep->model_config)
            st = rd_fail(err, RD_ENOMEM, "out of memory");
        else
            st = read_features(f, name, data, n_file, &rep->x, &rep->d, err);
    }
    free(encoder);
    return st;
}

/* Rows of `other` must be the first file's rows: same count, ids and patients, in order. */
static rd_status same_rows(const char *first_path, const file_meta *first, const char *path,
                           const file_meta *other, rd_error *err) {
    if (other->n != first->n)
        return rd_fail(err, RD_EINVAL,
                       "%s has %lld rows but %s has %lld: embeddings of different images cannot "
                       "be compared (embed the same shards with every encoder)",
                       path, (long long)other->n, first_path, (long long)first->n);
    for (int64_t i = 0; i < first->n; i++) {
        const char *a = first->image_id + (size_t)i * first->id_stride;
        const char *b = other->image_id + (size_t)i * other->id_stride;
        const char *pa = first->patient_id + (size_t)i * first->patient_stride;
        const char *pb = other->patient_id + (size_t)i * other->patient_stride;
        if (strcmp(a, b) != 0)
            return rd_fail(err, RD_EINVAL,
                           "row %lld is image '%s' in %s but '%s' in %s: the files' rows do not "
                           "match (same images, same order needed)",
                           (long long)i, a, first_path, b, path);
        if (strcmp(pa, pb) != 0)
            return rd_fail(err, RD_EINVAL,
                           "image '%s' belongs to patient '%s' in %s but '%s' in %s", a, pa,
                           first_path, pb, path);
    }
    return RD_OK;
}

/* The targets analyze.targets names, with "findings" expanded to every /meta/finding_* column
 * (name order), or for "auto" (names NULL): sex, then every numeric /meta column but the
 * bookkeeping ones (split, source_row, shard_row) and the finding labels, in name order: age,
 * and whatever else a site adds (weight, BMI, ...). The finding labels have their own study
 * (analysis/findings.yaml): in "auto" they would turn an age/sex study into a 16-target one. */
static rd_status target_names(const rd_h5file *f, char *const *given, int ngiven, char ***names,
                              int *n, rd_error *err) {
    char **members = NULL;
    int nmembers = 0;
    *names = NULL;
    *n = 0;
    rd_status st = rd_h5_list(f, "/meta", NULL, &members, &nmembers, err);
    int cap = (given ? ngiven : 1) + nmembers;
    if (!st && !(*names = calloc((size_t)cap + 1, sizeof **names)))
        st = rd_fail(err, RD_ENOMEM, "out of memory");
    if (!st && !given) (*names)[(*n)++] = strdup("sex");
    for (int g = 0; !st && g < (given ? ngiven : 1); g++) {
        int findings = given && strcmp(given[g], "findings") == 0, any = 0;
        if (given && !findings) {
            (*names)[(*n)++] = strdup(given[g]);
            continue;
        }
        for (int i = 0; !st && i < nmembers; i++) {
            const char *member = members[i];
            char path[RD_ANALYZE_NAME_MAX + 8];
            rd_h5_type type;
            rd_error ignored;
            int is_finding = strncmp(member, "finding_", 8) == 0;
            if (strlen(member) >= RD_ANALYZE_NAME_MAX || is_finding != findings) continue;
            if (strcmp(member, "sex") == 0 || strcmp(member, "split") == 0 ||
                strcmp(member, "source_row") == 0 || strcmp(member, "shard_row") == 0)
                continue;
            snprintf(path, sizeof path, "/meta/%s", member);
            if (rd_h5_dataset_type(f, path, &type, &ignored) != RD_OK || type == RD_H5_STRING)
                continue;
            (*names)[(*n)++] = strdup(member);
            any = 1;
        }
        if (findings && !any)
            st = rd_fail(err, RD_EINVAL,
                         "analyze.targets names the findings, but %s has no /meta/finding_* "
                         "column (the metadata CSV had no finding labels, docs/FORMATS.md)",
                         f->path);
    }
    rd_h5_names_free(members, nmembers);
    for (int i = 0; !st && i < *n; i++)
        if (!(*names)[i]) st = rd_fail(err, RD_ENOMEM, "out of memory");
    return st;
}

static int known_distinct(const double *y, int n) {
    double first = NAN;
    for (int i = 0; i < n; i++) {
        if (isnan(y[i])) continue;
        if (isnan(first))
            first = y[i];
        else if (y[i] != first)
            return 2;
    }
    return isnan(first) ? 0 : 1;
}

static rd_status add_skip(rd_analyze_data *data, const char *target, const char *reason,
                          rd_error *err) {
    rd_analyze_skip *grown = realloc(data->skipped, (size_t)(data->nskipped + 1) * sizeof *grown);
    if (!grown) return rd_fail(err, RD_ENOMEM, "out of memory");
    data->skipped = grown;
    rd_analyze_skip *k = &data->skipped[data->nskipped++];
    snprintf(k->target, sizeof k->target, "%s", target);
    snprintf(k->reason, sizeof k->reason, "%s", reason);
    return RD_OK;
}

int rd_analyze_is_finding(const rd_analyze_target *t) {
    return strncmp(t->name, "finding_", 8) == 0 && !*t->adjusted_for &&
           t->kind == RD_PROBE_LOGISTIC;
}

/* Values of a target or covariate per study row: sex 1 = M / 0 = F, view 1 = AP / 0 = PA (other
 * views unknown), an int8 column of 0/1 with -1 unknown (a finding label), or another numeric
 * /meta column; NaN = unknown. y is [data->n]; *binary says whether the values are 0/1. */
static rd_status column_values(const rd_h5file *f, const char *name, int64_t n_file,
                               const rd_analyze_data *data, double *y, int *binary, rd_error *err) {
    char path[RD_ANALYZE_NAME_MAX + 8];
    snprintf(path, sizeof path, "/meta/%s", name);
    *binary = strcmp(name, "sex") == 0 || strcmp(name, "view") == 0;
    if (strcmp(name, "sex") == 0) {
        rd_probe_sex_target(data->sex, data->n, y);
        return RD_OK;
    }
    if (!rd_h5_exists(f, path))
        return rd_fail(err, RD_ENOTFOUND, "%s has no /meta/%s (analyze.targets, analyze.adjust)",
                       f->path, name);
    rd_status st = meta_rows(f, path, n_file, NULL, NULL, err);
    rd_h5_type type;
    if (!st) st = rd_h5_dataset_type(f, path, &type, err);
    if (st) return st;
    int is_view = strcmp(name, "view") == 0;
    if ((type == RD_H5_STRING) != is_view)
        return rd_fail(err, RD_EFORMAT, "%s: /meta/%s holds %s", f->path, name,
                       is_view ? "numbers, not view names" : "strings, not numbers");
    char *views = NULL;
    size_t stride = 0;
    double *column = NULL;
    if (is_view)
        st = read_string_column(f, path, n_file, &views, &stride, err);
    else if (!(column = malloc((size_t)(n_file > 0 ? n_file : 1) * sizeof *column)))
        st = rd_fail(err, RD_ENOMEM, "out of memory");
    else
        st = rd_h5_read_rows(f, path, RD_H5_F64, 0, n_file, column, err);
    if (!st && type == RD_H5_I8) { /* 0/1 with -1 unknown: a binary target */
        *binary = 1;
        for (int64_t i = 0; i < n_file; i++)
            if (column[i] != 0 && column[i] != 1 && column[i] != -1) *binary = 0;
        for (int64_t i = 0; *binary && i < n_file; i++)
            if (column[i] == -1) column[i] = NAN;
    }
    for (int i = 0; !st && i < data->n; i++) {
        if (is_view) {
            const char *v = views + (size_t)data->file_row[i] * stride;
            y[i] = strcmp(v, "AP") == 0 ? 1.0 : strcmp(v, "PA") == 0 ? 0.0 : NAN;
        } else {
            double v = column[data->file_row[i]];
            y[i] = isfinite(v) ? v : NAN;
        }
    }
    free(views);
    free(column);
    return st;
}

/* Appends target name (adjusted by formula a, or raw when a is NULL) to data->targets, or a
 * skip note when it has fewer than two distinct known values or is a 0/1 target that cannot
 * be scored (rd_probe_binary_check on the study's patients, group). */
static rd_status add_target(const rd_analyze_params *p, const rd_h5file *f, int64_t n_file,
                            const char *name, const rd_analyze_formula *a, const int *group,
                            rd_analyze_data *data, rd_error *err) {
    rd_analyze_target *t = &data->targets[data->ntargets];
    memset(t, 0, sizeof *t);
    t->raw = -1;
    for (int j = 0; j < data->ntargets; j++)
        if (strcmp(data->targets[j].name, name) == 0)
            return rd_fail(err, RD_EINVAL, "analyze.targets names '%s' twice", name);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->y = malloc((size_t)(data->n > 0 ? data->n : 1) * sizeof *t->y);
    if (!t->y) return rd_fail(err, RD_ENOMEM, "out of memory");
    int binary = 0;
    rd_status st = column_values(f, a ? a->target : name, n_file, data, t->y, &binary, err);
    t->kind = binary && !a ? RD_PROBE_LOGISTIC : RD_PROBE_RIDGE;
    if (!st && a) {
        int ncols = 0;
        double *cov = NULL;
        for (int k = 0; k < a->ncov; k++)
            snprintf(t->adjusted_for + strlen(t->adjusted_for),
                     sizeof t->adjusted_for - strlen(t->adjusted_for), "%s%s", k ? ", " : "",
                     a->cov[k]);
        for (int j = 0; j < data->ntargets; j++)
            if (strcmp(data->targets[j].name, a->target) == 0) t->raw = j;
        /* Binary covariates enter as one 0/1 column, numeric ones as value and square. */
        cov = malloc((size_t)(data->n > 0 ? data->n : 1) * 2 * a->ncov * sizeof *cov);
        double *column = malloc((size_t)(data->n > 0 ? data->n : 1) * sizeof *column);
        if (!cov || !column) st = rd_fail(err, RD_ENOMEM, "out of memory");
        for (int k = 0; !st && k < a->ncov; k++) {
            int cov_binary = 0;
            st = column_values(f, a->cov[k], n_file, data, column, &cov_binary, err);
            int numeric = !cov_binary;
            for (int i = 0; !st && i < data->n; i++) {
                cov[(size_t)i * 2 * a->ncov + ncols] = column[i];
                if (numeric) cov[(size_t)i * 2 * a->ncov + ncols + 1] = column[i] * column[i];
            }
            ncols += numeric ? 2 : 1;
        }
        if (!st) st = rd_analyze_residualize(t->y, cov, data->n, ncols, 2 * a->ncov, t->y, err);
        free(cov);
        free(column);
    }
    if (st) {
        free(t->y);
        t->y = NULL;
        return st;
    }
    /* Nothing to predict, or too little to score: say so in the report instead of failing the
     * whole study. */
    int distinct = known_distinct(t->y, data->n);
    char why[256] = "";
    if (distinct < 2)
        snprintf(why, sizeof why, "%s among the study's images",
                 distinct ? "a single value" : "no known value");
    else if (t->kind == RD_PROBE_LOGISTIC && p->min_per_class > 0) {
        char reason[200];
        st = rd_probe_binary_check(t->y, data->n, group, &p->probe, p->min_per_class, reason,
                                   sizeof reason, err);
        if (!st && *reason) snprintf(why, sizeof why, "not estimable: %s", reason);
    }
    if (!st && !*why) {
        data->ntargets++;
        return RD_OK;
    }
    free(t->y);
    t->y = NULL;
    return st ? st : add_skip(data, name, why, err);
}

/* The study's targets from the first file (rows already chosen): the raw ones, then the
 * confounder-adjusted ones. */
static rd_status read_targets(const rd_analyze_params *p, const rd_h5file *f, int64_t n_file,
                              rd_analyze_data *data, rd_error *err) {
    char **names = NULL;
    int nnames = 0, ngroups = 0;
    int *group = malloc((size_t)(data->n > 0 ? data->n : 1) * sizeof *group);
    const char **ids = malloc((size_t)(data->n > 0 ? data->n : 1) * sizeof *ids);
    rd_status st = group && ids ? RD_OK : rd_fail(err, RD_ENOMEM, "out of memory");
    for (int i = 0; !st && i < data->n; i++)
        ids[i] = data->patient_id + (size_t)i * data->patient_stride;
    if (!st) st = rd_probe_group_ids(ids, data->n, group, &ngroups, err);
    if (!st)
        st = target_names(f, p->ntargets ? p->targets : NULL, p->ntargets, &names, &nnames, err);
    if (!st) data->targets = calloc((size_t)(nnames + p->nadjust + 1), sizeof *data->targets);
    if (!st && !data->targets) st = rd_fail(err, RD_ENOMEM, "out of memory");
    for (int k = 0; !st && k < nnames; k++)
        st = add_target(p, f, n_file, names[k], NULL, group, data, err);
    for (int k = 0; !st && k < p->nadjust; k++)
        st = add_target(p, f, n_file, p->adjust[k].name, &p->adjust[k], group, data, err);
    for (int k = 0; k < nnames; k++) free(names[k]);
    free(names);
    free(group);
    free(ids);
    return st;
}

/* The first file: /meta rows, the chosen splits, sex and age. */
static rd_status read_rows(const rd_analyze_params *p, const rd_h5file *f, const file_meta *m,
                           rd_analyze_data *data, rd_error *err) {
    int64_t n = m->n;
    size_t count = (size_t)(n > 0 ? n : 1);
    uint8_t *split = malloc(count);
    int8_t *sex = malloc(count);
    float *age = malloc(count * sizeof *age);
    data->file_row = malloc(count * sizeof *data->file_row);
    data->image_id = malloc(count * m->id_stride);
    data->patient_id = malloc(count * m->patient_stride);
    data->split = malloc(count);
    data->sex = malloc(count);
    data->age = malloc(count * sizeof *data->age);
    rd_status st = RD_OK;
    if (!split || !sex || !age || !data->file_row || !data->image_id || !data->patient_id ||
        !data->split || !data->sex || !data->age)
        st = rd_fail(err, RD_ENOMEM, "%s: no memory for %lld rows", f->path, (long long)n);
    if (!st) st = meta_rows(f, "/meta/split", n, NULL, NULL, err);
    if (!st) st = meta_rows(f, "/meta/sex", n, NULL, NULL, err);
    if (!st) st = meta_rows(f, "/meta/age", n, NULL, NULL, err);
    if (!st) st = rd_h5_read_rows(f, "/meta/split", RD_H5_U8, 0, n, split, err);
    if (!st) st = rd_h5_read_rows(f, "/meta/sex", RD_H5_I8, 0, n, sex, err);
    if (!st) st = rd_h5_read_rows(f, "/meta/age", RD_H5_F32, 0, n, age, err);
    data->id_stride = m->id_stride;
    data->patient_stride = m->patient_stride;
    data->file_rows = n;
    data->n = 0;
    for (int64_t i = 0; !st && i < n; i++) {
        const char *pid = m->patient_id + (size_t)i * m->patient_stride;
        if (split[i] > 2)
            st = rd_fail(err, RD_EFORMAT, "%s: /meta/split row %lld is %d (0, 1 or 2 expected)",
                         f->path, (long long)i, split[i]);
        else if (!*pid)
            st = rd_fail(err, RD_EFORMAT,
                         "%s: image '%s' (row %lld) has no patient id; patient-level "
                         "cross-validation needs one for every image",
                         f->path, m->image_id + (size_t)i * m->id_stride, (long long)i);
        if (st || !(p->splits & (1u << split[i]))) continue;
        int k = data->n++;
        data->file_row[k] = (int)i;
        memcpy(data->image_id + (size_t)k * m->id_stride, m->image_id + (size_t)i * m->id_stride,
               m->id_stride);
        memcpy(data->patient_id + (size_t)k * m->patient_stride, pid, m->patient_stride);
        data->split[k] = split[i];
        data->sex[k] = (sex[i] == 0 || sex[i] == 1) ? sex[i] : -1;
        data->age[k] = isfinite(age[i]) ? age[i] : NAN;
    }
    if (!st && data->n == 0)
        st = rd_fail(err, RD_EINVAL, "%s: no image of the splits in analyze.splits", f->path);
    free(split);
    free(sex);
    free(age);
    if (!st) st = read_targets(p, f, n, data, err);
    return st;
}

/* Moves the main encoder's representations to the front (stable otherwise). */
static void main_encoder_first(const rd_analyze_params *p, rd_analyze_data *data) {
    rd_analyze_rep *reordered =
        malloc((size_t)(data->nreps > 0 ? data->nreps : 1) * sizeof *reordered);
    if (!reordered) return; /* order is cosmetic */
    int k = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int r = 0; r < data->nreps; r++)
            if ((strcmp(data->reps[r].encoder, p->main_encoder) == 0) == (pass == 0))
                reordered[k++] = data->reps[r];
    memcpy(data->reps, reordered, (size_t)data->nreps * sizeof *reordered);
    free(reordered);
}

rd_status rd_analyze_load(const rd_analyze_params *p, rd_analyze_data *data, rd_error *err) {
    memset(data, 0, sizeof *data);
    int per_file = p->use_cls + p->use_patch_mean;
    /* Room for the raw-pixel representation too. */
    data->reps = calloc((size_t)(p->nembeddings * per_file + 1), sizeof *data->reps);
    if (!data->reps) return rd_fail(err, RD_ENOMEM, "out of memory");
    file_meta first = {0};
    rd_status st = RD_OK;
    for (int k = 0; k < p->nembeddings && !st; k++) {
        rd_h5file f;
        if ((st = open_embedding(&f, p->embeddings[k], err))) break;
        file_meta m;
        st = read_file_meta(&f, &m, err);
        if (!st && k == 0) {
            st = read_rows(p, &f, &m, data, err);
            first = m;
            memset(&m, 0, sizeof m);
        } else if (!st) {
            st = same_rows(p->embeddings[0], &first, p->embeddings[k], &m, err);
        }
        if (!st) st = add_file_reps(p, &f, first.n, data, err);
        file_meta_free(&m);
        rd_h5_close(&f);
    }
    file_meta_free(&first);
    if (st) {
        rd_analyze_data_free(data);
        return st;
    }
    main_encoder_first(p, data);
    return RD_OK;
}

void rd_analyze_data_free(rd_analyze_data *data) {
    free(data->file_row);
    free(data->image_id);
    free(data->patient_id);
    free(data->split);
    free(data->sex);
    free(data->age);
    for (int k = 0; k < data->ntargets; k++) free(data->targets[k].y);
    free(data->targets);
    for (int r = 0; data->reps && r < data->nreps; r++) {
        if (!data->reps[r].knn) free(data->reps[r].x);
        free(data->reps[r].checkpoint);
        free(data->reps[r].model_config);
    }
    free(data->reps);
    free(data->skipped);
    memset(data, 0, sizeof *data);
}

rd_status rd_analyze_add_knn_reps(const rd_analyze_params *p, rd_analyze_data *data,
                                  rd_error *err) {
    if (p->knn_k <= 0) return RD_OK;
    int n = data->nreps;
    rd_analyze_rep *grown = realloc(data->reps, (size_t)(2 * n > 0 ? 2 * n : 1) * sizeof *grown);
    if (!grown) return rd_fail(err, RD_ENOMEM, "out of memory for the k-NN representations");
    data->reps = grown;
    for (int r = 0; r < n; r++) {
        rd_analyze_rep *k = &data->reps[data->nreps];
        *k = data->reps[r];
        k->knn = 1;
        k->checkpoint = strdup(data->reps[r].checkpoint ? data->reps[r].checkpoint : "");
        k->model_config = strdup(data->reps[r].model_config ? data->reps[r].model_config : "");
        data->nreps++; /* counted before the check, so rd_analyze_data_free frees the copies */
        if (!k->checkpoint || !k->model_config)
            return rd_fail(err, RD_ENOMEM, "out of memory for the k-NN representations");
    }
    return RD_OK;
}

void rd_analyze_rep_name(const rd_analyze_data *data, int rep, char *buf, int size) {
    const rd_analyze_rep *r = &data->reps[rep];
    int several = 0;
    for (int k = 0; k < data->nreps; k++)
        if (strcmp(data->reps[k].features, r->features) != 0 &&
            strcmp(data->reps[k].features, "pixels") != 0 && strcmp(r->features, "pixels") != 0)
            several = 1;
    if (several)
        snprintf(buf, (size_t)size, "%s (%s)%s", r->encoder, r->features, r->knn ? " kNN" : "");
    else
        snprintf(buf, (size_t)size, "%s%s", r->encoder, r->knn ? " kNN" : "");
}
