/* Pillow-exact bicubic resizing: what Pillow 9.4 (Debian 12's python3-pil, the version the
 * Hugging Face fixtures in ../shared/fixtures/hf_dinov2_tiny were made with) computes, bit for
 * bit, for Image.resize((w, h), Image.BICUBIC) on uint8 planes, one of the steps of
 * transformers' BitImageProcessor (hf_preprocess.h; the other Pillow step, the conversion to
 * RGB, is in pillow_convert.h). rdino's own resampler (rd_resample_grey in image.h, float
 * arithmetic, 16-bit aware) stays the one for rdino's own pipeline; this one exists so that
 * rdino can reproduce a released model's preprocessing exactly. */
#ifndef RDINO_PILLOW_RESAMPLE_H
#define RDINO_PILLOW_RESAMPLE_H

#include <stddef.h>
#include <stdint.h>

#include "rdino/error.h"
#include "rdino/image.h"

/* ---- bicubic resize of uint8 planes (Pillow's libImaging/Resample.c, ImagingResample) ----
 *
 * Per axis, output pixel i is centred at (i + 0.5) * scale in the input, scale = in / out; the
 * Keys cubic kernel (a = -0.5, support 2) is stretched by max(scale, 1) (antialiasing when
 * shrinking); taps are the input pixels from (int)(centre - support + 0.5) to
 * (int)(centre + support + 0.5), cut at the image border; weights are computed in double,
 * divided by their sum, then rounded to 22 fractional bits ((int)(w * 2^22 +- 0.5)). Each pass
 * sums sample * weight in int32 starting from 2^21 (rounding), shifts right by 22 and clamps
 * to 0..255. The horizontal pass runs first and its uint8 result feeds the vertical pass; a pass
 * is skipped when its axis keeps its size (same-size resize is the identity).
 *
 * Only the window of g (g->out_w x g->out_h at g->crop_x, g->crop_y of the full_w x full_h
 * result) is computed: each output pixel depends only on its own taps, so a window equals the
 * same window cropped from the whole resize, bit for bit. Sizes up to 2^24 per side (Pillow
 * passes the box as float; exact below that). */

/* Workspace: coefficients, interleaved rows and the intermediate image, grown as needed and
 * reused (no allocation once sized); the coefficients are kept while the geometry stays the same
 * (a run of same-size images). Zero-initialise ({0}); rd_pillow_resampler_free. */
typedef struct rd_pillow_resampler {
    rd_buf coeffs, starts, block, mid;
    rd_geometry coeffs_for; /* the geometry the coefficients belong to (all 0: none) */
} rd_pillow_resampler;

void rd_pillow_resampler_free(rd_pillow_resampler *r);

/* Resizes planes uint8 planes: src[p] is g->in_w x g->in_h, dst[p] receives the
 * g->out_w x g->out_h window (both row-major, no padding). All planes share the coefficients. */
rd_status rd_pillow_resize(rd_pillow_resampler *r, const rd_geometry *g, int planes,
                           const uint8_t *const *src, uint8_t *const *dst, rd_error *err);

#endif
