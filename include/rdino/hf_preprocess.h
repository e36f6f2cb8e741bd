/* Hugging Face image preprocessing, bit for bit: transformers' BitImageProcessor (the slow,
 * Pillow-based processor of models/bit/image_processing_bit.py with image_transforms.py; what
 * microsoft/rad-dino's preprocessor_config.json names) on a PNG, as
 *   BitImageProcessor(**config)(Image.open(png))["pixel_values"]
 * computes it with Pillow 9.4 and numpy, so that rdino's embeddings of a PNG equal transformers'
 * outputs. Verified against ../shared/fixtures/hf_dinov2_tiny (README.md there) and committed
 * Pillow fixtures (tests/reference/make_pillow_fixtures.py).
 *
 * Steps, in transformers' order:
 *  1. do_convert_rgb: Image.convert("RGB") (rd_pillow_png_to_rgb; a 16-bit grey PNG saturates
 *     at 255: rdino's own preprocessing keeps 16-bit detail, this path cannot).
 *  2. do_resize: size {"shortest_edge": S}: the shorter side becomes S, the longer
 *     int(S * long / short) (truncated; 600x500 -> 621x518); size {"height", "width"}: that size.
 *     Pillow's BICUBIC resize of the uint8 RGB image (rd_pillow_resize).
 *  3. do_center_crop: the crop_height x crop_width window at top = (H - crop_height) // 2,
 *     left = (W - crop_width) // 2 (floor division); where the window leaves the image (crop
 *     larger than the image) image_transforms.center_crop pads with zeros, as here.
 *  4. do_rescale: x = float32(v * rescale_factor) with the product in double;
 *     otherwise x = float32(v).
 *  5. do_normalize: (x - float32(mean[c])) / float32(std[c]) in float32.
 * The output is channels-first float32 [C, H, W] (pixel_values without the batch axis).
 *
 * The settings (rd_hf_processor) and the preprocessor_config.json keys that give them:
 * hf_processor.h.
 *
 * Not reproduced: transformers guesses the channel axis from the array shape
 * (image_utils.infer_channel_dimension_format), so an image 1 or 3 pixels high is taken as
 * channels-first and processed wrongly there; here it is an image like any other.
 *
 * One channel: rdino's ViT accepts a grey image as one channel that it treats as three equal
 * channels. When the converted image's three channels are identical (rd_rgb_planes.planes == 1)
 * and mean and std give the three channels the same float32 mapping, the three output channels
 * are bit-identical, and with allow_one_channel the function writes just one (channels = 1).
 */
#ifndef RDINO_HF_PREPROCESS_H
#define RDINO_HF_PREPROCESS_H

#include <stddef.h>

#include "rdino/error.h"
#include "rdino/hf_processor.h"
#include "rdino/pillow_convert.h"
#include "rdino/pillow_resample.h"
#include "rdino/png.h"

/* Output height and width for an in_w x in_h image (after resize and crop). */
void rd_hf_output_size(const rd_hf_processor *p, int in_w, int in_h, int *out_w, int *out_h);

/* Buffers reused across images. Zero-initialise ({0}); rd_hf_workspace_free. */
typedef struct rd_hf_workspace {
    rd_buf rgb, window;
    rd_pillow_resampler resampler;
} rd_hf_workspace;

void rd_hf_workspace_free(rd_hf_workspace *ws);

typedef struct rd_hf_result {
    int channels;        /* 1 or 3 written to out */
    int width, height;   /* of each output channel */
    rd_pillow_loss loss; /* what convert("RGB") discarded (16-bit sources) */
} rd_hf_result;

/* Runs the pipeline on a decoded PNG (rd_png_decode_stored). out holds out_floats floats, at
 * least 3 * H * W (rd_hf_output_size); on success res->channels * H * W are written. name is
 * used in messages. */
rd_status rd_hf_preprocess_png(rd_hf_workspace *ws, const rd_png_image *png, const char *name,
                               const rd_hf_processor *p, int allow_one_channel, float *out,
                               size_t out_floats, rd_hf_result *res, rd_error *err);

/* The same from step 2 on, for an image already converted to RGB (res->loss is zeroed). */
rd_status rd_hf_preprocess_rgb(rd_hf_workspace *ws, const rd_rgb_planes *rgb,
                               const rd_hf_processor *p, int allow_one_channel, float *out,
                               size_t out_floats, rd_hf_result *res, rd_error *err);

/* Counts over a run, for the one warning a stage prints at the end (sum them across ranks). */
typedef struct rd_hf_tally {
    size_t images;
    size_t clipped_images;   /* 16-bit grey with samples above 255, saturated */
    size_t high_byte_images; /* 16-bit colour or grey+alpha reduced to their high byte */
} rd_hf_tally;

void rd_hf_tally_add(rd_hf_tally *t, const rd_hf_result *res);
/* One rd_warn line per kind of loss that occurred (none when nothing was lost), e.g.
 * "hf preprocessing: 12 of 64 16-bit images clipped at 255 as transformers does; this destroys
 * 16-bit detail; embed.preprocess: rdino keeps it". */
void rd_hf_tally_warn(const rd_hf_tally *t);

#endif
