/* Released-weight loading and export (rdino/weights.h).
 *
 * Against the shared transformers fixture (../shared/fixtures/hf_dinov2_tiny, SKIP when absent):
 * both of its weight files (transformers names, original DINOv2 names) load into the model its
 * config.json describes, bit-identically, and rd_vit_forward reproduces transformers'
 * last_hidden_state (CLS row = out.cls, patch rows = out.patch), pooler_output and patch_mean
 * at 518 px (B = 2), 224 and 98 px in "hf" mode, 224 and 98 px in "legacy" mode (transformers
 * 4.44.2's files), and at 224 px with the bool_masked_pos mask; plus the hidden states after
 * the embedding and every block, and the interpolated position embeddings. Tolerance 1e-5
 * absolute: the fixture README measured 3.9e-6 between float64 and float32 transformers on
 * last_hidden_state (rdino's worst here: 4.8e-6 on c224, 4.1e-6 on a518), and the mistakes it
 * lists (tanh GELU 2.2e-5, attention scale 3.6e-3, legacy vs hf interpolation 0.066) all exceed
 * it.
 *
 * Without the fixture: export -> import is bit-identical (transformers names, original names,
 * head) for MLP and SwiGLU models with and without registers; a model without LayerScale or
 * biases exported with transformers' neutral ones/zeros computes bit-identical outputs after
 * re-import; prefixes, chunked blocks and torch's weight_norm parametrization names load; and
 * every wrong file is a named error. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "npy.h"
#include "rdino/file.h"
#include "rdino/json.h"
#include "rdino/log.h"
#include "rdino/rng.h"
#include "rdino/weights.h"

#define FIXTURE_ATOL 1e-5

/* ---- helpers ----------------------------------------------------------------------------- */

typedef struct model {
    rd_vit vit;
    rd_head head;
    rd_param_set set;
} model;

/* Declares (and allocates) a backbone and, if hcfg, a DINO head. */
static int model_declare(rd_test *t, model *m, const rd_vit_config *cfg,
                         const rd_head_config *hcfg) {
    rd_error err = {0};
    rd_params_init(&m->set);
    CHECK_OK(rd_vit_declare(&m->vit, cfg, &m->set, &err), &err);
    if (!err.code && hcfg)
        CHECK_OK(rd_head_declare(&m->head, &m->set, RD_MODULE_DINO_HEAD, hcfg, &err), &err);
    if (!err.code) CHECK_OK(rd_params_alloc(&m->set, 0, &err), &err);
    return err.code == RD_OK;
}

/* Every parameter N(0, 0.3^2) (LayerNorm weights 1 + that): every tensor distinct, so a swapped
 * or misplaced tensor shows. */
static void model_fill(model *m, uint64_t seed) {
    rd_rng r;
    rd_rng_init(&r, seed, RD_RNG_TEST, 0, 0, 0);
    for (int i = 0; i < m->set.count; i++) {
        const rd_param *p = &m->set.params[i];
        float *x = rd_param_data(&m->set, i);
        int norm = strstr(p->name, "norm") && strstr(p->name, ".weight");
        for (size_t j = 0; j < p->numel; j++)
            x[j] = (norm ? 1.0f : 0.0f) + 0.3f * (float)rd_rng_normal(&r);
    }
}

static int sets_identical(rd_test *t, const rd_param_set *a, const rd_param_set *b,
                          rd_module module) {
    int same = 1;
    for (int i = 0; i < a->count; i++) {
        const rd_param *p = &a->params[i];
        if (p->module != module) continue;
        int j = rd_params_find(b, module, p->name);
        CHECK_MSG(j >= 0, "%s missing after the round trip", p->name);
        if (j < 0 || memcmp(rd_param_data(a, i), rd_param_data(b, j), p->numel * sizeof(float))) {
            if (j >= 0) CHECK_MSG(0, "%s differs after the round trip", p->name);
            same = 0;
        }
    }
    return same;
}

static char *tmp_path(rd_test *t, const char *name) {
    static char buf[4][1024];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", rd_test_tmpdir(t), name);
    return p;
}

/* Copies the tensors of src to dst, renamed by rename (NULL = drop the tensor). */
typedef const char *(*rename_fn)(const char *name, char *buf, size_t n, void *arg);
static int rewrite(rd_test *t, const char *src, const char *dst, rename_fn rename, void *arg,
                   const char *const *meta) {
    rd_safetensors st;
    rd_error err = {0};
    CHECK_OK(rd_safetensors_open(&st, src, &err), &err);
    if (err.code) return 0;
    rd_st_entry *e = calloc((size_t)st.count + 1, sizeof *e);
    char(*names)[160] = calloc((size_t)st.count + 1, sizeof *names);
    float **data = calloc((size_t)st.count + 1, sizeof *data);
    int n = 0;
    for (int i = 0; i < st.count; i++) {
        const rd_st_tensor *ti = &st.tensors[i];
        const char *name = rename(ti->name, names[n], sizeof names[n], arg);
        if (!name) continue;
        data[n] = malloc(ti->numel * sizeof(float) + 4);
        memcpy(data[n], st.data + ti->begin, ti->end - ti->begin); /* F32 files only */
        e[n] = (rd_st_entry){name, ti->ndim, ti->shape, data[n]};
        n++;
    }
    CHECK_OK(rd_safetensors_write(dst, e, n, meta, &err), &err);
    for (int i = 0; i < n; i++) free(data[i]);
    free(data);
    free(names);
    free(e);
    rd_safetensors_close(&st);
    return err.code == RD_OK;
}

static const char *add_prefix(const char *name, char *buf, size_t n, void *arg) {
    snprintf(buf, n, "%s%s", (const char *)arg, name);
    return buf;
}

/* ---- the shared transformers fixture ----------------------------------------------------- */

static const char *fixture_dir(void) {
    static char dir[1200];
    const char *shared = rd_test_shared_dir();
    if (!shared) return NULL;
    snprintf(dir, sizeof dir, "%s/fixtures/hf_dinov2_tiny", shared);
    return dir;
}

static float *npy(rd_test *t, const char *dir, const char *name, size_t *n) {
    char path[1400];
    snprintf(path, sizeof path, "%s/%s.npy", dir, name);
    float *x = rd_npy_floats(path, n, NULL, NULL);
    CHECK_MSG(x != NULL, "cannot read %s", path);
    return x;
}

/* Runs the model on <input>_pixel_values.npy (B images of H x H) and compares with
 * <prefix>_{last_hidden_state, pooler_output, patch_mean}.npy; mask and hidden-state checks
 * when given. */
static void compare_case(rd_test *t, const char *dir, const model *m, rd_vit_context *ctx,
                         const char *input, const char *prefix, int B, int H, const uint8_t *mask,
                         const char *hidden_name) {
    const rd_vit_config *c = &m->vit.cfg;
    int D = c->embed_dim, n = (H / c->patch_size) * (H / c->patch_size), T = 1 + n;
    char name[128], what[160];
    size_t count;
    snprintf(name, sizeof name, "%s_pixel_values", input);
    float *x = npy(t, dir, name, &count);
    if (!x) return;
    CHECK(count == (size_t)B * 3 * H * H);
    float *trace = hidden_name ? calloc((size_t)(c->depth + 1) * B * T * D, sizeof(float)) : NULL;
    rd_vit_context_trace(ctx, trace);
    rd_vit_output out;
    rd_error err = {0};
    CHECK_OK(rd_vit_forward(ctx, &m->set, x, B, 3, H, H, mask, NULL, &out, &err), &err);
    rd_vit_context_trace(ctx, NULL);
    if (err.code) {
        free(trace);
        free(x);
        return;
    }
    /* last_hidden_state [B, T, D] = [cls; patches] */
    float *last = malloc((size_t)B * T * D * sizeof(float)),
          *mean = malloc((size_t)B * D * sizeof(float));
    for (int b = 0; b < B; b++) {
        memcpy(last + (size_t)b * T * D, out.cls + (size_t)b * D, (size_t)D * sizeof(float));
        memcpy(last + ((size_t)b * T + 1) * D, out.patch + (size_t)b * n * D,
               (size_t)n * D * sizeof(float));
        for (int d = 0; d < D; d++) {
            double s = 0;
            for (int j = 0; j < n; j++) s += out.patch[((size_t)b * n + j) * D + d];
            mean[(size_t)b * D + d] = (float)(s / n);
        }
    }
    static const char *outputs[] = {"last_hidden_state", "pooler_output", "patch_mean"};
    const float *got[] = {last, out.cls, mean};
    const size_t sizes[] = {(size_t)B * T * D, (size_t)B * D, (size_t)B * D};
    for (int k = 0; k < 3; k++) {
        snprintf(name, sizeof name, "%s_%s", prefix, outputs[k]);
        float *want = npy(t, dir, name, &count);
        CHECK_MSG(!want || count == sizes[k], "%s: %zu values, want %zu", name, count, sizes[k]);
        snprintf(what, sizeof what, "%s (%s)", name, rd_pos_interp_name(rd_pos_interp_of(c)));
        if (want && count == sizes[k]) CHECK_CLOSE(what, got[k], want, count, 0, FIXTURE_ATOL);
        free(want);
    }
    if (hidden_name) { /* [depth + 1, B, T, D]: the embedding, then each block's output */
        float *want = npy(t, dir, hidden_name, &count);
        size_t size = (size_t)(c->depth + 1) * B * T * D;
        CHECK_MSG(!want || count == size, "%s: %zu values, want %zu", hidden_name, count, size);
        if (want && count == size) CHECK_CLOSE(hidden_name, trace, want, size, 0, FIXTURE_ATOL);
        free(want);
    }
    free(last);
    free(mean);
    free(trace);
    free(x);
}

static void fixture_forward(rd_test *t, const char *dir, const model *m) {
    rd_error err = {0};
    rd_vit_context ctx, legacy_ctx;
    CHECK_OK(rd_vit_context_init(&ctx, &m->vit, 2, 518, 518, RD_VIT_INFER, &err), &err);
    if (err.code) return;
    CHECK(rd_pos_interp_of(&m->vit.cfg) == RD_POS_INTERP_HF);
    compare_case(t, dir, m, &ctx, "a518", "a518", 2, 518, NULL, NULL);
    compare_case(t, dir, m, &ctx, "a224", "a224", 1, 224, NULL, "a224_hidden_states");
    compare_case(t, dir, m, &ctx, "a98", "a98", 1, 98, NULL, NULL);
    char path[1400];
    snprintf(path, sizeof path, "%s/c224_bool_masked_pos.npy", dir);
    size_t n;
    uint8_t *mask = rd_npy_bytes(path, &n, NULL, NULL);
    CHECK(mask && n == 256);
    if (mask) {
        int masked = 0;
        for (size_t i = 0; i < n; i++) masked += mask[i];
        CHECK(masked == 71); /* the README's count: the mask was read as meant */
        compare_case(t, dir, m, &ctx, "a224", "c224", 1, 224, mask, "c224_hidden_states");
    }
    free(mask);
    rd_vit_context_free(&ctx);
    /* the same parameters read with transformers 4.44's (= DINOv2's) interpolation */
    model legacy = *m;
    rd_pos_interp_apply(&legacy.vit.cfg, RD_POS_INTERP_LEGACY);
    CHECK_OK(rd_vit_context_init(&legacy_ctx, &legacy.vit, 1, 224, 224, RD_VIT_INFER, &err), &err);
    if (err.code) return;
    compare_case(t, dir, &legacy, &legacy_ctx, "a224", "legacy_v4442_a224", 1, 224, NULL, NULL);
    compare_case(t, dir, &legacy, &legacy_ctx, "a98", "legacy_v4442_a98", 1, 98, NULL, NULL);
    rd_vit_context_free(&legacy_ctx);
}

static void fixture_weights_reproduce_transformers(rd_test *t) {
    const char *dir = fixture_dir();
    if (!dir) SKIP("shared data directory not found (set RDINO_SHARED)");
    rd_pretrained pre;
    rd_error err = {0};
    CHECK_OK(rd_pretrained_open(&pre, dir, &err), &err);
    if (err.code) return;
    const rd_vit_config *c = &pre.cfg;
    CHECK(pre.cfg_from_json && pre.names.layout == RD_LAYOUT_HF && pre.names.prefix[0] == '\0');
    CHECK(c->embed_dim == 48 && c->depth == 2 && c->num_heads == 3 && c->mlp_ratio == 4.0f);
    CHECK(c->patch_size == 14 && c->img_size == 518 && c->in_chans == 3 && c->qkv_bias);
    CHECK(c->num_register_tokens == 0 && c->ffn == RD_VIT_FFN_MLP && c->layerscale > 0);
    CHECK(rd_pos_interp_of(c) == RD_POS_INTERP_HF);
    model hf, orig;
    if (!model_declare(t, &hf, c, NULL) || !model_declare(t, &orig, c, NULL)) return;
    CHECK_OK(rd_pretrained_load_backbone(&pre, &hf.vit, &hf.set, &err), &err);
    rd_pretrained_close(&pre);
    CHECK(rd_vit_param_count(&hf.vit, &hf.set) == 150960); /* the README's count */

    /* the original-name file: same numbers, bit for bit; default interpolation legacy */
    char path[1400];
    snprintf(path, sizeof path, "%s/dinov2_original_names.safetensors", dir);
    rd_safetensors st;
    rd_weight_names names;
    CHECK_OK(rd_safetensors_open(&st, path, &err), &err);
    if (err.code) return;
    CHECK_OK(rd_weights_detect(&st, NULL, &names, &err), &err);
    CHECK(names.layout == RD_LAYOUT_ORIGINAL && names.prefix[0] == '\0');
    rd_vit_config shaped;
    CHECK(rd_weights_infer_config(&st, &names, &shaped, &err) == RD_EINVAL); /* D 48: heads? */
    CHECK_MSG(strstr(err.msg, "num_heads") && strstr(err.msg, path), "%s", err.msg);
    rd_vit_config dflt = *c;
    CHECK_OK(rd_weights_default_interpolation(&st, &names, &dflt, &err), &err);
    CHECK(rd_pos_interp_of(&dflt) == RD_POS_INTERP_LEGACY);
    CHECK_OK(rd_weights_load_backbone(&st, &names, &orig.vit, &orig.set, &err), &err);
    rd_safetensors_close(&st);
    CHECK(sets_identical(t, &hf.set, &orig.set, RD_MODULE_BACKBONE));

    fixture_forward(t, dir, &hf);
    fixture_forward(t, dir, &orig);
    rd_params_free(&hf.set);
    rd_params_free(&orig.set);
}

static void fixture_position_embeddings(rd_test *t) {
    const char *dir = fixture_dir();
    if (!dir) SKIP("shared data directory not found (set RDINO_SHARED)");
    rd_pretrained pre;
    rd_error err = {0};
    CHECK_OK(rd_pretrained_open(&pre, dir, &err), &err);
    if (err.code) return;
    model m;
    if (!model_declare(t, &m, &pre.cfg, NULL)) return;
    CHECK_OK(rd_pretrained_load_backbone(&pre, &m.vit, &m.set, &err), &err);
    rd_pretrained_close(&pre);
    int D = 48, M = 37;
    float *pos = malloc(1370 * (size_t)D * sizeof(float));
    float *scratch = malloc((size_t)(2 * M + M * D) * 1036 * sizeof(float));
    const struct {
        const char *file;
        int size;
        rd_pos_interp mode;
    } cases[] = {{"pos_embed_224", 224, RD_POS_INTERP_HF},
                 {"pos_embed_98", 98, RD_POS_INTERP_HF},
                 {"legacy_v4442_pos_embed_224", 224, RD_POS_INTERP_LEGACY},
                 {"legacy_v4442_pos_embed_98", 98, RD_POS_INTERP_LEGACY}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        rd_vit vit = m.vit;
        rd_pos_interp_apply(&vit.cfg, cases[k].mode);
        rd_vit_pos_embed(&vit, &m.set, cases[k].size, cases[k].size, pos, scratch);
        size_t n;
        float *want = npy(t, dir, cases[k].file, &n);
        int g = cases[k].size / 14;
        CHECK(!want || n == (size_t)(1 + g * g) * D);
        /* pure resampling of values ~0.02 (rdino's source coordinates in double, torch's in
         * float): measured worst 1.7e-7 */
        if (want && n == (size_t)(1 + g * g) * D) CHECK_CLOSE(cases[k].file, pos, want, n, 0, 5e-7);
        free(want);
    }
    free(pos);
    free(scratch);
    rd_params_free(&m.set);
}

/* The config.json rdino writes for the fixture's model holds exactly transformers' keys with
 * the same JSON types and values (jansson spells 1e-06 as 1e-6: the same number to a JSON
 * reader, so the files are compared as JSON, key by key, not byte by byte). */
static void fixture_config_json_is_rewritten_key_by_key(rd_test *t) {
    const char *dir = fixture_dir();
    if (!dir) SKIP("shared data directory not found (set RDINO_SHARED)");
    char path[1400];
    snprintf(path, sizeof path, "%s/config.json", dir);
    rd_vit_config cfg;
    rd_error err = {0};
    CHECK_OK(rd_weights_read_hf_config(path, &cfg, &err), &err);
    const char *out = tmp_path(t, "config.json");
    CHECK_OK(rd_weights_write_hf_config(out, &cfg, &err), &err);
    json_t *want = NULL, *got = NULL;
    CHECK_OK(rd_json_load(path, &want, &err), &err);
    CHECK_OK(rd_json_load(out, &got, &err), &err);
    if (!want || !got) return;
    const char *key;
    json_t *value;
    json_object_foreach(want, key, value) {
        json_t *mine = json_object_get(got, key);
        char *a = json_dumps(value, JSON_ENCODE_ANY),
             *b = mine ? json_dumps(mine, JSON_ENCODE_ANY) : NULL;
        CHECK_MSG(mine && json_equal(value, mine),
                  "config.json key '%s': transformers %s, rdino %s", key, a, b ? b : "(absent)");
        free(a);
        free(b);
    }
    json_object_foreach(got, key, value) {
        CHECK_MSG(json_object_get(want, key) != NULL, "config.json: extra key '%s'", key);
    }
    json_decref(want);
    json_decref(got);
}

/* ---- export / import --------------------------------------------------------------------- */

static rd_vit_config small_config(rd_vit_ffn ffn, int registers, rd_pos_interp mode) {
    rd_vit_config c;
    memset(&c, 0, sizeof c);
    c.embed_dim = 128;
    c.depth = 3;
    c.num_heads = 2; /* 64-wide heads: the shapes alone describe the model */
    c.mlp_ratio = 4.0f;
    c.patch_size = 8;
    c.in_chans = 3;
    c.num_register_tokens = registers;
    c.img_size = 32;
    c.layerscale = 1e-5f;
    c.drop_path_uniform = 1;
    c.qkv_bias = c.proj_bias = c.ffn_bias = 1;
    c.ffn = ffn;
    rd_pos_interp_apply(&c, mode);
    return c;
}

static void check_same_config(rd_test *t, const rd_vit_config *a, const rd_vit_config *b) {
    CHECK(a->embed_dim == b->embed_dim && a->depth == b->depth && a->num_heads == b->num_heads);
    CHECK(a->mlp_ratio == b->mlp_ratio && a->patch_size == b->patch_size);
    CHECK(a->in_chans == b->in_chans && a->num_register_tokens == b->num_register_tokens);
    CHECK(a->img_size == b->img_size && a->qkv_bias == b->qkv_bias && a->ffn == b->ffn);
    CHECK(a->interpolate_offset == b->interpolate_offset &&
          a->interpolate_antialias == b->interpolate_antialias);
}

static void export_import_is_bit_identical(rd_test *t) {
    const struct {
        rd_vit_ffn ffn;
        int registers, qkv_bias;
        rd_pos_interp mode;
    } variants[] = {{RD_VIT_FFN_MLP, 0, 1, RD_POS_INTERP_HF},
                    {RD_VIT_FFN_SWIGLU, 2, 0, RD_POS_INTERP_LEGACY},
                    {RD_VIT_FFN_MLP, 4, 1, RD_POS_INTERP_DINOV2_REG}};
    rd_head_config hcfg = {128, 96, 32, 200, 3};
    for (size_t k = 0; k < sizeof variants / sizeof variants[0]; k++) {
        rd_vit_config cfg = small_config(variants[k].ffn, variants[k].registers, variants[k].mode);
        cfg.qkv_bias = variants[k].qkv_bias;
        model a, b, c;
        if (!model_declare(t, &a, &cfg, &hcfg)) return;
        model_fill(&a, 100 + k);
        char dir[1100];
        snprintf(dir, sizeof dir, "%s/export%zu/snapshot", rd_test_tmpdir(t), k);
        rd_error err = {0};
        CHECK_OK(rd_weights_export(dir, &a.vit, &a.set, &a.head, RD_EXPORT_ORIGINAL_NAMES, &err),
                 &err);
        rd_pretrained pre;
        CHECK_OK(rd_pretrained_open(&pre, dir, &err), &err);
        if (err.code) return;
        check_same_config(t, &pre.cfg, &cfg);
        rd_head_config got_h;
        CHECK_OK(rd_pretrained_head_config(&pre, &got_h, &err), &err);
        CHECK(memcmp(&got_h, &hcfg, sizeof hcfg) == 0);
        if (!model_declare(t, &b, &pre.cfg, &got_h)) return;
        CHECK_OK(rd_pretrained_load_backbone(&pre, &b.vit, &b.set, &err), &err);
        CHECK_OK(rd_pretrained_load_head(&pre, &b.head, &b.set, &err), &err);
        CHECK(sets_identical(t, &a.set, &b.set, RD_MODULE_BACKBONE));
        CHECK(sets_identical(t, &a.set, &b.set, RD_MODULE_DINO_HEAD));
        rd_pretrained_close(&pre);

        /* one file of the snapshot: the config.json beside it describes the model */
        char path[1200], config[1200];
        snprintf(path, sizeof path, "%s/%s", dir, RD_WEIGHTS_ORIGINAL_FILE);
        CHECK_OK(rd_pretrained_open(&pre, path, &err), &err);
        if (err.code) return;
        CHECK(pre.cfg_from_json && pre.names.layout == RD_LAYOUT_ORIGINAL);
        check_same_config(t, &pre.cfg, &cfg);
        rd_pretrained_close(&pre);
        /* the original-name file alone: shapes describe the model, the metadata its mode */
        snprintf(config, sizeof config, "%s/%s", dir, RD_WEIGHTS_CONFIG);
        CHECK(unlink(config) == 0);
        CHECK_OK(rd_pretrained_open(&pre, path, &err), &err);
        if (err.code) return;
        CHECK(!pre.cfg_from_json && pre.names.layout == RD_LAYOUT_ORIGINAL);
        check_same_config(t, &pre.cfg, &cfg);
        CHECK(pre.cfg.proj_bias && pre.cfg.ffn_bias && pre.cfg.layerscale > 0);
        if (!model_declare(t, &c, &pre.cfg, NULL)) return;
        CHECK_OK(rd_pretrained_load_backbone(&pre, &c.vit, &c.set, &err), &err);
        CHECK(sets_identical(t, &a.set, &c.set, RD_MODULE_BACKBONE));
        rd_pretrained_close(&pre);
        /* and the transformers-name file alone (no config.json): the same */
        snprintf(path, sizeof path, "%s/%s", dir, RD_WEIGHTS_HF_FILE);
        CHECK_OK(rd_pretrained_open(&pre, path, &err), &err);
        if (!err.code) check_same_config(t, &pre.cfg, &cfg);
        rd_pretrained_close(&pre);
        rd_params_free(&a.set);
        rd_params_free(&b.set);
        rd_params_free(&c.set);
    }
}

/* transformers always has LayerScale and the proj / FFN biases: a model without them is
 * exported with ones and zeros and computes exactly the same after re-import. */
static void export_without_layerscale_or_biases_computes_the_same(rd_test *t) {
    rd_vit_config cfg = small_config(RD_VIT_FFN_MLP, 1, RD_POS_INTERP_HF);
    cfg.layerscale = 0;
    cfg.proj_bias = cfg.ffn_bias = 0;
    model a, b;
    if (!model_declare(t, &a, &cfg, NULL)) return;
    model_fill(&a, 7);
    const char *dir = tmp_path(t, "neutral");
    rd_error err = {0};
    CHECK_OK(rd_weights_export(dir, &a.vit, &a.set, NULL, 0, &err), &err);
    rd_pretrained pre;
    CHECK_OK(rd_pretrained_open(&pre, dir, &err), &err);
    if (err.code) return;
    CHECK(pre.cfg.layerscale > 0 && pre.cfg.proj_bias && pre.cfg.ffn_bias);
    if (!model_declare(t, &b, &pre.cfg, NULL)) return;
    CHECK_OK(rd_pretrained_load_backbone(&pre, &b.vit, &b.set, &err), &err);
    rd_pretrained_close(&pre);
    float *x = malloc(2 * 3 * 48 * 40 * sizeof(float));
    rd_rng r;
    rd_rng_init(&r, 3, RD_RNG_TEST, 0, 0, 0);
    for (int i = 0; i < 2 * 3 * 48 * 40; i++) x[i] = (float)rd_rng_normal(&r);
    rd_vit_context ca, cb;
    rd_vit_output oa, ob;
    CHECK_OK(rd_vit_context_init(&ca, &a.vit, 2, 48, 40, RD_VIT_INFER, &err), &err);
    CHECK_OK(rd_vit_context_init(&cb, &b.vit, 2, 48, 40, RD_VIT_INFER, &err), &err);
    CHECK_OK(rd_vit_forward(&ca, &a.set, x, 2, 3, 48, 40, NULL, NULL, &oa, &err), &err);
    CHECK_OK(rd_vit_forward(&cb, &b.set, x, 2, 3, 48, 40, NULL, NULL, &ob, &err), &err);
    if (!err.code) {
        size_t D = 128, n = (size_t)oa.n_patches;
        CHECK(memcmp(oa.cls, ob.cls, 2 * D * sizeof(float)) == 0);
        CHECK(memcmp(oa.reg, ob.reg, 2 * D * sizeof(float)) == 0);
        CHECK(memcmp(oa.patch, ob.patch, 2 * n * D * sizeof(float)) == 0);
    }
    rd_vit_context_free(&ca);
    rd_vit_context_free(&cb);
    free(x);
    rd_params_free(&a.set);
    rd_params_free(&b.set);
}

static void hf_names_of_rdino_tensors(rd_test *t) {
    char out[160];
    static const char *const qkv[3] = {"query", "key", "value"};
    for (int k = 0; k < 3; k++) {
        char want[160];
        snprintf(want, sizeof want, "encoder.layer.11.attention.attention.%s.weight", qkv[k]);
        CHECK(rd_weights_hf_name("blocks.11.attn.qkv.weight", k, out, sizeof out) &&
              strcmp(out, want) == 0);
    }
    CHECK(!rd_weights_hf_name("blocks.11.attn.qkv.weight", 3, out, sizeof out));
    static const char *const pairs[][2] = {
        {"cls_token", "embeddings.cls_token"},
        {"pos_embed", "embeddings.position_embeddings"},
        {"register_tokens", "embeddings.register_tokens"},
        {"mask_token", "embeddings.mask_token"},
        {"patch_embed.proj.weight", "embeddings.patch_embeddings.projection.weight"},
        {"blocks.0.norm1.bias", "encoder.layer.0.norm1.bias"},
        {"blocks.3.attn.proj.weight", "encoder.layer.3.attention.output.dense.weight"},
        {"blocks.3.ls1.gamma", "encoder.layer.3.layer_scale1.lambda1"},
        {"blocks.3.ls2.gamma", "encoder.layer.3.layer_scale2.lambda1"},
        {"blocks.2.mlp.fc1.bias", "encoder.layer.2.mlp.fc1.bias"},
        {"blocks.2.mlp.w12.weight", "encoder.layer.2.mlp.weights_in.weight"},
        {"blocks.2.mlp.w3.bias", "encoder.layer.2.mlp.weights_out.bias"},
        {"norm.weight", "layernorm.weight"}};
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        int ok = rd_weights_hf_name(pairs[i][0], 0, out, sizeof out);
        CHECK_MSG(ok && strcmp(out, pairs[i][1]) == 0, "%s -> %s", pairs[i][0], ok ? out : "-");
    }
    CHECK(!rd_weights_hf_name("blocks.0.attn.qkv.gamma", 0, out, sizeof out));
    CHECK(!rd_weights_hf_name("blocks.x.norm1.weight", 0, out, sizeof out));
    CHECK(!rd_weights_hf_name("norm.running_mean", 0, out, sizeof out));
}

static void interpolation_modes(rd_test *t) {
    rd_vit_config c = small_config(RD_VIT_FFN_MLP, 0, RD_POS_INTERP_LEGACY);
    CHECK(c.interpolate_offset == 0.1 && !c.interpolate_antialias);
    rd_pos_interp m;
    rd_error err = {0};
    for (int k = 0; k < 3; k++) {
        CHECK_OK(rd_pos_interp_parse(rd_pos_interp_name((rd_pos_interp)k), &m, &err), &err);
        rd_pos_interp_apply(&c, m);
        CHECK(m == (rd_pos_interp)k && rd_pos_interp_of(&c) == k);
    }
    CHECK(c.interpolate_offset == 0 && c.interpolate_antialias);
    c.interpolate_offset = 0.05;
    CHECK(rd_pos_interp_of(&c) == -1);
    CHECK(rd_pos_interp_parse("bilinear", &m, &err) == RD_EINVAL && strstr(err.msg, "bilinear"));
}

/* ---- names, prefixes, heads ---------------------------------------------------------------- */

static const char *chunk_blocks(const char *name, char *buf, size_t n, void *arg) {
    (void)arg;
    int i;
    char rest[128];
    if (sscanf(name, "blocks.%d.%127s", &i, rest) == 2)
        snprintf(buf, n, "blocks.%d.%d.%s", i / 2, i, rest); /* DINOv2 block_chunks layout */
    else
        snprintf(buf, n, "%s", name);
    return buf;
}

static const char *head_parametrized(const char *name, char *buf, size_t n, void *arg) {
    const char *g = strstr(name, "weight_g"), *v = strstr(name, "weight_v");
    if (g || v)
        snprintf(buf, n, "%slast_layer.parametrizations.weight.original%d", (const char *)arg,
                 g ? 0 : 1);
    else
        snprintf(buf, n, "%s%s", (const char *)arg, name);
    return buf;
}

static void prefixes_chunks_and_head_spellings_load(rd_test *t) {
    rd_vit_config cfg = small_config(RD_VIT_FFN_MLP, 0, RD_POS_INTERP_HF);
    rd_head_config hcfg = {128, 64, 32, 50, 3};
    model a;
    if (!model_declare(t, &a, &cfg, &hcfg)) return;
    model_fill(&a, 11);
    const char *dir = tmp_path(t, "src");
    rd_error err = {0};
    CHECK_OK(rd_weights_export(dir, &a.vit, &a.set, &a.head, RD_EXPORT_ORIGINAL_NAMES, &err), &err);
    char hf[1200], orig[1200], head[1200];
    snprintf(hf, sizeof hf, "%s/%s", dir, RD_WEIGHTS_HF_FILE);
    snprintf(orig, sizeof orig, "%s/%s", dir, RD_WEIGHTS_ORIGINAL_FILE);
    snprintf(head, sizeof head, "%s/%s", dir, RD_WEIGHTS_HEAD_FILE);
    const char *meta[] = {"format", "pt", NULL};

    /* a classification checkpoint: dinov2.* plus a classifier outside the prefix (warned) */
    const char *cls_file = tmp_path(t, "classifier.safetensors");
    CHECK(rewrite(t, hf, cls_file, add_prefix, "dinov2.", meta));
    const char *student = tmp_path(t, "student.safetensors");
    CHECK(rewrite(t, orig, student, add_prefix, "student.backbone.", meta));
    const char *chunked = tmp_path(t, "chunked.safetensors");
    CHECK(rewrite(t, orig, chunked, chunk_blocks, NULL, meta));
    const char *param_head = tmp_path(t, "head.safetensors");
    CHECK(rewrite(t, head, param_head, head_parametrized, "dino_head.", meta));

    const struct {
        const char *path, *prefix;
        rd_weight_layout layout;
    } files[] = {{cls_file, "dinov2.", RD_LAYOUT_HF},
                 {student, "student.backbone.", RD_LAYOUT_ORIGINAL},
                 {chunked, "", RD_LAYOUT_ORIGINAL}};
    for (size_t k = 0; k < sizeof files / sizeof files[0]; k++) {
        rd_safetensors st;
        rd_weight_names names;
        model b;
        CHECK_OK(rd_safetensors_open(&st, files[k].path, &err), &err);
        if (err.code) return;
        CHECK_OK(rd_weights_detect(&st, NULL, &names, &err), &err);
        CHECK_MSG(names.layout == files[k].layout && strcmp(names.prefix, files[k].prefix) == 0,
                  "%s: layout %d prefix '%s'", files[k].path, names.layout, names.prefix);
        if (!model_declare(t, &b, &cfg, NULL)) return;
        CHECK_OK(rd_weights_load_backbone(&st, &names, &b.vit, &b.set, &err), &err);
        CHECK(sets_identical(t, &a.set, &b.set, RD_MODULE_BACKBONE));
        rd_params_free(&b.set);
        rd_safetensors_close(&st);
    }
    /* the head under dino_head.* with torch's parametrization names */
    rd_safetensors st;
    model b;
    rd_head_config got;
    CHECK_OK(rd_safetensors_open(&st, param_head, &err), &err);
    if (err.code) return;
    CHECK_OK(rd_weights_head_config(&st, NULL, &got, &err), &err);
    CHECK(memcmp(&got, &hcfg, sizeof got) == 0);
    if (!model_declare(t, &b, &cfg, &got)) return;
    CHECK_OK(rd_weights_load_head(&st, NULL, &b.head, &b.set, &err), &err);
    CHECK(sets_identical(t, &a.set, &b.set, RD_MODULE_DINO_HEAD));
    rd_safetensors_close(&st);
    rd_params_free(&b.set);

    /* student and teacher in one file: ambiguous unless a prefix picks one */
    const char *both = tmp_path(t, "both.safetensors");
    rd_safetensors s1;
    CHECK_OK(rd_safetensors_open(&s1, student, &err), &err);
    if (err.code) return;
    rd_st_entry *e = calloc(2 * (size_t)s1.count, sizeof *e);
    char(*names)[160] = calloc(2 * (size_t)s1.count, sizeof *names);
    float **values = calloc((size_t)s1.count, sizeof *values);
    for (int i = 0; i < s1.count; i++) {
        values[i] = malloc(s1.tensors[i].numel * sizeof(float) + 4);
        CHECK_OK(rd_safetensors_read(&s1, &s1.tensors[i], values[i], &err), &err);
        for (int w = 0; w < 2; w++) {
            int j = 2 * i + w;
            snprintf(names[j], sizeof names[j], "%s%s", w ? "teacher" : "student",
                     s1.tensors[i].name + strlen("student"));
            e[j] = (rd_st_entry){names[j], s1.tensors[i].ndim, s1.tensors[i].shape, values[i]};
        }
    }
    CHECK_OK(rd_safetensors_write(both, e, 2 * s1.count, NULL, &err), &err);
    for (int i = 0; i < s1.count; i++) free(values[i]);
    free(values);
    free(e);
    free(names);
    rd_safetensors_close(&s1);
    rd_weight_names wn;
    CHECK_OK(rd_safetensors_open(&st, both, &err), &err);
    if (err.code) return;
    CHECK(rd_weights_detect(&st, NULL, &wn, &err) == RD_EINVAL);
    CHECK_MSG(strstr(err.msg, "'student.backbone.'") && strstr(err.msg, "'teacher.backbone.'"),
              "%s", err.msg);
    CHECK_OK(rd_weights_detect(&st, "teacher.backbone.", &wn, &err), &err);
    CHECK(strcmp(wn.prefix, "teacher.backbone.") == 0);
    rd_safetensors_close(&st);
    rd_params_free(&a.set);
}

/* ---- errors ------------------------------------------------------------------------------ */

static const char *drop_or_rename(const char *name, char *buf, size_t n, void *arg) {
    const char *const *rule = arg; /* {from, to}: to NULL drops, from "*" adds `to` as a tensor */
    if (strcmp(name, rule[0]) == 0) {
        if (!rule[1]) return NULL;
        snprintf(buf, n, "%s", rule[1]);
        return buf;
    }
    snprintf(buf, n, "%s", name);
    return buf;
}

/* Loads file into a fresh model of cfg; returns the status, err filled. */
static rd_status try_load(rd_test *t, const char *file, const rd_vit_config *cfg, rd_error *err) {
    rd_safetensors st;
    rd_weight_names names;
    rd_status s = rd_safetensors_open(&st, file, err);
    if (s) return s;
    s = rd_weights_detect(&st, NULL, &names, err);
    model m;
    if (!s && !model_declare(t, &m, cfg, NULL)) s = RD_EINVAL;
    if (!s) {
        s = rd_weights_load_backbone(&st, &names, &m.vit, &m.set, err);
        rd_params_free(&m.set);
    }
    rd_safetensors_close(&st);
    return s;
}

static void wrong_files_give_named_errors(rd_test *t) {
    rd_vit_config cfg = small_config(RD_VIT_FFN_MLP, 0, RD_POS_INTERP_HF);
    model a;
    if (!model_declare(t, &a, &cfg, NULL)) return;
    model_fill(&a, 5);
    const char *dir = tmp_path(t, "good");
    rd_error err = {0};
    CHECK_OK(rd_weights_export(dir, &a.vit, &a.set, NULL, 0, &err), &err);
    char hf[1200];
    snprintf(hf, sizeof hf, "%s/%s", dir, RD_WEIGHTS_HF_FILE);
    const char *meta[] = {"format", "pt", NULL};

    /* shape for another config: 48 px native size -> 36 position rows, the file has 16 */
    rd_vit_config bigger = cfg;
    bigger.img_size = 48;
    CHECK(try_load(t, hf, &bigger, &err) == RD_EINVAL);
    CHECK_MSG(strstr(err.msg, hf) && strstr(err.msg, "'embeddings.position_embeddings'") &&
                  strstr(err.msg, "[1, 17, 128]") && strstr(err.msg, "[1, 37, 128]"),
              "%s", err.msg);
    /* a tensor the model does not have: registers in the file, none in the model */
    rd_vit_config regs = cfg;
    regs.num_register_tokens = 2;
    model r;
    if (!model_declare(t, &r, &regs, NULL)) return;
    model_fill(&r, 6);
    const char *rdir = tmp_path(t, "registers");
    CHECK_OK(rd_weights_export(rdir, &r.vit, &r.set, NULL, 0, &err), &err);
    rd_params_free(&r.set);
    char rfile[1200];
    snprintf(rfile, sizeof rfile, "%s/%s", rdir, RD_WEIGHTS_HF_FILE);
    CHECK(try_load(t, rfile, &cfg, &err) == RD_EINVAL);
    CHECK_MSG(strstr(err.msg, "'embeddings.register_tokens'") && strstr(err.msg, "no place"), "%s",
              err.msg);
    /* ... and the other way: the model's registers are missing from the file */
    CHECK(try_load(t, hf, &regs, &err) == RD_ENOTFOUND);
    CHECK_MSG(strstr(err.msg, "missing tensor 'embeddings.register_tokens'"), "%s", err.msg);
    /* an unknown name under the backbone */
    const char *unknown = tmp_path(t, "unknown.safetensors");
    const char *rule1[] = {"encoder.layer.1.norm1.bias", "encoder.layer.1.norm3.bias"};
    CHECK(rewrite(t, hf, unknown, drop_or_rename, (void *)rule1, meta));
    CHECK(try_load(t, unknown, &cfg, &err) == RD_EFORMAT);
    CHECK_MSG(strstr(err.msg, unknown) && strstr(err.msg, "'encoder.layer.1.norm3.bias'") &&
                  strstr(err.msg, "not a DINOv2 backbone tensor"),
              "%s", err.msg);
    /* a missing tensor */
    const char *missing = tmp_path(t, "missing.safetensors");
    const char *rule2[] = {"encoder.layer.2.mlp.fc2.bias", NULL};
    CHECK(rewrite(t, hf, missing, drop_or_rename, (void *)rule2, meta));
    CHECK(try_load(t, missing, &cfg, &err) == RD_ENOTFOUND);
    CHECK_MSG(strstr(err.msg, "missing tensor 'encoder.layer.2.mlp.fc2.bias'") &&
                  strstr(err.msg, "rdino 'blocks.2.mlp.fc2.bias'"),
              "%s", err.msg);
    /* a block beyond the model's depth */
    rd_vit_config shallow = cfg;
    shallow.depth = 2;
    CHECK(try_load(t, hf, &shallow, &err) == RD_EINVAL);
    CHECK_MSG(strstr(err.msg, "encoder.layer.2.") && strstr(err.msg, "no place"), "%s", err.msg);
    /* no mask_token (use_mask_token=False): zero, with a warning */
    const char *nomask = tmp_path(t, "nomask.safetensors");
    const char *rule3[] = {"embeddings.mask_token", NULL};
    CHECK(rewrite(t, hf, nomask, drop_or_rename, (void *)rule3, meta));
    CHECK_OK(try_load(t, nomask, &cfg, &err), &err);
    /* a NaN: named tensor and element */
    const char *nan_file = tmp_path(t, "nan.safetensors");
    int idx = rd_params_find(&a.set, RD_MODULE_BACKBONE, "blocks.1.attn.qkv.weight");
    rd_param_data(&a.set, idx)[128 * 128 + 5] = NAN; /* key rows start at 128 */
    const char *ndir = tmp_path(t, "nan_dir");
    CHECK(rd_weights_export(ndir, &a.vit, &a.set, NULL, 0, &err) == RD_ENUMERIC);
    CHECK_MSG(strstr(err.msg, "encoder.layer.1.attention.attention.key.weight"), "%s", err.msg);
    /* the reader refuses one written by others: build it by hand from the good file */
    rd_safetensors st;
    rd_status opened = rd_safetensors_open(&st, hf, &err);
    CHECK_OK(opened, &err);
    if (opened == RD_OK) {
        char *bytes;
        size_t len;
        CHECK_OK(rd_read_file(hf, &bytes, &len, &err), &err);
        const rd_st_tensor *key =
            rd_safetensors_find(&st, "encoder.layer.1.attention.attention.key.weight");
        float nanv = NAN;
        memcpy(bytes + (st.data - st.map) + key->begin + 5 * sizeof(float), &nanv, sizeof nanv);
        FILE *f = fopen(nan_file, "wb");
        fwrite(bytes, 1, len, f);
        fclose(f);
        free(bytes);
        rd_safetensors_close(&st);
        CHECK(try_load(t, nan_file, &cfg, &err) == RD_ENUMERIC);
        CHECK_MSG(strstr(err.msg, "'encoder.layer.1.attention.attention.key.weight': element 5 is "
                                  "NaN"),
                  "%s", err.msg);
    }
    /* an interpolation record that is not one */
    const char *badmeta = tmp_path(t, "badmeta.safetensors");
    const char *meta2[] = {
        "format", "pt", "rdino.interpolate_offset", "abc", "rdino.interpolate_antialias",
        "false",  NULL};
    const char *rule4[] = {"-", NULL};
    CHECK(rewrite(t, hf, badmeta, drop_or_rename, (void *)rule4, meta2));
    rd_pretrained pre;
    CHECK(rd_pretrained_open(&pre, badmeta, &err) == RD_EFORMAT);
    CHECK_MSG(strstr(err.msg, "rdino.interpolate_offset='abc'"), "%s", err.msg);
    /* a file without any backbone */
    CHECK(rd_pretrained_open(&pre, tmp_path(t, "absent"), &err) == RD_ENOTFOUND);
    rd_params_free(&a.set);
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

static void config_json_refusals_name_the_key(rd_test *t) {
    const char *base =
        "{\"model_type\": \"dinov2\", \"num_attention_heads\": 3, \"patch_size\": 14";
    const struct {
        const char *extra, *message;
        rd_status code;
    } cases[] = {
        {", \"hidden_act\": \"gelu_new\"}", "hidden_act 'gelu_new'", RD_EINVAL},
        {", \"layer_norm_eps\": 1e-12}", "layer_norm_eps 1e-12", RD_EINVAL},
        {", \"image_size\": [224, 256]}", "image_size must be square", RD_EINVAL},
        {", \"qkv_bias\": 1}", "key 'qkv_bias' must be true or false, not an integer", RD_EFORMAT},
        {", \"num_channels\": \"3\"}", "key 'num_channels' must be an integer", RD_EFORMAT},
        {", \"hidden_size\": 48, \"num_hidden_layers\": 0}", "depth 0", RD_EINVAL},
        {", \"hidden_size\": 50}", "embed_dim 50", RD_EINVAL},
        {"", "line 1", RD_EFORMAT}, /* unterminated object */
    };
    const char *path = tmp_path(t, "config.json");
    rd_vit_config cfg;
    rd_error err = {0};
    char text[600];
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        snprintf(text, sizeof text, "%s%s", base, cases[k].extra);
        write_text(path, text);
        rd_status s = rd_weights_read_hf_config(path, &cfg, &err);
        CHECK_MSG(s == cases[k].code && strstr(err.msg, path) && strstr(err.msg, cases[k].message),
                  "case %zu: %s (%s)", k, err.msg, rd_status_name(s));
    }
    write_text(path, "{\"model_type\": \"vit\"}");
    CHECK(rd_weights_read_hf_config(path, &cfg, &err) == RD_EINVAL && strstr(err.msg, "'vit'"));
    /* defaults are transformers': an almost empty dinov2_with_registers config */
    write_text(path, "{\"model_type\": \"dinov2_with_registers\", \"use_swiglu_ffn\": true, "
                     "\"hidden_act\": \"silu\", \"hidden_dropout_prob\": 0.1}");
    CHECK_OK(rd_weights_read_hf_config(path, &cfg, &err), &err);
    CHECK(cfg.embed_dim == 768 && cfg.depth == 12 && cfg.num_heads == 12 && cfg.img_size == 224);
    CHECK(cfg.patch_size == 14 && cfg.num_register_tokens == 4 && cfg.ffn == RD_VIT_FFN_SWIGLU);
    CHECK(rd_pos_interp_of(&cfg) == RD_POS_INTERP_DINOV2_REG);
}

static const rd_test_case cases[] = {
    {"fixture_weights_reproduce_transformers", fixture_weights_reproduce_transformers},
    {"fixture_position_embeddings", fixture_position_embeddings},
    {"fixture_config_json_is_rewritten_key_by_key", fixture_config_json_is_rewritten_key_by_key},
    {"export_import_is_bit_identical", export_import_is_bit_identical},
    {"export_without_layerscale_or_biases_computes_the_same",
     export_without_layerscale_or_biases_computes_the_same},
    {"hf_names_of_rdino_tensors", hf_names_of_rdino_tensors},
    {"interpolation_modes", interpolation_modes},
    {"prefixes_chunks_and_head_spellings_load", prefixes_chunks_and_head_spellings_load},
    {"wrong_files_give_named_errors", wrong_files_give_named_errors},
    {"config_json_refusals_name_the_key", config_json_refusals_name_the_key},
};
RD_TEST_MAIN("model/weights", cases)
