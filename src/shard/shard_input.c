/* What rdino-shard reads: the manifest written by rdino-preprocess and its PNGs. */
#include "rdino/shard.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdino/csv.h"
#include "rdino/png.h"
#include "rdino/sha256.h"

enum {
    COL_IMAGE_ID,
    COL_FILE,
    COL_PATIENT,
    COL_AGE,
    COL_SEX,
    COL_VIEW,
    COL_WIDTH,
    COL_HEIGHT,
    COL_SOURCE_ROW,
    NCOLS
};
static const char *const column_names[NCOLS] = {
    "image_id", "file", "patient_id", "age", "sex", "view", "width", "height", "source_row"};

static rd_status find_columns(const rd_csv_record *header, const char *path, int col[NCOLS],
                              rd_error *err) {
    for (int c = 0; c < NCOLS; c++) {
        col[c] = -1;
        for (int i = 0; i < header->nfields; i++)
            if (strcmp(header->fields[i], column_names[c]) == 0) col[c] = i;
        if (col[c] < 0)
            return rd_fail(err, RD_EFORMAT, "%s: header lacks the column '%s'", path,
                           column_names[c]);
    }
    return RD_OK;
}

/* The finding_* columns of the header in name order: their names into m, their fields into
 * field[]. */
static rd_status find_findings(const rd_csv_record *header, rd_shard_manifest *m, int *field,
                               rd_error *err) {
    for (int i = 0; i < header->nfields; i++) {
        const char *name = header->fields[i];
        if (strncmp(name, "finding_", 8) != 0) continue;
        if (!name[8] || strlen(name) >= RD_FINDING_NAME_MAX ||
            strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(name))
            return rd_fail(err, RD_EFORMAT,
                           "%s: column '%s' is no finding label column (finding_ and up to %d of "
                           "a-z, 0-9, _)",
                           m->path, name, RD_FINDING_NAME_MAX - 9);
        if (m->nfindings == RD_MAX_FINDINGS)
            return rd_fail(err, RD_EFORMAT, "%s: more than %d finding label columns", m->path,
                           RD_MAX_FINDINGS);
        int k = m->nfindings++; /* insertion sort: a handful of names */
        while (k > 0 && strcmp(m->finding[k - 1], name) > 0) {
            memcpy(m->finding[k], m->finding[k - 1], RD_FINDING_NAME_MAX);
            field[k] = field[k - 1];
            k--;
        }
        if (k > 0 && strcmp(m->finding[k - 1], name) == 0)
            return rd_fail(err, RD_EFORMAT, "%s: two columns '%s'", m->path, name);
        snprintf(m->finding[k], RD_FINDING_NAME_MAX, "%s", name);
        field[k] = i;
    }
    return RD_OK;
}

/* A row's finding labels: 1, 0, or empty for unknown (-1 is read as unknown too). */
static rd_status parse_findings(const rd_csv_record *rec, const rd_shard_manifest *m,
                                const int *field, int8_t *out, rd_error *err) {
    for (int k = 0; k < m->nfindings; k++) {
        const char *v = field[k] < rec->nfields ? rec->fields[field[k]] : NULL;
        if (v && (!*v || strcmp(v, "-1") == 0))
            out[k] = -1;
        else if (v && (strcmp(v, "0") == 0 || strcmp(v, "1") == 0))
            out[k] = (int8_t)(*v - '0');
        else
            return rd_fail(err, RD_EFORMAT, "%s line %lld: %s '%s' (expected 1, 0 or empty)",
                           m->path, (long long)rec->line, m->finding[k], v ? v : "(missing)");
    }
    return RD_OK;
}

static int parse_int(const char *text, int64_t *value) {
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    *value = v;
    return *text && !*end && errno == 0;
}

/* Turns one record into an image; strings are copied. */
static rd_status parse_row(const rd_csv_record *rec, const int col[NCOLS], const char *dir,
                           const char *path, rd_shard_image *img, int64_t wh[2], rd_error *err) {
    char *const *f = rec->fields;
    if (rec->problem)
        return rd_fail(err, RD_EFORMAT, "%s line %lld: %s", path, (long long)rec->line,
                       rec->problem);
    for (int c = 0; c < NCOLS; c++)
        if (col[c] >= rec->nfields)
            return rd_fail(err, RD_EFORMAT, "%s line %lld: %d fields, no '%s'", path,
                           (long long)rec->line, rec->nfields, column_names[c]);
    const char *age = f[col[COL_AGE]], *sex = f[col[COL_SEX]];
    char *end = NULL;
    img->age = *age ? strtof(age, &end) : NAN;
    if (*age && (*end || !isfinite(img->age)))
        return rd_fail(err, RD_EFORMAT, "%s line %lld: age '%s' is not a number", path,
                       (long long)rec->line, age);
    if (strcmp(sex, "M") && strcmp(sex, "F") && *sex)
        return rd_fail(err, RD_EFORMAT, "%s line %lld: sex '%s' (expected M, F or empty)", path,
                       (long long)rec->line, sex);
    img->sex = (int8_t)(*sex == 'M' ? 1 : *sex == 'F' ? 0 : -1);
    if (!parse_int(f[col[COL_WIDTH]], &wh[0]) || !parse_int(f[col[COL_HEIGHT]], &wh[1]) ||
        !parse_int(f[col[COL_SOURCE_ROW]], &img->source_row))
        return rd_fail(err, RD_EFORMAT,
                       "%s line %lld: width, height and source_row must be "
                       "integers",
                       path, (long long)rec->line);
    if (!*f[col[COL_IMAGE_ID]] || !*f[col[COL_FILE]])
        return rd_fail(err, RD_EFORMAT, "%s line %lld: empty image_id or file", path,
                       (long long)rec->line);
    size_t len = strlen(dir) + strlen(f[col[COL_FILE]]) + 2;
    char *file = malloc(len);
    if (file) snprintf(file, len, "%s/%s", dir, f[col[COL_FILE]]);
    img->file = file;
    img->image_id = strdup(f[col[COL_IMAGE_ID]]);
    img->patient_id = strdup(f[col[COL_PATIENT]]);
    img->view = strdup(f[col[COL_VIEW]]);
    if (!img->file || !img->image_id || !img->patient_id || !img->view)
        return rd_fail(err, RD_ENOMEM, "%s: out of memory", path);
    return RD_OK;
}

static rd_status add_image(rd_shard_manifest *m, int64_t *cap, rd_error *err) {
    if (m->n < *cap) return RD_OK;
    int64_t grown = *cap ? *cap * 2 : 1024;
    rd_shard_image *images = realloc(m->images, (size_t)grown * sizeof *images);
    if (images) m->images = images;
    int8_t *findings = realloc(m->findings, (size_t)grown * (size_t)m->nfindings + 1);
    if (findings) m->findings = findings;
    if (!images || !findings) return rd_fail(err, RD_ENOMEM, "%s: out of memory", m->path);
    *cap = grown;
    return RD_OK;
}

rd_status rd_shard_manifest_read(const char *dir, rd_shard_manifest *m, rd_error *err) {
    memset(m, 0, sizeof *m);
    if (snprintf(m->path, sizeof m->path, "%s/manifest.csv", dir) >= (int)sizeof m->path)
        return rd_fail(err, RD_EINVAL, "path too long: %s", dir);
    rd_status st = rd_sha256_file(m->path, m->sha256, err);
    if (st) return st;
    rd_csv csv;
    st = rd_csv_open(&csv, m->path, err);
    if (st) return st;
    rd_csv_record rec;
    int col[NCOLS], finding_col[RD_MAX_FINDINGS];
    int got = rd_csv_next(&csv, &rec, err);
    if (got == 0)
        st = rd_fail(err, RD_EFORMAT, "%s: empty file (no header)", m->path);
    else if (got < 0)
        st = err->code;
    else
        st = find_columns(&rec, m->path, col, err);
    if (!st) st = find_findings(&rec, m, finding_col, err);
    int64_t cap = 0;
    while (!st && (got = rd_csv_next(&csv, &rec, err)) == 1) {
        st = add_image(m, &cap, err);
        if (st) break;
        rd_shard_image *img = &m->images[m->n];
        memset(img, 0, sizeof *img);
        m->n++;
        int64_t wh[2] = {0, 0};
        st = parse_row(&rec, col, dir, m->path, img, wh, err);
        if (!st)
            st = parse_findings(&rec, m, finding_col,
                                m->findings + (size_t)(m->n - 1) * (size_t)m->nfindings, err);
        if (!st && m->size == 0) m->size = (int)wh[0];
        if (!st && (wh[0] != m->size || wh[1] != m->size || m->size < 1))
            st = rd_fail(err, RD_EFORMAT,
                         "%s line %lld: image is %lldx%lld; every image must be %dx%d (shards need "
                         "square images: preprocess.crop: center)",
                         m->path, (long long)rec.line, (long long)wh[0], (long long)wh[1], m->size,
                         m->size);
    }
    if (!st && got < 0) st = err->code;
    if (!st && m->n == 0) st = rd_fail(err, RD_EFORMAT, "%s: no images", m->path);
    for (int64_t i = 0; !st && m->nfindings && i < m->n; i++) /* the array has stopped moving */
        m->images[i].findings = m->findings + (size_t)i * (size_t)m->nfindings;
    rd_csv_close(&csv);
    if (st) rd_shard_manifest_free(m);
    return st;
}

void rd_shard_manifest_free(rd_shard_manifest *m) {
    for (int64_t i = 0; i < m->n; i++) {
        free((char *)m->images[i].image_id);
        free((char *)m->images[i].patient_id);
        free((char *)m->images[i].view);
        free((char *)m->images[i].file);
    }
    free(m->images);
    free(m->findings);
    m->images = NULL;
    m->findings = NULL;
    m->n = 0;
    m->nfindings = 0;
}

/* ---- PNG loading ---- */

struct rd_shard_png_loader {
    rd_png_reader reader;
    int size, bit_depth;
};

/* Generous: shards hold S x S images, never larger than this. */
static const size_t max_pixels = (size_t)1 << 30;

rd_status rd_shard_png_loader_new(rd_shard_png_loader **loader, int size, int bit_depth,
                                  rd_error *err) {
    *loader = calloc(1, sizeof **loader);
    if (!*loader) return rd_fail(err, RD_ENOMEM, "out of memory for the PNG decoder");
    (*loader)->size = size;
    (*loader)->bit_depth = bit_depth;
    return RD_OK;
}

void rd_shard_png_loader_free(rd_shard_png_loader *loader) {
    if (!loader) return;
    rd_png_reader_free(&loader->reader);
    free(loader);
}

rd_status rd_shard_png_load(void *ctx, const rd_shard_image *img, int64_t index, void *dst,
                            rd_error *err) {
    (void)index;
    rd_shard_png_loader *l = ctx;
    rd_grey_image grey;
    rd_reject reason;
    rd_status st = rd_png_read(&l->reader, img->file, max_pixels, &grey, NULL, &reason, err);
    if (st) return st;
    if (grey.width != l->size || grey.height != l->size || grey.depth != l->bit_depth)
        return rd_fail(err, RD_EFORMAT,
                       "%s: %dx%d pixels at %d bits, but the manifest's images are %dx%d at %d "
                       "bits (rerun rdino-preprocess?)",
                       img->file, grey.width, grey.height, grey.depth, l->size, l->size,
                       l->bit_depth);
    memcpy(dst, grey.data, (size_t)l->size * (size_t)l->size * (l->bit_depth > 8 ? 2 : 1));
    return RD_OK;
}

rd_status rd_shard_png_depth(const char *path, int *bit_depth, rd_error *err) {
    rd_png_reader reader = {0};
    rd_grey_image grey;
    rd_reject reason;
    rd_status st = rd_png_read(&reader, path, max_pixels, &grey, NULL, &reason, err);
    if (!st) *bit_depth = grey.depth;
    rd_png_reader_free(&reader);
    return st;
}

/* ---- provenance ---- */

char *rd_shard_preprocess_yaml(const rd_config *cfg) {
    size_t cap = 1, len = 0;
    for (int i = 0; i < cfg->nkeys; i++)
        cap += strlen(cfg->keys[i].name) + 2 * strlen(cfg->values[i].text) + 8;
    char *text = malloc(cap);
    if (!text) return NULL;
    for (int i = 0; i < cfg->nkeys; i++) {
        const char *name = cfg->keys[i].name, *value = cfg->values[i].text;
        if (strncmp(name, "data.", 5) != 0 && strncmp(name, "preprocess.", 11) != 0) continue;
        int quote = cfg->keys[i].type == RD_CFG_STRING;
        len += (size_t)snprintf(text + len, cap - len, "%s: %s", name, quote ? "\"" : "");
        for (const char *c = value; *c; c++) {
            if (quote && (*c == '"' || *c == '\\')) text[len++] = '\\';
            text[len++] = *c;
        }
        len += (size_t)snprintf(text + len, cap - len, "%s\n", quote ? "\"" : "");
    }
    text[len] = '\0';
    return text;
}
