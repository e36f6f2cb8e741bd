/* The ViT backbone against the PyTorch oracle (tests/reference/make_fixtures.py: fp64 oracle
 * stored as fp32): outputs at four resolutions incl. pos-embed interpolation and its size-form
 * negative control (vit_resolutions.h5), and the token stream after the embedding, after every
 * block and after the final norm for the student on masked global crops (with drop-path subsets
 * in step_droppath), on local crops, and for the teacher (step_*.h5).
 * The backward against PyTorch: every parameter gradient for masked, registers, drop-path and
 * resampled inputs, and for the SwiGLU FFN with a grey image (tests/model/vit_torch_fixture.py,
 * run by the test; float64 autograd stored as float32).
 * Tolerances: forward rtol 2e-6, gradients rtol 1e-5, each plus an atol of 2e-6
 * times the largest magnitude of the compared tensor (entries that cancel to
 * ~0 in fp32 carry absolute, not relative, error). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "harness.h"
#include "rdino/log.h"
#include "rdino/nn.h"
#include "rdino/vit.h"

#define FWD_RTOL  2e-6
#define FWD_ATOL  2e-6 /* times max |want| */
#define GRAD_RTOL 1e-5
#define GRAD_ATOL 2e-6 /* times max |want| of the tensor */

typedef struct model {
    rd_vit vit;
    rd_param_set set;
} model;

static void config_from_attrs(hid_t f, rd_vit_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->embed_dim = (int)rd_fixture_attr(f, "embed_dim");
    cfg->depth = (int)rd_fixture_attr(f, "depth");
    cfg->num_heads = (int)rd_fixture_attr(f, "num_heads");
    cfg->mlp_ratio = (float)rd_fixture_attr(f, "mlp_ratio");
    cfg->patch_size = (int)rd_fixture_attr(f, "patch_size");
    cfg->in_chans = (int)rd_fixture_attr(f, "in_chans");
    cfg->num_register_tokens = (int)rd_fixture_attr(f, "num_register_tokens");
    cfg->img_size = (int)rd_fixture_attr(f, "global_size");
    cfg->interpolate_offset = rd_fixture_attr(f, "interpolate_offset");
    cfg->drop_path_rate = rd_fixture_attr(f, "drop_path_rate");
    cfg->drop_path_uniform = 1;
    cfg->layerscale = 1.0f; /* gammas exist; their values come from the fixture */
    cfg->qkv_bias = cfg->proj_bias = cfg->ffn_bias = 1;
    char ffn[32] = "mlp";
    rd_fixture_attr_str(f, "ffn", ffn, sizeof ffn);
    cfg->ffn = strcmp(ffn, "swiglu") == 0 ? RD_VIT_FFN_SWIGLU : RD_VIT_FFN_MLP;
}

/* Declares the backbone and loads every tensor from prefix/<name>. */
static int load_model(rd_test *t, hid_t f, const char *prefix, model *m) {
    rd_error err;
    rd_vit_config cfg;
    config_from_attrs(f, &cfg);
    rd_params_init(&m->set);
    CHECK_OK(rd_vit_declare(&m->vit, &cfg, &m->set, &err), &err);
    CHECK_OK(rd_params_alloc(&m->set, 1, &err), &err);
    if (t->failures) return 0;
    for (int i = 0; i < m->set.count; i++) {
        const rd_param *p = &m->set.params[i];
        char path[256];
        snprintf(path, sizeof path, "%s/%s", prefix, p->name);
        size_t n = 0;
        float *v = rd_fixture_floats(f, path, &n);
        CHECK_MSG(v && n == p->numel, "%s: missing or %zu values instead of %zu", path, n,
                  p->numel);
        if (v && n == p->numel) memcpy(rd_param_data(&m->set, i), v, n * sizeof(float));
        free(v);
    }
    return t->failures == 0;
}

static int close_within(rd_test *t, const char *what, const float *got, const float *want, size_t n,
                        double rtol, double atol_rel) {
    double mx = 0;
    for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs(want[i]));
    return rd_test_close(t, __FILE__, __LINE__, what, got, want, n, rtol, atol_rel * mx);
}

static int close_to(rd_test *t, const char *what, const float *got, const float *want, size_t n) {
    return close_within(t, what, got, want, n, FWD_RTOL, FWD_ATOL);
}

/* Compares got with dataset path (which must hold exactly n values). */
static void check_dataset(rd_test *t, hid_t f, const char *path, const float *got, size_t n) {
    size_t m = 0;
    float *want = rd_fixture_floats(f, path, &m);
    CHECK_MSG(want && m == n, "%s: missing or %zu values instead of %zu", path, m, n);
    if (want && m == n) close_to(t, path, got, want, n);
    free(want);
}

static hid_t open_or_skip(rd_test *t, const char *name) {
    hid_t f = rd_fixture_open(name);
    if (f < 0)
        rd_test_skip(t, "fixture %s not found (set RDINO_FIXTURES to tests/reference/fixtures)",
                     name);
    return f;
}

static void outputs_at_four_resolutions(rd_test *t) {
    hid_t f = open_or_skip(t, "vit_resolutions.h5");
    if (f < 0) return;
    model m;
    if (!load_model(t, f, "params/backbone", &m)) {
        rd_fixture_close(f);
        return;
    }
    const rd_vit_config *cfg = &m.vit.cfg;
    int D = cfg->embed_dim, R = cfg->num_register_tokens, M = m.vit.grid, p = cfg->patch_size;
    int b = (int)rd_fixture_attr(f, "batch");
    static const int sizes[][2] = {{32, 32}, {16, 16}, {48, 48}, {24, 40}};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        int H = sizes[k][0], W = sizes[k][1], n = (H / p) * (W / p);
        char path[128];
        snprintf(path, sizeof path, "inputs/x_%dx%d", H, W);
        float *x = rd_fixture_floats(f, path, NULL);
        CHECK_MSG(x != NULL, "%s missing", path);
        if (!x) continue;
        rd_error err;
        rd_vit_context ctx;
        rd_vit_output out;
        CHECK_OK(rd_vit_context_init(&ctx, &m.vit, b, H, W, RD_VIT_INFER, &err), &err);
        CHECK_OK(rd_vit_forward(&ctx, &m.set, x, b, cfg->in_chans, H, W, NULL, NULL, &out, &err),
                 &err);
        snprintf(path, sizeof path, "outputs/%dx%d/cls", H, W);
        check_dataset(t, f, path, out.cls, (size_t)b * D);
        snprintf(path, sizeof path, "outputs/%dx%d/reg", H, W);
        check_dataset(t, f, path, out.reg, (size_t)b * R * D);
        snprintf(path, sizeof path, "outputs/%dx%d/patch", H, W);
        check_dataset(t, f, path, out.patch, (size_t)b * n * D);

        /* the positional embedding itself, and the size form as a negative control */
        float *pos = malloc((size_t)(1 + n) * D * sizeof(float));
        float *scratch = malloc((size_t)(2 * M + M * D) * (H + W) * sizeof(float));
        rd_vit_pos_embed(&m.vit, &m.set, H, W, pos, scratch);
        snprintf(path, sizeof path, "outputs/%dx%d/pos_embed", H, W);
        check_dataset(t, f, path, pos, (size_t)(1 + n) * D);
        snprintf(path, sizeof path, "pos_embed_size_form/%dx%d", H, W);
        float *size_form = rd_fixture_floats(f, path, NULL);
        if (size_form) {
            int g0 = H / p, g1 = W / p;
            float *wrow = scratch, *wcol = wrow + g0 * M, *tmp = wcol + g1 * M;
            float *mine = malloc((size_t)n * D * sizeof(float));
            rd_bicubic_weights(wrow, M, g0, 0.0);
            rd_bicubic_weights(wcol, M, g1, 0.0);
            rd_resample_forward(mine, tmp, rd_param_data(&m.set, m.vit.pos_embed) + D, wrow, wcol,
                                M, g0, g1, D);
            close_to(t, path, mine, size_form + D, (size_t)n * D);
            double diff = 0;
            for (size_t i = 0; i < (size_t)n * D; i++)
                diff = fmax(diff, fabs(size_form[D + i] - pos[D + i]));
            CHECK_MSG(diff > 1e-3, "%s: size and scale-factor forms differ by only %g", path, diff);
            free(mine);
        } else {
            CHECK_MSG(H == 32 && W == 32, "%s missing", path);
        }
        free(size_form);
        free(pos);
        free(scratch);
        free(x);
        rd_vit_context_free(&ctx);
    }
    rd_params_free(&m.set);
    rd_fixture_close(f);
}

/* Drop-path subsets of one forward ('global' or 'local'); 0 if the fixture has none. */
static int read_subsets(hid_t f, const char *tag, int depth, int b, int *count, int *index) {
    for (int i = 0; i < depth; i++)
        for (int br = 0; br < 2; br++) {
            char path[128];
            snprintf(path, sizeof path, "inputs/drop_path/%s/blocks.%d/%s", tag, i,
                     br ? "ffn" : "attn");
            size_t n = 0;
            int64_t *v = rd_fixture_ints(f, path, &n);
            if (!v) return 0;
            count[2 * i + br] = (int)n;
            for (size_t j = 0; j < n; j++) index[(size_t)(2 * i + br) * b + j] = (int)v[j];
            free(v);
        }
    return 1;
}

/* Student forward on one crop set, compared token stream by token stream. */
static void check_student(rd_test *t, hid_t f, model *m, const char *tag, const char *crops,
                          int masked) {
    const rd_vit_config *cfg = &m->vit.cfg;
    int64_t dims[4];
    CHECK(rd_fixture_shape(f, crops, dims, 4) == 4);
    if (t->failures) return;
    int b = (int)dims[0], c = (int)dims[1], H = (int)dims[2], W = (int)dims[3];
    int D = cfg->embed_dim, R = cfg->num_register_tokens, p = cfg->patch_size;
    int n = (H / p) * (W / p), T = 1 + R + n, depth = cfg->depth;
    float *x = rd_fixture_floats(f, crops, NULL);
    uint8_t *mask = NULL;
    if (masked) {
        int64_t *mi = rd_fixture_ints(f, "inputs/masks", NULL);
        mask = malloc((size_t)b * n);
        for (size_t i = 0; i < (size_t)b * n; i++) mask[i] = (uint8_t)mi[i];
        free(mi);
    }
    int *count = malloc(sizeof(int) * 2 * depth), *index = malloc(sizeof(int) * 2 * depth * b);
    rd_vit_drop_path dp = {count, index};
    int has_dp = read_subsets(f, tag, depth, b, count, index);
    size_t stream = (size_t)b * T * D;
    float *trace = malloc(stream * (depth + 1) * sizeof(float));
    rd_error err;
    rd_vit_context ctx;
    rd_vit_output out;
    CHECK_OK(rd_vit_context_init(&ctx, &m->vit, b, H, W, RD_VIT_TRAIN, &err), &err);
    rd_vit_context_trace(&ctx, trace);
    CHECK_OK(rd_vit_forward(&ctx, &m->set, x, b, c, H, W, mask, has_dp ? &dp : NULL, &out, &err),
             &err);
    char path[128];
    snprintf(path, sizeof path, "intermediate/student/%s/embed", tag);
    check_dataset(t, f, path, trace, stream);
    for (int i = 0; i < depth; i++) {
        snprintf(path, sizeof path, "intermediate/student/%s/blocks.%d", tag, i);
        check_dataset(t, f, path, trace + (i + 1) * stream, stream);
    }
    snprintf(path, sizeof path, "intermediate/student/%s/norm", tag);
    float *norm = rd_fixture_floats(f, path, NULL);
    CHECK_MSG(norm != NULL, "%s missing", path);
    if (norm) {
        float *cls = malloc((size_t)b * D * sizeof(float));
        float *patch = malloc((size_t)b * n * D * sizeof(float));
        for (int i = 0; i < b; i++) {
            memcpy(cls + (size_t)i * D, norm + (size_t)i * T * D, (size_t)D * sizeof(float));
            memcpy(patch + (size_t)i * n * D, norm + ((size_t)i * T + 1 + R) * D,
                   (size_t)n * D * sizeof(float));
        }
        close_to(t, "cls after the final norm", out.cls, cls, (size_t)b * D);
        close_to(t, "patches after the final norm", out.patch, patch, (size_t)b * n * D);
        free(cls);
        free(patch);
    }
    /* the positional embedding used at this size */
    float *pos = malloc((size_t)(1 + n) * D * sizeof(float));
    float *scratch = malloc((size_t)(H + W) * (2 + D) * m->vit.grid * sizeof(float));
    rd_vit_pos_embed(&m->vit, &m->set, H, W, pos, scratch);
    snprintf(path, sizeof path, "intermediate/student/%s/pos_embed", tag);
    check_dataset(t, f, path, pos, (size_t)(1 + n) * D);
    free(pos);
    free(scratch);
    free(norm);
    rd_vit_context_free(&ctx);
    free(trace);
    free(count);
    free(index);
    free(mask);
    free(x);
}

static void check_teacher(rd_test *t, hid_t f) {
    model m;
    if (!load_model(t, f, "params/teacher/backbone", &m)) return;
    const rd_vit_config *cfg = &m.vit.cfg;
    int64_t dims[4];
    rd_fixture_shape(f, "inputs/global_crops", dims, 4);
    int b = (int)dims[0], H = (int)dims[2], W = (int)dims[3];
    int D = cfg->embed_dim, R = cfg->num_register_tokens, p = cfg->patch_size;
    int n = (H / p) * (W / p);
    float *x = rd_fixture_floats(f, "inputs/global_crops", NULL);
    rd_error err;
    rd_vit_context ctx;
    rd_vit_output out;
    CHECK_OK(rd_vit_context_init(&ctx, &m.vit, b, H, W, RD_VIT_INFER, &err), &err);
    CHECK_OK(rd_vit_forward(&ctx, &m.set, x, b, (int)dims[1], H, W, NULL, NULL, &out, &err), &err);
    check_dataset(t, f, "intermediate/teacher/cls", out.cls, (size_t)b * D);
    check_dataset(t, f, "intermediate/teacher/patch", out.patch, (size_t)b * n * D);
    if (R > 0) check_dataset(t, f, "intermediate/teacher/reg", out.reg, (size_t)b * R * D);
    rd_vit_context_free(&ctx);
    rd_params_free(&m.set);
    free(x);
}

static void check_step(rd_test *t, const char *name) {
    hid_t f = open_or_skip(t, name);
    if (f < 0) return;
    model m;
    if (load_model(t, f, "params/student/backbone", &m)) {
        check_student(t, f, &m, "global", "inputs/global_crops", 1);
        check_student(t, f, &m, "local", "inputs/local_crops", 0);
        rd_params_free(&m.set);
        check_teacher(t, f);
    }
    rd_fixture_close(f);
}

static void step_centering_backbone(rd_test *t) {
    check_step(t, "step_centering.h5");
}
static void step_registers_grey_backbone(rd_test *t) {
    check_step(t, "step_sinkhorn_registers.h5");
}
static void step_droppath_backbone(rd_test *t) {
    check_step(t, "step_droppath.h5");
}

/* Forward outputs and every parameter gradient of one case of vit_torch.h5 (group g). */
static void check_against_torch(rd_test *t, hid_t g) {
    model m;
    if (!load_model(t, g, "params", &m)) return;
    int D = m.vit.cfg.embed_dim, depth = m.vit.cfg.depth;
    int64_t dims[4];
    CHECK(rd_fixture_shape(g, "inputs/x", dims, 4) == 4);
    int b = (int)dims[0], c = (int)dims[1], H = (int)dims[2], W = (int)dims[3];
    int n = (H / m.vit.cfg.patch_size) * (W / m.vit.cfg.patch_size);
    float *x = rd_fixture_floats(g, "inputs/x", NULL);
    float *g_cls = rd_fixture_floats(g, "inputs/g_cls", NULL);
    float *g_patch = rd_fixture_floats(g, "inputs/g_patch", NULL);
    int64_t *mask64 = rd_fixture_ints(g, "inputs/mask", NULL);
    int64_t *count64 = rd_fixture_ints(g, "inputs/drop_count", NULL);
    int64_t *index64 = rd_fixture_ints(g, "inputs/drop_index", NULL);
    uint8_t *mask = NULL;
    if (mask64) {
        mask = malloc((size_t)b * n);
        for (size_t i = 0; i < (size_t)b * n; i++) mask[i] = (uint8_t)mask64[i];
    }
    int *count = malloc(sizeof(int) * 2 * depth), *index = malloc(sizeof(int) * 2 * depth * b);
    rd_vit_drop_path dp = {count, index};
    for (int k = 0; count64 && index64 && k < 2 * depth; k++) {
        count[k] = (int)count64[k];
        for (int j = 0; j < b; j++) index[k * b + j] = (int)index64[k * b + j];
    }
    rd_error err;
    rd_vit_context ctx;
    rd_vit_output out;
    CHECK_OK(rd_vit_context_init(&ctx, &m.vit, b, H, W, RD_VIT_TRAIN, &err), &err);
    CHECK_OK(rd_vit_forward(&ctx, &m.set, x, b, c, H, W, mask, count64 ? &dp : NULL, &out, &err),
             &err);
    check_dataset(t, g, "outputs/cls", out.cls, (size_t)b * D);
    check_dataset(t, g, "outputs/patch", out.patch, (size_t)b * n * D);
    CHECK_OK(rd_vit_backward(&ctx, &m.set, g_cls, g_patch, &err), &err);
    for (int i = 0; i < m.set.count; i++) {
        const rd_param *p = &m.set.params[i];
        char path[160];
        snprintf(path, sizeof path, "grads/%s", p->name);
        size_t k = 0;
        float *want = rd_fixture_floats(g, path, &k);
        CHECK_MSG(want && k == p->numel, "%s missing or wrong size", path);
        if (want && k == p->numel)
            close_within(t, path, rd_param_grad(&m.set, i), want, k, GRAD_RTOL, GRAD_ATOL);
        free(want);
    }
    rd_vit_context_free(&ctx);
    rd_params_free(&m.set);
    free(x), free(g_cls), free(g_patch), free(mask64), free(count64), free(index64);
    free(mask), free(count), free(index);
}

static void backward_matches_pytorch(rd_test *t) {
    if (system("/usr/bin/python3 -c 'import torch, h5py' >/dev/null 2>&1") != 0)
        SKIP("/usr/bin/python3 with torch and h5py is not available (the PyTorch oracle)");
    const char *dir = rd_test_tmpdir(t);
    char path[700], cmd[1600];
    snprintf(path, sizeof path, "%s/vit_torch.h5", dir ? dir : "/tmp");
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/model/vit_torch_fixture.py '%s'", path);
    CHECK_MSG(system(cmd) == 0, "%s failed", cmd);
    if (t->failures) return;
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    CHECK(f >= 0);
    if (f < 0) return;
    static const char *names[] = {"mlp", "swiglu"};
    for (int k = 0; k < 2; k++) {
        hid_t g = H5Gopen2(f, names[k], H5P_DEFAULT);
        CHECK_MSG(g >= 0, "group %s missing", names[k]);
        if (g < 0) continue;
        check_against_torch(t, g);
        H5Gclose(g);
    }
    H5Fclose(f);
}

static const rd_test_case cases[] = {
    {"backward_matches_pytorch", backward_matches_pytorch},
    {"outputs_at_four_resolutions", outputs_at_four_resolutions},
    {"step_centering_backbone", step_centering_backbone},
    {"step_registers_grey_backbone", step_registers_grey_backbone},
    {"step_droppath_backbone", step_droppath_backbone},
};

int main(int argc, char **argv) {
    rd_log_set_quiet(1);
    return rd_test_main(argc, argv, "model/vit_fixtures", cases,
                        (int)(sizeof cases / sizeof cases[0]));
}
