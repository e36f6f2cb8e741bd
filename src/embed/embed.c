/* Embedding a shards folder with a frozen backbone: see include/rdino/embed.h. */
#include "rdino/embed.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embed_output.h"
#include "rdino/agree.h"
#include "rdino/checkpoint.h"
#include "rdino/file.h"
#include "rdino/h5store.h"
#include "rdino/log.h"
#include "rdino/shard.h"
#include "rdino/shard_reader.h"

static const char *const SPLIT_NAMES[3] = {"train", "val", "test"};

/* ---- small pieces ------------------------------------------------------------------------ */

rd_status rd_embed_parse_splits(const char *text, unsigned *mask, rd_error *err) {
    *mask = 0;
    const char *p = text;
    for (;;) {
        while (*p == ' ') p++;
        size_t len = strcspn(p, ", ");
        int known = 0;
        for (int k = 0; k < 3; k++)
            if (len == strlen(SPLIT_NAMES[k]) && strncmp(p, SPLIT_NAMES[k], len) == 0) {
                *mask |= 1u << k;
                known = 1;
            }
        if (len == 3 && strncmp(p, "all", 3) == 0) {
            *mask |= 7u;
            known = 1;
        }
        if (!known)
            return rd_fail(err, RD_EINVAL,
                           "embed.splits: '%.*s' in \"%s\" is not a split (train, val, test or "
                           "all, comma-separated)",
                           (int)len, p, text);
        p += len;
        while (*p == ' ') p++;
        if (*p == '\0') return RD_OK;
        p++; /* the comma */
    }
}

/* "train,val" for a mask. */
static void splits_text(unsigned mask, char *buf, size_t n) {
    buf[0] = '\0';
    for (int k = 0; k < 3; k++)
        if (mask & (1u << k))
            snprintf(buf + strlen(buf), n - strlen(buf), "%s%s", buf[0] ? "," : "", SPLIT_NAMES[k]);
}

void rd_embed_rank_batches(int64_t nbatches, int nranks, int rank, int64_t *first, int64_t *end) {
    *first = nbatches * rank / nranks;
    *end = nbatches * (rank + 1) / nranks;
}

rd_status rd_embed_input(rd_resampler *rs, const rd_grey_image *img, int r, rd_kernel kernel,
                         float mean, float std, float *out, rd_error *err) {
    int S = img->width;
    if (img->height != S || (img->depth != 8 && img->depth != 16) || r < 1)
        return rd_fail(err, RD_EINVAL, "embedding input: %dx%d image at %d bits, resolution %d",
                       img->width, img->height, img->depth, r);
    size_t npix = (size_t)r * r;
    if (r == S) {
        float maxval = img->depth == 8 ? 255.0f : 65535.0f;
        if (img->depth == 8) {
            const uint8_t *v = img->data;
            for (size_t i = 0; i < npix; i++) out[i] = ((float)v[i] / maxval - mean) / std;
        } else {
            const uint16_t *v = img->data;
            for (size_t i = 0; i < npix; i++) out[i] = ((float)v[i] / maxval - mean) / std;
        }
        return RD_OK;
    }
    rd_geometry g = rd_geometry_resize(S, S, r, r);
    rd_status st = rd_resample_grey(rs, img, &g, kernel, out, err);
    if (st) return st;
    for (size_t i = 0; i < npix; i++) out[i] = (out[i] - mean) / std;
    return RD_OK;
}

void rd_embed_patch_mean(const float *patch, int b, int n, int D, float *out) {
#pragma omp parallel for schedule(static) if ((long)b * n * D > 1 << 18)
    for (int i = 0; i < b; i++)
        for (int c0 = 0; c0 < D; c0 += 64) {
            int c1 = c0 + 64 < D ? c0 + 64 : D;
            double acc[64] = {0};
            for (int t = 0; t < n; t++) {
                const float *row = patch + ((size_t)i * n + t) * D;
                for (int c = c0; c < c1; c++) acc[c - c0] += row[c];
            }
            for (int c = c0; c < c1; c++)
                out[(size_t)i * D + c] = n > 0 ? (float)(acc[c - c0] / n) : 0.0f;
        }
}

/* The keys that define an encoder: its architecture and the input normalisation it was trained
 * with. */
static int encoder_key(const char *name) {
    return strncmp(name, "student.", 8) == 0 || strcmp(name, "crops.global_crops_size") == 0 ||
           strcmp(name, "pretrain.augment.mean") == 0 || strcmp(name, "pretrain.augment.std") == 0;
}

char *rd_embed_model_yaml(const rd_config *cfg) {
    /* rd_config_dump of a view holding only the encoder's keys (schema order, no origin notes) */
    rd_cfg_key *keys = malloc((size_t)cfg->nkeys * sizeof *keys);
    rd_cfg_value *values = malloc((size_t)cfg->nkeys * sizeof *values);
    char *yaml = NULL;
    if (keys && values) {
        rd_config view = {keys, 0, values};
        for (int i = 0; i < cfg->nkeys; i++)
            if (encoder_key(cfg->keys[i].name)) {
                keys[view.nkeys] = cfg->keys[i];
                values[view.nkeys] = cfg->values[i];
                values[view.nkeys++].origin = RD_CFG_FROM_DEFAULT;
            }
        yaml = rd_config_dump(&view);
    }
    free(keys);
    free(values);
    return yaml;
}

rd_status rd_embed_checkpoint_config(const char *path, const rd_config *run, rd_config *enc,
                                     rd_error *err) {
    rd_status st = rd_config_init(enc, err);
    if (!st) st = rd_checkpoint_load_config(path, enc, err);
    for (int i = 0; i < run->nkeys && !st; i++) {
        if (run->values[i].origin != RD_CFG_FROM_OVERRIDE || !encoder_key(run->keys[i].name))
            continue;
        size_t len = strlen(run->keys[i].name) + strlen(run->values[i].text) + 2;
        char *assignment = malloc(len);
        if (!assignment) {
            st = rd_fail(err, RD_ENOMEM, "out of memory");
            break;
        }
        snprintf(assignment, len, "%s=%s", run->keys[i].name, run->values[i].text);
        st = rd_config_override(enc, assignment, err);
        free(assignment);
    }
    return st;
}

/* A backbone declared from cfg in a fresh set without gradients (freed on failure). */
static rd_status declare_backbone(const rd_config *cfg, rd_vit *vit, rd_param_set *set,
                                  rd_error *err) {
    rd_vit_config vc;
    rd_params_init(set);
    rd_status st = rd_vit_config_from(cfg, &vc, err);
    if (!st) st = rd_vit_declare(vit, &vc, set, err);
    if (!st) st = rd_params_alloc(set, 0, err);
    if (st) rd_params_free(set);
    return st;
}

rd_status rd_embed_random_backbone(const rd_config *cfg, uint64_t seed, rd_vit *vit,
                                   rd_param_set *set, rd_error *err) {
    rd_status st = declare_backbone(cfg, vit, set, err);
    if (!st) rd_vit_init_params(vit, set, seed);
    return st;
}

rd_status rd_embed_checkpoint_backbone(const char *path, const char *model, const rd_config *enc,
                                       MPI_Comm comm, rd_vit *vit, rd_param_set *set,
                                       rd_error *err) {
    int rank;
    MPI_Comm_rank(comm, &rank);
    /* declaring fails the same way on every rank (same enc); reading is rank 0's alone */
    rd_status st = declare_backbone(enc, vit, set, err);
    if (st) return rd_wrap(err, "%s: the encoder its configuration describes", path);
    if (rank == 0) st = rd_checkpoint_load_params(path, model, set, 1u << RD_MODULE_BACKBONE, err);
    st = rd_agree(comm, st, err);
    if (!st) st = rd_bcast_floats(set->data, set->numel, 0, comm, err);
    if (st) rd_params_free(set);
    return st;
}

/* ---- the run ------------------------------------------------------------------------------ */

typedef struct embed_run {
    const rd_embed_params *p;
    const rd_vit *vit;
    const rd_param_set *params;
    MPI_Comm comm;
    int rank, nranks;
    rd_shard_set set;
    int64_t *rows;          /* [nsel] global shard rows of the selected images, ascending */
    int64_t nsel;           /* selected images = output rows */
    int64_t nbatches;       /* on the global grid of p->batch images */
    int64_t batch0, batch1; /* this rank's batches */
    int S, r, D, pixel_bytes;
    void *pixels; /* [batch, S, S] raw shard images */
    float *input; /* [batch, r, r] model input */
    float *pmean; /* [batch, D] */
    rd_resampler rs;
    rd_vit_context ctx;
    int ctx_ready;
    rd_h5file out;
    double read_s, forward_s, write_s;
} embed_run;

/* Selected images from rows[0..n) of a dataset into buf (row_bytes apart), one read per run of
 * consecutive shard rows. type RD_H5_STRING reads strings with stride row_bytes. */
static rd_status gather(embed_run *e, const char *dataset, rd_h5_type type, size_t row_bytes,
                        const int64_t *rows, int64_t n, void *buf, rd_error *err) {
    rd_status st = RD_OK;
    for (int64_t i = 0; i < n && !st;) {
        int64_t j = i + 1;
        while (j < n && rows[j] == rows[j - 1] + 1) j++;
        char *dst = (char *)buf + (size_t)i * row_bytes;
        if (type == RD_H5_STRING)
            st = rd_shard_set_read_strings(&e->set, dataset, rows[i], j - i, dst, row_bytes, err);
        else if (strcmp(dataset, "/images") == 0) /* verified against their CRC32C */
            st = rd_shard_set_read_images(&e->set, rows[i], j - i, dst, err);
        else
            st = rd_shard_set_read(&e->set, dataset, type, rows[i], j - i, dst, err);
        i = j;
    }
    return st;
}

/* This rank's output rows: [first, end) of the selection. */
static void rank_rows(const embed_run *e, int64_t *first, int64_t *end) {
    int64_t B = e->p->batch;
    *first = e->batch0 * B < e->nsel ? e->batch0 * B : e->nsel;
    *end = e->batch1 * B < e->nsel ? e->batch1 * B : e->nsel;
}

/* embed.on_corrupt: skip. Before the work is split, every rank checks the CRC32C of a contiguous
 * share of the selected images; the corrupt ones (named in warnings) leave the selection on every
 * rank alike, so the batches stay the same for any number of ranks. Collective. */
static rd_status drop_corrupt(embed_run *e, int64_t *dropped, rd_error *err) {
    const int64_t lo = e->nsel * e->rank / e->nranks, hi = e->nsel * (e->rank + 1) / e->nranks;
    size_t bytes = (size_t)e->set.image_size * e->set.image_size * (e->set.bit_depth > 8 ? 2 : 1);
    void *pixels = malloc(bytes);
    uint8_t *bad = calloc((size_t)e->nsel, 1);
    rd_status st = pixels && bad ? RD_OK : rd_fail(err, RD_ENOMEM, "out of memory");
    for (int64_t i = lo; i < hi && !st; i++) {
        rd_error e1 = {0};
        rd_status one = rd_shard_set_read_images(&e->set, e->rows[i], 1, pixels, &e1);
        if (one == RD_ECORRUPT) {
            rd_warn("leaving out a corrupt image (embed.on_corrupt: skip): %s", e1.msg);
            bad[i] = 1;
        } else if (one) {
            *err = e1;
            st = one;
        }
    }
    st = rd_agree(e->comm, st, err);
    if (!st) MPI_Allreduce(MPI_IN_PLACE, bad, (int)e->nsel, MPI_UINT8_T, MPI_MAX, e->comm);
    int64_t kept = 0;
    for (int64_t i = 0; !st && i < e->nsel; i++)
        if (!bad[i]) e->rows[kept++] = e->rows[i];
    if (!st) {
        *dropped = e->nsel - kept;
        e->nsel = kept;
    }
    free(pixels);
    free(bad);
    return st;
}

static rd_status select_images(embed_run *e, rd_error *err) {
    const rd_shard_set *s = &e->set;
    e->rows = malloc((size_t)(s->n > 0 ? s->n : 1) * sizeof *e->rows);
    if (!e->rows) return rd_fail(err, RD_ENOMEM, "out of memory for %lld rows", (long long)s->n);
    for (int64_t i = 0; i < s->n; i++)
        if (e->p->splits & (1u << s->split[i])) e->rows[e->nsel++] = i;
    return RD_OK;
}

/* The global grid of batches over the selection, and this rank's range of it. */
static rd_status split_batches(embed_run *e, rd_error *err) {
    const rd_shard_set *s = &e->set;
    if (e->nsel == 0) {
        char names[32];
        splits_text(e->p->splits, names, sizeof names);
        return rd_fail(err, RD_ENOTFOUND, "%s: no images in the split(s) %s (embed.splits)", s->dir,
                       names);
    }
    int64_t B = e->p->batch;
    e->nbatches = (e->nsel + B - 1) / B;
    rd_embed_rank_batches(e->nbatches, e->nranks, e->rank, &e->batch0, &e->batch1);
    return RD_OK;
}

static rd_status allocate(embed_run *e, rd_error *err) {
    const rd_vit_config *c = &e->vit->cfg;
    /* no batch is larger than the selection */
    size_t B = (size_t)(e->p->batch < e->nsel ? e->p->batch : e->nsel);
    e->S = e->set.image_size;
    e->r = e->p->resolution > 0 ? e->p->resolution : e->S;
    e->D = c->embed_dim;
    e->pixel_bytes = e->set.bit_depth > 8 ? 2 : 1;
    if (e->r < c->patch_size)
        return rd_fail(err, RD_EINVAL, "embed.resolution %d is smaller than the patch size %d",
                       e->r, c->patch_size);
    if (e->r % c->patch_size != 0 && e->rank == 0)
        rd_warn("embed: resolution %d is not a multiple of the patch size %d: the last %d pixel "
                "rows and columns are not seen (as in PyTorch's strided patch embedding)",
                e->r, c->patch_size, e->r % c->patch_size);
    e->pixels = malloc(B * (size_t)e->S * e->S * (size_t)e->pixel_bytes);
    e->input = malloc(B * (size_t)e->r * e->r * sizeof(float));
    e->pmean = malloc(B * (size_t)e->D * sizeof(float));
    if (!e->pixels || !e->input || !e->pmean)
        return rd_fail(err, RD_ENOMEM, "out of memory for a batch of %zu images", B);
    rd_status st = rd_vit_context_init(&e->ctx, e->vit, (int)B, e->r, e->r, RD_VIT_INFER, err);
    e->ctx_ready = st == RD_OK;
    return st ? st : rd_vit_context_bf16(&e->ctx, e->p->bf16, err);
}

/* ---- output file -------------------------------------------------------------------------- */

static rd_status write_attributes(embed_run *e, rd_error *err) {
    const rd_embed_params *p = e->p;
    rd_h5file *f = &e->out;
    char splits[32];
    splits_text(p->splits, splits, sizeof splits);
    const char *str_names[] = {"shards", "splits", "shards_index_sha256", "resample"};
    const char *str_values[] = {e->set.dir, splits, e->set.index_sha256,
                                e->r == e->S ? "none" : rd_kernel_name(p->kernel)};
    rd_status st = rd_embed_write_encoder_attrs(f, p, e->vit, e->nsel, err);
    for (size_t i = 0; i < sizeof str_names / sizeof *str_names && !st; i++)
        st = rd_h5_set_attr_str(f, "/", str_names[i], str_values[i], err);
    if (!st) st = rd_h5_set_attr_int(f, "/", "resolution", e->r, err);
    if (!st) st = rd_h5_set_attr_int(f, "/", "image_size", e->S, err);
    if (!st) st = rd_h5_set_attr_float(f, "/", "mean", p->mean, err);
    if (!st) st = rd_h5_set_attr_float(f, "/", "std", p->std, err);
    return st;
}

static rd_status create_layout(embed_run *e, rd_error *err) {
    const rd_shard_set *s = &e->set;
    rd_embed_layout layout = {.rows = e->nsel,
                              .dim = e->D,
                              .batch = e->p->batch,
                              .width_image_id = s->width_image_id,
                              .width_patient_id = s->width_patient_id,
                              .width_view = s->width_view,
                              .has_source_row = s->has_source_row,
                              .has_shard_row = 1,
                              .split_meaning =
                                  "0 = train, 1 = val, 2 = test (patient-level, from the shards)",
                              .nfindings = s->nfindings,
                              .finding = s->finding};
    rd_status st = rd_embed_create_datasets(&e->out, &layout, err);
    return st ? st : write_attributes(e, err);
}

/* This rank's metadata rows, read from the shards and written collectively. */
static rd_status write_metadata(embed_run *e, rd_error *err) {
    int64_t first, end;
    rank_rows(e, &first, &end);
    int64_t n = end - first;
    const int64_t *rows = e->rows + first;
    const rd_shard_set *s = &e->set;
    size_t sw[3] = {s->width_image_id + 1, s->width_patient_id + 1, s->width_view + 1};
    const char *names[3] = {"/meta/image_id", "/meta/patient_id", "/meta/view"};
    size_t m = (size_t)(n > 0 ? n : 1);
    char *text[3] = {malloc(m * sw[0]), malloc(m * sw[1]), malloc(m * sw[2])};
    const char **ptrs = malloc(m * sizeof *ptrs);
    float *age = malloc(m * sizeof *age);
    int8_t *sex = malloc(m);
    uint8_t *split = malloc(m);
    int64_t *source_row = malloc(m * sizeof *source_row);
    int8_t *findings = malloc(m * (size_t)s->nfindings + 1); /* column k at k * m */
    rd_status st = RD_OK;
    if (!text[0] || !text[1] || !text[2] || !ptrs || !age || !sex || !split || !source_row ||
        !findings)
        st = rd_fail(err, RD_ENOMEM, "out of memory for the metadata of %lld images", (long long)n);
    double t0 = rd_now();
    for (int k = 0; k < 3 && !st; k++)
        st = gather(e, names[k], RD_H5_STRING, sw[k], rows, n, text[k], err);
    if (!st) st = gather(e, "/meta/age", RD_H5_F32, sizeof *age, rows, n, age, err);
    if (!st) st = gather(e, "/meta/sex", RD_H5_I8, 1, rows, n, sex, err);
    if (!st && s->has_source_row)
        st = gather(e, "/meta/source_row", RD_H5_I64, sizeof *source_row, rows, n, source_row, err);
    char finding[RD_MAX_FINDINGS][RD_FINDING_NAME_MAX + 8];
    for (int k = 0; k < s->nfindings; k++)
        snprintf(finding[k], sizeof finding[k], "/meta/%s", s->finding[k]);
    for (int k = 0; k < s->nfindings && !st; k++)
        st = gather(e, finding[k], RD_H5_I8, 1, rows, n, findings + (size_t)k * m, err);
    for (int64_t i = 0; i < n && !st; i++) split[i] = s->split[rows[i]];
    e->read_s += rd_now() - t0;
    st = rd_agree(e->comm, st, err);
    t0 = rd_now();
    for (int k = 0; k < 3 && !st; k++) {
        for (int64_t i = 0; i < n; i++) ptrs[i] = text[k] + (size_t)i * sw[k];
        st = rd_h5_write_strings(&e->out, names[k], first, n, ptrs, err);
    }
    if (!st) st = rd_h5_write_rows(&e->out, "/meta/age", RD_H5_F32, first, n, age, err);
    if (!st) st = rd_h5_write_rows(&e->out, "/meta/sex", RD_H5_I8, first, n, sex, err);
    if (!st) st = rd_h5_write_rows(&e->out, "/meta/split", RD_H5_U8, first, n, split, err);
    if (!st && s->has_source_row)
        st = rd_h5_write_rows(&e->out, "/meta/source_row", RD_H5_I64, first, n, source_row, err);
    if (!st) st = rd_h5_write_rows(&e->out, "/meta/shard_row", RD_H5_I64, first, n, rows, err);
    for (int k = 0; k < s->nfindings && !st; k++)
        st = rd_h5_write_rows(&e->out, finding[k], RD_H5_I8, first, n, findings + (size_t)k * m,
                              err);
    e->write_s += rd_now() - t0;
    for (int k = 0; k < 3; k++) free(text[k]);
    free(ptrs), free(age), free(sex), free(split), free(source_row), free(findings);
    return st;
}

/* ---- the batches -------------------------------------------------------------------------- */

/* Reads and prepares the images [first, first + b) of the selection, runs the backbone. */
static rd_status embed_batch(embed_run *e, int64_t first, int b, rd_vit_output *out,
                             rd_error *err) {
    const rd_embed_params *p = e->p;
    size_t image_bytes = (size_t)e->S * e->S * (size_t)e->pixel_bytes;
    double t0 = rd_now();
    rd_status st = gather(e, "/images", e->pixel_bytes > 1 ? RD_H5_U16 : RD_H5_U8, image_bytes,
                          e->rows + first, b, e->pixels, err);
    for (int i = 0; i < b && !st; i++) {
        rd_grey_image img = {e->S, e->S, e->set.bit_depth,
                             (unsigned char *)e->pixels + (size_t)i * image_bytes};
        st = rd_embed_input(&e->rs, &img, e->r, p->kernel, (float)p->mean, (float)p->std,
                            e->input + (size_t)i * e->r * e->r, err);
    }
    double t1 = rd_now();
    e->read_s += t1 - t0;
    if (!st)
        st = rd_vit_forward(&e->ctx, e->params, e->input, b, 1, e->r, e->r, NULL, NULL, out, err);
    if (!st) rd_embed_patch_mean(out->patch, b, out->n_patches, e->D, e->pmean);
    e->forward_s += rd_now() - t1;
    return st;
}

static rd_status embed_grid_batch(void *run, int64_t first, int b, rd_vit_output *out,
                                  rd_error *err) {
    return embed_batch(run, first, b, out, err);
}

/* Round j: every rank embeds its j-th batch (if it has one), then all write collectively. */
static rd_status embed_all(embed_run *e, rd_error *err) {
    rd_embed_grid g = {e->nsel, e->nbatches, e->batch0, e->batch1, e->p->batch, e->rank, e->nranks};
    return rd_embed_rounds(&g, &e->out, e->comm, e->pmean, embed_grid_batch, e, &e->write_s, err);
}

static void release(embed_run *e) {
    if (e->ctx_ready) rd_vit_context_free(&e->ctx);
    rd_resampler_free(&e->rs);
    rd_shard_set_close(&e->set);
    free(e->rows), free(e->pixels), free(e->input), free(e->pmean);
}

rd_status rd_embed_run(const rd_embed_params *p, const rd_vit *vit, const rd_param_set *params,
                       MPI_Comm comm, rd_embed_stats *stats, rd_error *err) {
    double start = rd_now();
    embed_run e;
    memset(&e, 0, sizeof e);
    e.p = p, e.vit = vit, e.params = params, e.comm = comm;
    e.out.id = H5I_INVALID_HID;
    MPI_Comm_rank(comm, &e.rank);
    MPI_Comm_size(comm, &e.nranks);
    memset(stats, 0, sizeof *stats);
    rd_error local = {0};
    rd_status st = RD_OK;
    if (p->batch < 1 || !(p->std > 0) || !(p->splits & 7u))
        st = rd_fail(&local, RD_EINVAL, "embed: batch %d, std %g and splits 0x%x must be positive",
                     p->batch, p->std, p->splits);
    if (!st) st = rd_shard_set_open(&e.set, p->shards_dir, 1, comm, &local); /* agreed inside */
    if (!st) st = rd_agree(comm, select_images(&e, &local), &local);         /* same on all ranks */
    if (!st && p->skip_corrupt) st = drop_corrupt(&e, &stats->corrupt_skipped, &local);
    if (!st) st = split_batches(&e, &local); /* same on all ranks */
    if (!st) st = rd_agree(comm, allocate(&e, &local), &local);
    if (!st) {
        char names[32];
        splits_text(p->splits, names, sizeof names);
        rd_info("embed: %lld images (%s) of %s, %dx%d -> %dx%d, %lld batches of %d over %d rank%s",
                (long long)e.nsel, names, e.set.dir, e.S, e.S, e.r, e.r, (long long)e.nbatches,
                p->batch, e.nranks, e.nranks > 1 ? "s" : "");
        st = rd_agree(comm, rd_embed_make_parent(p->output, e.rank, &local), &local);
    }
    double t0 = rd_now();
    if (!st) st = rd_h5_create(&e.out, p->output, comm, &local);
    if (!st) st = create_layout(&e, &local);
    e.write_s += rd_now() - t0;
    if (!st) st = write_metadata(&e, &local);
    if (!st) st = embed_all(&e, &local);
    st = rd_embed_finish(&e.out, st, comm, &e.write_s, &local, err);
    double seconds[3] = {e.read_s, e.forward_s, e.write_s};
    rd_embed_fill_stats(stats, comm, st, e.nsel, e.r, vit->cfg.embed_dim, seconds, start);
    release(&e);
    return st;
}
