/* A shard's /meta columns (read, written, digested) and the check of its images: see
 * shard_check.h. */
#include "shard_check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdino/crc32c.h"
#include "rdino/sha256.h"

static const char *const string_columns[3] = {"/meta/image_id", "/meta/patient_id", "/meta/view"};

/* The numeric /meta columns in digest order (the finding columns last), with m's buffers. */
enum { MAX_NUMERIC_COLUMNS = 5 + RD_MAX_FINDINGS };
typedef struct numeric_column {
    char name[RD_FINDING_NAME_MAX + 8];
    rd_h5_type type;
    void *data;
} numeric_column;

/* Fills c and returns the count. */
static int numeric_columns(const shard_meta *m, numeric_column c[MAX_NUMERIC_COLUMNS]) {
    c[0] = (numeric_column){"/meta/age", RD_H5_F32, m->age};
    c[1] = (numeric_column){"/meta/sex", RD_H5_I8, m->sex};
    c[2] = (numeric_column){"/meta/split", RD_H5_U8, m->split};
    c[3] = (numeric_column){"/meta/source_row", RD_H5_I64, m->source_row};
    c[4] = (numeric_column){"/meta/crc32c", RD_H5_U32, m->crc32c};
    for (int k = 0; k < m->nfindings; k++) {
        numeric_column *f = &c[5 + k];
        snprintf(f->name, sizeof f->name, "/meta/%s", m->finding[k]);
        f->type = RD_H5_I8;
        f->data = m->findings + (size_t)k * (size_t)m->n;
    }
    return 5 + m->nfindings;
}

rd_status shard_meta_alloc(shard_meta *m, int64_t n, const size_t max_width[3], rd_error *err) {
    memset(m, 0, sizeof *m);
    m->n = n;
    size_t rows = (size_t)(n > 0 ? n : 1);
    int failed = 0;
    for (int c = 0; c < 3; c++) {
        m->width[c] = max_width[c];
        m->stride[c] = max_width[c] + 1;
        m->strings[c] = calloc(rows, m->stride[c]);
        failed |= !m->strings[c];
    }
    m->age = malloc(rows * sizeof *m->age);
    m->sex = malloc(rows);
    m->split = malloc(rows);
    m->source_row = malloc(rows * sizeof *m->source_row);
    m->crc32c = malloc(rows * sizeof *m->crc32c);
    if (failed || !m->age || !m->sex || !m->split || !m->source_row || !m->crc32c) {
        shard_meta_free(m);
        return rd_fail(err, RD_ENOMEM, "out of memory for the metadata of %lld images",
                       (long long)n);
    }
    return RD_OK;
}

void shard_meta_free(shard_meta *m) {
    for (int c = 0; c < 3; c++) free(m->strings[c]);
    free(m->age), free(m->sex), free(m->split), free(m->source_row), free(m->crc32c);
    free(m->findings);
    memset(m, 0, sizeof *m);
}

rd_status shard_meta_set_findings(shard_meta *m, int n, const char (*names)[RD_FINDING_NAME_MAX],
                                  rd_error *err) {
    if (n < 0 || n > RD_MAX_FINDINGS)
        return rd_fail(err, RD_EINVAL, "%d finding label columns (at most %d)", n, RD_MAX_FINDINGS);
    m->nfindings = n;
    if (n > 0) memcpy(m->finding, names, (size_t)n * RD_FINDING_NAME_MAX); /* names may be NULL */
    m->findings = calloc((size_t)n * (size_t)m->n + 1, 1);
    if (!m->findings)
        return rd_fail(err, RD_ENOMEM, "out of memory for the finding labels of %lld images",
                       (long long)m->n);
    return RD_OK;
}

rd_status shard_list_findings(const rd_h5file *f, int *n,
                              char names[RD_MAX_FINDINGS][RD_FINDING_NAME_MAX], rd_error *err) {
    char **list = NULL;
    int count = 0;
    *n = 0;
    rd_status st = rd_h5_list(f, "/meta", "finding_", &list, &count, err);
    if (!st && count > RD_MAX_FINDINGS)
        st = rd_fail(err, RD_EFORMAT, "%s: %d /meta/finding_* columns (at most %d)", f->path, count,
                     RD_MAX_FINDINGS);
    for (int k = 0; !st && k < count; k++) {
        if (strlen(list[k]) >= RD_FINDING_NAME_MAX)
            st = rd_fail(err, RD_EFORMAT, "%s: /meta/%s: name longer than %d bytes", f->path,
                         list[k], RD_FINDING_NAME_MAX - 1);
        else
            snprintf(names[k], RD_FINDING_NAME_MAX, "%s", list[k]);
    }
    if (!st) *n = count;
    rd_h5_names_free(list, count);
    return st;
}

rd_status shard_meta_read(const rd_h5file *f, shard_meta *m, rd_error *err) {
    rd_status st = RD_OK;
    for (int c = 0; c < 3 && !st; c++) {
        int64_t dims[RD_H5_MAX_DIMS];
        int ndim = 0;
        size_t width = 0;
        st = rd_h5_shape(f, string_columns[c], dims, &ndim, &width, err);
        if (!st && (ndim != 1 || dims[0] != m->n || width == 0 || width >= m->stride[c]))
            st = rd_fail(err, RD_EFORMAT, "%s: %s is not [%lld] strings of up to %zu bytes",
                         f->path, string_columns[c], (long long)m->n, m->stride[c] - 1);
        if (!st) {
            m->width[c] = width;
            st =
                rd_h5_read_strings(f, string_columns[c], 0, m->n, m->strings[c], m->stride[c], err);
        }
    }
    numeric_column c[MAX_NUMERIC_COLUMNS];
    int columns = numeric_columns(m, c);
    for (int i = 0; i < columns && !st; i++)
        st = rd_h5_read_rows(f, c[i].name, c[i].type, 0, m->n, c[i].data, err);
    return st;
}

rd_status shard_meta_write(rd_h5file *f, const shard_meta *m, rd_error *err) {
    const char **ptrs = malloc((size_t)(m->n > 0 ? m->n : 1) * sizeof *ptrs);
    rd_status st =
        ptrs ? RD_OK : rd_fail(err, RD_ENOMEM, "%s: out of memory for metadata", f->path);
    for (int c = 0; c < 3 && !st; c++) {
        for (int64_t i = 0; i < m->n; i++) ptrs[i] = m->strings[c] + (size_t)i * m->stride[c];
        st = rd_h5_write_strings(f, string_columns[c], 0, m->n, ptrs, err);
    }
    numeric_column c[MAX_NUMERIC_COLUMNS];
    int columns = numeric_columns(m, c);
    for (int i = 0; i < columns && !st; i++)
        st = rd_h5_write_rows(f, c[i].name, c[i].type, 0, m->n, c[i].data, err);
    free(ptrs);
    return st;
}

void shard_meta_sha256(const shard_meta *m, char hex[65]) {
    /* x86-64 and aarch64 Linux are little-endian: memory order is the documented byte order */
    rd_sha256 h;
    rd_sha256_init(&h);
    for (int c = 0; c < 3; c++)
        for (int64_t i = 0; i < m->n; i++)
            rd_sha256_update(&h, m->strings[c] + (size_t)i * m->stride[c], m->width[c]);
    numeric_column c[MAX_NUMERIC_COLUMNS];
    int columns = numeric_columns(m, c);
    for (int i = 0; i < columns; i++)
        rd_sha256_update(&h, c[i].data, (size_t)m->n * rd_h5_type_size(c[i].type));
    rd_sha256_final_hex(&h, hex);
}

/* The image id of a shard row, for messages ("?" when it cannot be read). */
static void image_id_of(const rd_h5file *f, int64_t local_row, char *id, size_t n) {
    char buf[1024];
    size_t width = 0;
    int64_t dims[RD_H5_MAX_DIMS];
    int ndim;
    snprintf(id, n, "?");
    if (rd_h5_shape(f, "/meta/image_id", dims, &ndim, &width, NULL) || width + 1 > sizeof buf)
        return;
    if (rd_h5_read_strings(f, "/meta/image_id", local_row, 1, buf, width + 1, NULL) == RD_OK)
        snprintf(id, n, "%.*s", (int)(n - 1), buf);
}

rd_status shard_corrupt(rd_error *err, const rd_h5file *f, int64_t local_row, int64_t row,
                        uint32_t stored, uint32_t computed) {
    char id[512];
    image_id_of(f, local_row, id, sizeof id);
    return rd_fail(err, RD_ECORRUPT,
                   "%s: row %lld (row %lld of the shards), image id '%s': the pixels fail their "
                   "CRC32C check (stored 0x%08x, computed 0x%08x): the shard is damaged",
                   f->path, (long long)local_row, (long long)row, id, stored, computed);
}

rd_status shard_check_images(const rd_h5file *f, int64_t n, int size, int bit_depth,
                             const uint32_t *crc32c, int64_t first_row, int block,
                             rd_shard_bad_image_fn bad, void *ctx, int64_t *bad_images,
                             rd_error *err) {
    const size_t bytes = (size_t)size * (size_t)size * (bit_depth > 8 ? 2u : 1u);
    if (block < 1) block = 1;
    *bad_images = 0;
    unsigned char *pixels = malloc((size_t)block * bytes);
    if (!pixels) return rd_fail(err, RD_ENOMEM, "%s: out of memory for %d images", f->path, block);
    rd_status st = RD_OK;
    rd_error first_bad = {0};
    for (int64_t r0 = 0; !st && r0 < n; r0 += block) {
        int64_t rows = n - r0 < block ? n - r0 : block;
        st = rd_h5_read_rows(f, "/images", bit_depth > 8 ? RD_H5_U16 : RD_H5_U8, r0, rows, pixels,
                             err);
        for (int64_t i = 0; !st && i < rows; i++) {
            uint32_t crc = rd_crc32c(pixels + (size_t)i * bytes, bytes);
            if (crc == crc32c[r0 + i]) continue;
            rd_error e = {0};
            shard_corrupt(&e, f, r0 + i, first_row + r0 + i, crc32c[r0 + i], crc);
            if (*bad_images == 0) first_bad = e;
            ++*bad_images;
            if (bad) {
                char id[512];
                image_id_of(f, r0 + i, id, sizeof id);
                bad(ctx, f->path, r0 + i, first_row + r0 + i, id, e.msg);
            }
        }
    }
    free(pixels);
    if (st || *bad_images == 0) return st;
    if (err) *err = first_bad;
    if (*bad_images > 1) rd_wrap(err, "%lld corrupt images, the first", (long long)*bad_images);
    return RD_ECORRUPT;
}
