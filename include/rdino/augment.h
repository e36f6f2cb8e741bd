/* DINOv2's multi-crop augmentation (DataAugmentationDINO, dinov2/data/augmentations.py) for grey
 * chest X-rays, in float on [0, 1].
 *
 * Per crop, in this order (torchvision semantics, the draws of one crop come from one Philox
 * stream keyed by (seed, RD_RNG_AUGMENT, epoch, global sample index, crop number)):
 *   RandomResizedCrop   torchvision's get_params exactly (rd_rrc_params), then the crop is resized
 *                       to size x size with the image module's antialiased cubic (Pillow BICUBIC,
 *                       rd_resample_grey on the cropped samples; both passes clamp to [0, 1] as
 *                       Pillow clips 8-bit images)
 *   RandomHorizontalFlip  p = flip_p
 *   ColorJitter         applied with p = jitter_p: brightness b ~ U(1 - s_b, 1 + s_b) (x b,
 *                       clamped) and contrast c ~ U(1 - s_c, 1 + s_c) (mean + c (x - mean),
 *                       clamped; mean of the crop), in a random order (torchvision draws a
 *                       permutation of its four ops; only the order of these two matters here, a
 *                       fair coin). Saturation, hue and RandomGrayscale do nothing to a grey image
 *                       (PIL's L of a grey RGB image is the grey value; hue needs colour): they
 *                       are left out and draw nothing.
 *   GaussianBlur        p = blur_p[kind] (DINOv2's effective values 0.0 / 0.9 / 0.5: its
 *                       GaussianBlur, dinov2/data/transforms.py, applies 1 - p),
 *                       sigma ~ U(blur_sigma), kernel of blur_kernel taps k_i ∝ exp(-x_i² / 2σ²)
 *                       normalised to sum 1, reflect padding (torch 'reflect': the edge sample is
 *                       not repeated)
 *   RandomSolarize      global crop 2 only, p = solarize_p: x >= 128/255 becomes 1 - x
 *   Normalize           (x - mean) / std, replicated to `channels` channels
 * Uniform draws that torch makes in float32 (scale, log-aspect, jitter factors, sigma) are rounded
 * to float32 the same way. Deviation from PIL: PIL rounds to uint8 after the resize, after each
 * jitter op and after the blur; we keep floats throughout (and a 16-bit source keeps its
 * precision). The contrast mean is the exact float mean, not PIL's integer-rounded mean of the
 * uint8 image.
 *
 * Crop numbers: 0 = global crop 1, 1 = global crop 2, 2 + j = local crop j. */
#ifndef RDINO_AUGMENT_H
#define RDINO_AUGMENT_H

#include <stddef.h>
#include <stdint.h>

#include "rdino/config.h"
#include "rdino/error.h"
#include "rdino/image.h"
#include "rdino/rng.h"

enum { RD_AUGMENT_MAX_BLUR = 63 }; /* largest blur kernel (taps) */

typedef enum { RD_CROP_GLOBAL1 = 0, RD_CROP_GLOBAL2 = 1, RD_CROP_LOCAL = 2 } rd_crop_kind;

typedef struct rd_augment_config {
    int global_size, local_size, n_local;
    double global_scale[2], local_scale[2]; /* area fractions (0.32, 1.0), (0.05, 0.32) */
    double ratio[2];                        /* aspect range (3/4, 4/3) */
    double flip_p;                          /* 0.5 */
    double jitter_p, brightness, contrast;  /* 0.8, 0.4, 0.4 */
    double blur_p[3];                       /* by rd_crop_kind: 0.0, 0.9, 0.5 */
    double blur_sigma[2];                   /* 0.1, 2.0 */
    int blur_kernel;                        /* taps, odd: 9 */
    double solarize_p;                      /* global crop 2: 0.2 */
    double solarize_threshold;              /* 128 / 255 */
    double mean, std;                       /* RAD-DINO: 0.5307, 0.2583 */
    int channels;                           /* output channels (grey replicated) */
} rd_augment_config;

/* DINOv2's values (vitl16 crops, effective blur probabilities) with RAD-DINO's mean and std. */
void rd_augment_config_default(rd_augment_config *cfg, int channels);
/* crops.{global_crops_size, global_crops_scale, local_crops_number, local_crops_size,
 * local_crops_scale} and pretrain.augment.*; validates (the message names the key). */
rd_status rd_augment_config_from(const rd_config *config, int channels, rd_augment_config *cfg,
                                 rd_error *err);
rd_status rd_augment_config_check(const rd_augment_config *cfg, rd_error *err);

/* ---- RandomResizedCrop parameters ---- */

typedef struct rd_crop_box {
    int top, left, height, width; /* torchvision's i, j, h, w */
} rd_crop_box;

/* torchvision.transforms.RandomResizedCrop.get_params for a width x height image: up to 10 tries
 * of area fraction U(scale) and aspect exp(U(log ratio)) (both float32 draws, the log in float32),
 * w = round(sqrt(A a)), h = round(sqrt(A / a)) (half to even), accepted when 0 < w <= width and
 * 0 < h <= height, then top ~ randint[0, height - h], left ~ randint[0, width - w]; otherwise the
 * centre crop with the aspect clamped to the ratio range. */
rd_crop_box rd_rrc_params(int width, int height, const double scale[2], const double ratio[2],
                          rd_rng *rng);

/* ---- photometric operations (in place on a w x h float image unless stated) ---- */

void rd_augment_hflip(float *x, int w, int h);
/* x b, clamped to [0, 1] (PIL ImageEnhance.Brightness: blend with black). */
void rd_augment_brightness(float *x, size_t n, float factor);
/* mean + c (x - mean), clamped to [0, 1] (ImageEnhance.Contrast: blend with the mean grey). */
void rd_augment_contrast(float *x, size_t n, float factor);
/* torchvision's kernel: x = -(taps/2) .. taps/2, k ∝ exp(-x² / (2 sigma²)), sum 1. taps odd, at
 * most RD_AUGMENT_MAX_BLUR. */
void rd_gaussian_kernel(double sigma, int taps, float *k);
/* Separable convolution with k (taps), reflect padding; w, h > taps / 2. scratch: w h + w + taps
 * floats. */
void rd_augment_blur(float *x, int w, int h, const float *k, int taps, float *scratch);
/* x >= threshold becomes 1 - x. */
void rd_augment_solarize(float *x, size_t n, float threshold);
/* out[c n + i] = (x[i] - mean) / std for c < channels. */
void rd_augment_normalize(const float *x, size_t n, float mean, float std, int channels,
                          float *out);

/* ---- whole crops ---- */

/* What happened to one crop (tests, debugging). */
typedef struct rd_crop_record {
    rd_crop_box box;
    int flipped, jittered, contrast_first, blurred, solarized;
    float brightness, contrast, sigma; /* drawn factors (0 when the op was not applied) */
} rd_crop_record;

/* Workspace for one thread: the resampler and buffers, sized at init for sources up to
 * max_width x max_height, so augmenting allocates nothing. */
typedef struct rd_augmenter {
    rd_augment_config cfg;
    int max_width, max_height;
    rd_resampler resampler;
    rd_buf crop;  /* the crop's source samples */
    rd_buf image; /* float crop [size^2], blur scratch */
} rd_augmenter;

rd_status rd_augmenter_init(rd_augmenter *a, const rd_augment_config *cfg, int max_width,
                            int max_height, rd_error *err);
void rd_augmenter_free(rd_augmenter *a);

/* Crop number `crop` of src (8- or 16-bit grey) into out [channels, size, size] with the draws of
 * rng (a fresh stream keyed for this crop). rec may be NULL. */
rd_status rd_augment_crop(rd_augmenter *a, const rd_grey_image *src, int crop, rd_rng *rng,
                          float *out, rd_crop_record *rec, rd_error *err);

/* All 2 + n_local crops of one sample: crop c from the stream (seed, RD_RNG_AUGMENT, epoch,
 * index, c). global[0..1] and local[0..n_local) each point to [channels, size, size]; records
 * (NULL or 2 + n_local entries) receive what was done. */
rd_status rd_augment_sample(rd_augmenter *a, const rd_grey_image *src, uint64_t seed,
                            uint32_t epoch, uint64_t index, float *const *global,
                            float *const *local, rd_crop_record *records, rd_error *err);

#endif
