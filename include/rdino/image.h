/* Grey images, antialiased resampling and intensity normalisation.
 *
 * Resampling follows Pillow's Image.resize (Resample.c): separable, horizontal pass then
 * vertical pass, output pixel i centred at (i + 0.5) * scale in input coordinates, and when
 * downscaling (scale > 1) the kernel is stretched by the scale (antialiasing), taps cut at the
 * image border and the weights renormalised to sum 1. Weights are computed in double and applied
 * in float. Two kernels, both with support 2 (input pixels, before stretching):
 *   RD_KERNEL_CUBIC   Keys cubic convolution, a = -0.5: Pillow's BICUBIC. Interpolating (passes
 *                     through the samples: same-size resampling is the identity), overshoots a
 *                     little near edges (negative lobes).
 *   RD_KERNEL_BSPLINE the cubic B-spline B3(x) = 2/3 - x^2 + |x|^3/2 (|x| < 1),
 *                     (2 - |x|)^3/6 (1 <= |x| < 2): smoothing, never overshoots, weights sum to 1
 *                     by construction. This is the B-spline used as a filter kernel, not
 *                     SimpleITK's interpolating B-spline (sitkBSpline), which first prefilters the
 *                     image into spline coefficients so the curve passes through the samples, and
 *                     which does not stretch the kernel when downscaling (it aliases). Ours is
 *                     blurrier than sitkBSpline by about B3's own width (one input pixel when
 *                     upscaling, one output pixel when downscaling) and antialiased.
 */
#ifndef RDINO_IMAGE_H
#define RDINO_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "rdino/error.h"

/* A grey image of integer samples, row-major, no padding between rows. */
typedef struct rd_grey_image {
    int width, height;
    int depth;  /* 8: uint8_t samples; 16: uint16_t samples in host byte order */
    void *data; /* width * height samples */
} rd_grey_image;

/* A growable buffer reused across images: it grows only when a request is larger than any before,
 * so steady-state processing does no allocation. Contents are not kept when it grows. */
typedef struct rd_buf {
    void *data; /* 64-byte aligned */
    size_t cap; /* bytes */
} rd_buf;

rd_status rd_buf_reserve(rd_buf *b, size_t bytes, rd_error *err);
void rd_buf_free(rd_buf *b);

/* ---- geometry ---- */

/* Which window of the resized image is computed: the image is resized (conceptually) to
 * full_w x full_h, and the out_w x out_h window at (crop_x, crop_y) of it is produced. */
typedef struct rd_geometry {
    int in_w, in_h;
    int full_w, full_h;
    int crop_x, crop_y;
    int out_w, out_h;
} rd_geometry;

/* Resize so the shorter side is size (torchvision Resize(size)): the longer side becomes
 * trunc(size * long / short) computed in double, as torchvision and Hugging Face do. With
 * center_crop, then crop the centre size x size window (torchvision CenterCrop): offsets
 * crop_x = round((full_w - size) / 2), crop_y likewise, with Python's round (half to even),
 * e.g. an excess of 1 gives offset 0, an excess of 3 gives 2. Without, the whole resized image
 * (aspect kept). Inputs must be positive. */
rd_geometry rd_geometry_shorter_side(int in_w, int in_h, int size, int center_crop);

/* Plain resize of the whole image to out_w x out_h (no crop). */
rd_geometry rd_geometry_resize(int in_w, int in_h, int out_w, int out_h);

/* ---- resampling ---- */

typedef enum { RD_KERNEL_CUBIC = 0, RD_KERNEL_BSPLINE = 1 } rd_kernel;

/* The kernel at x (in input pixels, unstretched); zero for |x| >= 2. */
double rd_kernel_eval(rd_kernel kernel, double x);
/* "cubic" / "bspline"; rd_kernel_parse returns -1 for an unknown name. */
const char *rd_kernel_name(rd_kernel kernel);
int rd_kernel_parse(const char *name);

/* Workspace: weights, the intermediate image and row buffers, grown as needed. Zero-initialise
 * ({0}) before first use; rd_resampler_free releases it. */
typedef struct rd_resampler {
    rd_buf weights, starts, block, mid, rows;
} rd_resampler;

void rd_resampler_free(rd_resampler *r);

/* Resamples an integer image into out (g->out_w * g->out_h floats, row-major). Samples map to
 * [0, 1] (v / 255 for 8-bit, v / 65535 for 16-bit) and both passes clamp to that range (the
 * cubic kernel overshoots), as Pillow clamps 8-bit results. Internally 8-bit samples become
 * v * 257 on the 16-bit scale, so an 8-bit image and its 16-bit copy (values * 257) give bitwise
 * identical output. g must come from an rd_geometry_* function for src's size. */
rd_status rd_resample_grey(rd_resampler *r, const rd_grey_image *src, const rd_geometry *g,
                           rd_kernel kernel, float *out, rd_error *err);

/* The same for a float image (w * h, row-major) in any range; no scaling, no clamping (like
 * Pillow's mode "F"). */
rd_status rd_resample_float(rd_resampler *r, const float *src, const rd_geometry *g,
                            rd_kernel kernel, float *out, rd_error *err);

/* ---- intensity normalisation ---- */

typedef enum { RD_NORM_MINMAX = 0, RD_NORM_PERCENTILE = 1 } rd_norm;

const char *rd_norm_name(rd_norm norm);
/* "minmax" / "percentile"; -1 for an unknown name. */
int rd_norm_parse(const char *name);

/* Percentile p (0..100) of x[0..n) with numpy's default ('linear') definition: the sorted
 * values interpolated at rank p / 100 * (n - 1). scratch holds n floats (x is not modified).
 * O(n) expected (quickselect). n must be > 0. */
float rd_percentile(const float *x, size_t n, double p, float *scratch);

/* The intensity window [lo, hi] of x: min and max, or the lo_pct / hi_pct percentiles
 * (RD_NORM_PERCENTILE; needs scratch of n floats, else scratch may be NULL). */
void rd_norm_window(const float *x, size_t n, rd_norm norm, double lo_pct, double hi_pct,
                    float *scratch, float *lo, float *hi);

enum { RD_NORM_WARN_CONSTANT = 1 }; /* flat window: the output is all zeros */

/* Maps x to [0, 1] by (x - lo) / (hi - lo), clamped, and quantises to depth bits (8 or 16)
 * with round half up: q = floor(v * maxval + 0.5), computed in float; out holds n uint8_t or
 * uint16_t. When hi - lo <= 1e-5 max(|lo|, |hi|) (a constant image, up to resampling
 * round-off) every output is 0 and RD_NORM_WARN_CONSTANT is returned; otherwise 0. */
unsigned rd_quantize(const float *x, size_t n, float lo, float hi, int depth, void *out);

#endif
