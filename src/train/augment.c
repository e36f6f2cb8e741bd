/* DINOv2 multi-crop augmentation on grey images. See include/rdino/augment.h. */
#include "rdino/augment.h"

#include <math.h>
#include <string.h>

/* ---- configuration ---- */

void rd_augment_config_default(rd_augment_config *cfg, int channels) {
    *cfg = (rd_augment_config){.global_size = 224,
                               .local_size = 96,
                               .n_local = 8,
                               .global_scale = {0.32, 1.0},
                               .local_scale = {0.05, 0.32},
                               .ratio = {3.0 / 4.0, 4.0 / 3.0},
                               .flip_p = 0.5,
                               .jitter_p = 0.8,
                               .brightness = 0.4,
                               .contrast = 0.4,
                               .blur_p = {0.0, 0.9, 0.5},
                               .blur_sigma = {0.1, 2.0},
                               .blur_kernel = 9,
                               .solarize_p = 0.2,
                               .solarize_threshold = 128.0 / 255.0,
                               .mean = 0.5307,
                               .std = 0.2583,
                               .channels = channels};
}

rd_status rd_augment_config_from(const rd_config *config, int channels, rd_augment_config *cfg,
                                 rd_error *err) {
    rd_augment_config_default(cfg, channels);
    cfg->global_size = (int)rd_cfg_int(config, "crops.global_crops_size");
    cfg->local_size = (int)rd_cfg_int(config, "crops.local_crops_size");
    cfg->n_local = (int)rd_cfg_int(config, "crops.local_crops_number");
    rd_cfg_list(config, "crops.global_crops_scale", cfg->global_scale, 2);
    rd_cfg_list(config, "crops.local_crops_scale", cfg->local_scale, 2);
    cfg->flip_p = rd_cfg_float(config, "pretrain.augment.flip_p");
    cfg->jitter_p = rd_cfg_float(config, "pretrain.augment.jitter_p");
    cfg->brightness = rd_cfg_float(config, "pretrain.augment.brightness");
    cfg->contrast = rd_cfg_float(config, "pretrain.augment.contrast");
    cfg->blur_p[RD_CROP_GLOBAL1] = rd_cfg_float(config, "pretrain.augment.blur_p_global1");
    cfg->blur_p[RD_CROP_GLOBAL2] = rd_cfg_float(config, "pretrain.augment.blur_p_global2");
    cfg->blur_p[RD_CROP_LOCAL] = rd_cfg_float(config, "pretrain.augment.blur_p_local");
    rd_cfg_list(config, "pretrain.augment.blur_sigma", cfg->blur_sigma, 2);
    cfg->solarize_p = rd_cfg_float(config, "pretrain.augment.solarize_p");
    cfg->mean = rd_cfg_float(config, "pretrain.augment.mean");
    cfg->std = rd_cfg_float(config, "pretrain.augment.std");
    return rd_augment_config_check(cfg, err);
}

rd_status rd_augment_config_check(const rd_augment_config *c, rd_error *err) {
    const int radius = c->blur_kernel / 2;
    if (c->global_size <= radius || c->local_size <= radius)
        return rd_fail(err, RD_EINVAL,
                       "augment: crops.global_crops_size %d and crops.local_crops_size %d must "
                       "exceed the blur radius %d",
                       c->global_size, c->local_size, radius);
    if (c->n_local < 0) return rd_fail(err, RD_EINVAL, "augment: crops.local_crops_number < 0");
    if (!(c->global_scale[0] > 0 && c->global_scale[0] <= c->global_scale[1]))
        return rd_fail(err, RD_EINVAL,
                       "augment: crops.global_crops_scale [%g, %g] is not 0 < lo <= hi",
                       c->global_scale[0], c->global_scale[1]);
    if (!(c->local_scale[0] > 0 && c->local_scale[0] <= c->local_scale[1]))
        return rd_fail(err, RD_EINVAL,
                       "augment: crops.local_crops_scale [%g, %g] is not 0 < lo <= hi",
                       c->local_scale[0], c->local_scale[1]);
    if (!(c->ratio[0] > 0 && c->ratio[0] <= c->ratio[1]))
        return rd_fail(err, RD_EINVAL, "augment: aspect range [%g, %g] is not 0 < lo <= hi",
                       c->ratio[0], c->ratio[1]);
    if (!(c->blur_sigma[0] > 0 && c->blur_sigma[0] <= c->blur_sigma[1]))
        return rd_fail(err, RD_EINVAL,
                       "augment: pretrain.augment.blur_sigma [%g, %g] is not 0 < lo <= hi",
                       c->blur_sigma[0], c->blur_sigma[1]);
    if (c->blur_kernel < 1 || c->blur_kernel % 2 == 0 || c->blur_kernel > RD_AUGMENT_MAX_BLUR)
        return rd_fail(err, RD_EINVAL, "augment: blur kernel of %d taps (odd, 1..%d)",
                       c->blur_kernel, RD_AUGMENT_MAX_BLUR);
    const double p[] = {c->flip_p,    c->jitter_p,  c->blur_p[0],
                        c->blur_p[1], c->blur_p[2], c->solarize_p};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++)
        if (!(p[i] >= 0 && p[i] <= 1))
            return rd_fail(err, RD_EINVAL, "augment: probability %g outside [0, 1]", p[i]);
    if (!(c->brightness >= 0 && c->contrast >= 0))
        return rd_fail(err, RD_EINVAL, "augment: negative jitter strength");
    if (!(c->std > 0 && isfinite(c->mean)))
        return rd_fail(err, RD_EINVAL, "augment: pretrain.augment.std %g must be > 0", c->std);
    if (c->channels < 1) return rd_fail(err, RD_EINVAL, "augment: %d channels", c->channels);
    return RD_OK;
}

/* ---- draws ---- */

/* torch.rand(1) and torch.empty(1).uniform_(from, to) on the CPU: 24 random bits, from, to and
 * the arithmetic in float32. */
static float rand_f32(rd_rng *r) {
    return (float)(rd_rng_u32(r) >> 8) * 0x1p-24f;
}

static float uniform_f32(rd_rng *r, float from, float to) {
    return rand_f32(r) * (to - from) + from;
}

/* RandomApply, RandomHorizontalFlip, RandomSolarize: applied when rand < p (p = 0: never). */
static int coin(rd_rng *r, double p) {
    return rand_f32(r) < (float)p;
}

rd_crop_box rd_rrc_params(int width, int height, const double scale[2], const double ratio[2],
                          rd_rng *rng) {
    const double area = (double)width * height;
    const float log_lo = logf((float)ratio[0]), log_hi = logf((float)ratio[1]);
    for (int attempt = 0; attempt < 10; attempt++) {
        double target = area * uniform_f32(rng, (float)scale[0], (float)scale[1]);
        double aspect = expf(uniform_f32(rng, log_lo, log_hi));
        /* Python's round(): half to even, which rint() is in the default rounding mode. */
        int w = (int)rint(sqrt(target * aspect)), h = (int)rint(sqrt(target / aspect));
        if (0 < w && w <= width && 0 < h && h <= height) {
            int top = (int)rd_rng_randint(rng, 0, height - h);
            int left = (int)rd_rng_randint(rng, 0, width - w);
            return (rd_crop_box){top, left, h, w};
        }
    }
    /* Fallback: centre crop, aspect clamped to the ratio range (ratio in double, as Python). */
    double in_ratio = (double)width / height;
    int w = width, h = height;
    if (in_ratio < ratio[0])
        h = (int)rint(w / ratio[0]);
    else if (in_ratio > ratio[1])
        w = (int)rint(h * ratio[1]);
    return (rd_crop_box){(height - h) / 2, (width - w) / 2, h, w};
}

/* ---- photometric operations ---- */

void rd_augment_hflip(float *x, int w, int h) {
    for (int y = 0; y < h; y++) {
        float *row = x + (size_t)y * w;
        for (int i = 0, j = w - 1; i < j; i++, j--) {
            float t = row[i];
            row[i] = row[j];
            row[j] = t;
        }
    }
}

static float clamp01(float v) {
    return v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
}

void rd_augment_brightness(float *x, size_t n, float factor) {
    for (size_t i = 0; i < n; i++) x[i] = clamp01(x[i] * factor);
}

void rd_augment_contrast(float *x, size_t n, float factor) {
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) sum += x[i];
    const float mean = (float)(sum / (double)n);
    for (size_t i = 0; i < n; i++) x[i] = clamp01(mean + factor * (x[i] - mean));
}

void rd_gaussian_kernel(double sigma, int taps, float *k) {
    /* torchvision _get_gaussian_kernel1d, in float32 like torch. */
    const float s = (float)sigma, half = (float)(taps - 1) * 0.5f;
    float sum = 0.0f;
    for (int i = 0; i < taps; i++) {
        float t = ((float)i - half) / s;
        k[i] = expf(-0.5f * t * t);
        sum += k[i];
    }
    for (int i = 0; i < taps; i++) k[i] /= sum;
}

/* torch 'reflect' padding: -1 -> 1, n -> n - 2 (needs n > radius). */
static int reflect(int i, int n) {
    return i < 0 ? -i : i >= n ? 2 * (n - 1) - i : i;
}

void rd_augment_blur(float *x, int w, int h, const float *k, int taps, float *scratch) {
    const int r = taps / 2;
    float *tmp = scratch, *pad = scratch + (size_t)w * h;
    for (int y = 0; y < h; y++) { /* rows into tmp */
        const float *row = x + (size_t)y * w;
        for (int i = -r; i < w + r; i++) pad[i + r] = row[reflect(i, w)];
        float *o = tmp + (size_t)y * w;
        for (int i = 0; i < w; i++) o[i] = 0.0f;
        for (int t = 0; t < taps; t++)
            for (int i = 0; i < w; i++) o[i] += k[t] * pad[i + t];
    }
    for (int y = 0; y < h; y++) { /* columns back into x */
        float *o = x + (size_t)y * w;
        for (int i = 0; i < w; i++) o[i] = 0.0f;
        for (int t = 0; t < taps; t++) {
            const float *src = tmp + (size_t)reflect(y + t - r, h) * w;
            for (int i = 0; i < w; i++) o[i] += k[t] * src[i];
        }
    }
}

void rd_augment_solarize(float *x, size_t n, float threshold) {
    for (size_t i = 0; i < n; i++)
        if (x[i] >= threshold) x[i] = 1.0f - x[i];
}

void rd_augment_normalize(const float *x, size_t n, float mean, float std, int channels,
                          float *out) {
    for (size_t i = 0; i < n; i++) out[i] = (x[i] - mean) / std;
    for (int c = 1; c < channels; c++) memcpy(out + (size_t)c * n, out, n * sizeof *out);
}

/* ---- whole crops ---- */

static int max_size(const rd_augment_config *cfg) {
    return cfg->global_size > cfg->local_size || cfg->n_local == 0 ? cfg->global_size
                                                                   : cfg->local_size;
}

rd_status rd_augmenter_init(rd_augmenter *a, const rd_augment_config *cfg, int max_width,
                            int max_height, rd_error *err) {
    memset(a, 0, sizeof *a);
    rd_status st = rd_augment_config_check(cfg, err);
    if (st) return st;
    if (max_width < 1 || max_height < 1)
        return rd_fail(err, RD_EINVAL, "augment: source size %dx%d", max_width, max_height);
    a->cfg = *cfg;
    a->max_width = max_width;
    a->max_height = max_height;
    const size_t pixels = (size_t)max_width * max_height, s = (size_t)max_size(cfg);
    st = rd_buf_reserve(&a->crop, pixels * sizeof(uint16_t), err);
    if (!st)
        st = rd_buf_reserve(&a->image, (2 * s * s + s + (size_t)cfg->blur_kernel) * sizeof(float),
                            err);
    /* The resampler's buffers are largest for the whole image: size them now, not mid-run. */
    const int sizes[2] = {cfg->global_size, cfg->local_size};
    for (int i = 0; i < 2 && !st; i++) {
        memset(a->crop.data, 0, pixels * sizeof(uint16_t));
        rd_grey_image whole = {max_width, max_height, 16, a->crop.data};
        rd_geometry g = rd_geometry_resize(max_width, max_height, sizes[i], sizes[i]);
        st = rd_resample_grey(&a->resampler, &whole, &g, RD_KERNEL_CUBIC, a->image.data, err);
    }
    if (st) rd_augmenter_free(a);
    return st;
}

void rd_augmenter_free(rd_augmenter *a) {
    rd_resampler_free(&a->resampler);
    rd_buf_free(&a->crop);
    rd_buf_free(&a->image);
}

/* The box's samples of src, contiguous, as an image of their own (Pillow's crop). */
static rd_grey_image cut(rd_augmenter *a, const rd_grey_image *src, rd_crop_box box) {
    size_t bytes = src->depth == 16 ? 2 : 1, row = (size_t)box.width * bytes;
    unsigned char *dst = a->crop.data;
    const unsigned char *from = src->data;
    for (int y = 0; y < box.height; y++)
        memcpy(dst + (size_t)y * row,
               from + ((size_t)(box.top + y) * src->width + (size_t)box.left) * bytes, row);
    return (rd_grey_image){box.width, box.height, src->depth, dst};
}

rd_status rd_augment_crop(rd_augmenter *a, const rd_grey_image *src, int crop, rd_rng *rng,
                          float *out, rd_crop_record *rec, rd_error *err) {
    const rd_augment_config *c = &a->cfg;
    const rd_crop_kind kind = crop < 2 ? (rd_crop_kind)crop : RD_CROP_LOCAL;
    const int size = kind == RD_CROP_LOCAL ? c->local_size : c->global_size;
    const size_t n = (size_t)size * size;
    if (src->width > a->max_width || src->height > a->max_height)
        return rd_fail(err, RD_EINVAL, "augment: a %dx%d image exceeds the workspace (%dx%d)",
                       src->width, src->height, a->max_width, a->max_height);
    rd_crop_record r = {0};
    float *img = a->image.data;

    r.box = rd_rrc_params(src->width, src->height,
                          kind == RD_CROP_LOCAL ? c->local_scale : c->global_scale, c->ratio, rng);
    rd_grey_image piece = cut(a, src, r.box);
    rd_geometry g = rd_geometry_resize(r.box.width, r.box.height, size, size);
    rd_status st = rd_resample_grey(&a->resampler, &piece, &g, RD_KERNEL_CUBIC, img, err);
    if (st) return st;

    r.flipped = coin(rng, c->flip_p);
    if (r.flipped) rd_augment_hflip(img, size, size);

    r.jittered = coin(rng, c->jitter_p);
    if (r.jittered) {
        r.contrast_first = rand_f32(rng) < 0.5f;
        float lo = (float)fmax(0.0, 1.0 - c->brightness), hi = (float)(1.0 + c->brightness);
        r.brightness = uniform_f32(rng, lo, hi);
        lo = (float)fmax(0.0, 1.0 - c->contrast);
        hi = (float)(1.0 + c->contrast);
        r.contrast = uniform_f32(rng, lo, hi);
        if (r.contrast_first) rd_augment_contrast(img, n, r.contrast);
        rd_augment_brightness(img, n, r.brightness);
        if (!r.contrast_first) rd_augment_contrast(img, n, r.contrast);
    }

    r.blurred = coin(rng, c->blur_p[kind]);
    if (r.blurred) {
        float k[RD_AUGMENT_MAX_BLUR];
        r.sigma = uniform_f32(rng, (float)c->blur_sigma[0], (float)c->blur_sigma[1]);
        rd_gaussian_kernel(r.sigma, c->blur_kernel, k);
        rd_augment_blur(img, size, size, k, c->blur_kernel, img + n);
    }

    if (kind == RD_CROP_GLOBAL2) {
        r.solarized = coin(rng, c->solarize_p);
        if (r.solarized) rd_augment_solarize(img, n, (float)c->solarize_threshold);
    }

    rd_augment_normalize(img, n, (float)c->mean, (float)c->std, c->channels, out);
    if (rec) *rec = r;
    return RD_OK;
}

rd_status rd_augment_sample(rd_augmenter *a, const rd_grey_image *src, uint64_t seed,
                            uint32_t epoch, uint64_t index, float *const *global,
                            float *const *local, rd_crop_record *records, rd_error *err) {
    for (int crop = 0; crop < 2 + a->cfg.n_local; crop++) {
        rd_rng rng;
        rd_rng_init(&rng, seed, RD_RNG_AUGMENT, epoch, index, (uint32_t)crop);
        float *out = crop < 2 ? global[crop] : local[crop - 2];
        rd_status st =
            rd_augment_crop(a, src, crop, &rng, out, records ? records + crop : NULL, err);
        if (st) return st;
    }
    return RD_OK;
}
