/* The embeddings file (docs/FORMATS.md, "Embeddings") as both inputs write it: the shards
 * (embed.c) and PNG files (embed_images.c). Datasets, the attributes that describe the
 * encoder, the output folder, and the progress count of the global batch grid (embed.h). */
#ifndef RDINO_EMBED_OUTPUT_H
#define RDINO_EMBED_OUTPUT_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "rdino/embed.h"
#include "rdino/error.h"
#include "rdino/h5store.h"
#include "rdino/metadata.h"
#include "rdino/vit.h"

typedef struct rd_embed_layout {
    int64_t rows; /* N */
    int dim;      /* D */
    int batch;    /* images per forward: /cls and /patch_mean chunks hold whole batches */
    size_t width_image_id, width_patient_id, width_view; /* fixed string widths, >= 1 */
    int has_source_row, has_shard_row;
    const char *split_meaning; /* the "meaning" of /meta/split */
    int nfindings;             /* finding label columns /meta/<finding[k]> (int8), 0: none */
    const char (*finding)[RD_FINDING_NAME_MAX];
} rd_embed_layout;

/* Collective: /cls, /patch_mean [N, D] and the /meta datasets, each numeric one with its
 * "meaning" attribute. */
rd_status rd_embed_create_datasets(rd_h5file *f, const rd_embed_layout *layout, rd_error *err);

/* Collective: the root attributes every embeddings file has: format_version, encoder, init,
 * checkpoint, weights (released weights only), seed (random init only), model_config, config,
 * creator, batch, num_images, embed_dim, patch_size and interpolation (of vit). */
rd_status rd_embed_write_encoder_attrs(rd_h5file *f, const rd_embed_params *p, const rd_vit *vit,
                                       int64_t rows, rd_error *err);

/* Rank 0 creates the folder of output (others return RD_OK). */
rd_status rd_embed_make_parent(const char *output, int rank, rd_error *err);

/* The global batch grid of a run (embed.h): rows cut into batches of `batch` images, rank k
 * holding batches [batch0, batch1) (rd_embed_rank_batches). */
typedef struct rd_embed_grid {
    int64_t rows, nbatches, batch0, batch1;
    int batch, rank, nranks;
} rd_embed_grid;

void rd_embed_grid_make(rd_embed_grid *g, int64_t rows, int batch, int rank, int nranks);
/* This rank's rows [*first, *end). */
void rd_embed_grid_rows(const rd_embed_grid *g, int64_t *first, int64_t *end);

/* Computes the batch of rows [first, first + b): out (the ViT's outputs; /cls = out->cls) and
 * the mean patch tokens into the pmean buffer given to rd_embed_rounds. */
typedef rd_status (*rd_embed_batch_fn)(void *ctx, int64_t first, int b, rd_vit_output *out,
                                       rd_error *err);

/* Collective: in round j every rank computes its j-th batch (if it has one) with fn, the ranks
 * agree on errors, then all write that round's /cls and /patch_mean rows collectively; rank 0
 * shows the progress. *write_seconds accumulates the HDF5 time. */
rd_status rd_embed_rounds(const rd_embed_grid *g, rd_h5file *out, MPI_Comm comm, const float *pmean,
                          rd_embed_batch_fn fn, void *ctx, double *write_seconds, rd_error *err);

/* Collective, how both inputs end a run: with st RD_OK publishes out (its time added to
 * *write_seconds); on any error the ranks agree on it, out is discarded and the error copied to
 * *err. Returns the agreed status. */
rd_status rd_embed_finish(rd_h5file *out, rd_status st, MPI_Comm comm, double *write_seconds,
                          rd_error *local, rd_error *err);

/* Collective: stats of a run of `images` rows (0 when st failed) with this rank's read, forward
 * and write seconds; the times reported are the slowest rank's. */
void rd_embed_fill_stats(rd_embed_stats *stats, MPI_Comm comm, rd_status st, int64_t images,
                         int resolution, int embed_dim, const double seconds[3], double start);

#endif
