/* The ViT backbone: configuration, parameter declaration and initialisation, the backward pass
 * against finite differences (every tensor, with masks, registers, drop path, a resampled
 * positional embedding, grey input, SwiGLU), and numerical invariants of the DINOv2 backbone
 * (native pos-embed unchanged, LayerScale-initialised blocks near the identity, drop-path counts).
 * Finite differences: central, step 1e-2 on a tiny model whose loss sum(out * probe) is
 * accumulated in double; |fd - analytic| <= 1e-3 + 1e-2 |fd| (the fp32 forward's rounding noise
 * divided by the step is ~1e-4). */
#include <math.h>
#include <omp.h>
#include <stdio.h>
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

static void fd_masked_drop_path_resampled(rd_test *t, const rd_vit_config *cfg_in) {
    rd_vit_config cfg = *cfg_in;
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

static void backward_masked_registers_drop_path_resampled(rd_test *t) {
    rd_vit_config cfg;
    tiny_config(&cfg);
    fd_masked_drop_path_resampled(t, &cfg);
}

/* Activation checkpointing: the recomputed blocks give the same finite-difference gradients,
 * from a smaller context (per block only its input instead of twelve rows of activations). */
static void backward_checkpointed(rd_test *t) {
    rd_vit_config cfg;
    tiny_config(&cfg);
    rd_vit vit;
    rd_param_set set;
    rd_error err;
    rd_params_init(&set);
    CHECK_OK(rd_vit_declare(&vit, &cfg, &set, &err), &err);
    size_t stored = rd_vit_context_bytes(&vit, 3, 16, 8, RD_VIT_TRAIN);
    vit.cfg.activation_checkpointing = 1;
    size_t recomputed = rd_vit_context_bytes(&vit, 3, 16, 8, RD_VIT_TRAIN);
    rd_params_free(&set);
    CHECK_MSG(recomputed < stored, "checkpointed context %zu bytes, stored %zu", recomputed,
              stored);
    cfg.activation_checkpointing = 1;
    fd_masked_drop_path_resampled(t, &cfg);
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

/* ---- configuration, declaration, initialisation ------------------------------------------ */

static void config_from_run_config(rd_test *t) {
    rd_config config;
    rd_error err;
    rd_vit_config cfg;
    CHECK_OK(rd_config_init(&config, &err), &err);
    CHECK_OK(rd_vit_config_from(&config, &cfg, &err), &err); /* DINOv2 defaults: ViT-L/16 */
    CHECK(cfg.embed_dim == 1024 && cfg.depth == 24 && cfg.num_heads == 16);
    CHECK(cfg.patch_size == 16 && cfg.img_size == 224 && cfg.in_chans == 3);
    CHECK(cfg.drop_path_rate == 0.3 && cfg.interpolate_offset == 0.1);
    CHECK(cfg.layerscale == 1e-5f && cfg.ffn == RD_VIT_FFN_MLP && cfg.qkv_bias);

    /* SwiGLU hidden widths (SwiGLUFFN in dinov2/layers/swiglu_ffn.py): 2736 for D = 1024, 4096
     * for D = 1536 */
    static const char *archs[] = {"vit_large", "vit_giant2"};
    static const int hidden[] = {2736, 4096};
    for (int k = 0; k < 2; k++) {
        char arch[64];
        snprintf(arch, sizeof arch, "student.arch=%s", archs[k]);
        CHECK_OK(rd_config_override(&config, arch, &err), &err);
        CHECK_OK(rd_config_override(&config, "student.ffn_layer=swiglufused", &err), &err);
        CHECK_OK(rd_vit_config_from(&config, &cfg, &err), &err);
        rd_param_set set;
        rd_vit vit;
        rd_params_init(&set);
        CHECK_OK(rd_vit_declare(&vit, &cfg, &set, &err), &err);
        CHECK(vit.hidden == hidden[k]);
        int w12 = rd_params_find(&set, RD_MODULE_BACKBONE, "blocks.0.mlp.w12.weight");
        CHECK(w12 >= 0 && set.params[w12].shape[0] == 2 * hidden[k]);
        rd_params_free(&set);
    }
    CHECK(cfg.interpolate_antialias == 0);
    CHECK_OK(rd_config_override(&config, "student.interpolate_antialias=true", &err), &err);
    CHECK_OK(rd_vit_config_from(&config, &cfg, &err), &err);
    CHECK(cfg.interpolate_antialias == 1);
    CHECK_OK(rd_config_override(&config, "student.interpolate_antialias=false", &err), &err);
    CHECK_OK(rd_config_override(&config, "student.arch=vit_custom", &err), &err);
    CHECK_OK(rd_config_override(&config, "student.embed_dim=100", &err), &err);
    CHECK(rd_vit_config_from(&config, &cfg, &err) == RD_EINVAL);
    CHECK(strstr(err.msg, "num_heads") != NULL);
    CHECK_OK(rd_config_override(&config, "student.embed_dim=96", &err), &err);
    CHECK_OK(rd_vit_config_from(&config, &cfg, &err), &err);
    CHECK(cfg.embed_dim == 96 && cfg.depth == 12 && cfg.num_heads == 6);
    rd_config_free(&config);
}

static void declared_in_dinov2_order(rd_test *t) {
    /* names and order of torch's named_parameters() for the oracle's ViT with 2 registers */
    static const char *want[] = {"cls_token",
                                 "pos_embed",
                                 "register_tokens",
                                 "mask_token",
                                 "patch_embed.proj.weight",
                                 "patch_embed.proj.bias",
                                 "blocks.0.norm1.weight",
                                 "blocks.0.norm1.bias",
                                 "blocks.0.attn.qkv.weight",
                                 "blocks.0.attn.qkv.bias",
                                 "blocks.0.attn.proj.weight",
                                 "blocks.0.attn.proj.bias",
                                 "blocks.0.ls1.gamma",
                                 "blocks.0.norm2.weight",
                                 "blocks.0.norm2.bias",
                                 "blocks.0.mlp.fc1.weight",
                                 "blocks.0.mlp.fc1.bias",
                                 "blocks.0.mlp.fc2.weight",
                                 "blocks.0.mlp.fc2.bias",
                                 "blocks.0.ls2.gamma"};
    rd_vit_config cfg;
    tiny_config(&cfg);
    cfg.num_register_tokens = 2;
    rd_param_set set;
    rd_vit vit;
    rd_error err;
    rd_params_init(&set);
    CHECK_OK(rd_vit_declare(&vit, &cfg, &set, &err), &err);
    CHECK(set.count == 6 + 14 * 2 + 2);
    for (size_t i = 0; i < sizeof want / sizeof want[0] && (int)i < set.count; i++)
        CHECK_MSG(strcmp(set.params[i].name, want[i]) == 0, "parameter %zu is %s, want %s", i,
                  set.params[i].name, want[i]);
    CHECK(strcmp(set.params[set.count - 1].name, "norm.bias") == 0);
    const rd_param *pos = &set.params[vit.pos_embed], *w = &set.params[vit.patch_weight];
    CHECK(pos->ndim == 3 && pos->shape[1] == 1 + 9 && pos->shape[2] == 16);
    CHECK(w->ndim == 4 && w->shape[0] == 16 && w->shape[1] == 3 && w->shape[3] == 4);
    rd_params_free(&set);

    /* ViT-S/16 at 224: 21,675,264 parameters (sum of numel of the oracle's PyTorch module) */
    rd_params_init(&set);
    CHECK_OK(rd_vit_config_default(&cfg, "vit_small", 16, 224, &err), &err);
    CHECK_OK(rd_vit_declare(&vit, &cfg, &set, &err), &err);
    CHECK(rd_vit_param_count(&vit, &set) == 21675264);
    rd_params_free(&set);
}

static double mean_std(const float *x, size_t n, double *std) {
    double m = 0, v = 0;
    for (size_t i = 0; i < n; i++) m += x[i];
    m /= (double)n;
    for (size_t i = 0; i < n; i++) v += (x[i] - m) * (x[i] - m);
    *std = sqrt(v / (double)n);
    return m;
}

static void init_follows_dinov2(rd_test *t) {
    rd_vit_config cfg;
    rd_error err;
    CHECK_OK(rd_vit_config_default(&cfg, "vit_small", 16, 224, &err), &err);
    cfg.depth = 2;
    cfg.num_register_tokens = 4;
    rd_param_set set, again;
    rd_vit vit;
    rd_params_init(&set);
    rd_params_init(&again);
    CHECK_OK(rd_vit_declare(&vit, &cfg, &set, &err), &err);
    CHECK_OK(rd_vit_declare(&vit, &cfg, &again, &err), &err);
    CHECK_OK(rd_params_alloc(&set, 0, &err), &err);
    CHECK_OK(rd_params_alloc(&again, 0, &err), &err);
    if (t->failures) return;
    rd_vit_init_params(&vit, &set, 42);
    rd_vit_init_params(&vit, &again, 42);
    CHECK(memcmp(set.data, again.data, set.numel * sizeof(float)) == 0);
    rd_vit_init_params(&vit, &again, 43);
    CHECK(memcmp(set.data, again.data, set.numel * sizeof(float)) != 0);
    double sd, m;
    for (int i = 0; i < set.count; i++) {
        const rd_param *p = &set.params[i];
        const float *x = rd_param_data(&set, i);
        m = mean_std(x, p->numel, &sd);
        float mx = 0;
        for (size_t k = 0; k < p->numel; k++) mx = fmaxf(mx, fabsf(x[k]));
        const char *nm = p->name;
        size_t len = strlen(nm);
        if (!strcmp(nm, "cls_token") || !strcmp(nm, "register_tokens"))
            CHECK_MSG(sd > 0.5e-6 && sd < 2e-6, "%s std %g", nm, sd);
        else if (!strcmp(nm, "mask_token") ||
                 (len > 5 && !strcmp(nm + len - 5, ".bias") && strncmp(nm, "patch_embed", 11) != 0))
            CHECK_MSG(mx == 0.0f, "%s is not zero", nm);
        else if (strstr(nm, "gamma"))
            CHECK_MSG(mx == 1e-5f && fabs(m - 1e-5) < 1e-12, "%s != 1e-5", nm);
        else if (strstr(nm, "norm") && strstr(nm, "weight"))
            CHECK_MSG(mx == 1.0f && m == 1.0, "%s != 1", nm);
        else if (!strncmp(nm, "patch_embed", 11)) { /* U(+-1/sqrt(3 p^2)), std bound/sqrt3 */
            double bound = 1.0 / sqrt(3.0 * 16 * 16);
            CHECK_MSG(mx <= bound && fabs(sd - bound / sqrt(3.0)) < 0.1 * bound, "%s std %g", nm,
                      sd);
        } else /* pos_embed and linear weights: trunc-normal std 0.02 */
            CHECK_MSG(fabs(sd - 0.02) < 0.002 && fabs(m) < 0.002 && mx < 2.0f, "%s std %g", nm, sd);
    }
    rd_params_free(&set);
    rd_params_free(&again);
}

/* ---- invariants -------------------------------------------------------------------------- */

static void pos_embed_identity_at_native_size(rd_test *t) {
    rd_vit_config cfg;
    tiny_config(&cfg); /* native 12x12, grid 3x3, p = 4 */
    fd_case k;
    if (!fd_setup(t, &k, &cfg, 1, 3, 12, 12)) return;
    int D = cfg.embed_dim;
    float out[(1 + 16) * 16], scratch[2 * 4 * 3 + 4 * 3 * 16];
    const float *pe = rd_param_data(&k.set, k.vit.pos_embed);
    rd_vit_pos_embed(&k.vit, &k.set, 12, 12, out, scratch);
    CHECK(memcmp(out, pe, (size_t)10 * D * sizeof(float)) == 0);
    rd_vit_pos_embed(&k.vit, &k.set, 15, 15, out, scratch); /* same grid: conv drops 3 px */
    CHECK(memcmp(out, pe, (size_t)10 * D * sizeof(float)) == 0);
    rd_vit_pos_embed(&k.vit, &k.set, 16, 16, out, scratch); /* 4x4: resampled, CLS kept */
    CHECK(memcmp(out, pe, (size_t)D * sizeof(float)) == 0);
    CHECK(memcmp(out + D, pe + D, (size_t)D * sizeof(float)) != 0);
    fd_free(&k);
}

/* Largest change one block makes to the token stream, relative to the stream's magnitude. */
static double largest_block_change(rd_test *t, float layerscale) {
    rd_vit_config cfg;
    rd_error err;
    CHECK_OK(rd_vit_config_default(&cfg, "vit_tiny", 4, 16, &err), &err);
    cfg.embed_dim = 32;
    cfg.depth = 3;
    cfg.num_heads = 4;
    cfg.layerscale = layerscale;
    fd_case k;
    if (!fd_setup(t, &k, &cfg, 2, 3, 16, 16)) return NAN;
    rd_vit_init_params(&k.vit, &k.set, 5);
    size_t stream = (size_t)2 * 17 * 32;
    float *trace = malloc(stream * 4 * sizeof(float));
    rd_vit_context_trace(&k.ctx, trace);
    fd_loss(&k);
    double change = 0, scale = 0;
    for (size_t i = 0; i < stream; i++) scale = fmax(scale, fabs(trace[i]));
    for (int b = 0; b < 3; b++)
        for (size_t i = 0; i < stream; i++)
            change = fmax(change, fabs(trace[(b + 1) * stream + i] - trace[b * stream + i]));
    free(trace);
    fd_free(&k);
    return change / scale;
}

static void layerscale_init_blocks_are_near_identity(rd_test *t) {
    double small = largest_block_change(t, 1e-5f), large = largest_block_change(t, 1.0f);
    CHECK_MSG(small > 0 && small < 1e-4, "block change %g with LayerScale 1e-5", small);
    CHECK_MSG(large > 1e-2, "block change %g with LayerScale 1", large);
}

static void drop_path_keep_counts_and_rates(rd_test *t) {
    CHECK(rd_vit_drop_path_keep(0.3, 128) == 89);
    CHECK(rd_vit_drop_path_keep(0.3, 512) == 358);
    CHECK(rd_vit_drop_path_keep(0.4, 128) == 76);
    CHECK(rd_vit_drop_path_keep(0.3, 10) == 7); /* 10 * 0.7 = 7.000000000000001 in double */
    CHECK(rd_vit_drop_path_keep(0.9, 5) == 1);
    CHECK(rd_vit_drop_path_keep(0.0, 7) == 7);
    rd_vit_config cfg;
    tiny_config(&cfg);
    cfg.depth = 24;
    cfg.drop_path_rate = 0.4;
    CHECK(rd_vit_block_drop_rate(&cfg, 7) == 0.4);
    cfg.drop_path_uniform = 0; /* torch.linspace(0, 0.4, 24) in fp32 */
    CHECK(rd_vit_block_drop_rate(&cfg, 0) == 0.0);
    CHECK(rd_vit_block_drop_rate(&cfg, 23) == (double)0.4f);
    CHECK(rd_vit_block_drop_rate(&cfg, 5) == (double)(0.4f / 23.0f * 5.0f));
    CHECK(rd_vit_block_drop_rate(&cfg, 20) == (double)(0.4f - 0.4f / 23.0f * 3.0f));

    cfg.depth = 3;
    cfg.drop_path_uniform = 1;
    cfg.drop_path_rate = 0.3;
    int count[6], index[6 * 11];
    rd_rng r;
    rd_rng_init(&r, 3, RD_RNG_DROP_PATH, 0, 0, 0);
    rd_vit_drop_path_draw(&cfg, 11, &r, count, index);
    for (int k = 0; k < 6; k++) {
        CHECK(count[k] == 7);
        for (int j = 1; j < count[k]; j++) CHECK(index[k * 11 + j - 1] < index[k * 11 + j]);
        CHECK(index[k * 11] >= 0 && index[k * 11 + count[k] - 1] < 11);
    }
    CHECK(memcmp(index, index + 11, 7 * sizeof(int)) != 0); /* branches draw fresh subsets */
}

/* Forward + backward; returns the loss and leaves the gradients in k->set.grad. */
static double loss_and_grads(rd_test *t, fd_case *k) {
    rd_error err;
    memset(k->set.grad, 0, k->set.numel * sizeof(float));
    double loss = fd_loss(k);
    CHECK_OK(rd_vit_backward(&k->ctx, &k->set, k->probe_cls, k->probe_patch, &err), &err);
    return loss;
}

static void drop_path_of_zero_equals_none(rd_test *t) {
    rd_vit_config cfg;
    tiny_config(&cfg);
    fd_case k;
    if (!fd_setup(t, &k, &cfg, 3, 3, 12, 12)) return;
    size_t n = k.set.numel;
    float *grad = malloc(n * sizeof(float));
    double none = loss_and_grads(t, &k);
    memcpy(grad, k.set.grad, n * sizeof(float));
    int count[4] = {3, 3, 3, 3}, index[12] = {0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2};
    rd_vit_drop_path dp = {count, index};
    k.dp = &dp;
    double all = loss_and_grads(t, &k);
    CHECK(none == all);
    CHECK(memcmp(grad, k.set.grad, n * sizeof(float)) == 0);
    free(grad);
    fd_free(&k);
}

static void inference_and_threads_give_identical_results(rd_test *t) {
    rd_vit_config cfg;
    rd_error err;
    CHECK_OK(rd_vit_config_default(&cfg, "vit_tiny", 8, 64, &err), &err);
    cfg.depth = 2;
    cfg.num_register_tokens = 2;
    fd_case k;
    /* big enough that every layer takes its multi-threaded path */
    if (!fd_setup(t, &k, &cfg, 4, 3, 64, 64)) return;
    int saved = omp_get_max_threads(), D = cfg.embed_dim;
    size_t out_n = (size_t)4 * (1 + 2 + 64) * D;
    float *train = malloc(out_n * sizeof(float)), *grad = malloc(k.set.numel * sizeof(float));
    rd_vit_output out;
    omp_set_num_threads(1);
    loss_and_grads(t, &k);
    memcpy(grad, k.set.grad, k.set.numel * sizeof(float));
    CHECK_OK(rd_vit_forward(&k.ctx, &k.set, k.images, 4, 3, 64, 64, NULL, NULL, &out, &err), &err);
    memcpy(train, out.cls, (size_t)4 * D * sizeof(float));
    memcpy(train + 4 * D, out.patch, (size_t)4 * 64 * D * sizeof(float));
    omp_set_num_threads(saved);
    loss_and_grads(t, &k);
    CHECK_MSG(memcmp(grad, k.set.grad, k.set.numel * sizeof(float)) == 0,
              "gradients differ between 1 and %d threads", saved);
    rd_vit_context infer;
    CHECK_OK(rd_vit_context_init(&infer, &k.vit, 4, 64, 64, RD_VIT_INFER, &err), &err);
    CHECK_OK(rd_vit_forward(&infer, &k.set, k.images, 4, 3, 64, 64, NULL, NULL, &out, &err), &err);
    CHECK(memcmp(train, out.cls, (size_t)4 * D * sizeof(float)) == 0);
    CHECK(memcmp(train + 4 * D, out.patch, (size_t)4 * 64 * D * sizeof(float)) == 0);
    CHECK(rd_vit_context_bytes(&k.vit, 4, 64, 64, RD_VIT_INFER) <
          rd_vit_context_bytes(&k.vit, 4, 64, 64, RD_VIT_TRAIN) / 2);
    rd_vit_context_free(&infer);
    free(train);
    free(grad);
    fd_free(&k);
}

static void bad_calls_are_refused(rd_test *t) {
    rd_vit_config cfg;
    tiny_config(&cfg);
    fd_case k;
    if (!fd_setup(t, &k, &cfg, 2, 3, 12, 12)) return;
    rd_error err;
    rd_vit_output out;
    CHECK(rd_vit_backward(&k.ctx, &k.set, NULL, NULL, &err) == RD_EINVAL); /* no forward */
    CHECK(rd_vit_forward(&k.ctx, &k.set, k.images, 3, 3, 12, 12, NULL, NULL, &out, &err) ==
          RD_EINVAL);
    CHECK(strstr(err.msg, "batch 3") != NULL);
    CHECK(rd_vit_forward(&k.ctx, &k.set, k.images, 2, 2, 12, 12, NULL, NULL, &out, &err) ==
          RD_EINVAL);
    CHECK(rd_vit_forward(&k.ctx, &k.set, k.images, 1, 3, 16, 16, NULL, NULL, &out, &err) ==
          RD_EINVAL); /* 16 patches > 9 */
    int count[4] = {2, 2, 2, 2}, index[8] = {0, 0, 0, 1, 0, 1, 0, 1};
    rd_vit_drop_path dp = {count, index};
    CHECK(rd_vit_forward(&k.ctx, &k.set, k.images, 2, 3, 12, 12, NULL, &dp, &out, &err) ==
          RD_EINVAL);
    CHECK(strstr(err.msg, "repeated") != NULL);
    rd_vit_context infer;
    CHECK_OK(rd_vit_context_init(&infer, &k.vit, 2, 12, 12, RD_VIT_INFER, &err), &err);
    index[1] = 1;
    CHECK(rd_vit_forward(&infer, &k.set, k.images, 2, 3, 12, 12, NULL, &dp, &out, &err) ==
          RD_EINVAL);
    CHECK_OK(rd_vit_forward(&infer, &k.set, k.images, 2, 3, 12, 12, NULL, NULL, &out, &err), &err);
    CHECK(rd_vit_backward(&infer, &k.set, NULL, NULL, &err) == RD_EINVAL);
    rd_vit_context_free(&infer);
    fd_free(&k);
}

static const rd_test_case cases[] = {
    {"config_from_run_config", config_from_run_config},
    {"declared_in_dinov2_order", declared_in_dinov2_order},
    {"init_follows_dinov2", init_follows_dinov2},
    {"pos_embed_identity_at_native_size", pos_embed_identity_at_native_size},
    {"layerscale_init_blocks_are_near_identity", layerscale_init_blocks_are_near_identity},
    {"drop_path_keep_counts_and_rates", drop_path_keep_counts_and_rates},
    {"drop_path_of_zero_equals_none", drop_path_of_zero_equals_none},
    {"inference_and_threads_give_identical_results", inference_and_threads_give_identical_results},
    {"bad_calls_are_refused", bad_calls_are_refused},
    {"backward_masked_registers_drop_path_resampled",
     backward_masked_registers_drop_path_resampled},
    {"backward_checkpointed", backward_checkpointed},
    {"backward_grey_native_size_form", backward_grey_native_size_form},
    {"backward_swiglu_no_layerscale_no_bias", backward_swiglu_no_layerscale_no_bias},
};

int main(int argc, char **argv) {
    rd_log_set_quiet(1);
    return rd_test_main(argc, argv, "model/vit", cases, (int)(sizeof cases / sizeof cases[0]));
}
