/* PNG read (any PNG -> grey samples, or the samples as stored) and write (8/16-bit grey,
 * atomically), via libpng.
 *
 * Decoding gives grey samples of 8 bits (sources of 1-8 bits, palette) or 16 bits (16-bit
 * sources), never floats: a 1024x1024 X-ray stays 1 MiB, libpng writes rows straight into the
 * result, and 16-bit data keeps every bit. Colour handling, chosen to match Pillow's
 * Image.open(f).convert("L") wherever Pillow keeps the precision:
 *   grey 1/2/4 bits      scaled to 8 bits (v * 255 / (2^bits - 1)), like Pillow
 *   grey 8 / 16          as stored
 *   grey + alpha         alpha dropped (not composited), like convert("L")
 *   RGB / RGBA 8         L = (19595 R + 38470 G + 7471 B + 32768) >> 16: ITU-R 601 weights
 *                        0.299/0.587/0.114 in 16-bit fixed point, rounded; bit-identical to
 *                        Pillow's "L"; alpha dropped
 *   RGB / RGBA 16        the same formula on 16-bit values (exact in 32 bits), 16-bit result.
 *                        Pillow truncates these to 8 bits first; we keep 16.
 *   palette (1-8 bits)   expanded to RGB, then as RGB 8; tRNS transparency ignored
 *   tRNS on grey / RGB   ignored (it only marks a colour as transparent)
 *   Adam7 interlacing    de-interlaced; identical pixels to the non-interlaced file
 * gAMA, cHRM, sRGB, iCCP and sBIT are ignored (as Pillow does): samples are used as stored.
 *
 * Hostile input: the whole file is read into a reusable buffer and checked before libpng sees
 * it: signature, IHDR (zero or too many pixels, invalid depth/colour combination), every
 * chunk's length and CRC, IEND present. Only then does libpng decode (its own CRC check off:
 * already done; zlib's Adler-32 off: the CRCs already cover every compressed byte), with errors
 * caught by setjmp/longjmp. Each
 * failure sets an rd_reject reason (written to rejects reports) and an rd_error naming the file.
 */
#ifndef RDINO_PNG_H
#define RDINO_PNG_H

#include <stddef.h>
#include <stdint.h>

#include "rdino/error.h"
#include "rdino/image.h"

/* Why an input image cannot be used. The names (rd_reject_name) are stable report codes. */
typedef enum rd_reject {
    RD_REJECT_NONE = 0,    /* "ok" */
    RD_REJECT_MISSING,     /* "missing": no such file */
    RD_REJECT_UNREADABLE,  /* "unreadable": not a regular file, permission, read error */
    RD_REJECT_EMPTY,       /* "empty": zero bytes */
    RD_REJECT_NOT_PNG,     /* "not_png": no PNG signature, or no IHDR first */
    RD_REJECT_TRUNCATED,   /* "truncated": a chunk runs past the end, or no IEND */
    RD_REJECT_CRC,         /* "crc": a chunk's CRC does not match */
    RD_REJECT_ZERO_SIZE,   /* "zero_size": width or height is 0 */
    RD_REJECT_TOO_LARGE,   /* "too_large": more pixels than max_pixels, or file too big */
    RD_REJECT_UNSUPPORTED, /* "unsupported": invalid depth/colour type, compression, filter or
                              interlace method */
    RD_REJECT_CORRUPT,     /* "corrupt": libpng or zlib error in the data (bad deflate stream,
                              missing PLTE, too little image data, ...) */
    RD_REJECT_NO_MEMORY,   /* "no_memory" */
    RD_REJECT_ASPECT,      /* "aspect": keep-aspect output larger than the caller's buffer */
    RD_REJECT_COUNT
} rd_reject;

const char *rd_reject_name(rd_reject reason);

/* What the file header says about the source. */
typedef struct rd_png_info {
    int width, height;
    int bit_depth;  /* as stored: 1, 2, 4, 8 or 16 */
    int color_type; /* as stored: 0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA */
    int interlaced; /* 1 for Adam7 */
} rd_png_info;

/* Reusable decoder state: the file buffer, the decoded image and scratch, grown as needed.
 * Zero-initialise ({0}) before first use; rd_png_reader_free releases it. */
typedef struct rd_png_reader {
    rd_buf file, pixels, scratch, rows;
} rd_png_reader;

void rd_png_reader_free(rd_png_reader *r);

/* Decodes the PNG in buf[0..len) to grey. name is used in messages. On success *out points into
 * the reader's memory (valid until the next call) with depth 8 or 16 as above. Images with more
 * than max_pixels pixels are refused from the header, before any allocation. *reason is set on
 * every return (RD_REJECT_NONE on success); info (may be NULL) is filled once IHDR is read. */
rd_status rd_png_decode(rd_png_reader *r, const void *buf, size_t len, const char *name,
                        size_t max_pixels, rd_grey_image *out, rd_png_info *info, rd_reject *reason,
                        rd_error *err);

/* Reads path in one go into the reader's buffer and decodes it. Files larger than
 * 8 * max_pixels + 64 MiB (more than any legitimate PNG of max_pixels) are refused. */
rd_status rd_png_read(rd_png_reader *r, const char *path, size_t max_pixels, rd_grey_image *out,
                      rd_png_info *info, rd_reject *reason, rd_error *err);

/* A PNG's samples as stored, before any colour rule: for callers that apply their own (Pillow's
 * Image.open(f).convert("RGB"), src/image/pillow_convert.c). The same checks and rejects as
 * rd_png_decode; Adam7 is de-interlaced. */
typedef struct rd_png_image {
    int width, height;
    int color_type;      /* 0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA */
    int bit_depth;       /* as stored: 1, 2, 4, 8 or 16 */
    int channels;        /* samples per pixel: 1, 3, 1, 2, 4 for the colour types above */
    const void *samples; /* width * channels samples per row, rows contiguous, in the reader's
                            memory (valid until its next call). bit_depth <= 8: uint8_t, one
                            sample per byte, unscaled (0 .. 2^bit_depth - 1; palette indices
                            for type 3); bit_depth 16: uint16_t in host byte order */
    int palette_size;    /* PLTE entries (type 3); 0 for other types (a suggested PLTE in an RGB
                            file is not reported) */
    uint8_t palette[256 * 3]; /* PLTE entries as stored: r, g, b */
} rd_png_image;

rd_status rd_png_decode_stored(rd_png_reader *r, const void *buf, size_t len, const char *name,
                               size_t max_pixels, rd_png_image *out, rd_reject *reason,
                               rd_error *err);
rd_status rd_png_read_stored(rd_png_reader *r, const char *path, size_t max_pixels,
                             rd_png_image *out, rd_reject *reason, rd_error *err);

/* Levels for rd_png_write_grey. FAST (1) uses the Up filter with zlib's run-length strategy:
 * for a 518x518 X-ray about 3 ms and 120 KB, against 7 ms / 138 KB for zlib level 1 with
 * libpng's adaptive filters and 50 ms / 116 KB at level 6 (measured on the benchmark images). */
enum { RD_PNG_LEVEL_FAST = 1, RD_PNG_LEVEL_DEFAULT = 6 };

/* Writes img (depth 8 or 16) as a grey PNG at zlib level 0-9, published atomically (file.h).
 * On failure nothing is left at path (a file already there is untouched) and the temporary is
 * removed. */
rd_status rd_png_write_grey(const char *path, const rd_grey_image *img, int level, rd_error *err);

#endif
