/* Pillow's bicubic resize of uint8 planes, bit for bit (libImaging/Resample.c of Pillow 9.4:
 * precompute_coeffs, normalize_coeffs_8bpc, ImagingResampleHorizontal_8bpc / Vertical_8bpc,
 * ImagingResampleInner). See include/rdino/pillow_resample.h for the arithmetic.
 *
 * Layout for speed (the integer arithmetic is Pillow's, only the order of independent work
 * changes): the horizontal pass takes eight source rows at once, widened to int32 and interleaved
 * column by column (block[x * 8 + r]), so each tap of an output column is one 8-lane multiply-add
 * for eight rows; 8x8 result tiles are transposed back to rows. The vertical pass runs along
 * rows, 32 output pixels per step. Window taps are a fixed count per axis (zero weights pad the
 * shorter ones), so the loops have no per-pixel bounds. Integer sums are exact in any order, so
 * none of this changes a result.
 *
 * The weights are computed in double exactly as Pillow does: same expressions, same order.
 * This file must not be compiled with floating-point contraction (fused multiply-add changes the
 * last bit of a weight now and then, and a weight one unit off in 2^22 changes pixels): GCC's
 * -std=c11 (the Makefile's) implies -ffp-contract=off; the pragma covers Clang. */
#include "rdino/pillow_resample.h"

#include <math.h>
#include <string.h>

#include "simd.h"

#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

enum {
    PRECISION_BITS = 32 - 8 - 2, /* Resample.c: 8 bits of result, 2 of headroom */
    BICUBIC_SUPPORT = 2,
    MAX_SIDE = 1 << 24 /* Pillow passes the box as float: exact up to here */
};

/* Resample.c bicubic_filter: Keys' cubic convolution with a = -0.5. */
static double bicubic(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

/* The taps of one axis for output pixels first .. first + count - 1 of a resize from in_size to
 * full_size: output i reads inputs start[i] .. start[i] + taps - 1 with weights w[i * taps ..]
 * (int32, PRECISION_BITS fractional bits). */
typedef struct axis {
    int taps;
    int *start;
    int32_t *w;
} axis;

/* Pillow's ksize (the most taps any output needs), capped at the input size. */
static int axis_taps(int in_size, int full_size) {
    double scale = (double)(float)in_size / full_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    int ksize = (int)ceil(BICUBIC_SUPPORT * filterscale) * 2 + 1;
    return ksize < in_size ? ksize : in_size;
}

/* precompute_coeffs + normalize_coeffs_8bpc for the window. Pillow's taps for output xx are
 * xmin .. xmin + n - 1; here they sit at offset xmin - start[i] in a window of ax->taps inputs
 * moved left where needed to stay inside the image, zeros elsewhere. */
static void axis_coeffs(int in_size, int full_size, int first, int count, axis *ax) {
    /* (double)(in1 - in0) / outSize with the float box (0, in_size): in_size exactly. */
    double scale = (double)(float)in_size / full_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = BICUBIC_SUPPORT * filterscale;
    double ss = 1.0 / filterscale;
    int taps = ax->taps;
    for (int i = 0; i < count; i++) {
        int xx = first + i;
        double center = (xx + 0.5) * scale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        /* Pillow stores the raw weights and divides them by their sum afterwards; the kernel is
         * a pure function, so evaluating it twice gives the same doubles. */
        double ww = 0.0;
        for (int x = 0; x < xmax; x++) ww += bicubic((x + xmin - center + 0.5) * ss);
        int s = xmin < in_size - taps ? xmin : in_size - taps;
        int32_t *wi = ax->w + (size_t)i * taps;
        memset(wi, 0, (size_t)taps * sizeof *wi);
        for (int x = 0; x < xmax; x++) {
            double k = bicubic((x + xmin - center + 0.5) * ss);
            if (ww != 0.0) k /= ww;
            wi[xmin - s + x] = k < 0 ? (int32_t)(-0.5 + k * (1 << PRECISION_BITS))
                                     : (int32_t)(0.5 + k * (1 << PRECISION_BITS));
        }
        ax->start[i] = s;
    }
}

/* Resample.c clip8: the rounded sum shifted down to 8 bits, saturated. */
static inline uint8_t clip8(int32_t sum) {
    int32_t v = sum >> PRECISION_BITS;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

static inline v8i clip8_v(v8i sum) {
    const v8i zero = {0}, top = zero + 255;
    v8i v = sum >> PRECISION_BITS;
    v &= v > zero; /* comparisons give all-ones lanes where true */
    v8i above = v > top;
    return (v & ~above) | (top & above);
}

typedef uint8_t v8b __attribute__((vector_size(8)));
typedef uint8_t v32b __attribute__((vector_size(32)));

/* Stores the low byte of each lane (values already 0..255): a byte shuffle, where GCC's
 * __builtin_convertvector to bytes moves the lanes one by one through general registers. */
static inline void store8(uint8_t *p, v8i v) {
#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 12)
    v8b b = __builtin_shufflevector((v32b)v, (v32b)v, 0, 4, 8, 12, 16, 20, 24, 28);
#else
    v8b b = __builtin_convertvector(v, v8b);
#endif
    memcpy(p, &b, sizeof b);
}

/* ---- horizontal pass ---- */

/* Rows r[0..7], columns [x0, x0 + n) widened to int32 into block[(x - x0) * 8 + k]. */
static void interleave(const uint8_t *const r[V8], int x0, int n, int32_t *block) {
    int x = 0;
    for (; x + V8 <= n; x += V8) {
        v8f tile[V8];
#pragma GCC unroll 8
        for (int k = 0; k < V8; k++) tile[k] = (v8f)v8i_load_u8(r[k] + x0 + x);
        v8_transpose(tile);
#pragma GCC unroll 8
        for (int k = 0; k < V8; k++) memcpy(block + (size_t)(x + k) * V8, &tile[k], sizeof tile[k]);
    }
    for (; x < n; x++)
        for (int k = 0; k < V8; k++) block[(size_t)x * V8 + k] = r[k][x0 + x];
}

/* Output columns j .. j + m - 1 (m <= 8) for the eight interleaved rows: Pillow's ss0 for each
 * row, clamped, in tile[c] (lanes are rows). The eight columns advance tap by tap: eight
 * independent sums per step. Columns past m repeat the last one (discarded by the caller). */
static inline void column_tile(const int32_t *block, int x0, const axis *ax, int j, int m,
                               v8f tile[V8]) {
    const int32_t *p[V8], *w[V8];
    v8i acc[V8];
    for (int c = 0; c < V8; c++) {
        int col = j + (c < m ? c : m - 1);
        p[c] = block + (size_t)(ax->start[col] - x0) * V8;
        w[c] = ax->w + (size_t)col * ax->taps;
        acc[c] = (v8i){0} + (1 << (PRECISION_BITS - 1));
    }
    for (int k = 0; k < ax->taps; k++) {
#pragma GCC unroll 8
        for (int c = 0; c < V8; c++) {
            v8i a;
            memcpy(&a, p[c] + (size_t)k * V8, sizeof a);
            acc[c] += w[c][k] * a;
        }
    }
    for (int c = 0; c < V8; c++) tile[c] = (v8f)clip8_v(acc[c]);
}

/* Horizontal pass of rows src[0 .. rows) (stride src_stride) into dst rows (stride dst_stride),
 * out_w columns with the taps of ax; block holds 8 * (x1 - x0) int32. */
static void horizontal_pass(const uint8_t *src, size_t src_stride, int rows, const axis *ax,
                            int out_w, int32_t *block, uint8_t *dst, size_t dst_stride) {
    int x0 = ax->start[0], x1 = ax->start[out_w - 1] + ax->taps;
    for (int y = 0; y < rows; y += V8) {
        int n = rows - y < V8 ? rows - y : V8;
        const uint8_t *r[V8];
        for (int k = 0; k < V8; k++) r[k] = src + (size_t)(y + (k < n ? k : n - 1)) * src_stride;
        interleave(r, x0, x1 - x0, block);
        uint8_t *out = dst + (size_t)y * dst_stride;
        for (int j = 0; j < out_w; j += V8) {
            int m = out_w - j < V8 ? out_w - j : V8;
            v8f tile[V8];
            column_tile(block, x0, ax, j, m, tile);
            v8_transpose(tile);
            for (int k = 0; k < n; k++) {
                if (m == V8) {
                    store8(out + (size_t)k * dst_stride + j, (v8i)tile[k]);
                } else {
                    uint8_t bytes[V8];
                    store8(bytes, (v8i)tile[k]);
                    memcpy(out + (size_t)k * dst_stride + j, bytes, (size_t)m);
                }
            }
        }
    }
}

/* ---- vertical pass ---- */

/* Output rows 0 .. out_h of the vertical pass over src (row r of the pass's input at
 * src + (r - row_base) * stride), out_w columns, into dst (stride out_w). */
static void vertical_pass(const uint8_t *src, size_t stride, int row_base, const axis *ay,
                          int out_w, int out_h, uint8_t *dst) {
    const v8i half = (v8i){0} + (1 << (PRECISION_BITS - 1));
    for (int i = 0; i < out_h; i++) {
        const int32_t *w = ay->w + (size_t)i * ay->taps;
        const uint8_t *first = src + (size_t)(ay->start[i] - row_base) * stride;
        uint8_t *o = dst + (size_t)i * out_w;
        int x = 0;
        for (; x + 4 * V8 <= out_w; x += 4 * V8) {
            v8i a0 = half, a1 = half, a2 = half, a3 = half;
            const uint8_t *p = first + x;
            for (int k = 0; k < ay->taps; k++, p += stride) {
                int32_t wk = w[k];
                a0 += wk * v8i_load_u8(p);
                a1 += wk * v8i_load_u8(p + V8);
                a2 += wk * v8i_load_u8(p + 2 * V8);
                a3 += wk * v8i_load_u8(p + 3 * V8);
            }
            store8(o + x, clip8_v(a0));
            store8(o + x + V8, clip8_v(a1));
            store8(o + x + 2 * V8, clip8_v(a2));
            store8(o + x + 3 * V8, clip8_v(a3));
        }
        for (; x + V8 <= out_w; x += V8) {
            v8i a = half;
            const uint8_t *p = first + x;
            for (int k = 0; k < ay->taps; k++, p += stride) a += w[k] * v8i_load_u8(p);
            store8(o + x, clip8_v(a));
        }
        for (; x < out_w; x++) {
            int32_t sum = 1 << (PRECISION_BITS - 1);
            const uint8_t *p = first + x;
            for (int k = 0; k < ay->taps; k++, p += stride) sum += w[k] * (int32_t)*p;
            o[x] = clip8(sum);
        }
    }
}

/* ---- driver ---- */

static int geometry_ok(const rd_geometry *g) {
    return g->in_w > 0 && g->in_h > 0 && g->full_w > 0 && g->full_h > 0 && g->out_w > 0 &&
           g->out_h > 0 && g->crop_x >= 0 && g->crop_y >= 0 && g->crop_x <= g->full_w - g->out_w &&
           g->crop_y <= g->full_h - g->out_h && g->in_w < MAX_SIDE && g->in_h < MAX_SIDE &&
           g->full_w < MAX_SIDE && g->full_h < MAX_SIDE;
}

rd_status rd_pillow_resize(rd_pillow_resampler *r, const rd_geometry *g, int planes,
                           const uint8_t *const *src, uint8_t *const *dst, rd_error *err) {
    if (!geometry_ok(g) || planes < 1)
        return rd_fail(err, RD_EINVAL,
                       "pillow resize: invalid geometry %dx%d -> %dx%d, window %dx%d at (%d, %d), "
                       "%d planes",
                       g->in_w, g->in_h, g->full_w, g->full_h, g->out_w, g->out_h, g->crop_x,
                       g->crop_y, planes);
    /* ImagingResampleInner: a pass runs only when its axis changes size. */
    int need_h = g->full_w != g->in_w, need_v = g->full_h != g->in_h;
    axis ax = {need_h ? axis_taps(g->in_w, g->full_w) : 0, NULL, NULL};
    axis ay = {need_v ? axis_taps(g->in_h, g->full_h) : 0, NULL, NULL};
    size_t nwx = (size_t)g->out_w * ax.taps, nwy = (size_t)g->out_h * ay.taps;
    /* Same geometry: same sizes, so the buffers below keep their contents. */
    int cached = memcmp(&r->coeffs_for, g, sizeof *g) == 0;
    r->coeffs_for = (rd_geometry){0}; /* until they are complete again */
    rd_status st = rd_buf_reserve(&r->coeffs, (nwx + nwy) * sizeof(int32_t), err);
    if (st == RD_OK)
        st = rd_buf_reserve(&r->starts, ((size_t)g->out_w + g->out_h) * sizeof(int), err);
    if (st != RD_OK) return rd_wrap(err, "pillow resize coefficients");
    ax.w = r->coeffs.data;
    ay.w = ax.w + nwx;
    ax.start = r->starts.data;
    ay.start = ax.start + g->out_w;
    if (!cached && need_h) axis_coeffs(g->in_w, g->full_w, g->crop_x, g->out_w, &ax);
    if (!cached && need_v) axis_coeffs(g->in_h, g->full_h, g->crop_y, g->out_h, &ay);
    r->coeffs_for = *g;

    /* Source rows the vertical pass reads (or the window's rows when it is skipped). */
    int y_lo = need_v ? ay.start[0] : g->crop_y;
    int y_hi = need_v ? ay.start[g->out_h - 1] + ay.taps : g->crop_y + g->out_h;
    if (need_h) {
        int span = ax.start[g->out_w - 1] + ax.taps - ax.start[0];
        st = rd_buf_reserve(&r->block, (size_t)V8 * span * sizeof(int32_t), err);
        if (st == RD_OK && need_v)
            st = rd_buf_reserve(&r->mid, (size_t)(y_hi - y_lo) * g->out_w, err);
        if (st != RD_OK) return rd_wrap(err, "pillow resize buffers");
    }
    size_t in_w = (size_t)g->in_w, out_w = (size_t)g->out_w;
    for (int p = 0; p < planes; p++) {
        const uint8_t *rows = src[p] + (size_t)y_lo * in_w;
        if (need_h) {
            uint8_t *target = need_v ? r->mid.data : dst[p];
            horizontal_pass(rows, in_w, y_hi - y_lo, &ax, g->out_w, r->block.data, target, out_w);
            if (need_v) vertical_pass(target, out_w, y_lo, &ay, g->out_w, g->out_h, dst[p]);
        } else if (need_v) {
            vertical_pass(src[p] + g->crop_x, in_w, 0, &ay, g->out_w, g->out_h, dst[p]);
        } else {
            for (int y = 0; y < g->out_h; y++)
                memcpy(dst[p] + (size_t)y * out_w, rows + (size_t)y * in_w + g->crop_x, out_w);
        }
    }
    return RD_OK;
}

void rd_pillow_resampler_free(rd_pillow_resampler *r) {
    r->coeffs_for = (rd_geometry){0};
    rd_buf_free(&r->coeffs);
    rd_buf_free(&r->starts);
    rd_buf_free(&r->block);
    rd_buf_free(&r->mid);
}
