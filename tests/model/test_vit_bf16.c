/* The ViT forward with bf16 block linears (rd_vit_bf16, docs/BF16.md) against the fp32 forward
 * of the same parameters:
 *   - cosine >= 0.999 for the CLS and every patch token of every image (the accuracy target of
 *     embed.precision: bf16), and the outputs do differ (the bf16 products really ran);
 *   - the emulated path gives the same bits as AVX512-BF16 (skipped without the instructions),
 *     and the same bits on 1 and 2 threads;
 *   - RDINO_BF16=off (rd_bf16_set_mode) packs nothing and gives the fp32 forward bit for bit;
 *   - backward with training copies: every gradient within 2 % of fp32's, emulated = hardware;
 *   - a training context with inference copies, and a forward on another parameter set, are
 *     refused.
 * The model: ViT-S-like widths cut down (D 64, 3 blocks, 4 heads, a register, SwiGLU in one
 * case), weights N(0, 1/fan_in) so every branch moves the residual stream by O(1). */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "rdino/gemm_bf16.h"
#include "rdino/log.h"
#include "rdino/rng.h"
#include "rdino/vit.h"

#define MIN_COSINE 0.999

typedef struct model {
    rd_vit vit;
    rd_param_set set;
    rd_vit_context ctx;
    float *images;
    int b, H, W, n, D;
} model;

static void fill_normal(float *x, size_t n, uint64_t index, double mean, double std) {
    rd_rng r;
    rd_rng_init(&r, 5, RD_RNG_TEST, 0, index, 0);
    for (size_t i = 0; i < n; i++) x[i] = (float)(mean + std * rd_rng_normal(&r));
}

static int setup(rd_test *t, model *m, rd_vit_ffn ffn) {
    rd_error err;
    rd_vit_config cfg;
    memset(m, 0, sizeof *m);
    rd_params_init(&m->set);
    CHECK_OK(rd_vit_config_default(&cfg, "vit_small", 8, 32, &err), &err);
    cfg.embed_dim = 64;
    cfg.depth = 3;
    cfg.num_heads = 4;
    cfg.num_register_tokens = 1;
    cfg.layerscale = 0.5f;
    cfg.ffn = ffn;
    m->b = 3, m->H = 40, m->W = 32; /* 5 x 4 patches: the pos-embed is resampled */
    m->n = (m->H / 8) * (m->W / 8);
    m->D = cfg.embed_dim;
    if (rd_vit_declare(&m->vit, &cfg, &m->set, &err) || rd_params_alloc(&m->set, 0, &err) ||
        rd_vit_context_init(&m->ctx, &m->vit, m->b, m->H, m->W, RD_VIT_INFER, &err)) {
        rd_test_fail(t, __FILE__, __LINE__, "setup: %s", err.msg);
        return 0;
    }
    rd_vit_init_params(&m->vit, &m->set, 3);
    for (int i = 0; i < m->set.count; i++) { /* linear weights N(0, 1/fan_in), biases 0.1 */
        const rd_param *p = &m->set.params[i];
        if (p->ndim == 2 && strstr(p->name, "blocks."))
            fill_normal(rd_param_data(&m->set, i), p->numel, (uint64_t)i, 0.0,
                        1.0 / sqrt((double)p->shape[1]));
        else if (strstr(p->name, "bias") && strstr(p->name, "blocks."))
            fill_normal(rd_param_data(&m->set, i), p->numel, (uint64_t)i, 0.0, 0.1);
    }
    m->images = malloc((size_t)m->b * 3 * m->H * m->W * sizeof(float));
    fill_normal(m->images, (size_t)m->b * 3 * m->H * m->W, 1000, 0.0, 1.0);
    return 1;
}

static void teardown(model *m) {
    rd_vit_context_free(&m->ctx);
    rd_params_free(&m->set);
    free(m->images);
    rd_bf16_set_mode(RD_BF16_FROM_ENV);
}

/* out [(b + b n) D]: the CLS rows, then the patch rows, of a forward with bf16 copies w (NULL:
 * fp32). */
static int forward(rd_test *t, model *m, const rd_vit_bf16 *w, float *out) {
    rd_error err;
    rd_vit_output o;
    CHECK_OK(rd_vit_context_bf16(&m->ctx, w, &err), &err);
    if (rd_vit_forward(&m->ctx, &m->set, m->images, m->b, 3, m->H, m->W, NULL, NULL, &o, &err)) {
        rd_test_fail(t, __FILE__, __LINE__, "forward: %s", err.msg);
        return 0;
    }
    memcpy(out, o.cls, (size_t)m->b * m->D * sizeof(float));
    memcpy(out + (size_t)m->b * m->D, o.patch, (size_t)m->b * m->n * m->D * sizeof(float));
    return 1;
}

static size_t out_floats(const model *m) {
    return (size_t)m->b * (1 + m->n) * m->D;
}

/* Packs m's copies on path mode (scratch for the context's threads) and runs a forward with
 * them on `threads` threads into out. */
static int forward_bf16(rd_test *t, model *m, rd_bf16_mode mode, rd_bf16_path want, int threads,
                        float *out) {
    rd_error err;
    rd_vit_bf16 w;
    rd_bf16_set_mode(mode);
    if (rd_vit_bf16_init(&w, &m->vit, &m->set, 0, &err)) {
        rd_test_fail(t, __FILE__, __LINE__, "rd_vit_bf16_init: %s", err.msg);
        return 0;
    }
    CHECK_MSG(w.path == want, "path %s, want %s", rd_bf16_path_name(w.path),
              rd_bf16_path_name(want));
    omp_set_num_threads(threads);
    int ok = forward(t, m, &w, out);
    omp_set_num_threads(m->ctx.threads);
    rd_vit_context_bf16(&m->ctx, NULL, &err);
    rd_vit_bf16_free(&w);
    return ok;
}

/* Smallest cosine over the rows of [rows, D] a and b. */
static double min_cosine(const float *a, const float *b, size_t rows, int D) {
    double worst = 1.0;
    for (size_t r = 0; r < rows; r++) {
        double ab = 0, aa = 0, bb = 0;
        for (int d = 0; d < D; d++) {
            double x = a[r * D + d], y = b[r * D + d];
            ab += x * y, aa += x * x, bb += y * y;
        }
        double c = ab / sqrt(aa * bb);
        worst = c < worst ? c : worst;
    }
    return worst;
}

static void close_to_fp32(rd_test *t, rd_vit_ffn ffn) {
    model m;
    if (!setup(t, &m, ffn)) return;
    size_t n = out_floats(&m);
    float *fp = malloc(n * sizeof(float)), *bf = malloc(n * sizeof(float));
    if (forward(t, &m, NULL, fp) &&
        forward_bf16(t, &m, RD_BF16_EMULATE, RD_BF16_PATH_EMULATED, m.ctx.threads, bf)) {
        double cls = min_cosine(fp, bf, (size_t)m.b, m.D);
        double patch =
            min_cosine(fp + (size_t)m.b * m.D, bf + (size_t)m.b * m.D, (size_t)m.b * m.n, m.D);
        double diff = 0;
        for (size_t i = 0; i < n; i++) diff = fmax(diff, fabs((double)fp[i] - bf[i]));
        CHECK_MSG(cls >= MIN_COSINE && patch >= MIN_COSINE,
                  "min cosine to fp32: CLS %.6f, patch tokens %.6f (< %.3f)", cls, patch,
                  MIN_COSINE);
        fprintf(stderr, "  min cosine to fp32: CLS %.7f, patch tokens %.7f; max |diff| %.3g\n", cls,
                patch, diff);
        CHECK_MSG(diff > 1e-4, "bf16 forward within %.3g of fp32: the bf16 products did not run",
                  diff);
    }
    free(fp), free(bf);
    teardown(&m);
}

static void mlp_close_to_fp32(rd_test *t) {
    close_to_fp32(t, RD_VIT_FFN_MLP);
}
static void swiglu_close_to_fp32(rd_test *t) {
    close_to_fp32(t, RD_VIT_FFN_SWIGLU);
}

static void emulated_equals_hardware_and_threads(rd_test *t) {
    if (!rd_bf16_cpu_has()) SKIP("this CPU has no AVX512-BF16: only the emulated path runs");
    model m;
    if (!setup(t, &m, RD_VIT_FFN_MLP)) return;
    size_t n = out_floats(&m);
    float *hw = malloc(n * sizeof(float)), *emu = malloc(n * sizeof(float));
    float *one = malloc(n * sizeof(float));
    int threads = m.ctx.threads;
    if (forward_bf16(t, &m, RD_BF16_FORCE, RD_BF16_PATH_AVX512, threads, hw) &&
        forward_bf16(t, &m, RD_BF16_EMULATE, RD_BF16_PATH_EMULATED, threads, emu) &&
        forward_bf16(t, &m, RD_BF16_FORCE, RD_BF16_PATH_AVX512, 1, one)) {
        CHECK_MSG(memcmp(hw, emu, n * sizeof(float)) == 0,
                  "emulated and AVX512-BF16 forwards differ");
        CHECK_MSG(memcmp(hw, one, n * sizeof(float)) == 0, "1 and %d threads differ", threads);
    }
    free(hw), free(emu), free(one);
    teardown(&m);
}

static void off_is_fp32_bit_for_bit(rd_test *t) {
    model m;
    if (!setup(t, &m, RD_VIT_FFN_MLP)) return;
    size_t n = out_floats(&m);
    float *fp = malloc(n * sizeof(float)), *off = malloc(n * sizeof(float));
    if (forward(t, &m, NULL, fp) &&
        forward_bf16(t, &m, RD_BF16_OFF, RD_BF16_PATH_FP32, m.ctx.threads, off))
        CHECK_MSG(memcmp(fp, off, n * sizeof(float)) == 0, "RDINO_BF16=off differs from fp32");
    free(fp), free(off);
    teardown(&m);
}

static void misuse_is_refused(rd_test *t) {
    model m, other;
    if (!setup(t, &m, RD_VIT_FFN_MLP)) return;
    if (!setup(t, &other, RD_VIT_FFN_MLP)) {
        teardown(&m);
        return;
    }
    rd_error err;
    rd_vit_bf16 w;
    rd_bf16_set_mode(RD_BF16_EMULATE);
    CHECK_OK(rd_vit_bf16_init(&w, &m.vit, &m.set, 0, &err), &err);
    rd_vit_output o;
    CHECK_OK(rd_vit_context_bf16(&other.ctx, &w, &err), &err);
    CHECK(rd_vit_forward(&other.ctx, &other.set, other.images, other.b, 3, other.H, other.W, NULL,
                         NULL, &o, &err) == RD_EINVAL);
    CHECK(strstr(err.msg, "another parameter set") != NULL);
    rd_vit_context train;
    CHECK_OK(rd_vit_context_init(&train, &m.vit, 1, m.H, m.W, RD_VIT_TRAIN, &err), &err);
    CHECK(rd_vit_context_bf16(&train, &w, &err) == RD_EINVAL);
    rd_vit_context_free(&train);
    rd_vit_bf16_free(&w);
    teardown(&other);
    teardown(&m);
}

/* Backward with training copies: every gradient tensor within 2 % (relative 2-norm) of fp32's
 * (bf16 inputs carry 2^-9 relative rounding each; the measured error is a few 1e-3), and the
 * emulated path gives the AVX512-BF16 bits (where the CPU has it). */
static void backward_close_to_fp32(rd_test *t) {
    model m;
    if (!setup(t, &m, RD_VIT_FFN_MLP)) return;
    rd_error err;
    rd_vit_context ctx;
    rd_param_set *set = &m.set;
    /* gradients: a set of the same layout with a grad buffer */
    rd_param_set g;
    rd_vit gv;
    rd_params_init(&g);
    CHECK_OK(rd_vit_declare(&gv, &m.vit.cfg, &g, &err), &err);
    CHECK_OK(rd_params_alloc(&g, 1, &err), &err);
    memcpy(g.data, set->data, set->numel * sizeof(float));
    CHECK_OK(rd_vit_context_init(&ctx, &gv, m.b, m.H, m.W, RD_VIT_TRAIN, &err), &err);
    size_t D = (size_t)m.D, nd = (size_t)m.b * m.n * D;
    float *d_cls = malloc((size_t)m.b * D * sizeof(float)), *d_patch = malloc(nd * sizeof(float));
    fill_normal(d_cls, (size_t)m.b * D, 2000, 0.0, 1.0);
    fill_normal(d_patch, nd, 2001, 0.0, 0.1);
    float *grads[3] = {NULL, NULL, NULL};
    const rd_bf16_mode modes[3] = {RD_BF16_OFF, RD_BF16_EMULATE, RD_BF16_FORCE};
    int runs = rd_bf16_cpu_has() ? 3 : 2;
    for (int r = 0; r < runs; r++) {
        rd_vit_bf16 w;
        rd_vit_output o;
        grads[r] = malloc(g.numel * sizeof(float));
        rd_bf16_set_mode(modes[r]);
        CHECK_OK(rd_vit_bf16_init(&w, &gv, &g, 1, &err), &err);
        CHECK_OK(rd_vit_context_bf16(&ctx, r ? &w : NULL, &err), &err);
        memset(g.grad, 0, g.numel * sizeof(float));
        CHECK_OK(rd_vit_forward(&ctx, &g, m.images, m.b, 3, m.H, m.W, NULL, NULL, &o, &err), &err);
        CHECK_OK(rd_vit_backward(&ctx, &g, d_cls, d_patch, &err), &err);
        memcpy(grads[r], g.grad, g.numel * sizeof(float));
        rd_vit_context_bf16(&ctx, NULL, &err);
        rd_vit_bf16_free(&w);
    }
    double worst = 0;
    const char *where = "";
    for (int i = 0; i < g.count; i++) {
        const rd_param *p = &g.params[i];
        double diff = 0, ref = 0;
        for (size_t j = 0; j < p->numel; j++) {
            double x = grads[0][p->offset + j], y = grads[1][p->offset + j];
            diff += (x - y) * (x - y), ref += x * x;
        }
        double rel = ref > 0 ? sqrt(diff / ref) : sqrt(diff);
        if (rel > worst) worst = rel, where = p->name;
    }
    fprintf(stderr, "  largest relative gradient error %.3g (%s)\n", worst, where);
    CHECK_MSG(worst <= 0.02 && worst > 0, "relative gradient error %.3g of %s (want (0, 0.02])",
              worst, where);
    if (runs == 3)
        CHECK_MSG(memcmp(grads[1], grads[2], g.numel * sizeof(float)) == 0,
                  "emulated and AVX512-BF16 gradients differ");
    for (int r = 0; r < runs; r++) free(grads[r]);
    free(d_cls), free(d_patch);
    rd_vit_context_free(&ctx);
    rd_params_free(&g);
    teardown(&m);
}

static const rd_test_case cases[] = {
    {"backward_close_to_fp32", backward_close_to_fp32},
    {"mlp_close_to_fp32", mlp_close_to_fp32},
    {"swiglu_close_to_fp32", swiglu_close_to_fp32},
    {"emulated_equals_hardware_and_threads", emulated_equals_hardware_and_threads},
    {"off_is_fp32_bit_for_bit", off_is_fp32_bit_for_bit},
    {"misuse_is_refused", misuse_is_refused},
};

int main(int argc, char **argv) {
    rd_log_set_quiet(1);
    return rd_test_main(argc, argv, "model/vit_bf16", cases, (int)(sizeof cases / sizeof cases[0]));
}
