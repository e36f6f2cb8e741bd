/* The per-image preprocessing pipeline; see preprocess_image.h. */
#include "rdino/preprocess_image.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rdino/log.h"

struct rd_prep_workspace {
    rd_png_reader png;
    rd_resampler resampler;
    rd_buf resized; /* float output window */
    rd_buf scratch; /* percentile selection */
};

rd_prep_options rd_prep_defaults(void) {
    return (rd_prep_options){.size = 518,
                             .center_crop = 1,
                             .kernel = RD_KERNEL_BSPLINE,
                             .norm = RD_NORM_MINMAX,
                             .lo_pct = 0.5,
                             .hi_pct = 99.5,
                             .bit_depth = 8,
                             .max_pixels = 400000000,
                             .max_aspect = 4.0};
}

rd_status rd_prep_options_from_config(const rd_config *cfg, rd_prep_options *o, rd_error *err) {
    *o = rd_prep_defaults();
    o->size = (int)rd_cfg_int(cfg, "preprocess.size");
    o->center_crop = strcmp(rd_cfg_str(cfg, "preprocess.crop"), "center") == 0;
    o->kernel = (rd_kernel)rd_kernel_parse(rd_cfg_str(cfg, "preprocess.resample"));
    o->norm = (rd_norm)rd_norm_parse(rd_cfg_str(cfg, "preprocess.normalize"));
    double pct[2];
    rd_cfg_list(cfg, "preprocess.percentiles", pct, 2);
    o->lo_pct = pct[0];
    o->hi_pct = pct[1];
    o->bit_depth = (int)rd_cfg_int(cfg, "preprocess.bit_depth");
    o->max_pixels = (size_t)rd_cfg_int(cfg, "preprocess.max_pixels");
    o->max_aspect = rd_cfg_float(cfg, "preprocess.max_aspect");
    return rd_prep_check_options(o, err) ? rd_wrap(err, "preprocess configuration") : RD_OK;
}

rd_status rd_prep_check_options(const rd_prep_options *opt, rd_error *err) {
    if (opt->size < 1 || opt->size > 65535)
        return rd_fail(err, RD_EINVAL, "preprocess size %d is not in 1..65535", opt->size);
    if (opt->kernel != RD_KERNEL_CUBIC && opt->kernel != RD_KERNEL_BSPLINE)
        return rd_fail(err, RD_EINVAL, "unknown resampling kernel %d", (int)opt->kernel);
    if (opt->norm != RD_NORM_MINMAX && opt->norm != RD_NORM_PERCENTILE)
        return rd_fail(err, RD_EINVAL, "unknown normalisation %d", (int)opt->norm);
    if (opt->norm == RD_NORM_PERCENTILE &&
        !(opt->lo_pct >= 0.0 && opt->lo_pct < opt->hi_pct && opt->hi_pct <= 100.0))
        return rd_fail(err, RD_EINVAL, "percentiles %g, %g are not 0 <= lo < hi <= 100",
                       opt->lo_pct, opt->hi_pct);
    if (opt->bit_depth != 8 && opt->bit_depth != 16)
        return rd_fail(err, RD_EINVAL, "output bit depth %d is not 8 or 16", opt->bit_depth);
    if (opt->max_pixels < 1) return rd_fail(err, RD_EINVAL, "max_pixels must be positive");
    if (!opt->center_crop && !(opt->max_aspect >= 1.0 && opt->max_aspect <= 1000.0))
        return rd_fail(err, RD_EINVAL, "max_aspect %g is not in 1..1000", opt->max_aspect);
    return RD_OK;
}

/* The longest output side allowed: size itself when cropping. */
static size_t max_long_side(const rd_prep_options *opt) {
    return opt->center_crop ? (size_t)opt->size : (size_t)floor(opt->size * opt->max_aspect);
}

size_t rd_prep_output_bytes(const rd_prep_options *opt) {
    return (size_t)opt->size * max_long_side(opt) * (size_t)(opt->bit_depth / 8);
}

rd_prep_workspace *rd_prep_workspace_new(void) {
    return calloc(1, sizeof(rd_prep_workspace));
}

size_t rd_prep_workspace_bytes(const rd_prep_workspace *ws) {
    const rd_buf *bufs[] = {
        &ws->png.file,          &ws->png.pixels,       &ws->png.scratch,     &ws->png.rows,
        &ws->resampler.weights, &ws->resampler.starts, &ws->resampler.block, &ws->resampler.mid,
        &ws->resampler.rows,    &ws->resized,          &ws->scratch};
    size_t total = sizeof *ws;
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) total += bufs[i]->cap;
    return total;
}

void rd_prep_workspace_free(rd_prep_workspace *ws) {
    if (!ws) return;
    rd_png_reader_free(&ws->png);
    rd_resampler_free(&ws->resampler);
    rd_buf_free(&ws->resized);
    rd_buf_free(&ws->scratch);
    free(ws);
}

/* Resize, crop, window, quantise: everything after decoding. */
static rd_status process(rd_prep_workspace *ws, const rd_grey_image *src, const char *name,
                         const rd_prep_options *opt, void *out, size_t out_bytes,
                         rd_prep_result *res, rd_error *err) {
    double t0 = rd_now();
    rd_geometry g = rd_geometry_shorter_side(src->width, src->height, opt->size, opt->center_crop);
    size_t n = (size_t)g.out_w * (size_t)g.out_h;
    size_t bytes = n * (size_t)(opt->bit_depth / 8);
    if ((size_t)(g.out_w > g.out_h ? g.out_w : g.out_h) > max_long_side(opt) || bytes > out_bytes) {
        res->reject = RD_REJECT_ASPECT;
        return rd_fail(err, RD_ERANGE,
                       "%s: %dx%d resizes to %dx%d, larger than the output buffer allows "
                       "(max_aspect %g) (aspect)",
                       name, src->width, src->height, g.out_w, g.out_h, opt->max_aspect);
    }
    rd_status st = rd_buf_reserve(&ws->resized, n * sizeof(float), err);
    if (st == RD_OK && opt->norm == RD_NORM_PERCENTILE)
        st = rd_buf_reserve(&ws->scratch, n * sizeof(float), err);
    if (st == RD_OK)
        st = rd_resample_grey(&ws->resampler, src, &g, opt->kernel, ws->resized.data, err);
    if (st != RD_OK) {
        res->reject = st == RD_ENOMEM ? RD_REJECT_NO_MEMORY : RD_REJECT_CORRUPT;
        return rd_wrap(err, "%s", name);
    }
    double t1 = rd_now();
    rd_norm_window(ws->resized.data, n, opt->norm, opt->lo_pct, opt->hi_pct, ws->scratch.data,
                   &res->window_lo, &res->window_hi);
    res->warnings |=
        rd_quantize(ws->resized.data, n, res->window_lo, res->window_hi, opt->bit_depth, out);
    res->out_width = g.out_w;
    res->out_height = g.out_h;
    res->seconds_resize = t1 - t0;
    res->seconds_normalize = rd_now() - t1;
    return RD_OK;
}

rd_status rd_prep_grey(rd_prep_workspace *ws, const rd_grey_image *src, const char *name,
                       const rd_prep_options *opt, void *out, size_t out_bytes, rd_prep_result *res,
                       rd_error *err) {
    memset(res, 0, sizeof *res);
    res->source = (rd_png_info){
        .width = src->width, .height = src->height, .bit_depth = src->depth, .color_type = 0};
    rd_status st = rd_prep_check_options(opt, err);
    if (st != RD_OK) return st;
    return process(ws, src, name, opt, out, out_bytes, res, err);
}

rd_status rd_prep_image(rd_prep_workspace *ws, const char *path, const rd_prep_options *opt,
                        void *out, size_t out_bytes, rd_prep_result *res, rd_error *err) {
    memset(res, 0, sizeof *res);
    rd_status st = rd_prep_check_options(opt, err);
    if (st != RD_OK) return st;
    double t0 = rd_now();
    rd_grey_image img;
    st = rd_png_read(&ws->png, path, opt->max_pixels, &img, &res->source, &res->reject, err);
    res->seconds_read = rd_now() - t0;
    if (st != RD_OK) return st;
    return process(ws, &img, path, opt, out, out_bytes, res, err);
}
