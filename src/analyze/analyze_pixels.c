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
#include "rdino/log.h"
#include "rdino/shard_reader.h"

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
    int64_t row; /* of the shard set */
} shard_entry;

typedef struct shard_index {
    rd_shard_set set;
    int set_open;
    char *ids, *patients; /* [N, stride]: every row's image and patient id */
    size_t id_stride, patient_stride;
    shard_entry *entries; /* sorted by id */
} shard_index;

static void shard_index_free(shard_index *x) {
    if (x->set_open) rd_shard_set_close(&x->set);
    free(x->ids);
    free(x->patients);
    free(x->entries);
    memset(x, 0, sizeof *x);
}

static int by_id(const void *a, const void *b) {
    return strcmp(((const shard_entry *)a)->id, ((const shard_entry *)b)->id);
}

/* Collective: the shards through the one reader; every rank reads the ids (small) and sorts. */
static rd_status shard_index_build(const char *dir, MPI_Comm comm, shard_index *x, rd_error *err) {
    memset(x, 0, sizeof *x);
    rd_status st = rd_shard_set_open(&x->set, dir, 1, comm, err);
    if (st)
        return rd_wrap(err, "no shards for the raw-pixel baseline (run rdino-shard, set "
                            "analyze.shards_dir, or analyze.pixels.enabled=false)");
    x->set_open = 1;
    const int64_t n = x->set.n;
    x->id_stride = x->set.width_image_id + 1;
    x->patient_stride = x->set.width_patient_id + 1;
    x->ids = malloc((size_t)n * x->id_stride);
    x->patients = malloc((size_t)n * x->patient_stride);
    x->entries = malloc((size_t)n * sizeof *x->entries);
    if (!x->ids || !x->patients || !x->entries)
        st = rd_fail(err, RD_ENOMEM, "out of memory for the ids of %lld images", (long long)n);
    if (!st)
        st = rd_shard_set_read_strings(&x->set, "/meta/image_id", 0, n, x->ids, x->id_stride, err);
    if (!st)
        st = rd_shard_set_read_strings(&x->set, "/meta/patient_id", 0, n, x->patients,
                                       x->patient_stride, err);
    if (st) return st;
    for (int64_t r = 0; r < n; r++)
        x->entries[r] = (shard_entry){x->ids + (size_t)r * x->id_stride, r};
    qsort(x->entries, (size_t)n, sizeof *x->entries, by_id);
    for (int64_t e = 1; e < n; e++)
        if (strcmp(x->entries[e].id, x->entries[e - 1].id) == 0)
            return rd_fail(err, RD_EFORMAT, "image id '%s' appears twice in the shards in %s",
                           x->entries[e].id, dir);
    return RD_OK;
}

/* ---- reading and downsampling, in blocks of rows spread over the ranks ---- */

enum { BLOCK = 32 };

typedef struct pixel_ctx {
    const rd_analyze_data *data;
    shard_index *index;
    const shard_entry **where; /* [n] each study row's image */
    int size;                  /* s */
    void *raw;                 /* S x S of the current image as stored */
    float *image;              /* the same in [0, 1] */
} pixel_ctx;

/* One image, verified against its CRC32C, grey levels to [0, 1] (so 8- and 16-bit shards give
 * comparable features), area-averaged to s x s. */
static rd_status read_image(pixel_ctx *c, const shard_entry *e, float *out, rd_error *err) {
    rd_shard_set *set = &c->index->set;
    rd_status st = rd_shard_set_read_images(set, e->row, 1, c->raw, err);
    if (st) return st;
    const int64_t pixels = (int64_t)set->image_size * set->image_size;
    if (set->bit_depth > 8)
        for (int64_t i = 0; i < pixels; i++)
            c->image[i] = (float)((const uint16_t *)c->raw)[i] * (1.0f / 65535.0f);
    else
        for (int64_t i = 0; i < pixels; i++)
            c->image[i] = (float)((const uint8_t *)c->raw)[i] * (1.0f / 255.0f);
    rd_area_downsample(c->image, set->image_size, set->image_size, c->size, out);
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
        shard_entry key = {data->image_id + (size_t)i * data->id_stride, 0};
        const shard_entry *e = bsearch(&key, x->entries, (size_t)x->set.n, sizeof key, by_id);
        if (!e)
            return rd_fail(err, RD_EINVAL,
                           "image '%s' of %s is not in the shards in %s: the embeddings and the "
                           "shards describe different images",
                           key.id, p->embeddings[0], p->shards_dir);
        char shard_path[RD_PATH_MAX + 32];
        int k;
        int64_t local;
        rd_shard_set_locate(&x->set, e->row, &k, &local);
        rd_shard_set_path(&x->set, k, shard_path, sizeof shard_path);
        const char *shard_patient = x->patients + (size_t)e->row * x->patient_stride;
        const char *patient = data->patient_id + (size_t)i * data->patient_stride;
        if (strcmp(shard_patient, patient) != 0)
            return rd_fail(err, RD_EINVAL,
                           "image '%s' belongs to patient '%s' in %s but '%s' in %s", key.id,
                           patient, p->embeddings[0], shard_patient, shard_path);
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
    rd_status st = shard_index_build(p->shards_dir, comm, &index, err);
    pixel_ctx c = {.data = data, .index = &index, .size = s};
    c.where = malloc((size_t)(n > 0 ? n : 1) * sizeof *c.where);
    if (!st) {
        size_t pixels = (size_t)index.set.image_size * index.set.image_size;
        c.raw = malloc(pixels * 2);
        c.image = malloc(pixels * sizeof *c.image);
    }
    int nunits = (n + BLOCK - 1) / BLOCK;
    double *gathered = malloc((size_t)(nunits > 0 ? nunits : 1) * BLOCK * npix * sizeof *gathered);
    float *pixels = malloc((size_t)(n > 0 ? n : 1) * npix * sizeof *pixels);
    if (!st && (!c.where || !gathered || !pixels || !c.raw || !c.image))
        st = rd_fail(err, RD_ENOMEM, "no memory for %d images of %d x %d pixels", n, s, s);
    if (!st) st = match_rows(p, data, &index, c.where, err);
    /* The set's open is agreed; every rank read the ids and matched the rows itself, so all
     * agree on st here. */
    if (!st)
        st = rd_probe_run_units(comm, nunits, BLOCK * npix, pixel_unit, &c, "reading shards",
                                gathered, err);
    free(c.raw);
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
