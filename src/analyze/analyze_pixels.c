/* The raw-pixel baseline: the study's images from the shards, area-averaged to s x s and
 * reduced by PCA, as one more representation next to the encoders'. It answers "does the
 * encoder know more than a few hundred pixel averages do?" (sex and age change the size and
 * brightness of anatomy, which a low-resolution image partly shows). */
#include "analyze_internal.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdino/file.h"
#include "rdino/h5store.h"
#include "rdino/log.h"
#include "rdino/shard.h"

/* Weights of input pixels [start, start + count) for output pixel i of an axis of `in`
 * pixels shrunk (or grown) to `out`: the overlap of each input pixel with the output's
 * interval [i in/out, (i+1) in/out), divided by the interval's length. */
static int area_weights(int in, int out, int i, double *w, int *start) {
    double a = (double)i * in / out, b = (double)(i + 1) * in / out;
    int j0 = (int)floor(a), j1 = (int)ceil(b);
    if (j1 > in) j1 = in;
    *start = j0;
    for (int j = j0; j < j1; j++) w[j - j0] = (fmin(b, j + 1.0) - fmax(a, (double)j)) / (b - a);
    return j1 - j0;
}

void rd_area_downsample(const float *src, int w, int h, int out, float *dst) {
    /* Horizontal then vertical, in double; the temporary is h x out. */
    double *mid = malloc((size_t)h * out * sizeof *mid);
    double *wt = malloc((size_t)(w > h ? w : h) * sizeof *wt + sizeof *wt);
    if (!mid || !wt) {
        free(mid);
        free(wt);
        for (int i = 0; i < out * out; i++) dst[i] = NAN; /* caller sees NaN, not garbage */
        return;
    }
    for (int x = 0; x < out; x++) {
        int start, count = area_weights(w, out, x, wt, &start);
        for (int y = 0; y < h; y++) {
            double s = 0.0;
            for (int j = 0; j < count; j++) s += wt[j] * src[(size_t)y * w + start + j];
            mid[(size_t)y * out + x] = s;
        }
    }
    for (int y = 0; y < out; y++) {
        int start, count = area_weights(h, out, y, wt, &start);
        for (int x = 0; x < out; x++) {
            double s = 0.0;
            for (int j = 0; j < count; j++) s += wt[j] * mid[(size_t)(start + j) * out + x];
            dst[(size_t)y * out + x] = (float)s;
        }
    }
    free(mid);
    free(wt);
}

/* ---- where each study row's image is in the shards ---- */

typedef struct shard_entry {
    const char *id;
    int shard;
    int64_t row;
} shard_entry;

typedef struct shard_index {
    int nshards;
    char (*path)[RD_PATH_MAX];
    char **ids, **patients; /* per shard: strings at ids[k] + row * stride[k] */
    size_t *id_stride, *patient_stride;
    int64_t total;
    shard_entry *entries; /* sorted by id */
} shard_index;

static void shard_index_free(shard_index *x) {
    for (int k = 0; k < x->nshards; k++) {
        if (x->ids) free(x->ids[k]);
        if (x->patients) free(x->patients[k]);
    }
    free(x->path);
    free(x->ids);
    free(x->patients);
    free(x->id_stride);
    free(x->patient_stride);
    free(x->entries);
    memset(x, 0, sizeof *x);
}

static int by_id(const void *a, const void *b) {
    return strcmp(((const shard_entry *)a)->id, ((const shard_entry *)b)->id);
}

static rd_status read_shard_strings(rd_h5file *f, const char *name, int64_t n, char **out,
                                    size_t *stride, rd_error *err) {
    size_t width = 0;
    int64_t dims[RD_H5_MAX_DIMS];
    int ndim;
    rd_status st = rd_h5_shape(f, name, dims, &ndim, &width, err);
    if (!st && (ndim != 1 || dims[0] != n || width == 0))
        st = rd_fail(err, RD_EFORMAT, "%s: %s is not %lld fixed-length strings", f->path, name,
                     (long long)n);
    if (st) return st;
    *stride = width + 1;
    *out = malloc((size_t)(n > 0 ? n : 1) * *stride);
    if (!*out) return rd_fail(err, RD_ENOMEM, "%s: no memory for %s", f->path, name);
    return rd_h5_read_strings(f, name, 0, n, *out, *stride, err);
}

/* Every rank reads the ids of every shard (small) and sorts them. */
static rd_status shard_index_build(const char *dir, shard_index *x, rd_error *err) {
    memset(x, 0, sizeof *x);
    char index_json[RD_PATH_MAX + 16];
    snprintf(index_json, sizeof index_json, "%s/index.json", dir);
    FILE *probe = fopen(index_json, "r");
    if (!probe)
        return rd_fail(err, RD_ENOTFOUND,
                       "no shards for the raw-pixel baseline: %s is missing (run rdino-shard, "
                       "set analyze.shards_dir, or analyze.pixels.enabled=false)",
                       index_json);
    fclose(probe);
    rd_h5file f;
    char first[RD_PATH_MAX];
    rd_shard_path(first, sizeof first, dir, 0);
    int64_t count = 0;
    rd_status st = rd_h5_open(&f, first, MPI_COMM_SELF, err);
    if (st) return st;
    st = rd_h5_get_attr_int(&f, "/", "shard_count", &count, err);
    rd_h5_close(&f);
    if (st) return st;
    if (count < 1 || count > INT_MAX / 2)
        return rd_fail(err, RD_EFORMAT, "%s: shard_count %lld", first, (long long)count);
    x->nshards = (int)count;
    x->path = calloc((size_t)count, sizeof *x->path);
    x->ids = calloc((size_t)count, sizeof *x->ids);
    x->patients = calloc((size_t)count, sizeof *x->patients);
    x->id_stride = calloc((size_t)count, sizeof *x->id_stride);
    x->patient_stride = calloc((size_t)count, sizeof *x->patient_stride);
    int64_t *rows = calloc((size_t)count, sizeof *rows);
    if (!x->path || !x->ids || !x->patients || !x->id_stride || !x->patient_stride || !rows) {
        free(rows);
        return rd_fail(err, RD_ENOMEM, "out of memory for %lld shards", (long long)count);
    }
    for (int k = 0; k < x->nshards && !st; k++) {
        rd_shard_path(x->path[k], RD_PATH_MAX, dir, k);
        if ((st = rd_h5_open(&f, x->path[k], MPI_COMM_SELF, err))) break;
        int64_t dims[RD_H5_MAX_DIMS];
        int ndim;
        st = rd_h5_shape(&f, "/meta/image_id", dims, &ndim, NULL, err);
        if (!st) rows[k] = dims[0];
        if (!st)
            st = read_shard_strings(&f, "/meta/image_id", rows[k], &x->ids[k], &x->id_stride[k],
                                    err);
        if (!st)
            st = read_shard_strings(&f, "/meta/patient_id", rows[k], &x->patients[k],
                                    &x->patient_stride[k], err);
        rd_h5_close(&f);
        x->total += rows[k];
    }
    x->entries = st ? NULL : malloc((size_t)(x->total > 0 ? x->total : 1) * sizeof *x->entries);
    if (!st && !x->entries) st = rd_fail(err, RD_ENOMEM, "out of memory for the shard index");
    for (int k = 0, e = 0; !st && k < x->nshards; k++)
        for (int64_t r = 0; r < rows[k]; r++, e++)
            x->entries[e] = (shard_entry){x->ids[k] + (size_t)r * x->id_stride[k], k, r};
    free(rows);
    if (st) return st;
    qsort(x->entries, (size_t)x->total, sizeof *x->entries, by_id);
    for (int64_t e = 1; e < x->total; e++)
        if (strcmp(x->entries[e].id, x->entries[e - 1].id) == 0)
            return rd_fail(err, RD_EFORMAT, "image id '%s' appears twice in the shards in %s",
                           x->entries[e].id, dir);
    return RD_OK;
}

/* ---- reading and downsampling, in blocks of rows spread over the ranks ---- */

enum { BLOCK = 32 };

typedef struct pixel_ctx {
    const rd_analyze_data *data;
    const shard_index *index;
    const shard_entry **where; /* [n] each study row's image */
    int size;                  /* s */
    rd_h5file open;            /* this rank's current shard */
    int open_shard;
    float *image; /* S x S of the current image */
    int64_t image_cap;
} pixel_ctx;

static rd_status read_image(pixel_ctx *c, const shard_entry *e, float *out, rd_error *err) {
    rd_status st = RD_OK;
    if (c->open_shard != e->shard) {
        rd_h5_close(&c->open);
        c->open_shard = -1;
        if ((st = rd_h5_open(&c->open, c->index->path[e->shard], MPI_COMM_SELF, err))) return st;
        c->open_shard = e->shard;
    }
    int64_t dims[RD_H5_MAX_DIMS];
    int ndim;
    rd_h5_type type;
    if ((st = rd_h5_shape(&c->open, "/images", dims, &ndim, NULL, err))) return st;
    if ((st = rd_h5_dataset_type(&c->open, "/images", &type, err))) return st;
    if (ndim != 3 || dims[1] < 1 || dims[2] < 1 || (type != RD_H5_U8 && type != RD_H5_U16))
        return rd_fail(err, RD_EFORMAT, "%s: /images must be [n, S, S] uint8 or uint16",
                       c->open.path);
    int64_t pixels = dims[1] * dims[2];
    if (pixels > c->image_cap) {
        float *grown = realloc(c->image, (size_t)pixels * sizeof *grown);
        if (!grown)
            return rd_fail(err, RD_ENOMEM, "no memory for a %lld-pixel image", (long long)pixels);
        c->image = grown;
        c->image_cap = pixels;
    }
    if ((st = rd_h5_read_rows(&c->open, "/images", RD_H5_F32, e->row, 1, c->image, err))) return st;
    /* Grey levels to [0, 1], so 8- and 16-bit shards give comparable features. */
    float scale = type == RD_H5_U8 ? 1.0f / 255.0f : 1.0f / 65535.0f;
    for (int64_t i = 0; i < pixels; i++) c->image[i] *= scale;
    rd_area_downsample(c->image, (int)dims[2], (int)dims[1], c->size, out);
    return RD_OK;
}

static rd_status pixel_unit(void *vctx, int unit, double *result, rd_error *err) {
    pixel_ctx *c = vctx;
    int p = c->size * c->size;
    float *small = malloc((size_t)p * sizeof *small);
    if (!small) return rd_fail(err, RD_ENOMEM, "out of memory");
    memset(result, 0, (size_t)BLOCK * p * sizeof *result);
    rd_status st = RD_OK;
    for (int k = 0; k < BLOCK && !st; k++) {
        int row = unit * BLOCK + k;
        if (row >= c->data->n) break;
        st = read_image(c, c->where[row], small, err);
        for (int j = 0; !st && j < p; j++) result[(size_t)k * p + j] = small[j];
    }
    free(small);
    return st;
}

/* Each study row's shard entry; the same patient in both places. */
static rd_status match_rows(const rd_analyze_params *p, const rd_analyze_data *data,
                            const shard_index *x, const shard_entry **where, rd_error *err) {
    for (int i = 0; i < data->n; i++) {
        shard_entry key = {data->image_id + (size_t)i * data->id_stride, 0, 0};
        const shard_entry *e = bsearch(&key, x->entries, (size_t)x->total, sizeof key, by_id);
        if (!e)
            return rd_fail(err, RD_EINVAL,
                           "image '%s' of %s is not in the shards in %s: the embeddings and the "
                           "shards describe different images",
                           key.id, p->embeddings[0], p->shards_dir);
        const char *shard_patient =
            x->patients[e->shard] + (size_t)e->row * x->patient_stride[e->shard];
        const char *patient = data->patient_id + (size_t)i * data->patient_stride;
        if (strcmp(shard_patient, patient) != 0)
            return rd_fail(err, RD_EINVAL,
                           "image '%s' belongs to patient '%s' in %s but '%s' in %s", key.id,
                           patient, p->embeddings[0], shard_patient, x->path[e->shard]);
        where[i] = e;
    }
    return RD_OK;
}

rd_status rd_analyze_pixel_baseline(MPI_Comm comm, const rd_analyze_params *p,
                                    rd_analyze_data *data, rd_error *err) {
    int s = p->pixel_size, npix = s * s, n = data->n;
    for (int r = 0; r < data->nreps; r++)
        if (strcmp(data->reps[r].encoder, "raw-pixels") == 0)
            return rd_fail(err, RD_EINVAL,
                           "%s calls its encoder 'raw-pixels', the name of the pixel baseline",
                           data->reps[r].source);
    shard_index index;
    rd_status st = shard_index_build(p->shards_dir, &index, err);
    pixel_ctx c = {.data = data, .index = &index, .size = s, .open_shard = -1};
    c.open.id = H5I_INVALID_HID;
    c.where = malloc((size_t)(n > 0 ? n : 1) * sizeof *c.where);
    int nunits = (n + BLOCK - 1) / BLOCK;
    double *gathered = malloc((size_t)(nunits > 0 ? nunits : 1) * BLOCK * npix * sizeof *gathered);
    float *pixels = malloc((size_t)(n > 0 ? n : 1) * npix * sizeof *pixels);
    if (!st && (!c.where || !gathered || !pixels))
        st = rd_fail(err, RD_ENOMEM, "no memory for %d images of %d x %d pixels", n, s, s);
    if (!st) st = match_rows(p, data, &index, c.where, err);
    /* Every rank built the index and matched the rows itself, so all agree on st here. */
    if (!st)
        st = rd_probe_run_units(comm, nunits, BLOCK * npix, pixel_unit, &c, "reading shards",
                                gathered, err);
    rd_h5_close(&c.open);
    free(c.image);
    free(c.where);
    for (size_t i = 0; !st && i < (size_t)n * npix; i++) pixels[i] = (float)gathered[i];
    free(gathered);
    shard_index_free(&index);

    int k = p->pixel_components;
    if (!st && k > npix) k = npix;
    if (!st && k > n - 1) k = n - 1;
    if (!st && k != p->pixel_components)
        rd_warn("raw-pixel baseline: %d PCA components asked, %d possible with %d images of "
                "%d pixels",
                p->pixel_components, k, n, npix);
    rd_pca pca = {0};
    if (!st) st = rd_pca_fit(pixels, n, npix, k, &pca, err);
    rd_analyze_rep *rep = &data->reps[data->nreps];
    if (!st) {
        memset(rep, 0, sizeof *rep);
        rep->x = malloc((size_t)n * k * sizeof *rep->x);
        rep->checkpoint = strdup("none");
        rep->model_config = malloc(128);
        if (!rep->x || !rep->checkpoint || !rep->model_config) {
            free(rep->x);
            free(rep->checkpoint);
            free(rep->model_config);
            st = rd_fail(err, RD_ENOMEM, "out of memory");
        }
    }
    if (!st) {
        rd_pca_transform(&pca, pixels, n, rep->x);
        snprintf(rep->encoder, sizeof rep->encoder, "raw-pixels");
        snprintf(rep->features, sizeof rep->features, "pixels");
        snprintf(rep->source, sizeof rep->source, "%s", p->shards_dir);
        snprintf(rep->model_config, 128, "area average to %dx%d, PCA to %d components", s, s, k);
        rep->d = k;
        rep->resolution = s;
        double kept = 0.0;
        for (int j = 0; j < k; j++) kept += pca.variance[j];
        rep->explained_variance = pca.total_variance > 0 ? kept / pca.total_variance : NAN;
        data->nreps++;
    }
    rd_pca_free(&pca);
    free(pixels);
    return st;
}
