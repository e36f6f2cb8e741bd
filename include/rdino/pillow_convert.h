/* Pillow-exact conversion of a decoded PNG to RGB: what Image.open(png).convert("RGB") gives in
 * Pillow 9.4 (Debian 12's python3-pil), bit for bit, the first step of transformers'
 * BitImageProcessor (hf_preprocess.h). */
#ifndef RDINO_PILLOW_CONVERT_H
#define RDINO_PILLOW_CONVERT_H

#include <stddef.h>
#include <stdint.h>

#include "rdino/error.h"
#include "rdino/image.h"
#include "rdino/png.h"

/* Pillow's PNG reader (PngImagePlugin.py, table _MODES; unpackers in Unpack.c) and the
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
