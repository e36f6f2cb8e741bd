/* Writing shards: see include/rdino/shard.h and docs/FORMATS.md ("Shards"). */
#include "rdino/shard.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rdino/agree.h"
#include "rdino/crc32c.h"
#include "rdino/file.h"
#include "rdino/h5store.h"
#include "rdino/log.h"
#include "rdino/rng.h"
#include "rdino/sha256.h"
#include "shard_check.h"

static uint64_t fnv1a64(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

rd_split rd_split_of_patient(const char *patient_id, uint64_t seed, double val_fraction,
                             double test_fraction) {
    rd_rng rng;
    rd_rng_init(&rng, seed, RD_RNG_SPLIT, 0, fnv1a64(patient_id) & ((1ull << 48) - 1), 0);
    double u = rd_rng_uniform(&rng);
    if (u < test_fraction) return RD_SPLIT_TEST;
    if (u < test_fraction + val_fraction) return RD_SPLIT_VAL;
    return RD_SPLIT_TRAIN;
}

int rd_shard_count(int64_t n, int num_shards, int64_t images_per_shard) {
    int64_t k = num_shards > 0
                    ? num_shards
                    : (n + images_per_shard - 1) / (images_per_shard > 0 ? images_per_shard : 1);
    if (k > n) k = n;
    return k < 1 ? 1 : (int)k;
}

void rd_shard_path(char *buf, size_t n, const char *dir, int k) {
    snprintf(buf, n, "%s/shard-%05d.h5", dir, k);
}

/* Rows of shard k: [first, end). */
static int64_t shard_first_row(int64_t n, int k, int nshards) {
    return n * k / nshards;
}

/* Everything that determines a shard's content, hashed: a rerun skips a shard whose stored
 * content_key equals this one. */
static void content_key(const rd_shard_params *p, int64_t n, int k, char hex[65]) {
    char text[1024];
    int len = snprintf(text, sizeof text,
                       "rdino-shard format %d; manifest %s; images %lld; shards %d; index %d; "
                       "size %d; bits %d; split seed %llu val %.17g test %.17g; deflate %d; "
                       "fletcher32 %d; preprocess ",
                       RD_SHARD_FORMAT_VERSION, p->manifest_sha256, (long long)n, p->num_shards, k,
                       p->size, p->bit_depth, (unsigned long long)p->split_seed, p->val_fraction,
                       p->test_fraction, p->deflate, p->hdf5_checksum);
    rd_sha256 h;
    rd_sha256_init(&h);
    rd_sha256_update(&h, text, (size_t)len);
    rd_sha256_update(&h, p->preprocess_yaml, strlen(p->preprocess_yaml));
    rd_sha256_final_hex(&h, hex);
}

/* Longest string of a field over all images (at least 1): every shard gets the same widths. */
static size_t max_width(const rd_shard_image *images, int64_t n, size_t offset) {
    size_t w = 1;
    for (int64_t i = 0; i < n; i++) {
        const char *s = *(const char *const *)((const char *)&images[i] + offset);
        size_t len = strlen(s);
        if (len > w) w = len;
    }
    return w;
}

/* What one piece of a shard's images is written in: big enough that HDF5's cost per write
 * vanishes, small enough to stay in the CPU's caches between the loader and the write. */
enum { PIECE_BYTES = 2 << 20 };

/* Shared by all shards of one run. */
typedef struct {
    const rd_shard_params *p;
    const rd_shard_image *images;
    const uint8_t *splits;
    int64_t n;
    size_t width_image_id, width_patient_id, width_view;
    rd_shard_load_fn load;
    void *ctx;
    MPI_Comm comm;
    int rank, nranks;
    size_t image_bytes;
    int64_t piece;           /* images per write (about PIECE_BYTES) */
    unsigned char *pixels;   /* [piece] images */
    char (*meta_sha256)[65]; /* [K]: digest of each shard's /meta datasets (its rank's) */
    rd_progress progress;
    int64_t round_first, round_end; /* rows of the shards of the current round */
    int round_shards;               /* shards in the current round */
    rd_shard_stats *stats;
} shard_run;

static rd_status create_layout(rd_h5file *f, const shard_run *r, int64_t count, rd_error *err) {
    const rd_shard_params *p = r->p;
    int64_t dims[3] = {count, p->size, p->size}, chunk[3] = {1, p->size, p->size};
    rd_h5_type pixel = p->bit_depth > 8 ? RD_H5_U16 : RD_H5_U8;
    rd_h5_set_fletcher32(f, p->hdf5_checksum);
    rd_status st = rd_h5_create_dataset(f, "/images", pixel, 3, dims, chunk, p->deflate, err);
    if (!st)
        st =
            rd_h5_create_strings(f, "/meta/image_id", count, r->width_image_id, 0, p->deflate, err);
    if (!st)
        st = rd_h5_create_strings(f, "/meta/patient_id", count, r->width_patient_id, 0, p->deflate,
                                  err);
    if (!st) st = rd_h5_create_strings(f, "/meta/view", count, r->width_view, 0, p->deflate, err);
    int64_t chunk_rows = 4096;
    const struct {
        const char *name;
        rd_h5_type type;
        const char *meaning;
    } numeric[] = {{"/meta/age", RD_H5_F32, "age in years; NaN = unknown"},
                   {"/meta/sex", RD_H5_I8, "0 = F, 1 = M, -1 = unknown"},
                   {"/meta/split", RD_H5_U8, "0 = train, 1 = val, 2 = test (by patient)"},
                   {"/meta/source_row", RD_H5_I64, "row of the source metadata CSV"},
                   {"/meta/crc32c", RD_H5_U32,
                    "CRC32C (Castagnoli) of the image's bytes as stored in /images, little-endian "
                    "for 16 bits"}};
    for (size_t i = 0; !st && i < sizeof numeric / sizeof numeric[0]; i++) {
        st = rd_h5_create_dataset(f, numeric[i].name, numeric[i].type, 1, &count, &chunk_rows,
                                  p->deflate, err);
        if (!st) st = rd_h5_set_attr_str(f, numeric[i].name, "meaning", numeric[i].meaning, err);
    }
    for (int k = 0; !st && k < p->nfindings; k++) {
        char name[RD_FINDING_NAME_MAX + 8];
        snprintf(name, sizeof name, "/meta/%s", p->finding[k]);
        st = rd_h5_create_dataset(f, name, RD_H5_I8, 1, &count, &chunk_rows, p->deflate, err);
        if (!st) st = rd_h5_set_attr_str(f, name, "meaning", RD_FINDING_MEANING, err);
    }
    return st;
}

static rd_status write_attributes(rd_h5file *f, const shard_run *r, int k, int64_t first,
                                  int64_t count, const char *key, rd_error *err) {
    const rd_shard_params *p = r->p;
    const struct {
        const char *name;
        int64_t value;
    } ints[] = {{"format_version", RD_SHARD_FORMAT_VERSION},
                {"shard_index", k},
                {"shard_count", p->num_shards},
                {"num_images", count},
                {"first_row", first},
                {"total_images", r->n},
                {"image_size", p->size},
                {"bit_depth", p->bit_depth},
                {"split_seed", (int64_t)p->split_seed}};
    const struct {
        const char *name, *value;
    } strs[] = {{"config", p->config_yaml},
                {"source_manifest", p->manifest_path},
                {"source_manifest_sha256", p->manifest_sha256},
                {"preprocess", p->preprocess_yaml},
                {"creator", p->tool_version},
                {"content_key", key}};
    rd_status st = RD_OK;
    for (size_t i = 0; !st && i < sizeof ints / sizeof ints[0]; i++)
        st = rd_h5_set_attr_int(f, "/", ints[i].name, ints[i].value, err);
    for (size_t i = 0; !st && i < sizeof strs / sizeof strs[0]; i++)
        st = rd_h5_set_attr_str(f, "/", strs[i].name, strs[i].value, err);
    if (!st) st = rd_h5_set_attr_float(f, "/", "val_fraction", p->val_fraction, err);
    if (!st) st = rd_h5_set_attr_float(f, "/", "test_fraction", p->test_fraction, err);
    return st;
}

/* The /meta rows of shard rows [first, first + count) as rdino-shard writes them; crc32c is left
 * for the caller. */
static rd_status fill_meta(const shard_run *r, int64_t first, int64_t count, shard_meta *m,
                           rd_error *err) {
    const size_t widths[3] = {r->width_image_id, r->width_patient_id, r->width_view};
    rd_status st = shard_meta_alloc(m, count, widths, err);
    if (!st) st = shard_meta_set_findings(m, r->p->nfindings, r->p->finding, err);
    for (int64_t i = 0; !st && i < count; i++) {
        const rd_shard_image *img = &r->images[first + i];
        const char *text[3] = {img->image_id, img->patient_id, img->view};
        for (int c = 0; c < 3; c++) /* the buffers are zeroed: NUL-padded as stored */
            memcpy(m->strings[c] + (size_t)i * m->stride[c], text[c], strlen(text[c]));
        m->age[i] = img->age;
        m->sex[i] = img->sex;
        m->split[i] = r->splits[first + i];
        m->source_row[i] = img->source_row;
        if (m->nfindings && !img->findings)
            st = rd_fail(err, RD_EINVAL, "image %s has no finding labels", img->image_id);
        for (int k = 0; !st && k < m->nfindings; k++)
            m->findings[(size_t)k * (size_t)count + (size_t)i] = img->findings[k];
    }
    if (st) shard_meta_free(m); /* safe to free again */
    return st;
}

/* The shard's images, piece by piece: each image's CRC32C is taken right after the loader put
 * it into the piece (while it is in cache), then the piece goes to the file. Progress counts
 * images loaded: rank 0 prints its own part of the round, as if the round's writers kept its
 * pace. */
static rd_status write_images(rd_h5file *f, shard_run *r, int64_t first, int64_t count,
                              uint32_t *crc32c, rd_error *err) {
    rd_h5_type type = r->p->bit_depth > 8 ? RD_H5_U16 : RD_H5_U8;
    rd_status st = RD_OK;
    for (int64_t row0 = 0; !st && row0 < count; row0 += r->piece) {
        int64_t rows = count - row0 < r->piece ? count - row0 : r->piece;
        for (int64_t i = 0; !st && i < rows; i++) {
            unsigned char *dst = r->pixels + (size_t)i * r->image_bytes;
            double t0 = rd_now();
            st = r->load(r->ctx, &r->images[first + row0 + i], first + row0 + i, dst, err);
            if (!st) crc32c[row0 + i] = rd_crc32c(dst, r->image_bytes);
            r->stats->decode_seconds += rd_now() - t0;
            int64_t done = r->round_first + (row0 + i + 1) * r->round_shards;
            if (!st)
                rd_progress_update(&r->progress, done < r->round_end ? done : r->round_end, NULL);
        }
        if (!st) st = rd_h5_write_rows(f, "/images", type, row0, rows, r->pixels, err);
    }
    return st;
}

/* What a shard of count images takes on disk, generously: pixels, metadata rows, the chunk index
 * (about 50 bytes per chunk), the attributes (config and provenance text) and 256 KiB for the
 * rest of HDF5's metadata. */
static int64_t shard_bytes(const shard_run *r, int64_t count) {
    const rd_shard_params *p = r->p;
    int64_t image = (int64_t)p->size * p->size * (p->bit_depth > 8 ? 2 : 1);
    int64_t row = (int64_t)(r->width_image_id + r->width_patient_id + r->width_view) + 4 + 1 + 1 +
                  8 + 4 + p->nfindings;
    int64_t text =
        (int64_t)(strlen(p->config_yaml) + strlen(p->preprocess_yaml) + strlen(p->manifest_path)) +
        4096;
    return count * (image + row + 64) + text + (256 << 10);
}

/* Shard k, by this rank alone through HDF5's POSIX driver. */
static rd_status write_shard(shard_run *r, int k, const char *key, rd_error *err) {
    const rd_shard_params *p = r->p;
    int64_t first = shard_first_row(r->n, k, p->num_shards);
    int64_t count = shard_first_row(r->n, k + 1, p->num_shards) - first;
    char path[RD_PATH_MAX];
    rd_shard_path(path, sizeof path, p->output_dir, k);
    rd_h5file f;
    double t0 = rd_now(), decode0 = r->stats->decode_seconds;
    shard_meta m;
    rd_status st = fill_meta(r, first, count, &m, err);
    if (st) return st;
    st = rd_h5_create(&f, path, MPI_COMM_SELF, err);
    if (!st) st = create_layout(&f, r, count, err);
    if (!st) st = write_attributes(&f, r, k, first, count, key, err);
    if (!st) st = write_images(&f, r, first, count, m.crc32c, err);
    if (!st) st = shard_meta_write(&f, &m, err);
    if (!st) st = rd_h5_publish(&f, err);
    if (!st) shard_meta_sha256(&m, r->meta_sha256[k]);
    shard_meta_free(&m);
    if (st) {
        rd_h5_discard(&f);
        return st;
    }
    r->stats->write_seconds += rd_now() - t0 - (r->stats->decode_seconds - decode0);
    struct stat sb;
    if (stat(path, &sb) == 0) r->stats->bytes_written += (double)sb.st_size;
    r->stats->shards_written++;
    return RD_OK;
}

/* RD_OK when the shard at path has the expected content key, the metadata this run would write
 * (its digest, with the shard's own CRC32C column) and every image passes its CRC32C check; its
 * metadata digest goes to digest. RD_ENOTFOUND when it is absent; RD_EINVAL when it was written
 * with other parameters. */
static rd_status verify_shard(const shard_run *r, int k, const char *path, const char *key,
                              char digest[65], rd_error *err) {
    if (access(path, F_OK) != 0) return RD_ENOTFOUND;
    const rd_shard_params *p = r->p;
    int64_t first = shard_first_row(r->n, k, p->num_shards);
    int64_t count = shard_first_row(r->n, k + 1, p->num_shards) - first, bad = 0;
    rd_h5file f;
    char *stored = NULL, expected[65];
    shard_meta want = {0}, have = {0};
    rd_status st = rd_h5_open(&f, path, MPI_COMM_SELF, err);
    if (!st) st = rd_h5_get_attr_str(&f, "/", "content_key", &stored, err);
    if (!st && strcmp(stored, key) != 0) st = RD_EINVAL;
    if (!st) st = fill_meta(r, first, count, &want, err);
    if (!st) st = shard_meta_alloc(&have, count, want.width, err);
    if (!st) st = shard_list_findings(&f, &have.nfindings, have.finding, err);
    for (int j = 0; !st && j <= want.nfindings; j++) /* other finding columns: another manifest */
        if (j == want.nfindings ? have.nfindings != j : strcmp(have.finding[j], want.finding[j]))
            st = RD_EINVAL;
    if (!st) st = shard_meta_set_findings(&have, want.nfindings, want.finding, err);
    if (!st) st = shard_meta_read(&f, &have, err);
    if (!st) {
        memcpy(want.crc32c, have.crc32c, (size_t)count * sizeof *want.crc32c);
        shard_meta_sha256(&want, expected);
        shard_meta_sha256(&have, digest);
        if (strcmp(expected, digest) != 0)
            st = rd_fail(err, RD_ECORRUPT, "%s: its /meta datasets differ from the manifest's",
                         path);
    }
    if (!st)
        st = shard_check_images(&f, count, p->size, p->bit_depth, have.crc32c, first, p->batch,
                                NULL, NULL, &bad, err);
    shard_meta_free(&want);
    shard_meta_free(&have);
    free(stored);
    rd_h5_close(&f);
    return st;
}

/* Shard k is read (when checked) and written by rank k mod nranks alone. */
static int is_mine(const shard_run *r, int k) {
    return k % r->nranks == r->rank;
}

/* Marks the shards a previous run finished and that are intact (their digests go to
 * meta_sha256): each rank verifies its own, reading all of each; damaged shards are reported and
 * will be rewritten. */
static void find_current_shards(const shard_run *r, uint8_t *current) {
    const rd_shard_params *p = r->p;
    for (int k = 0; k < p->num_shards; k++) {
        current[k] = 0;
        if (p->force || !is_mine(r, k)) continue;
        char key[65], path[RD_PATH_MAX];
        content_key(p, r->n, k, key);
        rd_shard_path(path, sizeof path, p->output_dir, k);
        rd_error err = {0};
        rd_status st = verify_shard(r, k, path, key, r->meta_sha256[k], &err);
        if (st == RD_OK)
            current[k] = 1;
        else if (st != RD_ENOTFOUND && st != RD_EINVAL)
            rd_warn("existing shard is damaged, rewriting it: %s", err.msg);
    }
    MPI_Allreduce(MPI_IN_PLACE, current, p->num_shards, MPI_UINT8_T, MPI_MAX, r->comm);
}

/* Writes the shards that are not current, in rounds of nranks: in each, every rank writes its
 * shard alone (ranks past the last shard wait), after checking that the folder has room for the
 * whole round's. The ranks agree after each round, so a failure stops all of them, reported as
 * the failure of the lowest shard whatever the rank count. */
static rd_status write_shards(shard_run *r, const uint8_t *current, rd_error *err) {
    const rd_shard_params *p = r->p;
    const int K = p->num_shards;
    rd_status st = RD_OK;
    for (int k0 = 0; !st && k0 < K; k0 += r->nranks) {
        int end = k0 + r->nranks < K ? k0 + r->nranks : K, k = k0 + r->rank;
        r->round_first = shard_first_row(r->n, k0, K);
        r->round_end = shard_first_row(r->n, end, K);
        r->round_shards = end - k0;
        int64_t room = 0;
        for (int j = k0; j < end; j++)
            if (!current[j])
                room +=
                    shard_bytes(r, shard_first_row(r->n, j + 1, K) - shard_first_row(r->n, j, K));
        if (k < end && !current[k]) {
            char key[65];
            content_key(p, r->n, k, key);
            st = rd_dir_check_room(p->output_dir, room, err);
            if (!st) st = write_shard(r, k, key, err);
            if (st) rd_wrap(err, "writing shard %d of %d", k, K);
        }
        st = rd_agree_first(r->comm, st, k, err);
        if (!st) rd_progress_update(&r->progress, r->round_end, NULL);
    }
    return st;
}

/* A growing string for index.json. */
typedef struct {
    char *text;
    size_t len, cap;
    int failed;
} text_buf;

static void append(text_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void append(text_buf *b, const char *fmt, ...) {
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int need =
            vsnprintf(b->text ? b->text + b->len : NULL, b->text ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (need < 0) {
            b->failed = 1;
            return;
        }
        if (b->text && b->len + (size_t)need < b->cap) {
            b->len += (size_t)need;
            return;
        }
        size_t cap = (b->cap + (size_t)need + 1) * 2;
        char *grown = realloc(b->text, cap);
        if (!grown) {
            b->failed = 1;
            return;
        }
        b->text = grown;
        b->cap = cap;
    }
}

static rd_status write_index(const shard_run *r, rd_error *err) {
    const rd_shard_params *p = r->p;
    const rd_shard_stats *s = r->stats;
    text_buf b = {0};
    append(&b,
           "{\n  \"format_version\": %d,\n  \"source_manifest_sha256\": \"%s\",\n"
           "  \"num_images\": %lld,\n  \"num_shards\": %d,\n  \"image_size\": %d,\n"
           "  \"dtype\": \"%s\",\n  \"split_seed\": %llu,\n  \"val_fraction\": %.17g,\n"
           "  \"test_fraction\": %.17g,\n  \"splits\": {\"train\": %lld, \"val\": %lld, "
           "\"test\": %lld},\n  \"patients\": {\"train\": %lld, \"val\": %lld, \"test\": %lld},\n"
           "  \"shards\": [\n",
           RD_SHARD_FORMAT_VERSION, p->manifest_sha256, (long long)r->n, p->num_shards, p->size,
           p->bit_depth > 8 ? "uint16" : "uint8", (unsigned long long)p->split_seed,
           p->val_fraction, p->test_fraction, (long long)s->per_split[0],
           (long long)s->per_split[1], (long long)s->per_split[2],
           (long long)s->patients_per_split[0], (long long)s->patients_per_split[1],
           (long long)s->patients_per_split[2]);
    for (int k = 0; k < p->num_shards; k++) {
        int64_t first = shard_first_row(r->n, k, p->num_shards);
        int64_t end = shard_first_row(r->n, k + 1, p->num_shards);
        int64_t per[3] = {0, 0, 0};
        for (int64_t i = first; i < end; i++) per[r->splits[i]]++;
        append(&b,
               "    {\"file\": \"shard-%05d.h5\", \"first_row\": %lld, \"num_images\": %lld, "
               "\"train\": %lld, \"val\": %lld, \"test\": %lld, \"meta_sha256\": \"%s\"}%s\n",
               k, (long long)first, (long long)(end - first), (long long)per[0], (long long)per[1],
               (long long)per[2], r->meta_sha256[k], k + 1 < p->num_shards ? "," : "");
    }
    append(&b, "  ]\n}\n");
    rd_status st = b.failed ? rd_fail(err, RD_ENOMEM, "out of memory writing index.json") : RD_OK;
    char path[RD_PATH_MAX];
    snprintf(path, sizeof path, "%s/index.json", p->output_dir);
    if (!st) st = rd_write_file_atomic(path, b.text, strlen(b.text), err);
    free(b.text);
    return st;
}

/* Removes what an earlier run may have left that this run's index does not list: shards
 * numbered K and above, and temporary files of killed runs. */
static void remove_stale_files(const char *dir, int nshards) {
    DIR *d = opendir(dir);
    if (!d) return;
    const struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int k = -1, end = 0;
        int is_shard = sscanf(e->d_name, "shard-%d.h5%n", &k, &end) == 1 &&
                       e->d_name[end] == '\0' && k >= nshards;
        int is_tmp = rd_is_temp_name(e->d_name);
        if (!is_shard && !is_tmp) continue;
        char path[RD_PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (unlink(path) == 0) rd_info("removed stale %s", path);
    }
    closedir(d);
}

static int compare_patient(const void *a, const void *b) {
    const rd_shard_image *x = *(const rd_shard_image *const *)a;
    const rd_shard_image *y = *(const rd_shard_image *const *)b;
    return strcmp(x->patient_id, y->patient_id);
}

/* Assigns every image its patient's split and counts images and distinct patients per split. */
static rd_status assign_splits(const rd_shard_params *p, const rd_shard_image *images, int64_t n,
                               uint8_t *splits, rd_shard_stats *stats, rd_error *err) {
    const rd_shard_image **order = malloc((size_t)n * sizeof *order);
    if (!order) return rd_fail(err, RD_ENOMEM, "out of memory for %lld images", (long long)n);
    for (int64_t i = 0; i < n; i++) {
        splits[i] = (uint8_t)rd_split_of_patient(images[i].patient_id, p->split_seed,
                                                 p->val_fraction, p->test_fraction);
        stats->per_split[splits[i]]++;
        order[i] = &images[i];
    }
    qsort(order, (size_t)n, sizeof *order, compare_patient);
    for (int64_t i = 0; i < n; i++)
        if (i == 0 || strcmp(order[i]->patient_id, order[i - 1]->patient_id) != 0)
            stats->patients_per_split[splits[order[i] - images]]++;
    free(order);
    return RD_OK;
}

static rd_status check_params(const rd_shard_params *p, int64_t n, rd_error *err) {
    if (n < 1) return rd_fail(err, RD_EINVAL, "no images to shard");
    if (p->num_shards < 1 || p->num_shards > n)
        return rd_fail(err, RD_EINVAL, "%d shards for %lld images", p->num_shards, (long long)n);
    if (p->bit_depth != 8 && p->bit_depth != 16)
        return rd_fail(err, RD_EINVAL, "bit depth %d (expected 8 or 16)", p->bit_depth);
    if (p->size < 1 || p->batch < 1 || p->deflate < 0 || p->deflate > 9)
        return rd_fail(err, RD_EINVAL, "bad size %d, batch %d or deflate %d", p->size, p->batch,
                       p->deflate);
    if (p->val_fraction < 0 || p->test_fraction < 0 || p->val_fraction + p->test_fraction > 1)
        return rd_fail(err, RD_EINVAL, "val_fraction %g + test_fraction %g must lie in [0, 1]",
                       p->val_fraction, p->test_fraction);
    if (p->nfindings < 0 || p->nfindings > RD_MAX_FINDINGS)
        return rd_fail(err, RD_EINVAL, "%d finding label columns (at most %d)", p->nfindings,
                       RD_MAX_FINDINGS);
    /* name order, as readers list them: the metadata digest hashes the columns so */
    for (int k = 0; k < p->nfindings; k++)
        if (strncmp(p->finding[k], "finding_", 8) != 0 ||
            (k && strcmp(p->finding[k - 1], p->finding[k]) >= 0))
            return rd_fail(err, RD_EINVAL,
                           "finding label column '%s': names must start with finding_ and come "
                           "in ascending name order",
                           p->finding[k]);
    return RD_OK;
}

rd_status rd_shard_write_all(const rd_shard_params *p, const rd_shard_image *images, int64_t n,
                             rd_shard_load_fn load, void *ctx, MPI_Comm comm, rd_shard_stats *stats,
                             rd_error *err) {
    memset(stats, 0, sizeof *stats);
    rd_status st = check_params(p, n, err);
    if (st) return st;
    shard_run r = {
        .p = p, .images = images, .n = n, .load = load, .ctx = ctx, .comm = comm, .stats = stats};
    MPI_Comm_rank(comm, &r.rank);
    MPI_Comm_size(comm, &r.nranks);
    r.width_image_id = max_width(images, n, offsetof(rd_shard_image, image_id));
    r.width_patient_id = max_width(images, n, offsetof(rd_shard_image, patient_id));
    r.width_view = max_width(images, n, offsetof(rd_shard_image, view));
    r.image_bytes = (size_t)p->size * (size_t)p->size * (p->bit_depth > 8 ? 2 : 1);
    r.piece = PIECE_BYTES / r.image_bytes > 0 ? (int64_t)(PIECE_BYTES / r.image_bytes) : 1;
    uint8_t *splits = malloc((size_t)n);
    r.pixels = malloc(r.image_bytes * (size_t)r.piece);
    r.meta_sha256 = calloc((size_t)p->num_shards, sizeof *r.meta_sha256);
    uint8_t *current = malloc((size_t)p->num_shards);
    r.splits = splits;
    if (!splits || !r.pixels || !r.meta_sha256 || !current)
        st = rd_fail(err, RD_ENOMEM, "out of memory for the image buffer");
    if (!st) st = assign_splits(p, images, n, splits, stats, err);
    if (!st && r.rank == 0) st = rd_mkdir_p(p->output_dir, err);
    st = rd_agree(comm, st, err);

    if (!st) {
        find_current_shards(&r, current);
        rd_progress_start(&r.progress, "shard", n, 0);
        st = write_shards(&r, current, err);
    }
    if (!st) {
        rd_progress_finish(&r.progress, NULL);
        /* each shard's digest from its rank (zeros elsewhere) to every rank */
        MPI_Allreduce(MPI_IN_PLACE, r.meta_sha256, p->num_shards * 65, MPI_UNSIGNED_CHAR, MPI_MAX,
                      comm);
        if (r.rank == 0) {
            st = write_index(&r, err);
            if (!st) remove_stale_files(p->output_dir, p->num_shards);
        }
        st = rd_agree(comm, st, err);
    }
    for (int k = 0; !st && k < p->num_shards; k++) stats->shards_skipped += current[k];
    MPI_Allreduce(MPI_IN_PLACE, &stats->shards_written, 1, MPI_INT, MPI_SUM, comm);
    MPI_Allreduce(MPI_IN_PLACE, &stats->bytes_written, 1, MPI_DOUBLE, MPI_SUM, comm);
    MPI_Allreduce(MPI_IN_PLACE, &stats->write_seconds, 1, MPI_DOUBLE, MPI_MAX, comm);
    MPI_Allreduce(MPI_IN_PLACE, &stats->decode_seconds, 1, MPI_DOUBLE, MPI_MAX, comm);
    stats->images = n;
    free(current);
    free(splits);
    free(r.pixels);
    free(r.meta_sha256);
    return st;
}
