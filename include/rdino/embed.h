/* Embeddings: a frozen ViT backbone run over every image of a shards folder, written as one
 * HDF5 file of CLS and mean-patch features with the shards' metadata rows (docs/FORMATS.md,
 * "Embeddings"). What rdino-embed does, and what rdino-analyze reads.
 *
 * Work split: the selected images (shard order, filtered by split) are cut into batches of
 * `batch` images on a global grid (batch j = selected images [j*batch, (j+1)*batch)), and each
 * rank takes a contiguous range of whole batches. Every image is therefore computed in the
 * same batch, at the same position, whatever the number of ranks: the datasets are
 * bit-identical on 1 or 100 ranks (with the same OpenMP threads per rank). Each image's
 * result does not depend on its batch neighbours' values (every layer is row-wise or per
 * image), but it may change in the last bits with the batch size: BLAS picks other kernels for
 * other matrix sizes (OpenBLAS 0.3.21 does for small ones), so the grid, not luck, makes the
 * rank count irrelevant.
 *
 * Input of the model for an S x S shard image at resolution r: intensities v / (2^depth - 1)
 * on [0, 1], resampled to r x r with the image module's antialiased kernel when r != S, then
 * (x - mean) / std; the grey image goes into a 3-channel patch embedding as the replicated
 * grey image (vit.h: channel-summed weight). At r != the model's native size the ViT
 * interpolates its positional embedding (vit.h, rd_vit_pos_embed). */
#ifndef RDINO_EMBED_H
#define RDINO_EMBED_H

#include <mpi.h>
#include <stdint.h>

#include "rdino/config.h"
#include "rdino/error.h"
#include "rdino/image.h"
#include "rdino/params.h"
#include "rdino/vit.h"

enum { RD_EMBED_FORMAT_VERSION = 1 };

typedef struct rd_embed_params {
    const char *shards_dir; /* rdino-shard's output folder */
    const char *output;     /* the .h5 file to publish (its folder is created) */
    /* attributes: provenance for the reader */
    const char *encoder;      /* name of the encoder ("trained", "random-init", ...) */
    const char *init;         /* "checkpoint", "random" or "weights" */
    const char *checkpoint;   /* path of the checkpoint, "none" otherwise */
    const char *weights;      /* released weights read (init "weights"), else NULL */
    int64_t seed;             /* random init: the seed (stored when init is "random") */
    const char *model_config; /* the model's configuration keys as YAML */
    const char *config;       /* the full resolved configuration as YAML */
    const char *creator;      /* e.g. "rdino-embed 0.1" */
    /* the computation */
    int resolution;          /* model input side in pixels; 0 = the shards' image size */
    rd_kernel kernel;        /* resampling kernel when resolution differs from the shards' size */
    double mean, std;        /* normalisation of [0, 1] intensities (applied in float) */
    unsigned splits;         /* bit (1 << rd_split) set for each split to embed */
    int batch;               /* images per forward */
    int skip_corrupt;        /* an image failing its CRC32C is left out (else it is an error) */
    const rd_vit_bf16 *bf16; /* bf16 copies of the backbone's linears (vit.h), NULL = fp32 */
} rd_embed_params;

typedef struct rd_embed_stats {
    int64_t images;          /* rows written */
    int64_t corrupt_skipped; /* selected images left out: they failed their CRC32C */
    int resolution, embed_dim;
    double seconds;         /* wall time of rd_embed_run */
    double read_seconds;    /* reading and preparing images, slowest rank */
    double forward_seconds; /* ViT forwards, slowest rank */
    double write_seconds;   /* HDF5 creation, writes, publishing, slowest rank */
} rd_embed_stats;

/* The stage rdino-embed runs: the shards (embed.shards_dir, else the pipeline's shards folder),
 * or the PNG files embed.images names (src/embed/embed_images.h), embedded by the encoder:
 * released weights (embed.weights: a snapshot folder or a .safetensors file, weights.h), else
 * the one embed.init names (a checkpoint's embed.model backbone, the newest checkpoint when
 * embed.checkpoint is empty, or the seeded random initialisation), with embed.interpolation
 * over its own, into embed.output (default <embeddings>/<embed.name>.h5). PNG files are
 * preprocessed as embed.preprocess says (hf: the weights' preprocessor_config.json, the default
 * when there is one; rdino: preprocess.*); shards always as rdino, hf is refused for them.
 * Conflicting settings (two encoders, hf without a processor) are errors naming the keys.
 * Collective; errors agreed. */
rd_status rd_embed_stage(const rd_config *cfg, MPI_Comm comm, rd_error *err);

/* Collective on comm: embeds the selected images of p->shards_dir with the backbone vit and
 * its parameters (in RD_MODULE_BACKBONE of params; identical on every rank) and publishes
 * p->output atomically. On failure every rank returns an error, the same message everywhere,
 * and no output file is left behind. */
rd_status rd_embed_run(const rd_embed_params *p, const rd_vit *vit, const rd_param_set *params,
                       MPI_Comm comm, rd_embed_stats *stats, rd_error *err);

/* "train,val,test" (any subset, comma-separated, spaces allowed; "all" = every split) -> bit
 * mask (1 << RD_SPLIT_*). Empty or unknown names are errors naming the key embed.splits. */
rd_status rd_embed_parse_splits(const char *text, unsigned *mask, rd_error *err);

/* Batches [*first, *end) of rank `rank` of `nranks` out of nbatches, contiguous, sizes differing
 * by at most one. */
void rd_embed_rank_batches(int64_t nbatches, int nranks, int rank, int64_t *first, int64_t *end);

/* One shard image (S x S, 8 or 16 bits) -> model input out [r * r] as described above; rs is
 * the caller's resampling workspace (used only when r != S). */
rd_status rd_embed_input(rd_resampler *rs, const rd_grey_image *img, int r, rd_kernel kernel,
                         float mean, float std, float *out, rd_error *err);

/* out [b, D] = mean over the n patch tokens of patch [b, n, D], summed in double in token
 * order. */
void rd_embed_patch_mean(const float *patch, int b, int n, int D, float *out);

/* The random-init encoder: backbone from cfg (rd_vit_config_from: student.*,
 * crops.global_crops_size) in a fresh set (no gradients), DINOv2's initialisation with seed.
 * On failure set is freed. */
rd_status rd_embed_random_backbone(const rd_config *cfg, uint64_t seed, rd_vit *vit,
                                   rd_param_set *set, rd_error *err);

/* The configuration of a checkpoint's encoder: the one stored in the checkpoint, with the
 * encoder's keys (student.*, crops.global_crops_size, pretrain.augment.mean/std) that were
 * overridden on run's command line (origin RD_CFG_FROM_OVERRIDE) applied over it. enc is
 * initialised here; free it with rd_config_free, also on failure. */
rd_status rd_embed_checkpoint_config(const char *path, const rd_config *run, rd_config *enc,
                                     rd_error *err);

/* Collective on comm (enc identical on every rank): the backbone enc describes, in a fresh set
 * (no gradients), loaded from the checkpoint's "<model>/backbone/..." tensors (model "teacher"
 * or "student"; checkpoint.h) by rank 0 and broadcast. Missing tensors, shape mismatches and
 * damaged data are errors naming the file and the dataset, the same on every rank. On failure
 * set is freed. */
rd_status rd_embed_checkpoint_backbone(const char *path, const char *model, const rd_config *enc,
                                       MPI_Comm comm, rd_vit *vit, rd_param_set *set,
                                       rd_error *err);

/* The keys that define the encoder (student.*, crops.global_crops_size,
 * pretrain.augment.mean/std) as YAML, loadable with rd_config_load_string. Caller frees; NULL
 * when out of memory. */
char *rd_embed_model_yaml(const rd_config *cfg);

#endif
