/* The embeddings file's datasets and encoder attributes; see embed_output.h. */
#include "embed_output.h"

#include <stdio.h>
#include <string.h>

#include "rdino/agree.h"
#include "rdino/file.h"
#include "rdino/log.h"
#include "rdino/weights.h"

static const struct {
    const char *name, *meaning;
} MEANINGS[] = {
    {"/meta/age", "age in years at the study; NaN = unknown"},
    {"/meta/sex", "0 = female, 1 = male, -1 = unknown"},
    {"/meta/source_row", "line of the original metadata CSV (the header is line 1)"},
    {"/meta/shard_row", "row of the image in the shards (= manifest row, 0-based)"},
};

/* What the file takes on disk, generously: both embeddings in fp32 and the metadata columns, in
 * whole chunks (chunk_rows, and 4096 rows of metadata), and 256 KiB for HDF5's own metadata and
 * the attributes (config text). */
static int64_t embeddings_bytes(const rd_embed_layout *l, int64_t chunk_rows, int64_t meta_chunk) {
    int64_t rows = (l->rows + chunk_rows - 1) / chunk_rows * chunk_rows;
    int64_t meta_rows = (l->rows + meta_chunk - 1) / meta_chunk * meta_chunk;
    int64_t meta_per_row = (int64_t)(l->width_image_id + l->width_patient_id + l->width_view) + 4 +
                           1 + 1 + 8 + 8 + l->nfindings;
    return rows * 2 * l->dim * (int64_t)sizeof(float) + meta_rows * meta_per_row + (256 << 10);
}

rd_status rd_embed_create_datasets(rd_h5file *f, const rd_embed_layout *l, rd_error *err) {
    int64_t B = l->batch, n = l->rows;
    /* chunks of whole batches, at least 64 rows: a round writes whole chunks */
    int64_t chunk_rows = B * ((64 + B - 1) / B);
    int64_t dims[2] = {n, l->dim}, chunk[2] = {chunk_rows, l->dim};
    /* room for all of it, or a clean error before HDF5 writes (see rd_h5_check_room) */
    int64_t meta_chunk = 4096;
    rd_status st = rd_h5_check_room(f, embeddings_bytes(l, chunk_rows, meta_chunk), err);
    if (!st) st = rd_h5_create_dataset(f, "/cls", RD_H5_F32, 2, dims, chunk, 0, err);
    if (!st) st = rd_h5_create_dataset(f, "/patch_mean", RD_H5_F32, 2, dims, chunk, 0, err);
    if (!st) st = rd_h5_create_strings(f, "/meta/image_id", n, l->width_image_id, 0, 0, err);
    if (!st) st = rd_h5_create_strings(f, "/meta/patient_id", n, l->width_patient_id, 0, 0, err);
    if (!st) st = rd_h5_create_strings(f, "/meta/view", n, l->width_view, 0, 0, err);
    if (!st) st = rd_h5_create_dataset(f, "/meta/age", RD_H5_F32, 1, &n, &meta_chunk, 0, err);
    if (!st) st = rd_h5_create_dataset(f, "/meta/sex", RD_H5_I8, 1, &n, &meta_chunk, 0, err);
    if (!st) st = rd_h5_create_dataset(f, "/meta/split", RD_H5_U8, 1, &n, &meta_chunk, 0, err);
    if (!st && l->has_source_row)
        st = rd_h5_create_dataset(f, "/meta/source_row", RD_H5_I64, 1, &n, &meta_chunk, 0, err);
    if (!st && l->has_shard_row)
        st = rd_h5_create_dataset(f, "/meta/shard_row", RD_H5_I64, 1, &n, &meta_chunk, 0, err);
    for (size_t i = 0; i < sizeof MEANINGS / sizeof *MEANINGS && !st; i++)
        if (rd_h5_exists(f, MEANINGS[i].name))
            st = rd_h5_set_attr_str(f, MEANINGS[i].name, "meaning", MEANINGS[i].meaning, err);
    for (int k = 0; k < l->nfindings && !st; k++) {
        char name[RD_FINDING_NAME_MAX + 8];
        snprintf(name, sizeof name, "/meta/%s", l->finding[k]);
        st = rd_h5_create_dataset(f, name, RD_H5_I8, 1, &n, &meta_chunk, 0, err);
        if (!st) st = rd_h5_set_attr_str(f, name, "meaning", RD_FINDING_MEANING, err);
    }
    if (!st) st = rd_h5_set_attr_str(f, "/meta/split", "meaning", l->split_meaning, err);
    if (!st)
        st = rd_h5_set_attr_str(f, "/cls", "meaning", "CLS token after the final LayerNorm", err);
    if (!st)
        st = rd_h5_set_attr_str(f, "/patch_mean", "meaning",
                                "mean of the patch tokens after the final LayerNorm (registers "
                                "excluded)",
                                err);
    return st;
}

rd_status rd_embed_write_encoder_attrs(rd_h5file *f, const rd_embed_params *p, const rd_vit *vit,
                                       int64_t rows, rd_error *err) {
    const char *str_names[] = {"encoder", "checkpoint",    "init",   "model_config",
                               "config",  "interpolation", "creator"};
    const char *str_values[] = {
        p->encoder, p->checkpoint,
        p->init,    p->model_config,
        p->config,  rd_pos_interp_name((rd_pos_interp)rd_pos_interp_of(&vit->cfg)),
        p->creator};
    const char *int_names[] = {"format_version", "num_images", "embed_dim", "patch_size", "batch"};
    const int64_t int_values[] = {RD_EMBED_FORMAT_VERSION, rows, vit->cfg.embed_dim,
                                  vit->cfg.patch_size, p->batch};
    rd_status st = RD_OK;
    for (size_t i = 0; i < sizeof str_names / sizeof *str_names && !st; i++)
        st = rd_h5_set_attr_str(f, "/", str_names[i], str_values[i] ? str_values[i] : "", err);
    for (size_t i = 0; i < sizeof int_names / sizeof *int_names && !st; i++)
        st = rd_h5_set_attr_int(f, "/", int_names[i], int_values[i], err);
    if (!st && p->weights) st = rd_h5_set_attr_str(f, "/", "weights", p->weights, err);
    if (!st && strcmp(p->init, "random") == 0)
        st = rd_h5_set_attr_int(f, "/", "seed", p->seed, err);
    return st;
}

rd_status rd_embed_make_parent(const char *output, int rank, rd_error *err) {
    char dir[RD_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", output);
    char *slash = strrchr(dir, '/');
    if (rank != 0 || !slash || slash == dir) return RD_OK;
    *slash = '\0';
    return rd_mkdir_p(dir, err);
}

void rd_embed_grid_make(rd_embed_grid *g, int64_t rows, int batch, int rank, int nranks) {
    *g = (rd_embed_grid){.rows = rows, .batch = batch, .rank = rank, .nranks = nranks};
    g->nbatches = (rows + batch - 1) / batch;
    rd_embed_rank_batches(g->nbatches, nranks, rank, &g->batch0, &g->batch1);
}

void rd_embed_grid_rows(const rd_embed_grid *g, int64_t *first, int64_t *end) {
    *first = g->batch0 * g->batch < g->rows ? g->batch0 * g->batch : g->rows;
    *end = g->batch1 * g->batch < g->rows ? g->batch1 * g->batch : g->rows;
}

/* Rows finished by all ranks after `rounds` rounds: the progress count. */
static int64_t rows_done(const rd_embed_grid *g, int64_t rounds) {
    int64_t done = 0;
    for (int k = 0; k < g->nranks; k++) {
        int64_t b0, b1;
        rd_embed_rank_batches(g->nbatches, g->nranks, k, &b0, &b1);
        int64_t last = b0 + rounds < b1 ? b0 + rounds : b1;
        int64_t hi = last * g->batch < g->rows ? last * g->batch : g->rows;
        done += hi - b0 * g->batch > 0 ? hi - b0 * g->batch : 0;
    }
    return done;
}

rd_status rd_embed_rounds(const rd_embed_grid *g, rd_h5file *out, MPI_Comm comm, const float *pmean,
                          rd_embed_batch_fn fn, void *ctx, double *write_seconds, rd_error *err) {
    int64_t rounds = (g->nbatches + g->nranks - 1) / g->nranks;
    rd_progress progress;
    rd_progress_start(&progress, "embed", g->rows, 0);
    rd_status st = RD_OK;
    for (int64_t j = 0; j < rounds && !st; j++) {
        int64_t batch = g->batch0 + j, first = batch * g->batch, b = 0;
        rd_vit_output vo = {0};
        if (first > g->rows) first = g->rows;
        if (batch < g->batch1) {
            b = g->rows - first < g->batch ? g->rows - first : g->batch;
            st = fn(ctx, first, (int)b, &vo, err);
        }
        st = rd_agree(comm, st, err);
        double t0 = rd_now();
        /* a rank without a batch this round writes no rows (any valid pointer will do) */
        const float *cls = b > 0 ? vo.cls : pmean;
        if (!st) st = rd_h5_write_rows(out, "/cls", RD_H5_F32, first, b, cls, err);
        if (!st) st = rd_h5_write_rows(out, "/patch_mean", RD_H5_F32, first, b, pmean, err);
        *write_seconds += rd_now() - t0;
        if (!st) rd_progress_update(&progress, rows_done(g, j + 1), NULL);
    }
    if (!st) rd_progress_finish(&progress, NULL);
    return st;
}

rd_status rd_embed_finish(rd_h5file *out, rd_status st, MPI_Comm comm, double *write_seconds,
                          rd_error *local, rd_error *err) {
    double t0 = rd_now();
    if (!st) st = rd_h5_publish(out, local);
    *write_seconds += rd_now() - t0;
    if (st) {
        st = rd_agree(comm, st, local);
        rd_h5_discard(out);
        if (err) *err = *local;
    }
    return st;
}

void rd_embed_fill_stats(rd_embed_stats *stats, MPI_Comm comm, rd_status st, int64_t images,
                         int resolution, int embed_dim, const double seconds[3], double start) {
    double slowest[3];
    MPI_Allreduce(seconds, slowest, 3, MPI_DOUBLE, MPI_MAX, comm);
    stats->images = st ? 0 : images;
    stats->resolution = resolution;
    stats->embed_dim = embed_dim;
    stats->read_seconds = slowest[0];
    stats->forward_seconds = slowest[1];
    stats->write_seconds = slowest[2];
    stats->seconds = rd_now() - start;
}
