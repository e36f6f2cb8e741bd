/* Weight name maps (transformers / facebookresearch-dinov2), loading and export; see weights.h.
 * Names confirmed against transformers' modeling_dinov2.py, modeling_dinov2_with_registers.py
 * and convert_dinov2_to_hf.py, and facebookresearch/dinov2's dinov2/layers/dino_head.py. */
#include "rdino/weights.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "rdino/file.h"
#include "rdino/json.h"
#include "rdino/log.h"

enum { NAME_MAX_LEN = RD_PARAM_NAME_MAX + 64 };

/* ---- interpolation modes ----------------------------------------------------------------- */

static const struct {
    const char *name;
    double offset;
    int antialias;
} MODES[] = {
    [RD_POS_INTERP_HF] = {"hf", 0.0, 0},
    [RD_POS_INTERP_LEGACY] = {"legacy", 0.1, 0},
    [RD_POS_INTERP_DINOV2_REG] = {"dinov2_reg", 0.0, 1},
};
enum { MODE_COUNT = sizeof MODES / sizeof MODES[0] };

const char *rd_pos_interp_name(rd_pos_interp mode) {
    return (unsigned)mode < MODE_COUNT ? MODES[mode].name : "?";
}

rd_status rd_pos_interp_parse(const char *name, rd_pos_interp *mode, rd_error *err) {
    for (int m = 0; m < MODE_COUNT; m++)
        if (strcmp(name, MODES[m].name) == 0) {
            *mode = (rd_pos_interp)m;
            return RD_OK;
        }
    return rd_fail(err, RD_EINVAL,
                   "unknown position-embedding interpolation '%s' (hf, legacy, dinov2_reg)", name);
}

void rd_pos_interp_apply(rd_vit_config *cfg, rd_pos_interp mode) {
    cfg->interpolate_offset = MODES[mode].offset;
    cfg->interpolate_antialias = MODES[mode].antialias;
}

int rd_pos_interp_of(const rd_vit_config *cfg) {
    for (int m = 0; m < MODE_COUNT; m++)
        if (cfg->interpolate_offset == MODES[m].offset &&
            !cfg->interpolate_antialias == !MODES[m].antialias)
            return m;
    return -1;
}

const char *rd_weight_layout_name(rd_weight_layout layout) {
    return layout == RD_LAYOUT_HF ? "hf" : "original";
}

/* ---- name maps --------------------------------------------------------------------------- */

/* rdino (= DINOv2) name <-> transformers name. A pattern ending in '.' stands for its
 * ".weight" and ".bias"; any other must match whole. */
typedef struct name_rule {
    const char *rdino, *hf;
} name_rule;

static const name_rule TOP_RULES[] = {
    {"cls_token", "embeddings.cls_token"},
    {"mask_token", "embeddings.mask_token"},
    {"register_tokens", "embeddings.register_tokens"},
    {"pos_embed", "embeddings.position_embeddings"},
    {"patch_embed.proj.", "embeddings.patch_embeddings.projection."},
    {"norm.", "layernorm."},
};
/* inside blocks.N. <-> encoder.layer.N. */
static const name_rule BLOCK_RULES[] = {
    {"norm1.", "norm1."},
    {"attn.proj.", "attention.output.dense."},
    {"ls1.gamma", "layer_scale1.lambda1"},
    {"norm2.", "norm2."},
    {"mlp.fc1.", "mlp.fc1."},
    {"mlp.fc2.", "mlp.fc2."},
    {"mlp.w12.", "mlp.weights_in."},
    {"mlp.w3.", "mlp.weights_out."},
    {"ls2.gamma", "layer_scale2.lambda1"},
};
/* attn.qkv. rows [query; key; value] */
static const char *const QKV_PARTS[3] = {"attention.attention.query.", "attention.attention.key.",
                                         "attention.attention.value."};

/* If name matches pattern, *rest = "weight"/"bias" (pattern ending in '.') or "". */
static int match(const char *name, const char *pattern, const char **rest) {
    size_t n = strlen(pattern);
    if (pattern[n - 1] != '.') {
        *rest = "";
        return strcmp(name, pattern) == 0;
    }
    if (strncmp(name, pattern, n) != 0) return 0;
    *rest = name + n;
    return strcmp(*rest, "weight") == 0 || strcmp(*rest, "bias") == 0;
}

/* "<head><digits>.<tail>": the block index and the tail, or 0. */
static int block_of(const char *name, const char *head, int *index, const char **tail) {
    size_t n = strlen(head);
    if (strncmp(name, head, n) != 0) return 0;
    const char *s = name + n, *d = s;
    long v = 0;
    while (*d >= '0' && *d <= '9' && d - s < 6) v = 10 * v + (*d++ - '0');
    if (d == s || *d != '.' || (d - s > 1 && *s == '0')) return 0;
    *index = (int)v;
    *tail = d + 1;
    return 1;
}

static int format(char *out, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int format(char *out, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(out, n, fmt, ap);
    va_end(ap);
    return len >= 0 && (size_t)len < n;
}

int rd_weights_hf_name(const char *rdino_name, int k, char *out, size_t n) {
    const char *rest, *tail;
    int i;
    if (block_of(rdino_name, "blocks.", &i, &tail)) {
        if (match(tail, "attn.qkv.", &rest))
            return k >= 0 && k < 3 &&
                   format(out, n, "encoder.layer.%d.%s%s", i, QKV_PARTS[k], rest);
        for (size_t r = 0; k == 0 && r < sizeof BLOCK_RULES / sizeof BLOCK_RULES[0]; r++)
            if (match(tail, BLOCK_RULES[r].rdino, &rest))
                return format(out, n, "encoder.layer.%d.%s%s", i, BLOCK_RULES[r].hf, rest);
        return 0;
    }
    for (size_t r = 0; k == 0 && r < sizeof TOP_RULES / sizeof TOP_RULES[0]; r++)
        if (match(rdino_name, TOP_RULES[r].rdino, &rest))
            return format(out, n, "%s%s", TOP_RULES[r].hf, rest);
    return 0;
}

/* A name map: file names (prefix removed) <-> model names and parts (equal row blocks of
 * dim 0 of the model tensor). */
typedef struct name_map {
    const char *what; /* "hf", "original", "head" */
    /* the model name and part of a file name; 0 if the name is not one of this layout's */
    int (*to_model)(const char *file, char *model, size_t n, int *part);
    /* the file name of a model tensor's part k; 0 if there is no such part */
    int (*to_file)(const char *model, int k, char *file, size_t n);
} name_map;

static int hf_to_model(const char *file, char *model, size_t n, int *part) {
    const char *rest, *tail;
    int i;
    *part = 0;
    if (block_of(file, "encoder.layer.", &i, &tail)) {
        for (int k = 0; k < 3; k++)
            if (match(tail, QKV_PARTS[k], &rest)) {
                *part = k;
                return format(model, n, "blocks.%d.attn.qkv.%s", i, rest);
            }
        for (size_t r = 0; r < sizeof BLOCK_RULES / sizeof BLOCK_RULES[0]; r++)
            if (match(tail, BLOCK_RULES[r].hf, &rest))
                return format(model, n, "blocks.%d.%s%s", i, BLOCK_RULES[r].rdino, rest);
        return 0;
    }
    for (size_t r = 0; r < sizeof TOP_RULES / sizeof TOP_RULES[0]; r++)
        if (match(file, TOP_RULES[r].hf, &rest))
            return format(model, n, "%s%s", TOP_RULES[r].rdino, rest);
    return 0;
}

/* Original names are rdino's; block_chunks > 0 checkpoints say blocks.CHUNK.N.* */
static int original_to_model(const char *file, char *model, size_t n, int *part) {
    const char *tail, *tail2;
    int chunk, i;
    char hf[NAME_MAX_LEN];
    *part = 0;
    if (block_of(file, "blocks.", &chunk, &tail) && block_of(tail, "", &i, &tail2)) {
        if (!format(model, n, "blocks.%d.%s", i, tail2)) return 0;
    } else if (!format(model, n, "%s", file)) {
        return 0;
    }
    return rd_weights_hf_name(model, 0, hf, sizeof hf); /* a DINOv2 backbone name at all? */
}

static int original_to_file(const char *model, int k, char *file, size_t n) {
    return k == 0 && format(file, n, "%s", model);
}

/* DINOHead: mlp.{0,2,4...}.{weight,bias} or mlp.{weight,bias}, last_layer.weight_{g,v}, or
 * torch.nn.utils.parametrizations.weight_norm's original0 (g) / original1 (v). */
static int head_to_model(const char *file, char *model, size_t n, int *part) {
    const char *rest, *tail;
    int i;
    *part = 0;
    if (strcmp(file, "last_layer.parametrizations.weight.original0") == 0)
        return format(model, n, "last_layer.weight_g");
    if (strcmp(file, "last_layer.parametrizations.weight.original1") == 0)
        return format(model, n, "last_layer.weight_v");
    if (strcmp(file, "last_layer.weight_g") == 0 || strcmp(file, "last_layer.weight_v") == 0 ||
        match(file, "mlp.", &rest) ||
        (block_of(file, "mlp.", &i, &tail) && (!strcmp(tail, "weight") || !strcmp(tail, "bias"))))
        return format(model, n, "%s", file);
    return 0;
}

static const name_map HF_MAP = {"hf", hf_to_model, rd_weights_hf_name};
static const name_map ORIGINAL_MAP = {"original", original_to_model, original_to_file};
static const name_map HEAD_MAP = {"head", head_to_model, original_to_file};

/* ---- a file seen through a name map ------------------------------------------------------ */

typedef struct mapped {
    char model[NAME_MAX_LEN];
    int part;
    const rd_st_tensor *t;
} mapped;

typedef struct file_view {
    const rd_safetensors *st;
    mapped *items; /* the tensors under the prefix, in file-name order */
    int count;
    int outside; /* tensors not under the prefix */
    const char *first_outside;
} file_view;

static void view_free(file_view *v) {
    free(v->items);
    v->items = NULL;
}

static rd_status view_open(file_view *v, const rd_safetensors *st, const char *prefix,
                           const name_map *map, rd_error *err) {
    memset(v, 0, sizeof *v);
    v->st = st;
    v->items = calloc((size_t)st->count + 1, sizeof *v->items);
    if (!v->items) return rd_fail(err, RD_ENOMEM, "%s: out of memory", st->path);
    size_t plen = strlen(prefix);
    for (int i = 0; i < st->count; i++) {
        const rd_st_tensor *t = &st->tensors[i];
        if (strncmp(t->name, prefix, plen) != 0) {
            if (!v->outside++) v->first_outside = t->name;
            continue;
        }
        mapped *m = &v->items[v->count];
        if (!map->to_model(t->name + plen, m->model, sizeof m->model, &m->part)) {
            view_free(v);
            return rd_fail(err, RD_EFORMAT,
                           "%s: tensor '%s' is not a DINOv2 %s tensor name (%s layout, prefix "
                           "'%s')",
                           st->path, t->name, map == &HEAD_MAP ? "head" : "backbone", map->what,
                           prefix);
        }
        m->t = t;
        v->count++;
    }
    return RD_OK;
}

static const rd_st_tensor *view_find(const file_view *v, const char *model, int part) {
    for (int i = 0; i < v->count; i++)
        if (v->items[i].part == part && strcmp(v->items[i].model, model) == 0) return v->items[i].t;
    return NULL;
}

static void shape_text(char *out, size_t n, int ndim, const int64_t *shape) {
    size_t len = (size_t)snprintf(out, n, "[");
    for (int d = 0; d < ndim && len < n; d++)
        len += (size_t)snprintf(out + len, n - len, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (len < n) snprintf(out + len, n - len, "]");
}

static int parts_of(const name_map *map, const char *model) {
    char file[NAME_MAX_LEN];
    int k = 0;
    while (map->to_file(model, k, file, sizeof file)) k++;
    return k;
}

/* Copies every mapped tensor into its place in module of set; see the loading rules. */
static rd_status load_view(const file_view *v, const name_map *map, const char *prefix,
                           rd_param_set *set, rd_module module, const char *model_desc,
                           rd_error *err) {
    const char *path = v->st->path;
    unsigned char *filled = calloc((size_t)set->count + 1, 1);
    if (!filled) return rd_fail(err, RD_ENOMEM, "%s: out of memory", path);
    rd_status s = RD_OK;
    for (int i = 0; i < v->count && !s; i++) {
        const mapped *m = &v->items[i];
        int idx = rd_params_find(set, module, m->model);
        if (idx < 0) {
            s = rd_fail(err, RD_EINVAL,
                        "%s: tensor '%s' (rdino '%s') has no place in this model (%s)", path,
                        m->t->name, m->model, model_desc);
            break;
        }
        const rd_param *p = &set->params[idx];
        int parts = parts_of(map, p->name);
        int64_t want[RD_PARAM_MAX_DIMS];
        memcpy(want, p->shape, sizeof want);
        want[0] /= parts;
        int same = m->t->ndim == p->ndim;
        for (int d = 0; same && d < p->ndim; d++) same = m->t->shape[d] == want[d];
        if (!same) {
            char got_s[128], want_s[128];
            shape_text(got_s, sizeof got_s, m->t->ndim, m->t->shape);
            shape_text(want_s, sizeof want_s, p->ndim, want);
            s = rd_fail(err, RD_EINVAL, "%s: tensor '%s' has shape %s, the model's '%s'%s needs %s",
                        path, m->t->name, got_s, p->name, parts > 1 ? " part" : "", want_s);
            break;
        }
        if (filled[idx] & (1u << m->part)) {
            s = rd_fail(err, RD_EFORMAT, "%s: tensor '%s' gives rdino '%s' a second time", path,
                        m->t->name, m->model);
            break;
        }
        float *dst = rd_param_data(set, idx) + (size_t)m->part * (p->numel / (size_t)parts);
        s = rd_safetensors_read(v->st, m->t, dst, err);
        filled[idx] |= (unsigned char)(1u << m->part);
    }
    for (int idx = 0; idx < set->count && !s; idx++) {
        const rd_param *p = &set->params[idx];
        if (p->module != module) continue;
        int parts = parts_of(map, p->name);
        if (filled[idx] == (1u << parts) - 1) continue;
        char file[NAME_MAX_LEN] = "?";
        for (int k = 0; k < parts; k++)
            if (!(filled[idx] & (1u << k))) {
                map->to_file(p->name, k, file, sizeof file);
                break;
            }
        if (strcmp(p->name, "mask_token") == 0 && !filled[idx]) {
            memset(rd_param_data(set, idx), 0, p->numel * sizeof(float));
            rd_warn("%s: no '%s%s'; mask_token set to zero (it only matters for masked training)",
                    path, prefix, file);
            continue;
        }
        s = rd_fail(err, RD_ENOTFOUND, "%s: missing tensor '%s%s' (rdino '%s', %s)", path, prefix,
                    file, p->name, model_desc);
    }
    free(filled);
    if (!s && v->outside)
        rd_warn("%s: skipped %d tensor%s outside '%s' (first: '%s')", path, v->outside,
                v->outside == 1 ? "" : "s", prefix, v->first_outside);
    return s;
}

/* ---- detection --------------------------------------------------------------------------- */

static int ends_with(const char *s, const char *suffix, size_t *head) {
    size_t n = strlen(s), m = strlen(suffix);
    if (n < m || strcmp(s + n - m, suffix) != 0) return 0;
    if (n > m && s[n - m - 1] != '.') return 0; /* whole name components only */
    *head = n - m;
    return 1;
}

/* The prefixes under which st holds anchor (first matching anchor wins per tensor). */
static rd_status find_prefix(const rd_safetensors *st, const char *const *anchors, int nanchors,
                             const char *prefix, const char *what, char *out, size_t n, int *which,
                             rd_error *err) {
    int found = 0;
    char list[600] = "";
    for (int i = 0; i < st->count; i++) {
        const char *name = st->tensors[i].name;
        for (int a = 0; a < nanchors; a++) {
            size_t head;
            if (!ends_with(name, anchors[a], &head)) continue;
            if (prefix && (strlen(prefix) != head || strncmp(name, prefix, head) != 0)) break;
            if (head >= n)
                return rd_fail(err, RD_EFORMAT, "%s: name prefix of '%s' is too long", st->path,
                               name);
            if (found++ == 0) {
                memcpy(out, name, head);
                out[head] = '\0';
                *which = a;
            }
            size_t len = strlen(list);
            snprintf(list + len, sizeof list - len, "%s'%.*s'", len ? ", " : "", (int)head, name);
            break;
        }
    }
    if (found == 1) return RD_OK;
    if (found == 0)
        return rd_fail(err, RD_EFORMAT, "%s: no %s%s%s found (looked for %s)", st->path, what,
                       prefix ? " under prefix " : "", prefix ? prefix : "", anchors[0]);
    return rd_fail(err, RD_EINVAL, "%s: %d %ss in the file (prefixes %s): choose one", st->path,
                   found, what, list);
}

rd_status rd_weights_detect(const rd_safetensors *st, const char *prefix, rd_weight_names *names,
                            rd_error *err) {
    /* "embeddings.cls_token" also ends in "cls_token": the HF anchor is tried first */
    static const char *const anchors[] = {"embeddings.cls_token", "cls_token"};
    int which = 0;
    rd_status s = find_prefix(st, anchors, 2, prefix, "DINOv2 backbone", names->prefix,
                              sizeof names->prefix, &which, err);
    if (s) return s;
    names->layout = which == 0 ? RD_LAYOUT_HF : RD_LAYOUT_ORIGINAL;
    return RD_OK;
}

rd_status rd_weights_head_prefix(const rd_safetensors *st, const char *prefix, char *out, size_t n,
                                 rd_error *err) {
    static const char *const anchors[] = {"last_layer.weight_g",
                                          "last_layer.parametrizations.weight.original0"};
    int which;
    return find_prefix(st, anchors, 2, prefix, "DINO head", out, n, &which, err);
}

/* ---- model shape ------------------------------------------------------------------------- */

/* An integer, or a list of two equal integers (transformers accepts both for sizes). */
static rd_status square_size(const json_t *root, const char *key, const char *path, int64_t *out,
                             rd_error *err) {
    const json_t *v = json_object_get(root, key);
    if (json_is_array(v) && json_array_size(v) == 2 && json_is_integer(json_array_get(v, 0)) &&
        json_is_integer(json_array_get(v, 1))) {
        json_int_t a = json_integer_value(json_array_get(v, 0));
        if (a != json_integer_value(json_array_get(v, 1)))
            return rd_fail(err, RD_EINVAL, "%s: %s must be square (rdino's ViT takes one size)",
                           path, key);
        *out = a;
        return RD_OK;
    }
    return rd_json_get_int(root, key, RD_JSON_OPTIONAL, path, out, err);
}

static int fits_int(int64_t v) {
    return v >= 0 && v <= 1 << 30;
}

rd_status rd_weights_read_hf_config(const char *path, rd_vit_config *cfg, rd_error *err) {
    json_t *root;
    rd_status s = rd_json_load(path, &root, err);
    if (s) return s;
    /* transformers 4.47's Dinov2Config defaults (and Dinov2WithRegistersConfig's registers) */
    int64_t hidden = 768, layers = 12, heads = 12, image = 224, patch = 14, channels = 3;
    int64_t registers = 4;
    double mlp_ratio = 4, eps = 1e-6, layerscale = 1, drop_path = 0, hidden_drop = 0, attn_drop = 0;
    int qkv_bias = 1, swiglu = 0;
    const char *type = NULL, *act = "gelu";
    if (!json_is_object(root))
        s = rd_fail(err, RD_EFORMAT, "%s: must hold a JSON object, not %s", path,
                    rd_json_type_name(root));
    if (!s) s = rd_json_get_string(root, "model_type", RD_JSON_REQUIRED, path, &type, err);
    int with_registers = type && strcmp(type, "dinov2_with_registers") == 0;
    if (!s && !with_registers && strcmp(type, "dinov2") != 0)
        s = rd_fail(err, RD_EINVAL,
                    "%s: model_type '%s' is not a DINOv2 (dinov2, dinov2_with_registers)", path,
                    type);
#define GET(fn, key, var)                                                                          \
    if (!s) s = fn(root, key, RD_JSON_OPTIONAL, path, &var, err)
    GET(rd_json_get_int, "hidden_size", hidden);
    GET(rd_json_get_int, "num_hidden_layers", layers);
    GET(rd_json_get_int, "num_attention_heads", heads);
    GET(rd_json_get_int, "num_channels", channels);
    GET(rd_json_get_number, "mlp_ratio", mlp_ratio);
    GET(rd_json_get_number, "layer_norm_eps", eps);
    GET(rd_json_get_number, "layerscale_value", layerscale);
    GET(rd_json_get_number, "drop_path_rate", drop_path);
    GET(rd_json_get_number, "hidden_dropout_prob", hidden_drop);
    GET(rd_json_get_number, "attention_probs_dropout_prob", attn_drop);
    GET(rd_json_get_bool, "qkv_bias", qkv_bias);
    GET(rd_json_get_bool, "use_swiglu_ffn", swiglu);
    GET(rd_json_get_string, "hidden_act", act);
    if (with_registers) GET(rd_json_get_int, "num_register_tokens", registers);
#undef GET
    if (!s) s = square_size(root, "image_size", path, &image, err);
    if (!s) s = square_size(root, "patch_size", path, &patch, err);
    if (!s && !swiglu && strcmp(act, "gelu") != 0)
        s = rd_fail(err, RD_EINVAL,
                    "%s: hidden_act '%s' is not computed by rdino (it has the exact erf GELU, "
                    "\"gelu\")",
                    path, act);
    if (!s && eps != 1e-6)
        s = rd_fail(err, RD_EINVAL,
                    "%s: layer_norm_eps %g is not computed by rdino (its LayerNorm uses 1e-6, as "
                    "DINOv2)",
                    path, eps);
    if (!s && !(fits_int(hidden) && fits_int(layers) && fits_int(heads) && fits_int(image) &&
                fits_int(patch) && fits_int(channels) && fits_int(registers)))
        s = rd_fail(err, RD_EINVAL, "%s: a size is negative or absurd", path);
    if (!s && (hidden_drop != 0 || attn_drop != 0))
        rd_warn("%s: dropout (hidden %g, attention %g) ignored: rdino has none (inference is the "
                "same)",
                path, hidden_drop, attn_drop);
    json_decref(root);
    if (s) return s;
    memset(cfg, 0, sizeof *cfg);
    cfg->embed_dim = (int)hidden;
    cfg->depth = (int)layers;
    cfg->num_heads = (int)heads;
    cfg->mlp_ratio = (float)mlp_ratio;
    cfg->patch_size = (int)patch;
    cfg->in_chans = (int)channels;
    cfg->num_register_tokens = with_registers ? (int)registers : 0;
    cfg->img_size = (int)image;
    /* transformers always has LayerScale tensors; layerscale_value is only their init */
    cfg->layerscale = layerscale > 0 ? (float)layerscale : 1.0f;
    cfg->drop_path_rate = drop_path;
    cfg->drop_path_uniform = 1; /* every Dinov2Layer gets drop_path_rate */
    cfg->qkv_bias = qkv_bias;
    cfg->proj_bias = cfg->ffn_bias = 1;
    cfg->ffn = swiglu ? RD_VIT_FFN_SWIGLU : RD_VIT_FFN_MLP;
    rd_pos_interp_apply(cfg, with_registers ? RD_POS_INTERP_DINOV2_REG : RD_POS_INTERP_HF);
    s = rd_vit_config_check(cfg, err);
    return s ? rd_wrap(err, "%s", path) : RD_OK;
}

static const rd_st_tensor *model_tensor(const file_view *v, const char *fmt, int i) {
    char name[NAME_MAX_LEN];
    snprintf(name, sizeof name, fmt, i);
    return view_find(v, name, 0);
}

static rd_status infer_from_view(const file_view *v, const rd_weight_names *names,
                                 rd_vit_config *cfg, rd_error *err) {
    const char *path = v->st->path;
    const rd_st_tensor *cls = view_find(v, "cls_token", 0), *pos = view_find(v, "pos_embed", 0);
    const rd_st_tensor *pw = view_find(v, "patch_embed.proj.weight", 0);
    const rd_st_tensor *reg = view_find(v, "register_tokens", 0);
    if (!cls || cls->ndim != 3 || !pos || pos->ndim != 3 || !pw || pw->ndim != 4)
        return rd_fail(err, RD_EFORMAT,
                       "%s: cannot infer the model: cls_token [1, 1, D], position embeddings "
                       "[1, 1 + M*M, D] and the patch embedding weight [D, C, p, p] are needed",
                       path);
    memset(cfg, 0, sizeof *cfg);
    int64_t D = cls->shape[2];
    cfg->embed_dim = (int)D;
    int depth = 0;
    for (int i = 0; i < v->count; i++) {
        int b;
        const char *tail;
        if (block_of(v->items[i].model, "blocks.", &b, &tail) && b + 1 > depth) depth = b + 1;
    }
    cfg->depth = depth;
    if (D % 64 != 0)
        return rd_fail(err, RD_EINVAL,
                       "%s: cannot infer num_heads for D = %lld (released DINOv2 heads are 64 "
                       "wide; give a config.json)",
                       path, (long long)D);
    cfg->num_heads = (int)(D / 64);
    cfg->patch_size = (int)pw->shape[2];
    cfg->in_chans = (int)pw->shape[1];
    int64_t cells = pos->shape[1] - 1, M = (int64_t)llround(sqrt((double)(cells > 0 ? cells : 0)));
    if (M * M != cells || pw->shape[2] != pw->shape[3])
        return rd_fail(err, RD_EFORMAT,
                       "%s: position embeddings for %lld patches are not a square grid", path,
                       (long long)cells);
    cfg->img_size = (int)(M * cfg->patch_size);
    cfg->num_register_tokens = reg && reg->ndim == 3 ? (int)reg->shape[1] : 0;
    const rd_st_tensor *w12 = model_tensor(v, "blocks.%d.mlp.w12.weight", 0);
    const rd_st_tensor *fc1 = model_tensor(v, "blocks.%d.mlp.fc1.weight", 0);
    cfg->ffn = w12 ? RD_VIT_FFN_SWIGLU : RD_VIT_FFN_MLP;
    const rd_st_tensor *first = w12 ? w12 : fc1;
    if (!first || first->ndim != 2)
        return rd_fail(err, RD_EFORMAT, "%s: no FFN weight in block 0", path);
    if (w12) {
        /* SwiGLU width h = (int(int(D r) 2/3) + 7) // 8 * 8: DINOv2 uses r = 4 */
        int64_t h = w12->shape[0] / 2;
        cfg->mlp_ratio = 4.0f;
        if (((int)((int)(D * 4.0f) * 2.0 / 3.0) + 7) / 8 * 8 != h)
            cfg->mlp_ratio = (float)(1.5 * (double)h / (double)D);
    } else {
        cfg->mlp_ratio = (float)((double)first->shape[0] / (double)D);
    }
    cfg->qkv_bias = model_tensor(v, "blocks.%d.attn.qkv.bias", 0) != NULL;
    cfg->proj_bias = model_tensor(v, "blocks.%d.attn.proj.bias", 0) != NULL;
    cfg->ffn_bias =
        model_tensor(v, w12 ? "blocks.%d.mlp.w12.bias" : "blocks.%d.mlp.fc1.bias", 0) != NULL;
    cfg->layerscale = model_tensor(v, "blocks.%d.ls1.gamma", 0) ? 1.0f : 0.0f;
    cfg->drop_path_uniform = 1;
    rd_status s = rd_weights_default_interpolation(v->st, names, cfg, err);
    if (!s) s = rd_vit_config_check(cfg, err);
    return s ? rd_wrap(err, "%s (inferred from the shapes)", path) : RD_OK;
}

static const name_map *backbone_map(const rd_weight_names *names) {
    return names->layout == RD_LAYOUT_HF ? &HF_MAP : &ORIGINAL_MAP;
}

rd_status rd_weights_infer_config(const rd_safetensors *st, const rd_weight_names *names,
                                  rd_vit_config *cfg, rd_error *err) {
    file_view v;
    rd_status s = view_open(&v, st, names->prefix, backbone_map(names), err);
    if (s) return s;
    s = infer_from_view(&v, names, cfg, err);
    view_free(&v);
    return s;
}

#define META_OFFSET    "rdino.interpolate_offset"
#define META_ANTIALIAS "rdino.interpolate_antialias"

rd_status rd_weights_default_interpolation(const rd_safetensors *st, const rd_weight_names *names,
                                           rd_vit_config *cfg, rd_error *err) {
    const char *off = rd_safetensors_meta(st, META_OFFSET);
    const char *aa = rd_safetensors_meta(st, META_ANTIALIAS);
    if (!off && !aa) {
        rd_pos_interp_apply(cfg, cfg->num_register_tokens > 0    ? RD_POS_INTERP_DINOV2_REG
                                 : names->layout == RD_LAYOUT_HF ? RD_POS_INTERP_HF
                                                                 : RD_POS_INTERP_LEGACY);
        return RD_OK;
    }
    char *end = NULL;
    double offset = off ? strtod(off, &end) : NAN;
    if (!off || !aa || end == off || *end || !(offset >= 0 && offset < 1) ||
        (strcmp(aa, "true") != 0 && strcmp(aa, "false") != 0))
        return rd_fail(err, RD_EFORMAT,
                       "%s: metadata %s='%s', %s='%s' is not an interpolation record (an offset "
                       "in [0, 1) and true/false)",
                       st->path, META_OFFSET, off ? off : "(absent)", META_ANTIALIAS,
                       aa ? aa : "(absent)");
    cfg->interpolate_offset = offset;
    cfg->interpolate_antialias = strcmp(aa, "true") == 0;
    return RD_OK;
}

/* ---- loading ----------------------------------------------------------------------------- */

static void describe(const rd_vit_config *c, char *out, size_t n) {
    snprintf(
        out, n, "D %d, depth %d, %d registers, LayerScale %s, biases qkv %d proj %d ffn %d, %s FFN",
        c->embed_dim, c->depth, c->num_register_tokens, c->layerscale > 0 ? "on" : "off",
        c->qkv_bias, c->proj_bias, c->ffn_bias, c->ffn == RD_VIT_FFN_SWIGLU ? "SwiGLU" : "MLP");
}

rd_status rd_weights_load_backbone(const rd_safetensors *st, const rd_weight_names *names,
                                   const rd_vit *vit, rd_param_set *set, rd_error *err) {
    if (!set->data) return rd_fail(err, RD_EINVAL, "%s: parameters not allocated", st->path);
    file_view v;
    const name_map *map = backbone_map(names);
    rd_status s = view_open(&v, st, names->prefix, map, err);
    if (s) return s;
    char desc[256];
    describe(&vit->cfg, desc, sizeof desc);
    s = load_view(&v, map, names->prefix, set, RD_MODULE_BACKBONE, desc, err);
    view_free(&v);
    return s;
}

rd_status rd_weights_head_config(const rd_safetensors *st, const char *prefix, rd_head_config *cfg,
                                 rd_error *err) {
    char pre[RD_PARAM_NAME_MAX];
    rd_status s = rd_weights_head_prefix(st, prefix, pre, sizeof pre, err);
    file_view v;
    if (!s) s = view_open(&v, st, pre, &HEAD_MAP, err);
    if (s) return s;
    memset(cfg, 0, sizeof *cfg);
    const rd_st_tensor *first = view_find(&v, "mlp.weight", 0), *last = first;
    cfg->nlayers = first ? 1 : 0;
    if (!first) /* mlp.0, mlp.2, ... (nn.Sequential numbers the GELUs between them) */
        for (const rd_st_tensor *w; (w = model_tensor(&v, "mlp.%d.weight", 2 * cfg->nlayers));) {
            if (!first) first = w;
            last = w;
            cfg->nlayers++;
        }
    const rd_st_tensor *wv = view_find(&v, "last_layer.weight_v", 0);
    if (!first || first->ndim != 2 || last->ndim != 2 || !wv || wv->ndim != 2)
        s = rd_fail(err, RD_EFORMAT,
                    "%s: cannot infer the head: mlp.0.weight (or mlp.weight) and "
                    "last_layer.weight_v [K, bottleneck] are needed",
                    st->path);
    if (!s) {
        cfg->in_dim = (int)first->shape[1];
        cfg->hidden_dim = (int)first->shape[0];
        cfg->bottleneck = (int)last->shape[0];
        cfg->prototypes = (int)wv->shape[0];
        if (cfg->nlayers == 1) cfg->hidden_dim = cfg->bottleneck;
    }
    view_free(&v);
    return s;
}

rd_status rd_weights_load_head(const rd_safetensors *st, const char *prefix, const rd_head *head,
                               rd_param_set *set, rd_error *err) {
    if (!set->data) return rd_fail(err, RD_EINVAL, "%s: parameters not allocated", st->path);
    char pre[RD_PARAM_NAME_MAX];
    rd_status s = rd_weights_head_prefix(st, prefix, pre, sizeof pre, err);
    file_view v;
    if (!s) s = view_open(&v, st, pre, &HEAD_MAP, err);
    if (s) return s;
    const rd_head_config *c = &head->cfg;
    char desc[200];
    snprintf(desc, sizeof desc, "%s: in %d, hidden %d, bottleneck %d, K %d, %d layers",
             rd_module_name(head->module), c->in_dim, c->hidden_dim, c->bottleneck, c->prototypes,
             c->nlayers);
    s = load_view(&v, &HEAD_MAP, pre, set, head->module, desc, err);
    view_free(&v);
    return s;
}

/* ---- snapshot folders -------------------------------------------------------------------- */

static int is_file(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

rd_status rd_pretrained_open(rd_pretrained *p, const char *path, rd_error *err) {
    memset(p, 0, sizeof *p);
    struct stat sb;
    if (stat(path, &sb) != 0)
        return rd_fail(err, errno == ENOENT ? RD_ENOTFOUND : RD_EIO, "cannot open %s: %s", path,
                       strerror(errno));
    char config[4200] = "";
    if (S_ISDIR(sb.st_mode)) {
        snprintf(config, sizeof config, "%s/%s", path, RD_WEIGHTS_CONFIG);
        if (!is_file(config)) config[0] = '\0';
        snprintf(p->weights_path, sizeof p->weights_path, "%s/%s", path, RD_WEIGHTS_HF_FILE);
        if (!is_file(p->weights_path))
            snprintf(p->weights_path, sizeof p->weights_path, "%s/%s", path,
                     RD_WEIGHTS_ORIGINAL_FILE);
        if (!is_file(p->weights_path))
            return rd_fail(err, RD_ENOTFOUND, "%s: neither %s nor %s in the folder", path,
                           RD_WEIGHTS_HF_FILE, RD_WEIGHTS_ORIGINAL_FILE);
        snprintf(p->head_path, sizeof p->head_path, "%s/%s", path, RD_WEIGHTS_HEAD_FILE);
        if (!is_file(p->head_path)) p->head_path[0] = '\0';
    } else { /* a snapshot's file (backbone_compatible.safetensors): its folder's config.json */
        snprintf(p->weights_path, sizeof p->weights_path, "%s", path);
        const char *slash = strrchr(path, '/');
        snprintf(config, sizeof config, "%.*s%s", slash ? (int)(slash - path + 1) : 0, path,
                 RD_WEIGHTS_CONFIG);
        if (!is_file(config)) config[0] = '\0';
    }
    rd_status s = rd_safetensors_open(&p->file, p->weights_path, err);
    if (s) return s;
    s = rd_weights_detect(&p->file, NULL, &p->names, err);
    if (!s && config[0]) {
        p->cfg_from_json = 1;
        s = rd_weights_read_hf_config(config, &p->cfg, err);
        if (!s) s = rd_weights_default_interpolation(&p->file, &p->names, &p->cfg, err);
    } else if (!s) {
        s = rd_weights_infer_config(&p->file, &p->names, &p->cfg, err);
    }
    if (s) rd_pretrained_close(p);
    return s;
}

rd_status rd_pretrained_load_backbone(const rd_pretrained *p, const rd_vit *vit, rd_param_set *set,
                                      rd_error *err) {
    return rd_weights_load_backbone(&p->file, &p->names, vit, set, err);
}

rd_status rd_pretrained_head_config(const rd_pretrained *p, rd_head_config *cfg, rd_error *err) {
    if (!p->head_path[0])
        return rd_fail(err, RD_ENOTFOUND, "%s: no %s beside it", p->weights_path,
                       RD_WEIGHTS_HEAD_FILE);
    rd_safetensors st;
    rd_status s = rd_safetensors_open(&st, p->head_path, err);
    if (s) return s;
    s = rd_weights_head_config(&st, NULL, cfg, err);
    rd_safetensors_close(&st);
    return s;
}

rd_status rd_pretrained_load_head(const rd_pretrained *p, const rd_head *head, rd_param_set *set,
                                  rd_error *err) {
    if (!p->head_path[0])
        return rd_fail(err, RD_ENOTFOUND, "%s: no %s beside it", p->weights_path,
                       RD_WEIGHTS_HEAD_FILE);
    rd_safetensors st;
    rd_status s = rd_safetensors_open(&st, p->head_path, err);
    if (s) return s;
    s = rd_weights_load_head(&st, NULL, head, set, err);
    rd_safetensors_close(&st);
    return s;
}

void rd_pretrained_close(rd_pretrained *p) {
    rd_safetensors_close(&p->file);
}

/* ---- export ------------------------------------------------------------------------------ */

/* The shortest decimal that reads back as the same double (as Python's repr writes it). */
static void shortest(char *out, size_t n, double v) {
    for (int digits = 1; digits <= 17; digits++) {
        snprintf(out, n, "%.*g", digits, v);
        if (strtod(out, NULL) == v) return;
    }
}

/* A float config value as the decimal it was written as (1e-5f -> 1e-05, not 9.99999975e-06). */
static double float_decimal(float f) {
    char text[40];
    for (int digits = 1; digits <= 9; digits++) {
        snprintf(text, sizeof text, "%.*g", digits, (double)f);
        if ((float)strtod(text, NULL) == f) break;
    }
    return strtod(text, NULL);
}

rd_status rd_weights_write_hf_config(const char *path, const rd_vit_config *c, rd_error *err) {
    int L = c->depth, registers = c->num_register_tokens > 0;
    json_t *stages = json_array(), *out_features = json_array(), *out_indices = json_array();
    char stage[32];
    json_array_append_new(stages, json_string("stem"));
    for (int i = 1; i <= L; i++) {
        snprintf(stage, sizeof stage, "stage%d", i);
        json_array_append_new(stages, json_string(stage));
    }
    json_array_append_new(out_features, json_string(stage)); /* the last stage */
    json_array_append_new(out_indices, json_integer(L));
    double ratio = float_decimal(c->mlp_ratio);
    json_t *root = json_pack(
        "{s:b, s:[s], s:f, s:f, s:s, s:f, s:i, s:i, s:f, s:f, s:f, s:o, s:s, s:i, s:i, s:i, s:o, "
        "s:o, s:i, s:b, s:b, s:o, s:s, s:s, s:b}",
        "apply_layernorm", 1, "architectures",
        registers ? "Dinov2WithRegistersModel" : "Dinov2Model", "attention_probs_dropout_prob", 0.0,
        "drop_path_rate", c->drop_path_rate, "hidden_act", "gelu", "hidden_dropout_prob", 0.0,
        "hidden_size", c->embed_dim, "image_size", c->img_size, "initializer_range", 0.02,
        "layer_norm_eps", 1e-6, "layerscale_value",
        c->layerscale > 0 ? float_decimal(c->layerscale) : 1.0, "mlp_ratio",
        ratio == floor(ratio) ? json_integer((json_int_t)ratio) : json_real(ratio), "model_type",
        registers ? "dinov2_with_registers" : "dinov2", "num_attention_heads", c->num_heads,
        "num_channels", c->in_chans, "num_hidden_layers", L, "out_features", out_features,
        "out_indices", out_indices, "patch_size", c->patch_size, "qkv_bias", c->qkv_bias,
        "reshape_hidden_states", 1, "stage_names", stages, "torch_dtype", "float32",
        /* the transformers release whose save_pretrained output this reproduces */
        "transformers_version", "4.47.1", "use_swiglu_ffn", c->ffn == RD_VIT_FFN_SWIGLU);
    if (!root) return rd_fail(err, RD_ENOMEM, "%s: cannot build the config", path);
    if (registers)
        json_object_set_new(root, "num_register_tokens", json_integer(c->num_register_tokens));
    /* 15 significant digits print every value above as Python's repr does (1e-06, 0.02) */
    rd_status s =
        rd_json_save(path, root, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(15), err);
    json_decref(root);
    return s;
}

/* Tensors to write, with names owned here. */
typedef struct export_list {
    rd_st_entry *entries;
    char (*names)[NAME_MAX_LEN];
    int64_t (*shapes)[RD_PARAM_MAX_DIMS];
    int count, capacity;
} export_list;

static int export_add(export_list *x, const char *name, int ndim, const int64_t *shape,
                      const float *data) {
    if (x->count == x->capacity) return 0;
    int i = x->count++;
    snprintf(x->names[i], NAME_MAX_LEN, "%s", name);
    memcpy(x->shapes[i], shape, (size_t)ndim * sizeof *shape);
    x->entries[i] = (rd_st_entry){x->names[i], ndim, x->shapes[i], data};
    return 1;
}

/* Every tensor of module, split into its parts and renamed by map. */
static int export_module(export_list *x, const rd_param_set *set, rd_module module,
                         const name_map *map) {
    for (int idx = 0; idx < set->count; idx++) {
        const rd_param *p = &set->params[idx];
        if (p->module != module) continue;
        int parts = parts_of(map, p->name);
        int64_t shape[RD_PARAM_MAX_DIMS];
        memcpy(shape, p->shape, sizeof shape);
        shape[0] /= parts;
        for (int k = 0; k < parts; k++) {
            char file[NAME_MAX_LEN];
            map->to_file(p->name, k, file, sizeof file);
            if (!export_add(x, file, p->ndim, shape,
                            rd_param_data(set, idx) + (size_t)k * (p->numel / (size_t)parts)))
                return 0;
        }
    }
    return 1;
}

/* transformers' tensors that an rdino model may lack: LayerScale (ones) and the attention
 * output and FFN biases (zeros); ones/zeros hold at least max(D, first FFN width) floats. */
static int export_hf_neutral(export_list *x, const rd_vit *vit, const float *ones,
                             const float *zeros) {
    const rd_vit_config *c = &vit->cfg;
    int swiglu = c->ffn == RD_VIT_FFN_SWIGLU;
    int64_t D = c->embed_dim, F = swiglu ? 2 * vit->hidden : vit->hidden;
    for (int i = 0; i < c->depth; i++) {
        const rd_vit_block_params *b = &vit->blocks[i];
        char name[NAME_MAX_LEN];
        int ok = 1;
#define NEUTRAL(missing, tail, n, values)                                                          \
    if (missing) {                                                                                 \
        snprintf(name, sizeof name, "encoder.layer.%d.%s", i, tail);                               \
        ok = ok && export_add(x, name, 1, &(n), values);                                           \
    }
        NEUTRAL(b->ls1_gamma < 0, "layer_scale1.lambda1", D, ones)
        NEUTRAL(b->ls2_gamma < 0, "layer_scale2.lambda1", D, ones)
        NEUTRAL(b->proj_bias < 0, "attention.output.dense.bias", D, zeros)
        NEUTRAL(b->fc1_bias < 0, swiglu ? "mlp.weights_in.bias" : "mlp.fc1.bias", F, zeros)
        NEUTRAL(b->fc2_bias < 0, swiglu ? "mlp.weights_out.bias" : "mlp.fc2.bias", D, zeros)
#undef NEUTRAL
        if (!ok) return 0;
    }
    return 1;
}

static rd_status write_list(const char *dir, const char *file, export_list *x,
                            const char *const *meta, rd_error *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    rd_status s = rd_safetensors_write(path, x->entries, x->count, meta, err);
    x->count = 0;
    return s;
}

rd_status rd_weights_export(const char *dir, const rd_vit *vit, const rd_param_set *set,
                            const rd_head *head, int flags, rd_error *err) {
    if (!set->data) return rd_fail(err, RD_EINVAL, "export to %s: parameters not allocated", dir);
    rd_status s = rd_mkdir_p(dir, err);
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, RD_WEIGHTS_CONFIG);
    if (!s) s = rd_weights_write_hf_config(path, &vit->cfg, err);
    if (s) return s;
    char offset[40];
    shortest(offset, sizeof offset, vit->cfg.interpolate_offset);
    const char *meta[] = {
        "format", "pt",           META_OFFSET,
        offset,   META_ANTIALIAS, vit->cfg.interpolate_antialias ? "true" : "false",
        NULL};
    /* at most 3 parts per tensor and 5 neutral tensors per block */
    int capacity = 3 * set->count + 5 * vit->cfg.depth + 1;
    size_t width =
        (size_t)(vit->cfg.embed_dim > 2 * vit->hidden ? vit->cfg.embed_dim : 2 * vit->hidden);
    export_list x = {calloc((size_t)capacity, sizeof *x.entries),
                     calloc((size_t)capacity, sizeof *x.names),
                     calloc((size_t)capacity, sizeof *x.shapes), 0, capacity};
    float *ones = malloc(width * sizeof(float)), *zeros = calloc(width, sizeof(float));
    if (!x.entries || !x.names || !x.shapes || !ones || !zeros)
        s = rd_fail(err, RD_ENOMEM, "export to %s: out of memory", dir);
    for (size_t i = 0; !s && i < width; i++) ones[i] = 1.0f;
    if (!s && (!export_module(&x, set, RD_MODULE_BACKBONE, &HF_MAP) ||
               !export_hf_neutral(&x, vit, ones, zeros)))
        s = rd_fail(err, RD_EINVAL, "export to %s: too many tensors", dir);
    if (!s) s = write_list(dir, RD_WEIGHTS_HF_FILE, &x, meta, err);
    if (!s && (flags & RD_EXPORT_ORIGINAL_NAMES)) {
        if (!export_module(&x, set, RD_MODULE_BACKBONE, &ORIGINAL_MAP))
            s = rd_fail(err, RD_EINVAL, "export to %s: too many tensors", dir);
        if (!s) s = write_list(dir, RD_WEIGHTS_ORIGINAL_FILE, &x, meta, err);
    }
    if (!s && head) {
        if (!export_module(&x, set, head->module, &HEAD_MAP))
            s = rd_fail(err, RD_EINVAL, "export to %s: too many tensors", dir);
        if (!s) s = write_list(dir, RD_WEIGHTS_HEAD_FILE, &x, meta, err);
    }
    free(x.entries);
    free(x.names);
    free(x.shapes);
    free(ones);
    free(zeros);
    return s;
}
