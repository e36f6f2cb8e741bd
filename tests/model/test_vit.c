/* The ViT backbone: configuration, parameter declaration and initialisation, the backward pass
 * against finite differences (every tensor, with masks, registers, drop path, a resampled
 * positional embedding, grey input, SwiGLU), and the numerical invariants of spec §9.
 * Finite differences: central, step 1e-2 on a tiny model whose loss sum(out * probe) is
 * accumulated in double; |fd - analytic| <= 1e-3 + 1e-2 |fd| (the fp32 forward's rounding noise
 * divided by the step is ~1e-4). */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "rdino/config.h"
#include "rdino/log.h"
#include "rdino/vit.h"

#define FD_EPS  1e-2
#define FD_RTOL 1e-2
#define FD_ATOL 1e-3

static void fill_normal(float *x, size_t n, uint64_t index, double mean, double std) {
    rd_rng r;
    rd_rng_init(&r, 99, RD_RNG_TEST, 0, index, 0);
    for (size_t i = 0; i < n; i++) x[i] = (float)(mean + std * rd_rng_normal(&r));
}

/* Parameters chosen so every block and branch visibly matters (like the fixtures). */
static void randomize(rd_param_set *set) {
    for (int i = 0; i < set->count; i++) {
        const rd_param *p = &set->params[i];
        float *x = rd_param_data(set, i);
        const char *name = p->name;
        size_t len = strlen(name);
        if (len > 5 && strcmp(name + len - 5, ".bias") == 0)
            fill_normal(x, p->numel, i, 0, 0.05);
        else if (strstr(name, "norm"))
            fill_normal(x, p->numel, i, 1.0, 0.1);
        else if (strstr(name, "gamma"))
            fill_normal(x, p->numel, i, 0.3, 0.05);
        else if (strstr(name, "token") || strcmp(name, "pos_embed") == 0)
            fill_normal(x, p->numel, i, 0, 0.3);
        else
            fill_normal(x, p->numel, i, 0, 1.0 / sqrt((double)(p->numel / p->shape[0])));
    }
}

static void tiny_config(rd_vit_config *cfg) {
    rd_error err;
    rd_vit_config_default(cfg, "vit_tiny", 4, 12, &err); /* native grid 3x3 */
    cfg->embed_dim = 16;
    cfg->depth = 2;
    cfg->num_heads = 2;
    cfg->mlp_ratio = 2.0f;
    cfg->num_register_tokens = 1;
}

typedef struct fd_case {
    rd_vit vit;
    rd_param_set set;
    rd_vit_context ctx;
    float *images, *probe_cls, *probe_patch;
    uint8_t *mask;
    int b, c, H, W, n;
    const rd_vit_drop_path *dp;
} fd_case;

static double fd_loss(void *p) {
    fd_case *k = p;
    rd_error err;
    rd_vit_output out;
    if (rd_vit_forward(&k->ctx, &k->set, k->images, k->b, k->c, k->H, k->W, k->mask, k->dp, &out,
                       &err))
        return NAN;
    double s = 0;
    int D = k->vit.cfg.embed_dim;
    for (size_t i = 0; i < (size_t)k->b * D; i++) s += (double)out.cls[i] * k->probe_cls[i];
    for (size_t i = 0; i < (size_t)k->b * k->n * D; i++)
        s += (double)out.patch[i] * k->probe_patch[i];
    return s;
}

static int fd_setup(rd_test *t, fd_case *k, const rd_vit_config *cfg, int b, int c, int H, int W) {
    rd_error err;
    memset(k, 0, sizeof *k);
    rd_params_init(&k->set);
    CHECK_OK(rd_vit_declare(&k->vit, cfg, &k->set, &err), &err);
    CHECK_OK(rd_params_alloc(&k->set, 1, &err), &err);
    CHECK_OK(rd_vit_context_init(&k->ctx, &k->vit, b, H, W, RD_VIT_TRAIN, &err), &err);
    if (t->failures) return 0;
    randomize(&k->set);
    int p = cfg->patch_size, D = cfg->embed_dim;
    k->b = b, k->c = c, k->H = H, k->W = W, k->n = (H / p) * (W / p);
    k->images = malloc((size_t)b * c * H * W * sizeof(float));
    k->probe_cls = malloc((size_t)b * D * sizeof(float));
    k->probe_patch = malloc((size_t)b * k->n * D * sizeof(float));
    fill_normal(k->images, (size_t)b * c * H * W, 1001, 0, 1);
    fill_normal(k->probe_cls, (size_t)b * D, 1002, 0, 1);
    fill_normal(k->probe_patch, (size_t)b * k->n * D, 1003, 0, 1);
    return 1;
}

static void fd_free(fd_case *k) {
    rd_vit_context_free(&k->ctx);
    rd_params_free(&k->set);
    free(k->images);
    free(k->probe_cls);
    free(k->probe_patch);
}

/* Backward once, then every tensor against finite differences. */
static void fd_check_all(rd_test *t, fd_case *k) {
    rd_error err;
    memset(k->set.grad, 0, k->set.numel * sizeof(float));
    CHECK(isfinite(fd_loss(k)));
    CHECK_OK(rd_vit_backward(&k->ctx, &k->set, k->probe_cls, k->probe_patch, &err), &err);
    for (int i = 0; i < k->set.count; i++) {
        const rd_param *p = &k->set.params[i];
        /* the mask token only matters where a mask is set */
        if (!k->mask && strcmp(p->name, "mask_token") == 0) continue;
        CHECK_GRAD(p->name, rd_param_data(&k->set, i), rd_param_grad(&k->set, i), p->numel, fd_loss,
                   k, FD_EPS, FD_RTOL, FD_ATOL);
    }
}

static void backward_masked_registers_drop_path_resampled(rd_test *t) {
    rd_vit_config cfg;
    tiny_config(&cfg);
    fd_case k;
    /* 16x8 images: a 4x2 grid resampled from the native 3x3 (scale-factor form, offset 0.1) */
    if (!fd_setup(t, &k, &cfg, 3, 3, 16, 8)) return;
    uint8_t mask[3 * 8] = {0};
    mask[1] = mask[2] = mask[8 + 5] = 1;
    k.mask = mask;
    int count[4] = {2, 3, 1, 2};
    int index[4 * 3] = {2, 0, 0, 0, 1, 2, 1, 0, 0, 0, 2, 0};
    rd_vit_drop_path dp = {count, index};
    k.dp = &dp;
    fd_check_all(t, &k);
    fd_free(&k);
}

static void backward_grey_native_size_form(rd_test *t) {
    rd_vit_config cfg;
    tiny_config(&cfg);
    cfg.num_register_tokens = 0;
    cfg.interpolate_offset = 0.0; /* size form for the 20x12 case */
    fd_case k;
    /* one channel into a 3-channel model: folded weights, per-channel gradients */
    if (!fd_setup(t, &k, &cfg, 2, 1, 12, 12)) return;
    fd_check_all(t, &k);
    fd_free(&k);
    if (!fd_setup(t, &k, &cfg, 2, 1, 20, 12)) return;
    fd_check_all(t, &k);
    fd_free(&k);
}

static void backward_swiglu_no_layerscale_no_bias(rd_test *t) {
    rd_vit_config cfg;
    tiny_config(&cfg);
    cfg.ffn = RD_VIT_FFN_SWIGLU;
    cfg.layerscale = 0.0f;
    cfg.qkv_bias = cfg.proj_bias = cfg.ffn_bias = 0;
    fd_case k;
    if (!fd_setup(t, &k, &cfg, 2, 3, 12, 12)) return;
    CHECK(rd_params_find(&k.set, RD_MODULE_BACKBONE, "blocks.0.mlp.w12.weight") >= 0);
    CHECK(rd_params_find(&k.set, RD_MODULE_BACKBONE, "blocks.1.ls1.gamma") < 0);
    CHECK(rd_params_find(&k.set, RD_MODULE_BACKBONE, "blocks.1.attn.qkv.bias") < 0);
    fd_check_all(t, &k);
    fd_free(&k);
}

static const rd_test_case cases[] = {
    {"backward_masked_registers_drop_path_resampled",
     backward_masked_registers_drop_path_resampled},
    {"backward_grey_native_size_form", backward_grey_native_size_form},
    {"backward_swiglu_no_layerscale_no_bias", backward_swiglu_no_layerscale_no_bias},
};

int main(int argc, char **argv) {
    rd_log_set_quiet(1);
    return rd_test_main(argc, argv, "model/vit", cases, (int)(sizeof cases / sizeof cases[0]));
}
