/* The embeddings file (docs/FORMATS.md, "Embeddings") as both inputs write it: the shards
 * (embed.c) and PNG files (embed_images.c). Datasets, the attributes that describe the
 * encoder, the output folder, and the progress count of the global batch grid (embed.h). */
#ifndef RDINO_EMBED_OUTPUT_H
#define RDINO_EMBED_OUTPUT_H

#include <stddef.h>
#include <stdint.h>

#include "rdino/embed.h"
#include "rdino/error.h"
#include "rdino/h5store.h"
#include "rdino/vit.h"

typedef struct rd_embed_layout {
    int64_t rows; /* N */
    int dim;      /* D */
    int batch;    /* images per forward: /cls and /patch_mean chunks hold whole batches */
    size_t width_image_id, width_patient_id, width_view; /* fixed string widths, >= 1 */
    int has_source_row, has_shard_row;
    const char *split_meaning; /* the "meaning" of /meta/split */
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

/* Rows finished by all ranks after `rounds` rounds of the grid (rank k computes its j-th batch
 * in round j; rd_embed_rank_batches): the progress count. */
int64_t rd_embed_rows_done(int64_t nbatches, int nranks, int batch, int64_t rows, int64_t rounds);

#endif
