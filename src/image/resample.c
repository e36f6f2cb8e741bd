/* Antialiased separable resampling (Pillow's algorithm, float arithmetic) and the shorter-side /
 * centre-crop geometry. See include/rdino/image.h.
 *
 * Layout for speed: the horizontal pass works on eight source rows at once, converted to float
 * and interleaved column by column (block[x * 8 + r]), so each output column is one 8-lane
 * multiply-add per tap. The vertical pass then runs along rows of the intermediate image, eight
 * output pixels per multiply-add. Only the crop window is computed: its columns in the first
 * pass, and only the source rows its output rows need. */
#include "rdino/image.h"

#include <limits.h>
#include <math.h>
#include <string.h>

#include "simd.h"

/* ---- geometry ---- */

/* Python's round() of an integer / 2: half to even. */
static int half_round_even(int excess) {
    int q = excess / 2;
    if (excess % 2 != 0 && q % 2 != 0) q++;
    return q;
}

rd_geometry rd_geometry_shorter_side(int in_w, int in_h, int size, int center_crop) {
    rd_geometry g = {.in_w = in_w, .in_h = in_h};
    int w_is_short = in_w <= in_h;
    int shorter = w_is_short ? in_w : in_h, longer = w_is_short ? in_h : in_w;
    double scaled = (double)size * (double)longer / (double)shorter;
    int new_long = scaled < (double)INT_MAX ? (int)scaled : INT_MAX; /* absurd aspect ratios */
    g.full_w = w_is_short ? size : new_long;
    g.full_h = w_is_short ? new_long : size;
    if (center_crop) {
        int out_w = size < g.full_w ? size : g.full_w, out_h = size < g.full_h ? size : g.full_h;
        g.crop_x = half_round_even(g.full_w - out_w);
        g.crop_y = half_round_even(g.full_h - out_h);
        g.out_w = out_w;
        g.out_h = out_h;
    } else {
        g.out_w = g.full_w;
        g.out_h = g.full_h;
    }
    return g;
}

rd_geometry rd_geometry_resize(int in_w, int in_h, int out_w, int out_h) {
    return (rd_geometry){.in_w = in_w,
                         .in_h = in_h,
                         .full_w = out_w,
                         .full_h = out_h,
                         .out_w = out_w,
                         .out_h = out_h};
}

/* ---- kernels ---- */

double rd_kernel_eval(rd_kernel kernel, double x) {
    x = fabs(x);
    if (kernel == RD_KERNEL_CUBIC) {
        const double a = -0.5; /* Keys; Pillow's BICUBIC */
        if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
        if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
        return 0.0;
    }
    if (x < 1.0) return (4.0 - 6.0 * x * x + 3.0 * x * x * x) / 6.0;
    if (x < 2.0) return (2.0 - x) * (2.0 - x) * (2.0 - x) / 6.0;
    return 0.0;
}

const char *rd_kernel_name(rd_kernel kernel) {
    return kernel == RD_KERNEL_CUBIC ? "cubic" : "bspline";
}

int rd_kernel_parse(const char *name) {
    if (strcmp(name, "cubic") == 0) return RD_KERNEL_CUBIC;
    if (strcmp(name, "bspline") == 0) return RD_KERNEL_BSPLINE;
    return -1;
}

/* ---- weights ---- */

enum { KERNEL_SUPPORT = 2 };

/* Taps per output pixel on one axis: Pillow's ksize, capped at the input size. */
static int axis_taps(int in_size, int full_size) {
    double scale = (double)in_size / full_size;
    double support = KERNEL_SUPPORT * (scale < 1.0 ? 1.0 : scale);
    int taps = (int)ceil(support) * 2 + 1;
    return taps < in_size ? taps : in_size;
}

/* Output pixels first..first+count-1 of an axis resized from in_size to full_size read inputs
 * start[i] .. start[i] + taps - 1 with weights w[i * taps ..]. The taps and their renormalised
 * weights are Pillow's (precompute_coeffs); start is moved left where needed so the fixed-size
 * window stays inside the image, with zero weights padding it. */
static void axis_weights(rd_kernel kernel, int in_size, int full_size, int first, int count,
                         int taps, int *start, float *w) {
    double scale = (double)in_size / full_size;
    double filter_scale = scale < 1.0 ? 1.0 : scale;
    double support = KERNEL_SUPPORT * filter_scale, inv = 1.0 / filter_scale;
    for (int i = 0; i < count; i++) {
        double center = (first + i + 0.5) * scale;
        int lo = (int)(center - support + 0.5), hi = (int)(center + support + 0.5);
        if (lo < 0) lo = 0;
        if (hi > in_size) hi = in_size;
        int s = lo < in_size - taps ? lo : in_size - taps;
        double sum = 0.0;
        for (int x = lo; x < hi; x++) sum += rd_kernel_eval(kernel, (x - center + 0.5) * inv);
        float *wi = w + (size_t)i * taps;
        memset(wi, 0, (size_t)taps * sizeof *wi);
        for (int x = lo; x < hi && sum != 0.0; x++)
            wi[x - s] = (float)(rd_kernel_eval(kernel, (x - center + 0.5) * inv) / sum);
        start[i] = s;
    }
}

/* ---- passes ---- */

typedef enum { SRC_F32, SRC_U8, SRC_U16 } src_kind;

/* Converts rows [y, y + rows) and columns [x0, x0 + n) to float (8-bit v -> 257 v, the 16-bit
 * scale) into block[x * 8 + r]; lanes r >= rows repeat the last row (results discarded).
 * 8x8 tiles are loaded as rows and transposed in registers. */
#define DEFINE_INTERLEAVE(name, type, load, factor)                                                \
    static void name(const type *src, int width, int y, int rows, int x0, int n, float *block) {   \
        const type *r[V8];                                                                         \
        for (int k = 0; k < V8; k++)                                                               \
            r[k] = src + (size_t)(y + (k < rows ? k : rows - 1)) * (size_t)width + (size_t)x0;     \
        const v8f scale = v8_set1(factor);                                                         \
        int x = 0;                                                                                 \
        for (; x + V8 <= n; x += V8) {                                                             \
            v8f tile[V8];                                                                          \
            _Pragma("GCC unroll 8") for (int k = 0; k < V8; k++) tile[k] = load(r[k] + x) * scale; \
            v8_transpose(tile);                                                                    \
            _Pragma("GCC unroll 8") for (int k = 0; k < V8; k++)                                   \
                v8_store(block + (size_t)(x + k) * V8, tile[k]);                                   \
        }                                                                                          \
        for (; x < n; x++)                                                                         \
            for (int k = 0; k < V8; k++) block[(size_t)x * V8 + k] = (float)r[k][x] * factor;      \
    }
DEFINE_INTERLEAVE(interleave_u8, uint8_t, v8_load_u8, 257.0f)
DEFINE_INTERLEAVE(interleave_u16, uint16_t, v8_load_u16, 1.0f)
DEFINE_INTERLEAVE(interleave_f32, float, v8_load_f32, 1.0f)

static void interleave_rows(const void *src, src_kind kind, int width, int y, int rows, int x0,
                            int n, float *block) {
    if (kind == SRC_U8)
        interleave_u8(src, width, y, rows, x0, n, block);
    else if (kind == SRC_U16)
        interleave_u16(src, width, y, rows, x0, n, block);
    else
        interleave_f32(src, width, y, rows, x0, n, block);
}

/* Output column j of eight interleaved rows: one 8-lane multiply-add per tap, in two chains. */
static inline v8f column_dot(const float *block, int x0, const int *start, const float *w, int taps,
                             int j) {
    const float *p = block + (size_t)(start[j] - x0) * V8;
    const float *wj = w + (size_t)j * taps;
    v8f even = v8_set1(0.0f), odd = v8_set1(0.0f);
    int k = 0;
    for (; k + 1 < taps; k += 2) {
        even += wj[k] * v8_load(p + (size_t)k * V8);
        odd += wj[k + 1] * v8_load(p + (size_t)(k + 1) * V8);
    }
    if (k < taps) even += wj[k] * v8_load(p + (size_t)k * V8);
    return even + odd;
}

/* Horizontal pass for up to eight rows: mid[r][j] for r < rows, clamped to [0, top]
 * when top > 0 (integer sources: Pillow clips between its passes too). Eight output columns at
 * a time are transposed back to rows so the stores are whole vectors. */
static void horizontal_pass(const float *block, int x0, const int *start, const float *w, int taps,
                            int out_w, int rows, float top, float *const *mid) {
    const v8f zero = v8_set1(0.0f), vtop = v8_set1(top);
    int j = 0;
    for (; j + V8 <= out_w; j += V8) {
        v8f tile[V8];
#pragma GCC unroll 8
        for (int k = 0; k < V8; k++) {
            tile[k] = column_dot(block, x0, start, w, taps, j + k);
            if (top > 0.0f) tile[k] = v8_min(v8_max(tile[k], zero), vtop);
        }
        v8_transpose(tile);
        for (int r = 0; r < rows; r++) v8_store(mid[r] + j, tile[r]);
    }
    for (; j < out_w; j++) {
        v8f acc = column_dot(block, x0, start, w, taps, j);
        if (top > 0.0f) acc = v8_min(v8_max(acc, zero), vtop);
        for (int r = 0; r < rows; r++) mid[r][j] = acc[r];
    }
}

/* One output row of the vertical pass: o = sum_k w[k] * rows[k], times scale, clamped to [0, 1]
 * when clamp. */
static void vertical_row(const float *const *rows, const float *w, int taps, int out_w, float scale,
                         int clamp, float *o) {
    const v8f zero = v8_set1(0.0f), one = v8_set1(1.0f), vscale = v8_set1(scale);
    int x = 0;
    for (; x + V8 <= out_w; x += V8) {
        v8f acc = v8_set1(0.0f);
        for (int k = 0; k < taps; k++) acc += w[k] * v8_load(rows[k] + x);
        acc *= vscale;
        if (clamp) acc = v8_min(v8_max(acc, zero), one);
        v8_store(o + x, acc);
    }
    for (; x < out_w; x++) {
        float acc = 0.0f;
        for (int k = 0; k < taps; k++) acc += w[k] * rows[k][x];
        acc *= scale;
        if (clamp) acc = acc < 0.0f ? 0.0f : acc > 1.0f ? 1.0f : acc;
        o[x] = acc;
    }
}

static int geometry_ok(const rd_geometry *g) {
    return g->in_w > 0 && g->in_h > 0 && g->full_w > 0 && g->full_h > 0 && g->out_w > 0 &&
           g->out_h > 0 && g->crop_x >= 0 && g->crop_y >= 0 && g->crop_x <= g->full_w - g->out_w &&
           g->crop_y <= g->full_h - g->out_h;
}

static rd_status resample(rd_resampler *r, const void *src, src_kind kind, const rd_geometry *g,
                          rd_kernel kernel, float *out, rd_error *err) {
    if (!geometry_ok(g))
        return rd_fail(
            err, RD_EINVAL, "resample: invalid geometry %dx%d -> %dx%d, window %dx%d at (%d, %d)",
            g->in_w, g->in_h, g->full_w, g->full_h, g->out_w, g->out_h, g->crop_x, g->crop_y);
    int taps_x = axis_taps(g->in_w, g->full_w), taps_y = axis_taps(g->in_h, g->full_h);
    size_t nwx = (size_t)g->out_w * taps_x, nwy = (size_t)g->out_h * taps_y;
    rd_status st = rd_buf_reserve(&r->weights, (nwx + nwy) * sizeof(float), err);
    if (st == RD_OK)
        st = rd_buf_reserve(&r->starts, ((size_t)g->out_w + g->out_h) * sizeof(int), err);
    if (st != RD_OK) return rd_wrap(err, "resample weights");
    float *wx = r->weights.data, *wy = wx + nwx;
    int *start_x = r->starts.data, *start_y = start_x + g->out_w;
    axis_weights(kernel, g->in_w, g->full_w, g->crop_x, g->out_w, taps_x, start_x, wx);
    axis_weights(kernel, g->in_h, g->full_h, g->crop_y, g->out_h, taps_y, start_y, wy);

    /* Starts never decrease, so the first and last outputs bound the source window. */
    int x0 = start_x[0], x1 = start_x[g->out_w - 1] + taps_x;
    int y0 = start_y[0], y1 = start_y[g->out_h - 1] + taps_y;
    /* Horizontal results live in a ring of taps_y + 8 rows, computed eight at a time just before
     * the first output row that needs them: the ring stays in cache, a whole intermediate image
     * (2 MiB for 1024 -> 518) would not. Row k of the source sits in slot (k - y0) % ring. */
    int ring = taps_y + V8;
    st = rd_buf_reserve(&r->block, (size_t)V8 * (size_t)(x1 - x0) * sizeof(float), err);
    if (st == RD_OK) st = rd_buf_reserve(&r->mid, (size_t)ring * g->out_w * sizeof(float), err);
    if (st == RD_OK) st = rd_buf_reserve(&r->rows, (size_t)taps_y * sizeof(float *), err);
    if (st != RD_OK) return rd_wrap(err, "resample buffers");
    float *block = r->block.data, *mid = r->mid.data;
    const float **rows = r->rows.data;
    int integer = kind != SRC_F32;

    int next = y0; /* first source row not yet through the horizontal pass */
    for (int i = 0; i < g->out_h; i++) {
        while (next < start_y[i] + taps_y) {
            int n = y1 - next < V8 ? y1 - next : V8;
            float *dst[V8];
            for (int k = 0; k < n; k++) dst[k] = mid + (size_t)((next + k - y0) % ring) * g->out_w;
            interleave_rows(src, kind, g->in_w, next, n, x0, x1 - x0, block);
            horizontal_pass(block, x0, start_x, wx, taps_x, g->out_w, n, integer ? 65535.0f : 0.0f,
                            dst);
            next += n;
        }
        for (int k = 0; k < taps_y; k++)
            rows[k] = mid + (size_t)((start_y[i] + k - y0) % ring) * g->out_w;
        vertical_row(rows, wy + (size_t)i * taps_y, taps_y, g->out_w,
                     integer ? 1.0f / 65535.0f : 1.0f, integer, out + (size_t)i * g->out_w);
    }
    return RD_OK;
}

rd_status rd_resample_grey(rd_resampler *r, const rd_grey_image *src, const rd_geometry *g,
                           rd_kernel kernel, float *out, rd_error *err) {
    if (src->depth != 8 && src->depth != 16)
        return rd_fail(err, RD_EINVAL, "resample: depth %d is not 8 or 16", src->depth);
    if (src->width != g->in_w || src->height != g->in_h)
        return rd_fail(err, RD_EINVAL, "resample: image is %dx%d, geometry expects %dx%d",
                       src->width, src->height, g->in_w, g->in_h);
    return resample(r, src->data, src->depth == 8 ? SRC_U8 : SRC_U16, g, kernel, out, err);
}

rd_status rd_resample_float(rd_resampler *r, const float *src, const rd_geometry *g,
                            rd_kernel kernel, float *out, rd_error *err) {
    return resample(r, src, SRC_F32, g, kernel, out, err);
}

void rd_resampler_free(rd_resampler *r) {
    rd_buf_free(&r->weights);
    rd_buf_free(&r->starts);
    rd_buf_free(&r->block);
    rd_buf_free(&r->mid);
    rd_buf_free(&r->rows);
}
