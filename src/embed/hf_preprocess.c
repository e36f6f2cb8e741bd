/* transformers' BitImageProcessor on Pillow 9.4, bit for bit. See include/rdino/hf_preprocess.h
 * for the steps and include/rdino/hf_processor.h for the settings. */
#include "rdino/hf_preprocess.h"

#include <limits.h>
#include <math.h>
#include <string.h>

#include "rdino/log.h"

/* Size after step 2 (image_transforms.get_resize_output_image_size, default_to_square False). */
static void resized_size(const rd_hf_processor *p, int in_w, int in_h, int *w, int *h) {
    if (!p->do_resize) {
        *w = in_w;
        *h = in_h;
    } else if (p->shortest_edge <= 0) {
        *w = p->size_width;
        *h = p->size_height;
    } else {
        int w_short = in_w <= in_h;
        long long shorter = w_short ? in_w : in_h, longer = w_short ? in_h : in_w;
        /* Python's int(S * long / short): the integer product, a correctly rounded true
         * division, truncation. The product is exact in double below 2^53. */
        double scaled = (double)(p->shortest_edge * longer) / (double)shorter;
        /* Absurd aspect ratios: saturate, and rd_pillow_resize refuses the size. */
        int new_long = scaled < (double)INT_MAX ? (int)scaled : INT_MAX;
        *w = w_short ? p->shortest_edge : new_long;
        *h = w_short ? new_long : p->shortest_edge;
    }
}

void rd_hf_output_size(const rd_hf_processor *p, int in_w, int in_h, int *out_w, int *out_h) {
    resized_size(p, in_w, in_h, out_w, out_h);
    if (p->do_center_crop) {
        *out_w = p->crop_width;
        *out_h = p->crop_height;
    }
}

/* Python's a // 2. */
static int floor_half(int a) {
    return a >= 0 ? a / 2 : -((1 - a) / 2);
}

/* lut[v] = the float32 result of steps 4 and 5 for the uint8 value v on channel c. */
static void channel_lut(const rd_hf_processor *p, int c, float lut[256]) {
    float mean = (float)p->image_mean[c], std = (float)p->image_std[c];
    for (int v = 0; v < 256; v++) {
        float x = p->do_rescale ? (float)((double)v * p->rescale_factor) : (float)v;
        lut[v] = p->do_normalize ? (x - mean) / std : x;
    }
}

rd_status rd_hf_preprocess_rgb(rd_hf_workspace *ws, const rd_rgb_planes *rgb,
                               const rd_hf_processor *p, int allow_one_channel, float *out,
                               size_t out_floats, rd_hf_result *res, rd_error *err) {
    memset(res, 0, sizeof *res);
    rd_status st = rd_hf_check(p, err);
    if (st != RD_OK) return st;
    if (rgb->width <= 0 || rgb->height <= 0 || (rgb->planes != 1 && rgb->planes != 3))
        return rd_fail(err, RD_EINVAL, "hf preprocessing: invalid %dx%d image with %d planes",
                       rgb->width, rgb->height, rgb->planes);
    int full_w, full_h, out_w, out_h;
    resized_size(p, rgb->width, rgb->height, &full_w, &full_h);
    rd_hf_output_size(p, rgb->width, rgb->height, &out_w, &out_h);
    if (full_w <= 0 || full_h <= 0)
        return rd_fail(err, RD_EINVAL, "hf preprocessing: %dx%d image resizes to %dx%d", rgb->width,
                       rgb->height, full_w, full_h);
    size_t pixels = (size_t)out_w * (size_t)out_h;
    if (out_floats < 3 * pixels)
        return rd_fail(err, RD_ERANGE,
                       "hf preprocessing: output buffer of %zu floats, %zu needed for 3x%dx%d",
                       out_floats, 3 * pixels, out_h, out_w);

    /* The crop window in resized coordinates, and its part inside the resized image. */
    int top = p->do_center_crop ? floor_half(full_h - out_h) : 0;
    int left = p->do_center_crop ? floor_half(full_w - out_w) : 0;
    int y0 = top > 0 ? top : 0, y1 = top + out_h < full_h ? top + out_h : full_h;
    int x0 = left > 0 ? left : 0, x1 = left + out_w < full_w ? left + out_w : full_w;
    int win_w = x1 - x0, win_h = y1 - y0;

    float lut[3][256];
    for (int c = 0; c < 3; c++) channel_lut(p, c, lut[c]);
    int same_lut =
        memcmp(lut[0], lut[1], sizeof lut[0]) == 0 && memcmp(lut[0], lut[2], sizeof lut[0]) == 0;
    int channels = rgb->planes == 1 && same_lut && allow_one_channel ? 1 : 3;

    size_t win_pixels = (size_t)win_w * (size_t)win_h;
    st = rd_buf_reserve(&ws->window, (size_t)rgb->planes * win_pixels, err);
    if (st != RD_OK) return rd_wrap(err, "hf preprocessing window");
    uint8_t *window[3] = {ws->window.data};
    for (int c = 1; c < rgb->planes; c++) window[c] = window[0] + (size_t)c * win_pixels;
    if (win_w > 0 && win_h > 0) {
        rd_geometry g = {.in_w = rgb->width,
                         .in_h = rgb->height,
                         .full_w = full_w,
                         .full_h = full_h,
                         .crop_x = x0,
                         .crop_y = y0,
                         .out_w = win_w,
                         .out_h = win_h};
        st = rd_pillow_resize(&ws->resampler, &g, rgb->planes, rgb->plane, window, err);
        if (st != RD_OK) return rd_wrap(err, "hf preprocessing");
    }

    for (int c = 0; c < channels; c++) {
        const uint8_t *src = window[rgb->planes == 3 ? c : 0];
        const float *l = lut[c];
        float *o = out + (size_t)c * pixels;
        for (int i = 0; i < out_h; i++) {
            float *row = o + (size_t)i * out_w;
            int y = top + i;
            if (y < y0 || y >= y1 || win_w <= 0) {
                for (int j = 0; j < out_w; j++) row[j] = l[0]; /* center_crop's zero padding */
                continue;
            }
            const uint8_t *s = src + (size_t)(y - y0) * win_w;
            int j = 0;
            for (; j < x0 - left; j++) row[j] = l[0];
            for (int k = 0; k < win_w; k++, j++) row[j] = l[s[k]];
            for (; j < out_w; j++) row[j] = l[0];
        }
    }
    res->channels = channels;
    res->width = out_w;
    res->height = out_h;
    return RD_OK;
}

rd_status rd_hf_preprocess_png(rd_hf_workspace *ws, const rd_png_image *png, const char *name,
                               const rd_hf_processor *p, int allow_one_channel, float *out,
                               size_t out_floats, rd_hf_result *res, rd_error *err) {
    rd_rgb_planes rgb;
    rd_pillow_loss loss;
    rd_status st = rd_pillow_png_to_rgb(png, p->do_convert_rgb, name, &ws->rgb, &rgb, &loss, err);
    if (st != RD_OK) return st;
    st = rd_hf_preprocess_rgb(ws, &rgb, p, allow_one_channel, out, out_floats, res, err);
    if (st != RD_OK) return rd_wrap(err, "%s", name);
    res->loss = loss;
    return RD_OK;
}

void rd_hf_workspace_free(rd_hf_workspace *ws) {
    rd_buf_free(&ws->rgb);
    rd_buf_free(&ws->window);
    rd_pillow_resampler_free(&ws->resampler);
}

void rd_hf_tally_add(rd_hf_tally *t, const rd_hf_result *res) {
    t->images++;
    t->clipped_images += res->loss.clipped_samples > 0;
    t->high_byte_images += res->loss.high_byte_only != 0;
}

void rd_hf_tally_warn(const rd_hf_tally *t) {
    if (t->clipped_images)
        rd_warn("hf preprocessing: %zu of %zu images were 16-bit grey with samples clipped at 255 "
                "as transformers does (Pillow's convert(\"RGB\")); this destroys 16-bit detail; "
                "embed.preprocess: rdino keeps it",
                t->clipped_images, t->images);
    if (t->high_byte_images)
        rd_warn("hf preprocessing: %zu of %zu images were 16-bit colour or grey+alpha reduced to "
                "their high byte as transformers does; embed.preprocess: rdino keeps 16 bits",
                t->high_byte_images, t->images);
}
