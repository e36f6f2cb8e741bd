/* The pretraining data path: shards -> this rank's part of global batch `step`, as an
 * rd_step_batch for rd_trainer_step (docs/PRETRAIN.md, "Data and augmentation").
 *
 * Sampling. The training images are the rows with /meta/split == 0 of every shard listed in
 * the shards folder (read through rd_shard_set, shard_reader.h), in shard order (train index 0 ..
 * T-1). Pass e visits them in the permutation drawn from the Philox stream (seed, RD_RNG_SAMPLER,
 * epoch e); the passes are concatenated, global batch s is positions [s GB, (s + 1) GB) and rank r
 * holds the contiguous block [s GB + r B, s GB + (r + 1) B), B = GB / W. The sample at position q
 * has epoch e = q / T and is keyed by (e, q) everywhere.
 *
 * Per sample: 2 global + n_local local crops (augment.h), keyed by (seed, epoch, q, crop).
 * Per group of g consecutive positions (g = group_size divides B, so groups never straddle
 * ranks): iBOT masks over the group's 2g global crops (rd_ibot_masks_generate keyed by the
 * position of its first image) and stochastic-depth subsets over the group's 2g global rows and
 * n_local g local rows (rd_vit_drop_path_draw from the stream (seed, RD_RNG_DROP_PATH, epoch,
 * first position, 0 global / 1 local)), keep = max(floor(rows (1 - q)), 1) per group, block and
 * branch. The rank's tensors are the union of its groups' rows, so the crops, masks and subsets
 * of global batch s are the same whatever W is (only their split over ranks changes), and the
 * drop-path rescale rows / keep is the group's, not the rank's.
 *
 * Layout of a batch (rd_step_batch, rd_trainer_step's contract): global crops [2B, C, G, G]
 * crop-major (row c B + b = crop c of image b), local crops [n_l B, C, L, L] (row j B + b), masks
 * [2B, N], mask_indices ascending over the 2B x N flat patch index, masks_weight 1 / (masked
 * patches of the owning crop), drop-path subsets (NULL when the rate is 0) over those rows.
 *
 * Prefetch: with prefetch on, a background thread reads and augments step s + 1 while the caller
 * computes step s (two buffers, sized once; nothing is allocated per step). Only the calling
 * thread opens shards and makes MPI calls; the prefetch thread only reads from open shards.
 *
 * HDF5 (Debian's build) is not thread-safe. While a loader with prefetch is open, every HDF5 call
 * made by any other thread of the process (checkpoint writer, embeddings, ...) must hold
 * rd_hdf5_lock() (h5store.h; collective calls may be made while holding it: the prefetch thread
 * never waits on MPI). */
#ifndef RDINO_LOADER_H
#define RDINO_LOADER_H

#include <stdint.h>

#include "rdino/augment.h"
#include "rdino/config.h"
#include "rdino/error.h"
#include "rdino/file.h"
#include "rdino/masks.h"
#include "rdino/step.h"
#include "rdino/vit.h"

typedef struct rd_loader_params {
    char shards_dir[RD_PATH_MAX]; /* the shards folder (rdino-shard's output) */
    uint64_t seed;
    int global_batch; /* GB, divisible by ranks */
    int ranks, rank;  /* W, r */
    int group_size;   /* g: divides GB / W; 0 = GB / W (DINOv2: per-rank draws) */
    rd_augment_config augment;
    rd_mask_config masks;
    rd_vit_config vit; /* drop path: depth, drop_path_rate, drop_path_uniform */
    int prefetch;
    int max_open_shards; /* shard files kept open (at least B are) */
    int skip_corrupt;    /* pretrain.on_corrupt: skip (else a corrupt image is an error) */
} rd_loader_params;

/* From the run configuration: train.seed, crops.*, ibot.mask_*, pretrain.augment.*,
 * pretrain.group_size, pretrain.data.* (shards_dir: pretrain.data.shards_dir, else
 * shard.output_dir, else <data.output_dir>/shards); global_batch is pretrain.global_batch's
 * value (0: ranks x train.batch_size_per_gpu); channels of the crops (1: grey, which
 * rd_vit_forward accepts for a model of any in_chans; or vit->in_chans); the drop-path settings
 * and patch size from vit. */
rd_status rd_loader_params_from_config(const rd_config *config, const rd_vit_config *vit,
                                       int channels, int global_batch, int ranks, int rank,
                                       rd_loader_params *p, rd_error *err);

/* The per-rank batch B = GB / W and the effective group size, after checking that W divides GB
 * and g divides B (the messages name the keys). */
rd_status rd_loader_check(const rd_loader_params *p, int *batch, int *group, rd_error *err);

/* Capacity for masked patches of one batch (rd_step_config.max_masked): B / g groups of
 * rd_ibot_masks_upperbound over 2g crops (more than DINOv2's bound over 2B). */
int rd_loader_max_masked(const rd_loader_params *p);

typedef struct rd_loader rd_loader;

/* Opens the shards folder (rd_shard_set_open on MPI_COMM_SELF: every shard's header, /meta/split
 * and /meta/crc32c; image size, bit depth and shapes
 * must agree; errors name the shard file), sizes all buffers, starts the prefetch thread. */
rd_status rd_loader_open(rd_loader **loader, const rd_loader_params *p, rd_error *err);
void rd_loader_close(rd_loader *loader);

/* This rank's part of global batch `step` (any step >= 0; consecutive steps are prefetched). The
 * pointers in *batch stay valid until the next call. Every image read is checked against its
 * CRC32C (shard_reader.h). A corrupt image is an RD_ECORRUPT error naming the shard file, row and
 * image id; with skip_corrupt the sample takes instead the image of the next position of its
 * pass whose image is intact (same crops, masks and keys: only the pixels change), so the batch
 * is the same on any number of ranks; it is counted in the stats (docs/PRETRAIN.md). */
rd_status rd_loader_next(rd_loader *loader, int64_t step, rd_step_batch *batch, rd_error *err);

int64_t rd_loader_train_images(const rd_loader *loader); /* T */
int rd_loader_batch(const rd_loader *loader);            /* B */
int rd_loader_image_size(const rd_loader *loader);       /* S of the shards' S x S images */
int rd_loader_bit_depth(const rd_loader *loader);        /* 8 or 16 */
/* The pass (data epoch) global batch `step` starts in: step GB / T. */
int64_t rd_loader_pass_of(const rd_loader *loader, int64_t step);

/* Which shard image sits at global position q (calling thread only; for tests and logs). */
rd_status rd_loader_image_at(rd_loader *loader, int64_t position, int *shard, int64_t *row,
                             rd_error *err);

typedef struct rd_loader_stats {
    int64_t batches;          /* returned by rd_loader_next */
    double wait_seconds;      /* total time rd_loader_next kept its caller waiting */
    double last_wait_seconds; /* of the last call */
    double read_seconds;      /* shard reads (including HDF5 lock waits), all batches */
    double augment_seconds;   /* crops, masks and drop-path subsets, all batches */
    int64_t shard_opens;      /* files opened (the checks at open included) */
    int64_t corrupt_skipped;  /* samples of returned batches whose corrupt image was replaced */
    int64_t corrupt_images;   /* distinct corrupt images this rank found */
} rd_loader_stats;

void rd_loader_get_stats(const rd_loader *loader, rd_loader_stats *stats);

#endif
