/* The per-image part of rdino-preprocess, in one call:
 *   read the PNG -> grey (8 or 16 bit, see png.h)
 *   -> resize so the shorter side is size, with the chosen antialiased kernel (image.h), clamped
 *      to the source range, computing only the pixels that survive the crop
 *   -> centre-crop to size x size (torchvision CenterCrop offsets), or keep the aspect ratio
 *   -> intensity window over the output pixels (min-max, or lo/hi percentiles)
 *   -> quantise to 8 or 16 bits (round half up) into the caller's buffer.
 * A workspace holds every intermediate buffer; it grows only when an image is larger than any
 * before, so a steady stream of images does no allocation of ours (libpng still allocates its
 * small per-file decoder state, about 50 KiB).
 *
 *   rd_prep_workspace *ws = rd_prep_workspace_new();
 *   rd_prep_options opt = rd_prep_defaults();       // then set fields from the config
 *   uint8_t *out = malloc(rd_prep_output_bytes(&opt));
 *   rd_prep_result res;
 *   if (rd_prep_image(ws, path, &opt, out, rd_prep_output_bytes(&opt), &res, &err) != RD_OK)
 *       report(path, rd_reject_name(res.reject), err.msg);   // res.reject says why
 *   rd_prep_workspace_free(ws);
 */
#ifndef RDINO_PREPROCESS_IMAGE_H
#define RDINO_PREPROCESS_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "rdino/config.h"
#include "rdino/error.h"
#include "rdino/image.h"
#include "rdino/png.h"

typedef struct rd_prep_options {
    int size;          /* shorter side after resizing (preprocess.size; RAD-DINO: 518) */
    int center_crop;   /* 1: size x size centre crop (preprocess.crop=center); 0: keep aspect */
    rd_kernel kernel;  /* preprocess.resample: RD_KERNEL_BSPLINE or RD_KERNEL_CUBIC */
    rd_norm norm;      /* preprocess.normalize: RD_NORM_MINMAX or RD_NORM_PERCENTILE */
    double lo_pct;     /* preprocess.percentiles, used with RD_NORM_PERCENTILE */
    double hi_pct;     /*   (0 <= lo_pct < hi_pct <= 100) */
    int bit_depth;     /* preprocess.bit_depth: 8 or 16 (output samples) */
    size_t max_pixels; /* preprocess.max_pixels: larger sources are refused from the header */
    double max_aspect; /* keep-aspect mode: longer / shorter side allowed (rd_prep_output_bytes
                          sizes the buffer for it); wider images are rejected as "aspect" */
} rd_prep_options;

/* size 518, centre crop, B-spline, min-max, percentiles 0.5 / 99.5, 8 bits, 400 M pixels,
 * max_aspect 4: the config schema's defaults. */
rd_prep_options rd_prep_defaults(void);

/* The options of a run configuration (preprocess.{size, crop, resample, normalize,
 * percentiles, bit_depth, max_pixels, max_aspect}), checked. */
rd_status rd_prep_options_from_config(const rd_config *cfg, rd_prep_options *opt, rd_error *err);

/* Checks the options; RD_EINVAL with a message naming the bad field. */
rd_status rd_prep_check_options(const rd_prep_options *opt, rd_error *err);

/* Bytes of the largest output: size^2 (crop) or size * floor(size * max_aspect) (keep aspect)
 * samples of bit_depth / 8 bytes. */
size_t rd_prep_output_bytes(const rd_prep_options *opt);

enum { RD_PREP_WARN_CONSTANT = RD_NORM_WARN_CONSTANT }; /* flat output: written as all zeros */

typedef struct rd_prep_result {
    rd_png_info source; /* width, height, bit depth, colour type, interlace as stored */
    int out_width;      /* the written image: size x size, or the aspect-kept size */
    int out_height;
    rd_reject reject;  /* RD_REJECT_NONE, or why the image was refused (rd_reject_name) */
    unsigned warnings; /* RD_PREP_WARN_* bits */
    float window_lo;   /* intensity window applied, on the [0, 1] source scale */
    float window_hi;
    double seconds_read; /* wall-clock split: read + decode, resize, window + quantise */
    double seconds_resize;
    double seconds_normalize;
} rd_prep_result;

typedef struct rd_prep_workspace rd_prep_workspace;

/* NULL when out of memory. */
rd_prep_workspace *rd_prep_workspace_new(void);
void rd_prep_workspace_free(rd_prep_workspace *ws);
/* Bytes the workspace holds now (it grows only for an image larger than any before). */
size_t rd_prep_workspace_bytes(const rd_prep_workspace *ws);

/* Runs the pipeline on the PNG at path, writing out_height rows of out_width samples (uint8_t
 * or uint16_t by bit_depth) to out, which holds out_bytes. res is always filled as far as the
 * image got. On failure returns non-OK with err naming the file and res->reject saying why;
 * reject stays RD_REJECT_NONE only for invalid options (the caller's error, not the image's).
 * The workspace stays usable. */
rd_status rd_prep_image(rd_prep_workspace *ws, const char *path, const rd_prep_options *opt,
                        void *out, size_t out_bytes, rd_prep_result *res, rd_error *err);

/* The same from an image already in memory (tests, other readers); name is for messages. */
rd_status rd_prep_grey(rd_prep_workspace *ws, const rd_grey_image *src, const char *name,
                       const rd_prep_options *opt, void *out, size_t out_bytes, rd_prep_result *res,
                       rd_error *err);

#endif
