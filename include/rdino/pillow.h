/* Pillow-exact pixel operations: what Pillow 9.4 (Debian 12's python3-pil, the version the
 * Hugging Face fixtures in ../shared/fixtures/hf_dinov2_tiny were made with) computes, bit for
 * bit, for the two steps of transformers' BitImageProcessor that run inside Pillow:
 *   Image.open(png).convert("RGB")       rd_pillow_png_to_rgb
 *   Image.resize((w, h), Image.BICUBIC)  rd_pillow_resize (uint8 planes)
 * rdino's own resampler (rd_resample_grey in image.h, float arithmetic, 16-bit aware) stays the
 * one for rdino's own pipeline; these exist so that rdino can reproduce a released model's
 * preprocessing exactly.
 */
#ifndef RDINO_PILLOW_H
#define RDINO_PILLOW_H

#include <stddef.h>
#include <stdint.h>

#include "rdino/error.h"
#include "rdino/image.h"
#include "rdino/png.h"

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

/* ---- PNG -> RGB as Image.open(png).convert("RGB") in Pillow 9.4 ----
 *
 * Pillow's PNG reader (PngImagePlugin.py, table _MODES; unpackers in Unpack.c) and the
 * conversion to "RGB" (Convert.c, and Palette.c for palette defaults) give, per PNG kind:
 *   grey 1 bit          mode "1": 0 -> 0, 1 -> 255
 *   grey 2 / 4 bits     mode "L": v * 0x55 / v * 0x11 (Unpack.c unpackL2 / unpackL4)
 *   grey 8              mode "L": v
 *   grey 16             mode "I": min(v, 255) (Convert.c i2rgb saturates, no scaling: a 16-bit
 *                       X-ray becomes nearly all 255). Counted in clipped_samples.
 *   grey + alpha 8      mode "LA": v, alpha dropped (la2rgb)
 *   grey + alpha 16     mode "RGBA" via rawmode "LA;16B": the high byte of v, alpha dropped
 *   RGB 8 / RGBA 8      as stored, alpha dropped (rgba2rgb: no compositing)
 *   RGB 16 / RGBA 16    rawmodes "RGB;16B" / "RGBA;16B": the high byte of each sample
 *   palette 1-8 bits    mode "P": the PLTE entry; indices past the PLTE keep Pillow's default
 *                       entry (i, i, i) (ImagingPaletteNew initialises a grey ramp)
 * tRNS never changes the RGB values (convert("RGB") only rewrites info["transparency"]);
 * gAMA, cHRM, sRGB, iCCP, sBIT are ignored, as Pillow does. The 16-bit kinds other than grey
 * keep the high byte: high_byte_only reports that their low bytes were discarded. */

/* An RGB image as uint8 planes. planes == 1 when the three channels are identical (every grey
 * kind, a palette whose 256 entries are all grey, an RGB file whose pixels all have R = G = B):
 * plane[0] then stands for R, G and B alike. */
typedef struct rd_rgb_planes {
    int width, height;
    int planes;              /* 1 or 3 */
    const uint8_t *plane[3]; /* width * height each; plane[1], plane[2] NULL when planes == 1 */
} rd_rgb_planes;

typedef struct rd_pillow_loss {
    size_t clipped_samples; /* grey 16: samples above 255 that became 255 */
    int high_byte_only;     /* 1 for 16-bit RGB, RGBA, grey + alpha: the low byte was dropped */
} rd_pillow_loss;

/* Converts png into planes stored in store (grown as needed), or for 8-bit grey into the PNG's
 * own samples: out points into those until the next call. do_convert_rgb = 0 reproduces
 * transformers without the conversion: only an 8-bit RGB PNG (Pillow mode "RGB", which
 * convert_to_rgb leaves alone) is accepted; any other kind is an RD_EINVAL error, as transformers
 * would hand numpy a different array (or fail). name is used in messages. */
rd_status rd_pillow_png_to_rgb(const rd_png_image *png, int do_convert_rgb, const char *name,
                               rd_buf *store, rd_rgb_planes *out, rd_pillow_loss *loss,
                               rd_error *err);

#endif
