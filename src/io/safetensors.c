/* safetensors reader and writer; see safetensors.h. */
#include "rdino/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rdino/file.h"
#include "rdino/json.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; this reader copies it as the host's floats"
#endif

static const struct {
    const char *name;
    unsigned bytes;
} DTYPES[RD_ST_DTYPE_COUNT] = {
    [RD_ST_BOOL] = {"BOOL", 1},       [RD_ST_U8] = {"U8", 1},           [RD_ST_I8] = {"I8", 1},
    [RD_ST_F8_E5M2] = {"F8_E5M2", 1}, [RD_ST_F8_E4M3] = {"F8_E4M3", 1}, [RD_ST_I16] = {"I16", 2},
    [RD_ST_U16] = {"U16", 2},         [RD_ST_F16] = {"F16", 2},         [RD_ST_BF16] = {"BF16", 2},
    [RD_ST_I32] = {"I32", 4},         [RD_ST_U32] = {"U32", 4},         [RD_ST_F32] = {"F32", 4},
    [RD_ST_F64] = {"F64", 8},         [RD_ST_I64] = {"I64", 8},         [RD_ST_U64] = {"U64", 8},
};

const char *rd_st_dtype_name(rd_st_dtype dtype) {
    return dtype < RD_ST_DTYPE_COUNT ? DTYPES[dtype].name : "?";
}

static float float_of_bits(uint32_t bits) {
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

float rd_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    if (exp == 0x1f) return float_of_bits(sign | 0x7f800000u | man << 13);    /* inf, NaN */
    if (exp != 0) return float_of_bits(sign | (exp + 112) << 23 | man << 13); /* rebias 15->127 */
    /* zero and subnormals: man * 2^-24, exact in float (10 significant bits) */
    float mag = (float)man * 0x1p-24f;
    return sign ? -mag : mag;
}

float rd_bf16_to_f32(uint16_t b) {
    return float_of_bits((uint32_t)b << 16);
}

/* ---- reading ----------------------------------------------------------------------------- */

static int compare_names(const void *a, const void *b) {
    return strcmp(((const rd_st_tensor *)a)->name, ((const rd_st_tensor *)b)->name);
}

static int compare_begin(const void *a, const void *b) {
    const rd_st_tensor *x = *(const rd_st_tensor *const *)a, *y = *(const rd_st_tensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return (x->end > y->end) - (x->end < y->end);
}

void rd_safetensors_close(rd_safetensors *st) {
    if (st->map) munmap((void *)st->map, st->map_bytes);
    for (int i = 0; i < st->count; i++) free(st->tensors[i].name);
    for (int i = 0; i < 2 * st->meta_count; i++) free(st->meta[i]);
    free(st->tensors);
    free(st->meta);
    free(st->path);
    memset(st, 0, sizeof *st);
}

static rd_status parse_metadata(rd_safetensors *st, const json_t *obj, rd_error *err) {
    if (!json_is_object(obj))
        return rd_fail(err, RD_EFORMAT, "%s: __metadata__ must be an object, not %s", st->path,
                       rd_json_type_name(obj));
    st->meta = calloc(2 * json_object_size(obj) + 1, sizeof *st->meta);
    if (!st->meta) return rd_fail(err, RD_ENOMEM, "%s: out of memory", st->path);
    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)obj, key, value) {
        if (!json_is_string(value))
            return rd_fail(err, RD_EFORMAT, "%s: __metadata__ '%s' must be a string, not %s",
                           st->path, key, rd_json_type_name(value));
        char **pair = st->meta + 2 * st->meta_count;
        if (!(pair[0] = strdup(key)) || !(pair[1] = strdup(json_string_value(value))))
            return rd_fail(err, RD_ENOMEM, "%s: out of memory", st->path);
        st->meta_count++;
    }
    return RD_OK;
}

/* A non-negative integer member of a tensor entry's array. */
static rd_status entry_uint(const rd_safetensors *st, const char *name, const char *field,
                            const json_t *v, uint64_t *out, rd_error *err) {
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return rd_fail(err, RD_EFORMAT,
                       "%s: tensor '%s': %s must hold non-negative integers, not %s", st->path,
                       name, field, json_is_integer(v) ? "a negative one" : rd_json_type_name(v));
    *out = (uint64_t)json_integer_value(v);
    return RD_OK;
}

static rd_status parse_tensor(const rd_safetensors *st, const char *name, const json_t *obj,
                              rd_st_tensor *t, rd_error *err) {
    const char *path = st->path;
    if (!json_is_object(obj))
        return rd_fail(err, RD_EFORMAT, "%s: tensor '%s' must be an object, not %s", path, name,
                       rd_json_type_name(obj));
    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)obj, key, value) {
        if (strcmp(key, "dtype") != 0 && strcmp(key, "shape") != 0 &&
            strcmp(key, "data_offsets") != 0)
            return rd_fail(err, RD_EFORMAT,
                           "%s: tensor '%s': unexpected field '%s' (dtype, shape, data_offsets)",
                           path, name, key);
    }
    char where[1200];
    snprintf(where, sizeof where, "%s: tensor '%s'", path, name);
    const char *dtype;
    rd_status s = rd_json_get_string(obj, "dtype", RD_JSON_REQUIRED, where, &dtype, err);
    if (s) return s;
    t->dtype = RD_ST_DTYPE_COUNT;
    for (int d = 0; d < RD_ST_DTYPE_COUNT; d++)
        if (strcmp(dtype, DTYPES[d].name) == 0) t->dtype = (rd_st_dtype)d;
    if (t->dtype == RD_ST_DTYPE_COUNT)
        return rd_fail(err, RD_EFORMAT, "%s: unknown dtype '%s'", where, dtype);
    const json_t *shape = json_object_get(obj, "shape"),
                 *off = json_object_get(obj, "data_offsets");
    if (!json_is_array(shape))
        return rd_fail(err, RD_EFORMAT, "%s: shape must be an array, not %s", where,
                       shape ? rd_json_type_name(shape) : "missing");
    if (json_array_size(shape) > RD_ST_MAX_DIMS)
        return rd_fail(err, RD_EFORMAT, "%s: %zu dimensions (at most %d)", where,
                       json_array_size(shape), RD_ST_MAX_DIMS);
    if (!json_is_array(off) || json_array_size(off) != 2)
        return rd_fail(err, RD_EFORMAT, "%s: data_offsets must be an array [begin, end], not %s",
                       where, off ? rd_json_type_name(off) : "missing");
    t->ndim = (int)json_array_size(shape);
    t->numel = 1;
    for (int d = 0; d < t->ndim; d++) {
        uint64_t n;
        if ((s = entry_uint(st, name, "shape", json_array_get(shape, d), &n, err))) return s;
        t->shape[d] = (int64_t)n;
        if (__builtin_mul_overflow(t->numel, n, &t->numel))
            return rd_fail(err, RD_EFORMAT, "%s: the shape's element count overflows", where);
    }
    if ((s = entry_uint(st, name, "data_offsets", json_array_get(off, 0), &t->begin, err)) ||
        (s = entry_uint(st, name, "data_offsets", json_array_get(off, 1), &t->end, err)))
        return s;
    uint64_t bytes;
    if (__builtin_mul_overflow(t->numel, (uint64_t)DTYPES[t->dtype].bytes, &bytes))
        return rd_fail(err, RD_EFORMAT, "%s: the shape's byte count overflows", where);
    if (t->begin > t->end)
        return rd_fail(err, RD_EFORMAT, "%s: data_offsets [%llu, %llu] end before they begin",
                       where, (unsigned long long)t->begin, (unsigned long long)t->end);
    if (t->end > st->data_bytes)
        return rd_fail(err, RD_EFORMAT,
                       "%s: data_offsets [%llu, %llu] reach past the data area (%llu bytes)", where,
                       (unsigned long long)t->begin, (unsigned long long)t->end,
                       (unsigned long long)st->data_bytes);
    if (t->end - t->begin != bytes)
        return rd_fail(err, RD_EFORMAT,
                       "%s: data_offsets [%llu, %llu] hold %llu bytes, but %s x %llu elements "
                       "need %llu",
                       where, (unsigned long long)t->begin, (unsigned long long)t->end,
                       (unsigned long long)(t->end - t->begin), DTYPES[t->dtype].name,
                       (unsigned long long)t->numel, (unsigned long long)bytes);
    return RD_OK;
}

/* Sorted by offset, the tensors must tile [0, data_bytes) exactly (the Python library refuses
 * anything else, so such a file is not one it wrote). */
static rd_status check_tiling(const rd_safetensors *st, rd_error *err) {
    const rd_st_tensor **order = malloc((size_t)(st->count ? st->count : 1) * sizeof *order);
    if (!order) return rd_fail(err, RD_ENOMEM, "%s: out of memory", st->path);
    for (int i = 0; i < st->count; i++) order[i] = &st->tensors[i];
    qsort(order, (size_t)st->count, sizeof *order, compare_begin);
    rd_status s = RD_OK;
    uint64_t pos = 0;
    const char *prev = NULL;
    for (int i = 0; i < st->count && !s; i++) {
        const rd_st_tensor *t = order[i];
        if (t->begin < pos)
            s = rd_fail(err, RD_EFORMAT, "%s: tensor '%s' (bytes %llu..%llu) overlaps '%s'",
                        st->path, t->name, (unsigned long long)t->begin, (unsigned long long)t->end,
                        prev);
        else if (t->begin > pos)
            s = rd_fail(err, RD_EFORMAT, "%s: %llu unused bytes before tensor '%s' (offset %llu)",
                        st->path, (unsigned long long)(t->begin - pos), t->name,
                        (unsigned long long)t->begin);
        pos = t->end;
        prev = t->name;
    }
    if (!s && pos != st->data_bytes)
        s = rd_fail(err, RD_EFORMAT, "%s: %llu bytes after the last tensor's data", st->path,
                    (unsigned long long)(st->data_bytes - pos));
    free(order);
    return s;
}

static rd_status parse_header(rd_safetensors *st, const char *text, size_t len, rd_error *err) {
    char source[1100];
    snprintf(source, sizeof source, "%s: header", st->path);
    json_t *root;
    rd_status s = rd_json_parse(text, len, source, &root, err);
    if (s) return s;
    if (!json_is_object(root)) {
        s = rd_fail(err, RD_EFORMAT, "%s: the header must be a JSON object, not %s", st->path,
                    rd_json_type_name(root));
        json_decref(root);
        return s;
    }
    st->tensors = calloc(json_object_size(root) + 1, sizeof *st->tensors);
    if (!st->tensors) s = rd_fail(err, RD_ENOMEM, "%s: out of memory", st->path);
    const char *key;
    json_t *value;
    json_object_foreach(root, key, value) {
        if (s) break;
        if (strcmp(key, "__metadata__") == 0) {
            s = parse_metadata(st, value, err);
            continue;
        }
        rd_st_tensor *t = &st->tensors[st->count];
        if (!(t->name = strdup(key))) {
            s = rd_fail(err, RD_ENOMEM, "%s: out of memory", st->path);
            break;
        }
        st->count++;
        s = parse_tensor(st, key, value, t, err);
    }
    json_decref(root);
    if (s) return s;
    qsort(st->tensors, (size_t)st->count, sizeof *st->tensors, compare_names);
    return check_tiling(st, err);
}

rd_status rd_safetensors_open(rd_safetensors *st, const char *path, rd_error *err) {
    memset(st, 0, sizeof *st);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return rd_fail(err, errno == ENOENT ? RD_ENOTFOUND : RD_EIO, "cannot open %s: %s", path,
                       strerror(errno));
    struct stat sb;
    rd_status s = RD_OK;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode))
        s = rd_fail(err, RD_EIO, "%s: not a regular file", path);
    else if (sb.st_size < 8)
        s = rd_fail(err, RD_EFORMAT,
                    "%s: truncated: %lld bytes, less than the 8-byte header length that starts "
                    "a safetensors file",
                    path, (long long)sb.st_size);
    else if (!(st->path = strdup(path)))
        s = rd_fail(err, RD_ENOMEM, "out of memory");
    if (!s) {
        st->map_bytes = (size_t)sb.st_size;
        void *map = mmap(NULL, st->map_bytes, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED)
            s = rd_fail(err, RD_EIO, "cannot map %s: %s", path, strerror(errno));
        else
            st->map = map;
    }
    close(fd);
    if (s) {
        rd_safetensors_close(st);
        return s;
    }
    uint64_t n;
    memcpy(&n, st->map, sizeof n);
    if (n > RD_ST_MAX_HEADER)
        s = rd_fail(err, RD_EFORMAT,
                    "%s: header length %llu is absurd (more than %llu bytes): not a safetensors "
                    "file",
                    path, (unsigned long long)n, (unsigned long long)RD_ST_MAX_HEADER);
    else if (n > st->map_bytes - 8)
        s = rd_fail(err, RD_EFORMAT,
                    "%s: header length %llu runs past the end of the file (%zu bytes): truncated",
                    path, (unsigned long long)n, st->map_bytes);
    if (!s) {
        st->data = st->map + 8 + n;
        st->data_bytes = st->map_bytes - 8 - n;
        s = parse_header(st, (const char *)st->map + 8, (size_t)n, err);
    }
    if (s) rd_safetensors_close(st);
    return s;
}

const rd_st_tensor *rd_safetensors_find(const rd_safetensors *st, const char *name) {
    rd_st_tensor key = {.name = (char *)name};
    return st->count ? bsearch(&key, st->tensors, (size_t)st->count, sizeof key, compare_names)
                     : NULL;
}

const char *rd_safetensors_meta(const rd_safetensors *st, const char *key) {
    for (int i = 0; i < st->meta_count; i++)
        if (strcmp(st->meta[2 * i], key) == 0) return st->meta[2 * i + 1];
    return NULL;
}

rd_status rd_safetensors_read(const rd_safetensors *st, const rd_st_tensor *t, float *out,
                              rd_error *err) {
    const unsigned char *src = st->data + t->begin;
    size_t n = (size_t)t->numel;
    switch (t->dtype) {
    case RD_ST_F32:
        memcpy(out, src, n * sizeof *out);
        break;
    case RD_ST_F16:
    case RD_ST_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, sizeof h);
            out[i] = t->dtype == RD_ST_F16 ? rd_f16_to_f32(h) : rd_bf16_to_f32(h);
        }
        break;
    default:
        return rd_fail(err, RD_EINVAL, "%s: tensor '%s' is %s; rdino reads F32, F16 and BF16",
                       st->path, t->name, DTYPES[t->dtype].name);
    }
    for (size_t i = 0; i < n; i++)
        if (!isfinite(out[i]))
            return rd_fail(err, RD_ENUMERIC, "%s: tensor '%s': element %zu is %s", st->path,
                           t->name, i, isnan(out[i]) ? "NaN" : "infinite");
    return RD_OK;
}

/* ---- writing ----------------------------------------------------------------------------- */

static int compare_entries(const void *a, const void *b) {
    return strcmp((*(const rd_st_entry *const *)a)->name, (*(const rd_st_entry *const *)b)->name);
}

static rd_status entry_bytes(const char *path, const rd_st_entry *e, uint64_t *bytes,
                             rd_error *err) {
    uint64_t numel = 1;
    if (e->ndim < 0 || e->ndim > RD_ST_MAX_DIMS)
        return rd_fail(err, RD_EINVAL, "%s: tensor '%s': %d dimensions (at most %d)", path, e->name,
                       e->ndim, RD_ST_MAX_DIMS);
    for (int d = 0; d < e->ndim; d++)
        if (e->shape[d] < 0 || __builtin_mul_overflow(numel, (uint64_t)e->shape[d], &numel))
            return rd_fail(err, RD_EINVAL, "%s: tensor '%s': bad shape", path, e->name);
    if (__builtin_mul_overflow(numel, (uint64_t)sizeof(float), bytes))
        return rd_fail(err, RD_EINVAL, "%s: tensor '%s': too large", path, e->name);
    for (uint64_t i = 0; i < numel; i++)
        if (!isfinite(e->data[i]))
            return rd_fail(err, RD_ENUMERIC, "%s: tensor '%s': element %llu is not finite", path,
                           e->name, (unsigned long long)i);
    return RD_OK;
}

/* *out = the header JSON for entries in sorted order. */
static rd_status build_header(const char *path, const rd_st_entry *const *sorted, int count,
                              const char *const *meta, json_t **out, rd_error *err) {
    json_t *root = json_object();
    uint64_t pos = 0;
    *out = NULL;
    for (int i = 0; root && i < count; i++) {
        const rd_st_entry *e = sorted[i];
        uint64_t bytes = 0;
        rd_status s = entry_bytes(path, e, &bytes, err);
        if (s) {
            json_decref(root);
            return s;
        }
        json_t *shape = json_array();
        for (int d = 0; d < e->ndim; d++) json_array_append_new(shape, json_integer(e->shape[d]));
        json_object_set_new(root, e->name,
                            json_pack("{s:s, s:o, s:[I,I]}", "dtype", "F32", "shape", shape,
                                      "data_offsets", (json_int_t)pos, (json_int_t)(pos + bytes)));
        pos += bytes;
    }
    if (root && meta) {
        json_t *m = json_object();
        for (int i = 0; meta[i] && meta[i + 1]; i += 2)
            json_object_set_new(m, meta[i], json_string(meta[i + 1]));
        json_object_set_new(root, "__metadata__", m);
    }
    if (!root) return rd_fail(err, RD_ENOMEM, "%s: out of memory", path);
    *out = root;
    return RD_OK;
}

rd_status rd_safetensors_write(const char *path, const rd_st_entry *entries, int count,
                               const char *const *meta, rd_error *err) {
    const rd_st_entry **sorted = malloc((size_t)(count > 0 ? count : 1) * sizeof *sorted);
    if (!sorted) return rd_fail(err, RD_ENOMEM, "%s: out of memory", path);
    for (int i = 0; i < count; i++) sorted[i] = &entries[i];
    qsort(sorted, (size_t)count, sizeof *sorted, compare_entries);
    rd_status s = RD_OK;
    for (int i = 0; i < count && !s; i++)
        if (!sorted[i]->name[0] || strcmp(sorted[i]->name, "__metadata__") == 0 ||
            (i > 0 && strcmp(sorted[i]->name, sorted[i - 1]->name) == 0))
            s = rd_fail(err, RD_EINVAL, "%s: tensor name '%s' is empty, reserved or repeated", path,
                        sorted[i]->name);
    json_t *header = NULL;
    if (!s) s = build_header(path, sorted, count, meta, &header, err);
    char *text = header ? json_dumps(header, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(header);
    if (!s && !text) s = rd_fail(err, RD_ENOMEM, "%s: cannot format the header", path);
    rd_atomic_file f;
    if (!s) {
        size_t len = strlen(text), padded = (len + 7) / 8 * 8;
        uint64_t n = padded;
        char spaces[8] = "        ";
        s = rd_atomic_open(&f, path, err);
        if (!s) s = rd_atomic_write(&f, &n, sizeof n, err);
        if (!s) s = rd_atomic_write(&f, text, len, err);
        if (!s) s = rd_atomic_write(&f, spaces, padded - len, err);
        for (int i = 0; i < count && !s; i++) {
            size_t numel = 1;
            for (int d = 0; d < sorted[i]->ndim; d++) numel *= (size_t)sorted[i]->shape[d];
            s = rd_atomic_write(&f, sorted[i]->data, numel * sizeof(float), err);
        }
        if (!s) s = rd_atomic_commit(&f, err);
    }
    free(text);
    free(sorted);
    return s;
}
