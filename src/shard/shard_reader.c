/* Reading a shards folder by global row: see include/rdino/shard_reader.h. */
#include "rdino/shard_reader.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdino/file.h"
#include "rdino/sha256.h"
#include "rdino/shard.h"

/* The scalars rank 0 learns and broadcasts. */
typedef struct set_header {
    char index_sha256[65];
    int count, image_size, bit_depth, has_source_row;
    int64_t n;
    uint64_t width_image_id, width_patient_id, width_view;
} set_header;

/* "num_shards" of index.json (rdino-shard writes it as a plain integer), and its digest. */
static rd_status read_index(const char *dir, int *count, char sha256[65], rd_error *err) {
    char path[RD_PATH_MAX + 16], *text;
    snprintf(path, sizeof path, "%s/index.json", dir);
    if (rd_read_file(path, &text, NULL, err))
        return rd_wrap(err, "not a shards folder, or rdino-shard has not finished there");
    const char *key = strstr(text, "\"num_shards\":");
    char *end = NULL;
    long k = key ? strtol(key + strlen("\"num_shards\":"), &end, 10) : 0;
    int valid = key && end != key + strlen("\"num_shards\":") && k >= 1 && k <= (1L << 24);
    free(text);
    if (!valid)
        return rd_fail(err, RD_EFORMAT, "%s: no valid \"num_shards\" entry (damaged index?)", path);
    *count = (int)k;
    return rd_sha256_file(path, sha256, err);
}

static rd_status attr(const rd_h5file *f, const char *name, int64_t *value, rd_error *err) {
    rd_status st = rd_h5_get_attr_int(f, "/", name, value, err);
    return st ? rd_wrap(err, "not an rdino shard") : RD_OK;
}

/* Checks shard k against what the earlier shards established and reads its split column. */
static rd_status scan_shard(rd_shard_set *s, set_header *h, const rd_h5file *f, int k,
                            rd_error *err) {
    int64_t version, index, count, first, num, total, size, depth;
    rd_status st = attr(f, "format_version", &version, err);
    if (!st) st = attr(f, "shard_index", &index, err);
    if (!st) st = attr(f, "shard_count", &count, err);
    if (!st) st = attr(f, "first_row", &first, err);
    if (!st) st = attr(f, "num_images", &num, err);
    if (!st) st = attr(f, "total_images", &total, err);
    if (!st) st = attr(f, "image_size", &size, err);
    if (!st) st = attr(f, "bit_depth", &depth, err);
    if (st) return st;
    if (version != RD_SHARD_FORMAT_VERSION)
        return rd_fail(err, RD_EFORMAT, "%s: format_version %lld; this reader knows %d", f->path,
                       (long long)version, RD_SHARD_FORMAT_VERSION);
    if (k == 0) {
        h->n = total;
        h->image_size = (int)size;
        h->bit_depth = (int)depth;
        h->has_source_row = 1;
        if (total < 1 || total > INT32_MAX || size < 1 || (depth != 8 && depth != 16))
            return rd_fail(err, RD_EFORMAT,
                           "%s: total_images %lld, image_size %lld, bit_depth %lld", f->path,
                           (long long)total, (long long)size, (long long)depth);
        s->split = malloc((size_t)total);
        if (!s->split) return rd_fail(err, RD_ENOMEM, "%s: out of memory for the splits", f->path);
    }
    if (index != k || count != h->count || first != s->first_row[k] || total != h->n ||
        size != h->image_size || depth != h->bit_depth || num < 0 || first + num > total)
        return rd_fail(err, RD_EFORMAT,
                       "%s: attributes shard_index %lld, shard_count %lld, first_row %lld, "
                       "num_images %lld, total_images %lld, image_size %lld, bit_depth %lld do not "
                       "continue the earlier shards (expected index %d of %d from row %lld of "
                       "%lld, %dx%d at %d bits): shards of different runs mixed?",
                       f->path, (long long)index, (long long)count, (long long)first,
                       (long long)num, (long long)total, (long long)size, (long long)depth, k,
                       h->count, (long long)s->first_row[k], (long long)h->n, h->image_size,
                       h->image_size, h->bit_depth);
    s->first_row[k + 1] = first + num;
    int64_t dims[RD_H5_MAX_DIMS];
    int ndim = 0;
    st = rd_h5_shape(f, "/images", dims, &ndim, NULL, err);
    if (!st && (ndim != 3 || dims[0] != num || dims[1] != size || dims[2] != size))
        st = rd_fail(err, RD_EFORMAT, "%s: /images is not [%lld, %lld, %lld]", f->path,
                     (long long)num, (long long)size, (long long)size);
    const char *names[3] = {"/meta/image_id", "/meta/patient_id", "/meta/view"};
    uint64_t *widths[3] = {&h->width_image_id, &h->width_patient_id, &h->width_view};
    for (int i = 0; i < 3 && !st; i++) {
        size_t width = 0;
        st = rd_h5_shape(f, names[i], dims, &ndim, &width, err);
        if (!st && (ndim != 1 || dims[0] != num || width == 0))
            st = rd_fail(err, RD_EFORMAT, "%s: %s is not [%lld] fixed-length strings", f->path,
                         names[i], (long long)num);
        if (!st && width > *widths[i]) *widths[i] = width;
    }
    if (!rd_h5_exists(f, "/meta/source_row")) h->has_source_row = 0;
    if (!st) st = rd_h5_read_rows(f, "/meta/split", RD_H5_U8, 0, num, s->split + first, err);
    for (int64_t i = 0; !st && i < num; i++)
        if (s->split[first + i] > RD_SPLIT_TEST)
            st = rd_fail(err, RD_EFORMAT, "%s: /meta/split row %lld is %d (0, 1 or 2 expected)",
                         f->path, (long long)i, s->split[first + i]);
    return st;
}

/* Rank 0's part of the open: every shard index.json announces, in order. */
static rd_status scan(rd_shard_set *s, set_header *h, rd_error *err) {
    rd_status st = read_index(s->dir, &h->count, h->index_sha256, err);
    if (st) return st;
    s->first_row = calloc((size_t)h->count + 1, sizeof *s->first_row);
    if (!s->first_row) return rd_fail(err, RD_ENOMEM, "out of memory for %d shards", h->count);
    for (int k = 0; k < h->count && !st; k++) {
        char path[RD_PATH_MAX + 32];
        rd_shard_path(path, sizeof path, s->dir, k);
        rd_h5file f;
        st = rd_h5_open(&f, path, MPI_COMM_SELF, err);
        if (st) {
            rd_wrap(err, "shard %d of the %d in %s/index.json", k, h->count, s->dir);
            break;
        }
        st = scan_shard(s, h, &f, k, err);
        rd_h5_close(&f);
    }
    if (!st && s->first_row[h->count] != h->n)
        st = rd_fail(err, RD_EFORMAT, "%s: the %d shards hold %lld images, total_images says %lld",
                     s->dir, h->count, (long long)s->first_row[h->count], (long long)h->n);
    return st;
}

static void release(rd_shard_set *s) {
    free(s->first_row);
    free(s->split);
    s->first_row = NULL;
    s->split = NULL;
}

rd_status rd_shard_set_open(rd_shard_set *s, const char *dir, MPI_Comm comm, rd_error *err) {
    int rank;
    MPI_Comm_rank(comm, &rank);
    memset(s, 0, sizeof *s);
    s->open_index = -1;
    s->open.id = H5I_INVALID_HID;
    set_header h;
    memset(&h, 0, sizeof h);
    rd_error local = {0};
    rd_status st = RD_OK;
    if (strlen(dir) >= sizeof s->dir)
        st = rd_fail(&local, RD_EINVAL, "shards folder name too long: %s", dir);
    else
        snprintf(s->dir, sizeof s->dir, "%s", dir);
    if (!st && rank == 0) st = scan(s, &h, &local);
    /* Everyone gets rank 0's verdict (and its message), then its findings. */
    MPI_Bcast(&local, (int)sizeof local, MPI_BYTE, 0, comm);
    st = local.code;
    if (!st) {
        MPI_Bcast(&h, (int)sizeof h, MPI_BYTE, 0, comm);
        if (rank != 0) {
            s->first_row = malloc(((size_t)h.count + 1) * sizeof *s->first_row);
            s->split = malloc((size_t)h.n);
        }
        int failed = !s->first_row || !s->split, any = failed;
        MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, comm);
        if (any) st = rd_fail(&local, RD_ENOMEM, "%s: out of memory for the shard list", dir);
    }
    if (!st) {
        MPI_Bcast(s->first_row, h.count + 1, MPI_INT64_T, 0, comm);
        MPI_Bcast(s->split, (int)h.n, MPI_UINT8_T, 0, comm); /* N < 2^31 images */
        memcpy(s->index_sha256, h.index_sha256, sizeof s->index_sha256);
        s->count = h.count;
        s->n = h.n;
        s->image_size = h.image_size;
        s->bit_depth = h.bit_depth;
        s->has_source_row = h.has_source_row;
        s->width_image_id = (size_t)h.width_image_id;
        s->width_patient_id = (size_t)h.width_patient_id;
        s->width_view = (size_t)h.width_view;
    }
    if (st) {
        release(s);
        if (err) *err = local;
    }
    return st;
}

void rd_shard_set_close(rd_shard_set *s) {
    if (s->open_index >= 0) rd_h5_close(&s->open);
    s->open_index = -1;
    release(s);
}

/* Opens shard k for reading unless it is the one already open. */
static rd_status use_shard(rd_shard_set *s, int k, rd_error *err) {
    if (s->open_index == k) return RD_OK;
    if (s->open_index >= 0) rd_h5_close(&s->open);
    s->open_index = -1;
    char path[RD_PATH_MAX + 32];
    rd_shard_path(path, sizeof path, s->dir, k);
    rd_status st = rd_h5_open(&s->open, path, MPI_COMM_SELF, err);
    if (!st) s->open_index = k;
    return st;
}

/* The shard holding row (first_row is ascending; empty shards are skipped). */
static int shard_of(const rd_shard_set *s, int64_t row) {
    int lo = 0, hi = s->count - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (s->first_row[mid] <= row)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

/* Calls read(s, shard-local row, count, offset in rows) for each shard-sized piece. */
typedef rd_status (*piece_fn)(rd_shard_set *s, const char *dataset, int64_t local_row,
                              int64_t count, int64_t done, void *ctx, rd_error *err);

static rd_status for_pieces(rd_shard_set *s, const char *dataset, int64_t row0, int64_t nrows,
                            piece_fn read, void *ctx, rd_error *err) {
    if (row0 < 0 || nrows < 0 || row0 + nrows > s->n)
        return rd_fail(err, RD_ERANGE, "%s: rows %lld..%lld of %s outside the %lld images", s->dir,
                       (long long)row0, (long long)(row0 + nrows), dataset, (long long)s->n);
    for (int64_t done = 0; done < nrows;) {
        int k = shard_of(s, row0 + done);
        int64_t local = row0 + done - s->first_row[k];
        int64_t count = s->first_row[k + 1] - (row0 + done);
        if (count > nrows - done) count = nrows - done;
        rd_status st = use_shard(s, k, err);
        if (!st) st = read(s, dataset, local, count, done, ctx, err);
        if (st) return st;
        done += count;
    }
    return RD_OK;
}

typedef struct numeric_dest {
    rd_h5_type type;
    unsigned char *buf;
} numeric_dest;

static rd_status read_numeric(rd_shard_set *s, const char *dataset, int64_t local_row,
                              int64_t count, int64_t done, void *ctx, rd_error *err) {
    const numeric_dest *d = ctx;
    int64_t dims[RD_H5_MAX_DIMS];
    int ndim = 0;
    rd_status st = rd_h5_shape(&s->open, dataset, dims, &ndim, NULL, err);
    if (st) return st;
    size_t row_bytes = rd_h5_type_size(d->type);
    for (int i = 1; i < ndim; i++) row_bytes *= (size_t)dims[i];
    return rd_h5_read_rows(&s->open, dataset, d->type, local_row, count,
                           d->buf + (size_t)done * row_bytes, err);
}

rd_status rd_shard_set_read(rd_shard_set *s, const char *dataset, rd_h5_type type, int64_t row0,
                            int64_t nrows, void *buf, rd_error *err) {
    numeric_dest d = {type, buf};
    return for_pieces(s, dataset, row0, nrows, read_numeric, &d, err);
}

typedef struct string_dest {
    char *out;
    size_t stride;
} string_dest;

static rd_status read_string_piece(rd_shard_set *s, const char *dataset, int64_t local_row,
                                   int64_t count, int64_t done, void *ctx, rd_error *err) {
    const string_dest *d = ctx;
    return rd_h5_read_strings(&s->open, dataset, local_row, count,
                              d->out + (size_t)done * d->stride, d->stride, err);
}

rd_status rd_shard_set_read_strings(rd_shard_set *s, const char *dataset, int64_t row0,
                                    int64_t nrows, char *out, size_t stride, rd_error *err) {
    string_dest d = {out, stride};
    return for_pieces(s, dataset, row0, nrows, read_string_piece, &d, err);
}
