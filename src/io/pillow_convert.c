/* Image.open(png).convert("RGB") of Pillow 9.4 on decoded PNG samples, as planes. The rules and
 * their sources are listed in include/rdino/pillow_convert.h. */
#include "rdino/pillow_convert.h"

#include <string.h>

/* PNG colour types. */
enum { GREY = 0, RGB = 2, PALETTE = 3, GREY_ALPHA = 4, RGBA = 6 };

static const char *kind_name(int color_type) {
    switch (color_type) {
    case GREY:
        return "grey";
    case RGB:
        return "RGB";
    case PALETTE:
        return "palette";
    case GREY_ALPHA:
        return "grey+alpha";
    case RGBA:
        return "RGBA";
    default:
        return "unknown";
    }
}

/* Grey 1/2/4 bits: Unpack.c expands 1 bit to 0/255 (mode "1", then bit2rgb), 2 bits by
 * 0x55 and 4 bits by 0x11 (mode "L"), i.e. v * 255 / (2^bits - 1). */
static void grey_low_depth(const uint8_t *in, size_t n, int bits, uint8_t *out) {
    uint8_t factor = (uint8_t)(255 / ((1 << bits) - 1));
    for (size_t i = 0; i < n; i++) out[i] = (uint8_t)(in[i] * factor);
}

typedef uint16_t v16u16 __attribute__((vector_size(32)));
typedef int16_t v16i16 __attribute__((vector_size(32)));
typedef uint8_t v16u8 __attribute__((vector_size(16)));

/* Grey 16 bits: mode "I", then Convert.c i2rgb saturates at 255. Returns how many saturated.
 * Sixteen samples per step (GCC's -O2 does not vectorise the scalar loop); the per-lane counts
 * are 16-bit, so they are added up every 16 * 32767 samples. */
static size_t grey16_clip(const uint16_t *in, size_t n, uint8_t *out) {
    enum { LANES = 16, STEPS = 32767 };
    const v16u16 top = (v16u16){0} + 255;
    size_t clipped = 0, i = 0;
    while (n - i >= LANES) {
        v16i16 over = {0};
        for (int step = 0; step < STEPS && n - i >= LANES; step++, i += LANES) {
            v16u16 v;
            memcpy(&v, in + i, sizeof v);
            v16i16 above = v > top; /* -1 where true */
            over -= above;
            v16u8 b = __builtin_convertvector((v & ~(v16u16)above) | (top & (v16u16)above), v16u8);
            memcpy(out + i, &b, sizeof b);
        }
        for (int k = 0; k < LANES; k++) clipped += (size_t)over[k];
    }
    for (; i < n; i++) {
        clipped += in[i] > 255;
        out[i] = (uint8_t)(in[i] > 255 ? 255 : in[i]);
    }
    return clipped;
}

/* Channel `channel` of samples with `stride` channels; 16-bit samples keep their high byte
 * (Unpack.c "LA;16B", "RGB;16B", "RGBA;16B" read only the first, most significant, byte). */
static void take_channel(const void *samples, int depth, size_t n, int stride, int channel,
                         uint8_t *out) {
    if (depth == 16) {
        const uint16_t *in = (const uint16_t *)samples + channel;
        for (size_t i = 0; i < n; i++) out[i] = (uint8_t)(in[i * (size_t)stride] >> 8);
    } else {
        const uint8_t *in = (const uint8_t *)samples + channel;
        for (size_t i = 0; i < n; i++) out[i] = in[i * (size_t)stride];
    }
}

/* 1 when planes r, g, b are equal everywhere. */
static int same_planes(const uint8_t *r, const uint8_t *g, const uint8_t *b, size_t n) {
    unsigned differ = 0;
    for (size_t i = 0; i < n; i++) differ |= (unsigned)(r[i] ^ g[i]) | (unsigned)(r[i] ^ b[i]);
    return differ == 0;
}

/* Palette: Palette.c ImagingPaletteNew fills all 256 entries with (i, i, i); the PLTE entries
 * overwrite the first palette_size; Convert.c p2rgb then looks every index up. */
static int palette_to_planes(const rd_png_image *png, size_t n, uint8_t *const plane[3]) {
    uint8_t lut[3][256];
    for (int i = 0; i < 256; i++) lut[0][i] = lut[1][i] = lut[2][i] = (uint8_t)i;
    for (int i = 0; i < png->palette_size; i++)
        for (int c = 0; c < 3; c++) lut[c][i] = png->palette[3 * i + c];
    int grey = memcmp(lut[0], lut[1], 256) == 0 && memcmp(lut[0], lut[2], 256) == 0;
    const uint8_t *index = png->samples;
    for (int c = 0; c < (grey ? 1 : 3); c++)
        for (size_t i = 0; i < n; i++) plane[c][i] = lut[c][index[i]];
    return grey ? 1 : 3;
}

rd_status rd_pillow_png_to_rgb(const rd_png_image *png, int do_convert_rgb, const char *name,
                               rd_buf *store, rd_rgb_planes *out, rd_pillow_loss *loss,
                               rd_error *err) {
    int type = png->color_type, depth = png->bit_depth;
    memset(loss, 0, sizeof *loss);
    if (!do_convert_rgb && !(type == RGB && depth == 8))
        return rd_fail(err, RD_EINVAL,
                       "%s: a %d-bit %s PNG needs do_convert_rgb: without it transformers would "
                       "give numpy Pillow's %s image as it is, not RGB",
                       name, depth, kind_name(type), kind_name(type));
    if (png->width <= 0 || png->height <= 0 || !png->samples)
        return rd_fail(err, RD_EINVAL, "%s: empty image", name);
    size_t n = (size_t)png->width * (size_t)png->height;
    int colour = type == RGB || type == RGBA || type == PALETTE;
    size_t bytes = colour ? 3 * n : type == GREY && depth == 8 ? 0 : n; /* 8-bit grey: in place */
    rd_status st = rd_buf_reserve(store, bytes, err);
    if (st != RD_OK) return rd_wrap(err, "%s: RGB planes", name);
    uint8_t *base = store->data;
    uint8_t *plane[3] = {base, colour ? base + n : NULL, colour ? base + 2 * n : NULL};
    int planes = 1;
    switch (type) {
    case GREY:
        if (depth == 16)
            loss->clipped_samples = grey16_clip(png->samples, n, plane[0]);
        else if (depth < 8)
            grey_low_depth(png->samples, n, depth, plane[0]);
        break;
    case GREY_ALPHA:
        take_channel(png->samples, depth, n, 2, 0, plane[0]);
        loss->high_byte_only = depth == 16;
        break;
    case RGB:
    case RGBA:
        for (int c = 0; c < 3; c++)
            take_channel(png->samples, depth, n, png->channels, c, plane[c]);
        planes = same_planes(plane[0], plane[1], plane[2], n) ? 1 : 3;
        loss->high_byte_only = depth == 16;
        break;
    case PALETTE:
        planes = palette_to_planes(png, n, plane);
        break;
    default:
        return rd_fail(err, RD_EINVAL, "%s: unknown PNG colour type %d", name, type);
    }
    out->width = png->width;
    out->height = png->height;
    out->planes = planes;
    out->plane[0] = type == GREY && depth == 8 ? png->samples : plane[0];
    out->plane[1] = planes == 3 ? plane[1] : NULL;
    out->plane[2] = planes == 3 ? plane[2] : NULL;
    return RD_OK;
}
