/* iBOT block masks: DINOv2's collate_data_and_cast (dinov2/data/collate.py) over the 2B global
 * crops of a group of B images, with BEiT's MaskingGenerator (dinov2/data/masking.py). Random draws
 * come from the counter-based RNG keyed by (seed, epoch, global index of the group's first image),
 * so the masks of an image group never depend on the rank that holds it. */
#ifndef RDINO_MASKS_H
#define RDINO_MASKS_H

#include <stdint.h>

#include "rdino/arena.h"
#include "rdino/error.h"
#include "rdino/rng.h"

typedef struct rd_mask_config {
    int grid_h, grid_w;          /* patch grid of a global crop (224/p each) */
    double sample_probability;   /* ibot.mask_sample_probability (0.5) */
    double ratio_min, ratio_max; /* ibot.mask_ratio_min_max (0.1, 0.5) */
    int min_patches;             /* 4 */
    double max_patches;          /* 0.5 * 224 // p * 224 // p (98 for p = 16) */
    double min_aspect;           /* 0.3; the max is 1 / min_aspect */
} rd_mask_config;

/* DINOv2's settings for global crops of crop_size pixels and patch size p. */
void rd_mask_config_default(rd_mask_config *cfg, int crop_size, int patch_size,
                            double sample_probability, double ratio_min, double ratio_max);

/* BEiT block masking into mask [grid_h * grid_w] (row-major, must be zeroed by the caller):
 * blocks of area U(min_patches, budget) and log-uniform aspect until target patches are set
 * or a block attempt (10 tries) adds nothing. Returns the number of patches set (<= target). */
int rd_block_mask(const rd_mask_config *cfg, uint8_t *mask, int target, rd_rng *rng);

/* Masks of one group of n_images global crops (crop-major [crop 1 of B images; crop 2]). */
typedef struct rd_ibot_masks {
    int n_images, n_patches, capacity; /* capacity: images the buffers hold */
    uint8_t *mask;                     /* [n_images, n_patches] */
    int count;                         /* M, masked patches */
    int *indices;                      /* [M] flat indices into n_images x n_patches, ascending */
    float *weight;                     /* [M] 1 / (masked patches of the image owning the patch) */
    int masked_images;                 /* floor(n_images x sample_probability) */
    int upperbound;                    /* sum of floor(N probs[i+1]): DINOv2's buffer bound, >= M */
} rd_ibot_masks;

rd_status rd_ibot_masks_alloc(rd_ibot_masks *m, int capacity, int n_patches, rd_arena *arena,
                              rd_error *err);
/* collate_data_and_cast: n_masked = floor(n_images p) images get block masks with stratified
 * ratios U(probs[i], probs[i+1]) (probs = float32 linspace(ratio_min, ratio_max, n_masked+1)),
 * the others none, then the masks are shuffled over the images. */
rd_status rd_ibot_masks_generate(rd_ibot_masks *m, const rd_mask_config *cfg, int n_images,
                                 uint64_t seed, uint32_t epoch, uint64_t first_image,
                                 rd_error *err);
/* Rebuilds count / indices / weight from m->mask (for masks injected from elsewhere). */
void rd_ibot_masks_index(rd_ibot_masks *m);
/* The largest upperbound rd_ibot_masks_generate can report for n_images (sizes buffers). */
int rd_ibot_masks_upperbound(const rd_mask_config *cfg, int n_images);

#endif
