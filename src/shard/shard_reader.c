/* The one reader of a shards folder: see include/rdino/shard_reader.h. */
#include "rdino/shard_reader.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdino/crc32c.h"
#include "rdino/file.h"
#include "rdino/json.h"
#include "rdino/sha256.h"
#include "rdino/shard.h"
#include "shard_check.h"

struct rd_shard_open_file {
    int shard; /* -1: free entry */
    rd_h5file file;
    uint64_t used; /* tick of the last use */
    uint64_t held; /* hold epoch of the last hold */
};

/* The scalars rank 0 learns and broadcasts. */
typedef struct set_header {
    char index_sha256[65];
    int count, image_size, bit_depth, has_source_row, nfindings;
    int64_t n;
    uint64_t width_image_id, width_patient_id, width_view;
    char finding[RD_MAX_FINDINGS][RD_FINDING_NAME_MAX];
} set_header;

/* A format this reader knows: 3, or 2 (before the finding label columns, which it never has). */
static int known_version(int64_t version) {
    return version >= RD_SHARD_FORMAT_OLDEST && version <= RD_SHARD_FORMAT_VERSION;
}

/* One entry of index.json's "shards" list. */
typedef struct index_entry {
    int64_t first_row, num_images;
} index_entry;

/* ---- index.json ---- */

static rd_status index_entry_of(const json_t *shards, int k, const char *path, index_entry *e,
                                char digest[65], rd_error *err) {
    const json_t *item = json_array_get(shards, (size_t)k);
    char source[RD_PATH_MAX + 64], want[32];
    snprintf(source, sizeof source, "%s: shards[%d]", path, k);
    const char *file = NULL, *sha = NULL;
    rd_status st = rd_json_get_string(item, "file", RD_JSON_REQUIRED, source, &file, err);
    if (!st) st = rd_json_get_int(item, "first_row", RD_JSON_REQUIRED, source, &e->first_row, err);
    if (!st)
        st = rd_json_get_int(item, "num_images", RD_JSON_REQUIRED, source, &e->num_images, err);
    if (!st) st = rd_json_get_string(item, "meta_sha256", RD_JSON_REQUIRED, source, &sha, err);
    if (st) return st;
    snprintf(want, sizeof want, "shard-%05d.h5", k);
    if (strcmp(file, want) != 0)
        return rd_fail(err, RD_EFORMAT, "%s: file '%s', but rdino-shard names shard %d '%s'",
                       source, file, k, want);
    if (strlen(sha) != 64 || strspn(sha, "0123456789abcdef") != 64)
        return rd_fail(err, RD_EFORMAT, "%s: meta_sha256 '%.80s' is not 64 hex digits", source,
                       sha);
    memcpy(digest, sha, 65);
    return RD_OK;
}

/* The shard list of index.json, its digest, and each shard's place and metadata digest. */
static rd_status read_index(rd_shard_set *s, set_header *h, index_entry **entries, rd_error *err) {
    char path[RD_PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/index.json", s->dir);
    json_t *root = NULL;
    if (rd_json_load(path, &root, err))
        return rd_wrap(err, "not a shards folder, or rdino-shard has not finished there");
    int64_t version = 0, num_shards = 0, num_images = 0;
    rd_status st = rd_json_get_int(root, "format_version", RD_JSON_REQUIRED, path, &version, err);
    if (!st && !known_version(version))
        st = rd_fail(err, RD_EFORMAT, "%s: format_version %lld; this reader knows %d to %d%s", path,
                     (long long)version, RD_SHARD_FORMAT_OLDEST, RD_SHARD_FORMAT_VERSION,
                     version < RD_SHARD_FORMAT_OLDEST
                         ? " (shards without per-image CRC32C, written by an older rdino-shard): "
                           "rewrite them with rdino-shard --force"
                         : "");
    if (!st) st = rd_json_get_int(root, "num_shards", RD_JSON_REQUIRED, path, &num_shards, err);
    if (!st) st = rd_json_get_int(root, "num_images", RD_JSON_REQUIRED, path, &num_images, err);
    const json_t *shards = json_object_get(root, "shards");
    if (!st &&
        (num_shards < 1 || num_shards > (1 << 24) || num_images < 1 || num_images > INT32_MAX))
        st = rd_fail(err, RD_EFORMAT, "%s: num_shards %lld, num_images %lld", path,
                     (long long)num_shards, (long long)num_images);
    if (!st && (!json_is_array(shards) || json_array_size(shards) != (size_t)num_shards))
        st = rd_fail(err, RD_EFORMAT, "%s: \"shards\" is not a list of num_shards = %lld entries",
                     path, (long long)num_shards);
    if (!st) {
        h->count = (int)num_shards;
        h->n = num_images;
        *entries = calloc((size_t)h->count, sizeof **entries);
        s->meta_sha256 = calloc((size_t)h->count, sizeof *s->meta_sha256);
        s->first_row = calloc((size_t)h->count + 1, sizeof *s->first_row);
        if (!*entries || !s->meta_sha256 || !s->first_row)
            st = rd_fail(err, RD_ENOMEM, "%s: out of memory for %d shards", path, h->count);
    }
    for (int k = 0; !st && k < h->count; k++)
        st = index_entry_of(shards, k, path, &(*entries)[k], s->meta_sha256[k], err);
    json_decref(root);
    if (!st) st = rd_sha256_file(path, h->index_sha256, err);
    return st;
}

/* ---- checking the shards (rank 0) ---- */

static rd_status attr(const rd_h5file *f, const char *name, int64_t *value, rd_error *err) {
    rd_status st = rd_h5_get_attr_int(f, "/", name, value, err);
    return st ? rd_wrap(err, "not an rdino shard") : RD_OK;
}

/* A 1-D dataset of num rows (string width into *width when asked). */
static rd_status check_column(const rd_h5file *f, const char *name, int64_t num, size_t *width,
                              rd_error *err) {
    int64_t dims[RD_H5_MAX_DIMS];
    int ndim = 0;
    size_t w = 0;
    rd_status st = rd_h5_shape(f, name, dims, &ndim, &w, err);
    if (!st && (ndim != 1 || dims[0] != num || (width && w == 0)))
        st = rd_fail(err, RD_EFORMAT, "%s: %s is not [%lld]%s", f->path, name, (long long)num,
                     width ? " fixed-length strings" : "");
    if (!st && width && w > *width) *width = w;
    return st;
}

/* The finding label columns of shard k: shard 0's are the set's, every other shard has the
 * same, each of num rows. */
static rd_status check_findings(set_header *h, const rd_h5file *f, int k, int64_t num,
                                rd_error *err) {
    int n = 0;
    char names[RD_MAX_FINDINGS][RD_FINDING_NAME_MAX];
    rd_status st = shard_list_findings(f, &n, names, err);
    if (!st && k == 0) {
        h->nfindings = n;
        memcpy(h->finding, names, sizeof names);
    }
    for (int j = 0; !st && j <= h->nfindings; j++)
        if (j == h->nfindings ? n != j : j >= n || strcmp(names[j], h->finding[j]) != 0)
            st = rd_fail(err, RD_EFORMAT,
                         "%s: its finding label columns (%d) are not shard 0's (%d, from %s): "
                         "shards of different runs mixed?",
                         f->path, n, h->nfindings, j < h->nfindings ? h->finding[j] : "-");
    for (int j = 0; !st && j < n; j++) {
        char path[RD_FINDING_NAME_MAX + 8];
        snprintf(path, sizeof path, "/meta/%s", names[j]);
        st = check_column(f, path, num, NULL, err);
    }
    return st;
}

/* Checks shard k against index.json's entry and the earlier shards; reads its split and CRC32C
 * columns. */
static rd_status scan_shard(rd_shard_set *s, set_header *h, const index_entry *e,
                            const rd_h5file *f, int k, rd_error *err) {
    int64_t version, index, count, first, num, total, size, depth;
    rd_status st = attr(f, "format_version", &version, err);
    if (!st && !known_version(version))
        return rd_fail(err, RD_EFORMAT,
                       "%s: format_version %lld; this reader knows %d to %d (rewrite the shards "
                       "with rdino-shard --force)",
                       f->path, (long long)version, RD_SHARD_FORMAT_OLDEST,
                       RD_SHARD_FORMAT_VERSION);
    if (!st) st = attr(f, "shard_index", &index, err);
    if (!st) st = attr(f, "shard_count", &count, err);
    if (!st) st = attr(f, "first_row", &first, err);
    if (!st) st = attr(f, "num_images", &num, err);
    if (!st) st = attr(f, "total_images", &total, err);
    if (!st) st = attr(f, "image_size", &size, err);
    if (!st) st = attr(f, "bit_depth", &depth, err);
    if (st) return st;
    if (k == 0) {
        h->image_size = (int)size;
        h->bit_depth = (int)depth;
        h->has_source_row = 1;
        if (size < 1 || size > 65536 || (depth != 8 && depth != 16))
            return rd_fail(err, RD_EFORMAT, "%s: image_size %lld, bit_depth %lld", f->path,
                           (long long)size, (long long)depth);
    }
    if (index != k || count != h->count || first != s->first_row[k] || total != h->n ||
        size != h->image_size || depth != h->bit_depth || num < 0 || first + num > total)
        return rd_fail(err, RD_EFORMAT,
                       "%s: attributes shard_index %lld, shard_count %lld, first_row %lld, "
                       "num_images %lld, total_images %lld, images %lldx%lld at %lld bits do not "
                       "continue the earlier shards (expected index %d of %d from row %lld of "
                       "%lld, %dx%d at %d bits): shards of different runs mixed?",
                       f->path, (long long)index, (long long)count, (long long)first,
                       (long long)num, (long long)total, (long long)size, (long long)size,
                       (long long)depth, k, h->count, (long long)s->first_row[k], (long long)h->n,
                       h->image_size, h->image_size, h->bit_depth);
    if (e->first_row != first || e->num_images != num)
        return rd_fail(err, RD_EFORMAT,
                       "%s: holds rows %lld..%lld (%lld images), but %s/index.json says rows "
                       "%lld..%lld (%lld images): the index and the shard disagree",
                       f->path, (long long)first, (long long)(first + num), (long long)num, s->dir,
                       (long long)e->first_row, (long long)(e->first_row + e->num_images),
                       (long long)e->num_images);
    s->first_row[k + 1] = first + num;
    int64_t dims[RD_H5_MAX_DIMS];
    int ndim = 0;
    rd_h5_type type;
    st = rd_h5_shape(f, "/images", dims, &ndim, NULL, err);
    if (!st) st = rd_h5_dataset_type(f, "/images", &type, err);
    if (!st && (ndim != 3 || dims[0] != num || dims[1] != size || dims[2] != size ||
                type != (depth == 16 ? RD_H5_U16 : RD_H5_U8)))
        st = rd_fail(err, RD_EFORMAT, "%s: /images is not [%lld, %lld, %lld] uint%lld", f->path,
                     (long long)num, (long long)size, (long long)size, (long long)depth);
    size_t widths[3] = {(size_t)h->width_image_id, (size_t)h->width_patient_id,
                        (size_t)h->width_view};
    if (!st) st = check_column(f, "/meta/image_id", num, &widths[0], err);
    if (!st) st = check_column(f, "/meta/patient_id", num, &widths[1], err);
    if (!st) st = check_column(f, "/meta/view", num, &widths[2], err);
    h->width_image_id = widths[0], h->width_patient_id = widths[1], h->width_view = widths[2];
    if (!st) st = check_column(f, "/meta/split", num, NULL, err);
    if (!st) st = check_column(f, "/meta/crc32c", num, NULL, err);
    if (!st) st = check_findings(h, f, k, num, err);
    if (!rd_h5_exists(f, "/meta/source_row")) h->has_source_row = 0;
    if (!st) st = rd_h5_read_rows(f, "/meta/split", RD_H5_U8, 0, num, s->split + first, err);
    if (!st) st = rd_h5_read_rows(f, "/meta/crc32c", RD_H5_U32, 0, num, s->crc32c + first, err);
    for (int64_t i = 0; !st && i < num; i++)
        if (s->split[first + i] > RD_SPLIT_TEST)
            st = rd_fail(err, RD_EFORMAT, "%s: /meta/split row %lld is %d (0, 1 or 2 expected)",
                         f->path, (long long)i, s->split[first + i]);
    return st;
}

/* Rank 0's part of the open: index.json, then every shard it lists, in order. */
static rd_status scan(rd_shard_set *s, set_header *h, rd_error *err) {
    index_entry *entries = NULL;
    rd_status st = read_index(s, h, &entries, err);
    if (!st) {
        s->split = malloc((size_t)h->n);
        s->crc32c = malloc((size_t)h->n * sizeof *s->crc32c);
        if (!s->split || !s->crc32c)
            st = rd_fail(err, RD_ENOMEM, "%s: out of memory for %lld images", s->dir,
                         (long long)h->n);
    }
    for (int k = 0; k < h->count && !st; k++) {
        char path[RD_PATH_MAX + 32];
        rd_shard_path(path, sizeof path, s->dir, k);
        rd_h5file f;
        st = rd_h5_open(&f, path, MPI_COMM_SELF, err);
        s->opens++;
        if (st) {
            rd_wrap(err, "shard %d of the %d in %s/index.json", k, h->count, s->dir);
            break;
        }
        st = scan_shard(s, h, &entries[k], &f, k, err);
        rd_h5_close(&f);
    }
    if (!st && s->first_row[h->count] != h->n)
        st = rd_fail(err, RD_EFORMAT, "%s: the %d shards hold %lld images, index.json says %lld",
                     s->dir, h->count, (long long)s->first_row[h->count], (long long)h->n);
    free(entries);
    return st;
}

static void release(rd_shard_set *s) {
    for (int i = 0; s->files && i < s->max_open; i++)
        if (s->files[i].shard >= 0) rd_h5_close(&s->files[i].file);
    free(s->first_row);
    free(s->split);
    free(s->crc32c);
    free(s->meta_sha256);
    free(s->files);
    free(s->file_of);
    s->first_row = NULL;
    s->split = NULL;
    s->crc32c = NULL;
    s->meta_sha256 = NULL;
    s->files = NULL;
    s->file_of = NULL;
}

/* Every rank but 0 sizes its arrays for what rank 0 broadcasts; all make the file table. */
static rd_status allocate(rd_shard_set *s, const set_header *h, int rank, rd_error *err) {
    if (rank != 0) {
        s->first_row = malloc(((size_t)h->count + 1) * sizeof *s->first_row);
        s->meta_sha256 = malloc((size_t)h->count * sizeof *s->meta_sha256);
        s->split = malloc((size_t)h->n);
        s->crc32c = malloc((size_t)h->n * sizeof *s->crc32c);
    }
    s->files = calloc((size_t)s->max_open, sizeof *s->files);
    s->file_of = malloc((size_t)h->count * sizeof *s->file_of);
    if (!s->first_row || !s->meta_sha256 || !s->split || !s->crc32c || !s->files || !s->file_of)
        return rd_fail(err, RD_ENOMEM, "%s: out of memory for the shard list", s->dir);
    for (int i = 0; i < s->max_open; i++) {
        s->files[i].shard = -1;
        s->files[i].file.id = H5I_INVALID_HID;
    }
    for (int k = 0; k < h->count; k++) s->file_of[k] = -1;
    return RD_OK;
}

rd_status rd_shard_set_open(rd_shard_set *s, const char *dir, int max_open, MPI_Comm comm,
                            rd_error *err) {
    int rank;
    MPI_Comm_rank(comm, &rank);
    memset(s, 0, sizeof *s);
    s->verify = 1;
    s->corrupt_row = -1;
    s->hold_epoch = 1;
    s->max_open = max_open > 0 ? max_open : 1;
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
        int failed = allocate(s, &h, rank, &local) != RD_OK, any = failed;
        MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, comm);
        if (any) st = rd_fail(&local, RD_ENOMEM, "%s: out of memory for the shard list", dir);
    }
    if (!st) {
        MPI_Bcast(s->first_row, h.count + 1, MPI_INT64_T, 0, comm);
        MPI_Bcast(s->meta_sha256, h.count * 65, MPI_CHAR, 0, comm);
        MPI_Bcast(s->split, (int)h.n, MPI_UINT8_T, 0, comm); /* N < 2^31 images */
        MPI_Bcast(s->crc32c, (int)h.n, MPI_UINT32_T, 0, comm);
        memcpy(s->index_sha256, h.index_sha256, sizeof s->index_sha256);
        s->count = h.count;
        s->n = h.n;
        s->image_size = h.image_size;
        s->bit_depth = h.bit_depth;
        s->has_source_row = h.has_source_row;
        s->nfindings = h.nfindings;
        memcpy(s->finding, h.finding, sizeof s->finding);
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
    release(s);
}

void rd_shard_set_path(const rd_shard_set *s, int k, char *buf, size_t n) {
    rd_shard_path(buf, n, s->dir, k);
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

void rd_shard_set_locate(const rd_shard_set *s, int64_t row, int *shard, int64_t *local_row) {
    int k = shard_of(s, row);
    *shard = k;
    *local_row = row - s->first_row[k];
}

/* ---- the open files ---- */

/* The open file of shard k, opening it in the least recently used entry that no hold protects
 * when it is not open. */
static rd_status use_shard(rd_shard_set *s, int k, rd_h5file **file, rd_error *err) {
    int e = s->file_of[k];
    if (e < 0) {
        for (int i = 0; i < s->max_open; i++) {
            const rd_shard_open_file *o = &s->files[i];
            if (o->shard >= 0 && o->held == s->hold_epoch) continue;
            if (e < 0 || o->shard < 0 || (s->files[e].shard >= 0 && o->used < s->files[e].used))
                e = i;
            if (o->shard < 0) break;
        }
        if (e < 0)
            return rd_fail(err, RD_ERANGE, "%s: all %d open shard files are held", s->dir,
                           s->max_open);
        rd_shard_open_file *o = &s->files[e];
        if (o->shard >= 0) {
            rd_h5_close(&o->file);
            s->file_of[o->shard] = -1;
            o->shard = -1;
        }
        char path[RD_PATH_MAX + 32];
        rd_shard_path(path, sizeof path, s->dir, k);
        rd_status st = rd_h5_open(&o->file, path, MPI_COMM_SELF, err);
        s->opens++;
        if (st) return st;
        o->shard = k;
        o->held = 0;
        s->file_of[k] = e;
    }
    s->files[e].used = ++s->tick;
    *file = &s->files[e].file;
    return RD_OK;
}

void rd_shard_set_begin_holds(rd_shard_set *s) {
    s->hold_epoch++;
}

rd_status rd_shard_set_hold(rd_shard_set *s, int64_t row, rd_error *err) {
    if (row < 0 || row >= s->n)
        return rd_fail(err, RD_ERANGE, "%s: row %lld outside the %lld images", s->dir,
                       (long long)row, (long long)s->n);
    int k = shard_of(s, row);
    rd_h5file *f;
    rd_status st = use_shard(s, k, &f, err);
    if (!st) s->files[s->file_of[k]].held = s->hold_epoch;
    return st;
}

/* ---- reading ---- */

/* Calls read(file, shard-local row, count, rows done before) for each shard-sized piece. */
typedef rd_status (*piece_fn)(rd_shard_set *s, rd_h5file *f, int k, const char *dataset,
                              int64_t local_row, int64_t count, int64_t done, void *ctx,
                              rd_error *err);

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
        rd_h5file *f;
        rd_status st = use_shard(s, k, &f, err);
        if (!st) st = read(s, f, k, dataset, local, count, done, ctx, err);
        if (st) return st;
        done += count;
    }
    return RD_OK;
}

typedef struct numeric_dest {
    rd_h5_type type;
    unsigned char *buf;
} numeric_dest;

static rd_status read_numeric(rd_shard_set *s, rd_h5file *f, int k, const char *dataset,
                              int64_t local_row, int64_t count, int64_t done, void *ctx,
                              rd_error *err) {
    (void)s, (void)k;
    const numeric_dest *d = ctx;
    int64_t dims[RD_H5_MAX_DIMS];
    int ndim = 0;
    rd_status st = rd_h5_shape(f, dataset, dims, &ndim, NULL, err);
    if (st) return st;
    size_t row_bytes = rd_h5_type_size(d->type);
    for (int i = 1; i < ndim; i++) row_bytes *= (size_t)dims[i];
    return rd_h5_read_rows(f, dataset, d->type, local_row, count, d->buf + (size_t)done * row_bytes,
                           err);
}

rd_status rd_shard_set_read(rd_shard_set *s, const char *dataset, rd_h5_type type, int64_t row0,
                            int64_t nrows, void *buf, rd_error *err) {
    if (strcmp(dataset, "/images") == 0)
        return rd_fail(err, RD_EINVAL, "%s: images are read with rd_shard_set_read_images", s->dir);
    numeric_dest d = {type, buf};
    return for_pieces(s, dataset, row0, nrows, read_numeric, &d, err);
}

static size_t image_bytes(const rd_shard_set *s) {
    return (size_t)s->image_size * (size_t)s->image_size * (s->bit_depth > 8 ? 2u : 1u);
}

/* RD_ECORRUPT naming the file, the rows and the image when crc differs from the stored one. */
static rd_status check_image(rd_shard_set *s, const rd_h5file *f, int64_t local_row, int64_t row,
                             uint32_t crc, rd_error *err) {
    if (crc == s->crc32c[row]) return RD_OK;
    s->corrupt_row = row;
    return shard_corrupt(err, f, local_row, row, s->crc32c[row], crc);
}

static rd_status read_image_piece(rd_shard_set *s, rd_h5file *f, int k, const char *dataset,
                                  int64_t local_row, int64_t count, int64_t done, void *ctx,
                                  rd_error *err) {
    unsigned char *dst = (unsigned char *)ctx + (size_t)done * image_bytes(s);
    rd_status st = rd_h5_read_rows(f, dataset, s->bit_depth > 8 ? RD_H5_U16 : RD_H5_U8, local_row,
                                   count, dst, err);
    for (int64_t i = 0; !st && s->verify && i < count; i++)
        st = check_image(s, f, local_row + i, s->first_row[k] + local_row + i,
                         rd_crc32c(dst + (size_t)i * image_bytes(s), image_bytes(s)), err);
    return st;
}

rd_status rd_shard_set_read_images(rd_shard_set *s, int64_t row0, int64_t nrows, void *pixels,
                                   rd_error *err) {
    return for_pieces(s, "/images", row0, nrows, read_image_piece, pixels, err);
}

typedef struct string_dest {
    char *out;
    size_t stride;
} string_dest;

static rd_status read_string_piece(rd_shard_set *s, rd_h5file *f, int k, const char *dataset,
                                   int64_t local_row, int64_t count, int64_t done, void *ctx,
                                   rd_error *err) {
    (void)s, (void)k;
    const string_dest *d = ctx;
    return rd_h5_read_strings(f, dataset, local_row, count, d->out + (size_t)done * d->stride,
                              d->stride, err);
}

rd_status rd_shard_set_read_strings(rd_shard_set *s, const char *dataset, int64_t row0,
                                    int64_t nrows, char *out, size_t stride, rd_error *err) {
    string_dest d = {out, stride};
    return for_pieces(s, dataset, row0, nrows, read_string_piece, &d, err);
}

/* ---- verifying a whole shard ---- */

rd_status rd_shard_set_verify_shard(rd_shard_set *s, int k, int block, rd_shard_bad_image_fn bad,
                                    void *ctx, int64_t *bad_images, rd_error *err) {
    const int64_t first = s->first_row[k], num = s->first_row[k + 1] - first;
    *bad_images = 0;
    rd_h5file *f;
    rd_status st = use_shard(s, k, &f, err);
    if (st) return st;
    rd_error images = {0};
    rd_status images_st = shard_check_images(f, num, s->image_size, s->bit_depth, s->crc32c + first,
                                             first, block, bad, ctx, bad_images, &images);
    if (images_st && images_st != RD_ECORRUPT) {
        if (err) *err = images;
        return images_st;
    }
    /* Every /meta dataset read in full and hashed as docs/FORMATS.md says. */
    shard_meta m;
    const size_t widths[3] = {s->width_image_id, s->width_patient_id, s->width_view};
    char digest[65];
    st = shard_meta_alloc(&m, num, widths, err);
    if (!st) st = shard_meta_set_findings(&m, s->nfindings, s->finding, err);
    if (!st) st = shard_meta_read(f, &m, err);
    if (!st) shard_meta_sha256(&m, digest);
    shard_meta_free(&m);
    if (st) return st;
    if (strcmp(digest, s->meta_sha256[k]) != 0)
        return rd_fail(err, RD_ECORRUPT,
                       "%s: the SHA-256 of its /meta datasets is %s, but %s/index.json says %s: "
                       "the metadata are damaged, or the index belongs to other shards",
                       f->path, digest, s->dir, s->meta_sha256[k]);
    if (images_st && err) *err = images;
    return images_st;
}
