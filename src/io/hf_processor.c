/* preprocessor_config.json read and written; see include/rdino/hf_processor.h. Defaults and key
 * forms from transformers 4.47.1's models/bit/image_processing_bit.py and
 * image_processing_utils.get_size_dict. */
#include "rdino/hf_processor.h"

#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { PIL_BICUBIC = 3 };

rd_hf_processor rd_hf_bit_defaults(void) {
    /* image_processing_bit.py __init__; OPENAI_CLIP_MEAN / _STD from image_utils.py. */
    return (rd_hf_processor){.do_convert_rgb = 1,
                             .do_resize = 1,
                             .shortest_edge = 224,
                             .resample = PIL_BICUBIC,
                             .do_center_crop = 1,
                             .crop_height = 224,
                             .crop_width = 224,
                             .do_rescale = 1,
                             .rescale_factor = 1.0 / 255.0,
                             .do_normalize = 1,
                             .image_mean = {0.48145466, 0.4578275, 0.40821073},
                             .image_std = {0.26862954, 0.26130258, 0.27577711}};
}

rd_status rd_hf_check(const rd_hf_processor *p, rd_error *err) {
    if (p->do_resize && p->resample != PIL_BICUBIC)
        return rd_fail(err, RD_EINVAL,
                       "hf preprocessing: resample %d is not supported (only 3, PIL BICUBIC)",
                       p->resample);
    if (p->do_resize && p->shortest_edge <= 0 && (p->size_height <= 0 || p->size_width <= 0))
        return rd_fail(err, RD_EINVAL,
                       "hf preprocessing: size needs shortest_edge > 0 or height and width > 0 "
                       "(got shortest_edge %d, height %d, width %d)",
                       p->shortest_edge, p->size_height, p->size_width);
    if (p->do_center_crop && (p->crop_height <= 0 || p->crop_width <= 0))
        return rd_fail(err, RD_EINVAL, "hf preprocessing: crop_size %dx%d is not positive",
                       p->crop_height, p->crop_width);
    if (p->do_rescale && !isfinite(p->rescale_factor))
        return rd_fail(err, RD_EINVAL, "hf preprocessing: rescale_factor is not finite");
    for (int c = 0; c < 3 && p->do_normalize; c++)
        if (!isfinite(p->image_mean[c]) || !isfinite(p->image_std[c]) ||
            (float)p->image_std[c] == 0.0f)
            return rd_fail(err, RD_EINVAL,
                           "hf preprocessing: image_mean[%d] = %g, image_std[%d] = %g: the mean "
                           "must be finite and the std finite and non-zero",
                           c, p->image_mean[c], c, p->image_std[c]);
    return RD_OK;
}

/* ---- reading ------------------------------------------------------------------------------ */

static const char *const PIXEL_KEYS[] = {
    "do_convert_rgb", "do_resize",  "size",       "resample",
    "do_center_crop", "crop_size",  "do_rescale", "rescale_factor",
    "do_normalize",   "image_mean", "image_std",  "image_processor_type"};
/* Keys that do not change pixels. */
static const char *const OTHER_KEYS[] = {"processor_class", "rdino_preprocessing"};

static int listed(const char *key, const char *const *list, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(key, list[i]) == 0) return 1;
    return 0;
}

/* An integer member that fits an int. */
static rd_status get_int(const json_t *obj, const char *key, const char *where, int *out,
                         rd_error *err) {
    int64_t v = *out;
    rd_status s = rd_json_get_int(obj, key, RD_JSON_OPTIONAL, where, &v, err);
    if (!s && (v < INT_MIN || v > INT_MAX))
        s = rd_fail(err, RD_EINVAL, "%s: key '%s' = %lld is out of range", where, key,
                    (long long)v);
    if (!s) *out = (int)v;
    return s;
}

/* Whether obj is an object with exactly the members a and b (b NULL: only a). */
static int has_exactly(const json_t *obj, const char *a, const char *b) {
    return json_is_object(obj) && json_object_get(obj, a) &&
           (b == NULL || json_object_get(obj, b)) && json_object_size(obj) == (b ? 2u : 1u);
}

/* "size": {"shortest_edge": S} | {"height": H, "width": W} | S. */
static rd_status read_size(const json_t *root, const char *path, rd_hf_processor *p,
                           rd_error *err) {
    const json_t *v = json_object_get(root, "size");
    char where[RD_ERROR_MSG_MAX];
    snprintf(where, sizeof where, "%s: size", path);
    if (!v || json_is_null(v)) return RD_OK;
    if (json_is_integer(v)) return get_int(root, "size", path, &p->shortest_edge, err);
    if (has_exactly(v, "shortest_edge", NULL))
        return get_int(v, "shortest_edge", where, &p->shortest_edge, err);
    if (has_exactly(v, "height", "width")) {
        p->shortest_edge = 0;
        rd_status s = get_int(v, "height", where, &p->size_height, err);
        return s ? s : get_int(v, "width", where, &p->size_width, err);
    }
    return rd_fail(err, RD_EINVAL,
                   "%s: key 'size' must be {\"shortest_edge\": S}, {\"height\": H, \"width\": W} "
                   "or a number (BitImageProcessor accepts no other form)",
                   path);
}

/* "crop_size": {"height": H, "width": W} | N. */
static rd_status read_crop(const json_t *root, const char *path, rd_hf_processor *p,
                           rd_error *err) {
    const json_t *v = json_object_get(root, "crop_size");
    char where[RD_ERROR_MSG_MAX];
    snprintf(where, sizeof where, "%s: crop_size", path);
    if (!v || json_is_null(v)) return RD_OK;
    if (json_is_integer(v)) {
        rd_status s = get_int(root, "crop_size", path, &p->crop_height, err);
        p->crop_width = p->crop_height;
        return s;
    }
    if (has_exactly(v, "height", "width")) {
        rd_status s = get_int(v, "height", where, &p->crop_height, err);
        return s ? s : get_int(v, "width", where, &p->crop_width, err);
    }
    return rd_fail(err, RD_EINVAL,
                   "%s: key 'crop_size' must be {\"height\": H, \"width\": W} or a number", path);
}

/* "image_mean" / "image_std": three numbers, or one for all channels. */
static rd_status read_triple(const json_t *root, const char *key, const char *path, double out[3],
                             rd_error *err) {
    const json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) return RD_OK;
    if (json_is_number(v)) {
        out[0] = out[1] = out[2] = json_number_value(v);
        return RD_OK;
    }
    int ok = json_is_array(v) && json_array_size(v) == 3;
    for (size_t c = 0; ok && c < 3; c++) {
        ok = json_is_number(json_array_get(v, c));
        if (ok) out[c] = json_number_value(json_array_get(v, c));
    }
    return ok ? RD_OK
              : rd_fail(err, RD_EINVAL,
                        "%s: key '%s' must be a list of three numbers (one per RGB channel) or "
                        "one number",
                        path, key);
}

rd_status rd_hf_processor_load(const char *path, rd_hf_processor *p, rd_error *err) {
    json_t *root;
    rd_status s = rd_json_load(path, &root, err);
    if (s) return s;
    *p = rd_hf_bit_defaults();
    if (!json_is_object(root))
        s = rd_fail(err, RD_EFORMAT, "%s: must hold a JSON object, not %s", path,
                    rd_json_type_name(root));
    const char *key;
    json_t *value;
    json_object_foreach(root, key, value) {
        if (s) break;
        if (!listed(key, PIXEL_KEYS, sizeof PIXEL_KEYS / sizeof *PIXEL_KEYS) &&
            !listed(key, OTHER_KEYS, sizeof OTHER_KEYS / sizeof *OTHER_KEYS))
            s = rd_fail(err, RD_EINVAL,
                        "%s: key '%s' is not a BitImageProcessor setting rdino reproduces (it "
                        "could change the pixels; see docs/FORMATS.md)",
                        path, key);
    }
    const char *type = NULL;
    if (!s)
        s = rd_json_get_string(root, "image_processor_type", RD_JSON_REQUIRED, path, &type, err);
    if (!s && strcmp(type, "BitImageProcessor") != 0)
        s = rd_fail(err, RD_EINVAL,
                    "%s: image_processor_type '%s' is not reproduced by rdino (only "
                    "BitImageProcessor, the Pillow-based processor of DINOv2 and RAD-DINO)",
                    path, type);
    static const struct {
        const char *key;
        size_t offset;
    } BOOLS[] = {{"do_convert_rgb", offsetof(rd_hf_processor, do_convert_rgb)},
                 {"do_resize", offsetof(rd_hf_processor, do_resize)},
                 {"do_center_crop", offsetof(rd_hf_processor, do_center_crop)},
                 {"do_rescale", offsetof(rd_hf_processor, do_rescale)},
                 {"do_normalize", offsetof(rd_hf_processor, do_normalize)}};
    for (size_t i = 0; !s && i < sizeof BOOLS / sizeof *BOOLS; i++)
        s = rd_json_get_bool(root, BOOLS[i].key, RD_JSON_OPTIONAL, path,
                             (int *)((char *)p + BOOLS[i].offset), err);
    if (!s) s = get_int(root, "resample", path, &p->resample, err);
    if (!s)
        s = rd_json_get_number(root, "rescale_factor", RD_JSON_OPTIONAL, path, &p->rescale_factor,
                               err);
    if (!s) s = read_size(root, path, p, err);
    if (!s) s = read_crop(root, path, p, err);
    if (!s) s = read_triple(root, "image_mean", path, p->image_mean, err);
    if (!s) s = read_triple(root, "image_std", path, p->image_std, err);
    json_decref(root);
    if (!s && rd_hf_check(p, err)) s = rd_wrap(err, "%s", path);
    return s;
}

/* ---- writing ------------------------------------------------------------------------------ */

/* Significant digits that print v so that it reads back exactly (what Python's repr finds). */
static int round_trip_digits(double v) {
    char text[40];
    for (int digits = 1; digits < 17; digits++) {
        snprintf(text, sizeof text, "%.*g", digits, v);
        if (strtod(text, NULL) == v) return digits;
    }
    return 17;
}

/* The most digits any real in the document needs (jansson prints all reals alike). */
static int document_digits(const json_t *v) {
    int most = 1;
    if (json_is_real(v)) return round_trip_digits(json_real_value(v));
    if (json_is_array(v))
        for (size_t i = 0; i < json_array_size(v); i++) {
            int d = document_digits(json_array_get(v, i));
            most = d > most ? d : most;
        }
    if (json_is_object(v)) {
        const char *key;
        json_t *member;
        json_object_foreach((json_t *)v, key, member) {
            int d = document_digits(member);
            most = d > most ? d : most;
        }
    }
    return most;
}

rd_status rd_hf_processor_save(const char *path, const rd_hf_processor *p,
                               const json_t *rdino_record, rd_error *err) {
    json_t *size = p->shortest_edge > 0
                       ? json_pack("{s:i}", "shortest_edge", p->shortest_edge)
                       : json_pack("{s:i, s:i}", "height", p->size_height, "width", p->size_width);
    json_t *root = json_pack(
        "{s:o, s:{s:i, s:i}, s:b, s:b, s:b, s:b, s:b, s:[f, f, f], s:s, s:[f, f, f], s:i, s:f}",
        "size", size, "crop_size", "height", p->crop_height, "width", p->crop_width,
        "do_center_crop", p->do_center_crop, "do_convert_rgb", p->do_convert_rgb, "do_normalize",
        p->do_normalize, "do_rescale", p->do_rescale, "do_resize", p->do_resize, "image_mean",
        p->image_mean[0], p->image_mean[1], p->image_mean[2], "image_processor_type",
        "BitImageProcessor", "image_std", p->image_std[0], p->image_std[1], p->image_std[2],
        "resample", p->resample, "rescale_factor", p->rescale_factor);
    if (root && rdino_record &&
        json_object_set_new(root, "rdino_preprocessing", json_deep_copy(rdino_record)) != 0) {
        json_decref(root);
        root = NULL;
    }
    if (!root) return rd_fail(err, RD_ENOMEM, "%s: cannot build the processor settings", path);
    rd_status s = rd_json_save(
        path, root, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(document_digits(root)),
        err);
    json_decref(root);
    return s;
}
