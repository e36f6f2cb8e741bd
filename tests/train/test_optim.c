/* Parameter groups (get_params_groups_with_decay: the full ViT-S/12 table), AdamW against a double
 * precision transcription of torch.optim.AdamW (rtol 1e-6), the lr = 0 / freeze semantics,
 * per-module clipping and the teacher EMA. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "rdino/optim.h"
#include "rdino/rng.h"

static int add(rd_param_set *s, rd_module m, const char *name, int64_t n) {
    return rd_params_add(s, m, name, 1, &n, NULL);
}

/* ViT-S/16 with 12 blocks, plus a DINO head. */
static void declare_vit_small(rd_param_set *s) {
    static const char *const block[] = {
        "norm1.weight",   "norm1.bias",     "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight",
        "attn.proj.bias", "ls1.gamma",      "norm2.weight",    "norm2.bias",    "mlp.fc1.weight",
        "mlp.fc1.bias",   "mlp.fc2.weight", "mlp.fc2.bias",    "ls2.gamma"};
    rd_params_init(s);
    add(s, RD_MODULE_BACKBONE, "cls_token", 384);
    add(s, RD_MODULE_BACKBONE, "pos_embed", 197 * 384);
    add(s, RD_MODULE_BACKBONE, "register_tokens", 4 * 384);
    add(s, RD_MODULE_BACKBONE, "mask_token", 384);
    add(s, RD_MODULE_BACKBONE, "patch_embed.proj.weight", 384 * 768);
    add(s, RD_MODULE_BACKBONE, "patch_embed.proj.bias", 384);
    for (int i = 0; i < 12; i++)
        for (size_t j = 0; j < sizeof block / sizeof block[0]; j++) {
            char name[64];
            snprintf(name, sizeof name, "blocks.%d.%s", i, block[j]);
            add(s, RD_MODULE_BACKBONE, name, 8);
        }
    add(s, RD_MODULE_BACKBONE, "norm.weight", 384);
    add(s, RD_MODULE_BACKBONE, "norm.bias", 384);
    add(s, RD_MODULE_DINO_HEAD, "mlp.0.weight", 8);
    add(s, RD_MODULE_DINO_HEAD, "mlp.0.bias", 8);
    add(s, RD_MODULE_DINO_HEAD, "last_layer.weight_g", 8);
    add(s, RD_MODULE_DINO_HEAD, "last_layer.weight_v", 8);
}

static void vit_small_group_table(rd_test *t) {
    rd_param_set s;
    declare_vit_small(&s);
    rd_param_groups_assign(&s, 12, 0.9, 0.2);
    for (int i = 0; i < s.count; i++) {
        const rd_param *p = &s.params[i];
        double lr; /* values from get_vit_lr_decay_rate run on ViT-S/12, the rest its formula */
        if (strncmp(p->name, "patch_embed", 11) == 0 && p->module == RD_MODULE_BACKBONE)
            lr = 0.050837;
        else if (p->module != RD_MODULE_BACKBONE || strncmp(p->name, "norm.", 5) == 0)
            lr = 1.0;
        else if (strncmp(p->name, "blocks.", 7) == 0)
            lr = atoi(p->name + 7) == 0 ? 0.282430 : pow(0.9, 12 - atoi(p->name + 7));
        else
            lr = 0.254187;
        CHECK_MSG(fabs(p->lr_mult - lr) <= 1e-6, "%s lr_mult %.7f, want %.7f", p->name, p->lr_mult,
                  lr);
        int no_wd = strstr(p->name, "bias") || strstr(p->name, "norm") || strstr(p->name, "gamma");
        CHECK_MSG(p->wd_mult == (no_wd ? 0.0f : 1.0f), "%s wd_mult %g", p->name, p->wd_mult);
        CHECK_MSG(p->last_layer == (strstr(p->name, "last_layer") != NULL), "%s last_layer",
                  p->name);
    }
    CHECK(
        fabs(s.params[rd_params_find(&s, RD_MODULE_BACKBONE, "blocks.11.attn.qkv.weight")].lr_mult -
             0.9) < 1e-7);
    /* layerwise_decay 1 (L14/g14 configs): only patch_embed differs. */
    rd_param_groups_assign(&s, 12, 1.0, 0.2);
    for (int i = 0; i < s.count; i++)
        CHECK(s.params[i].lr_mult == (strstr(s.params[i].name, "patch_embed") ? 0.2f : 1.0f));
    rd_params_free(&s);
}

enum { N = 40 };

/* Three tensors: decayed weight, no-decay bias, frozen last layer. */
static void small_set(rd_test *t, rd_param_set *s) {
    rd_error err = {0};
    rd_params_init(s);
    add(s, RD_MODULE_BACKBONE, "blocks.0.attn.qkv.weight", N);
    add(s, RD_MODULE_BACKBONE, "blocks.0.attn.qkv.bias", N);
    add(s, RD_MODULE_DINO_HEAD, "last_layer.weight_v", N);
    CHECK_OK(rd_params_alloc(s, 1, &err), &err);
    rd_param_groups_assign(s, 1, 0.5, 0.2);
    rd_rng r;
    rd_rng_init(&r, 1, RD_RNG_TEST, 0, 0, 0);
    for (size_t i = 0; i < s->numel; i++) s->data[i] = (float)rd_rng_normal(&r);
}

static void fill_grads(rd_param_set *s, uint64_t step) {
    rd_rng r;
    rd_rng_init(&r, 2, RD_RNG_TEST, 0, step, 0);
    for (size_t i = 0; i < s->numel; i++) s->grad[i] = (float)(0.1 * rd_rng_normal(&r));
}

static void adamw_matches_torch_formula(rd_test *t) {
    rd_param_set s;
    small_set(t, &s);
    rd_error err = {0};
    rd_adamw opt;
    CHECK_OK(rd_adamw_init(&opt, &s, 0.9, 0.999, 1e-8, &err), &err);
    double *theta = malloc(s.numel * sizeof(double)), *m = calloc(s.numel, sizeof(double));
    double *v = calloc(s.numel, sizeof(double));
    for (size_t i = 0; i < s.numel; i++) theta[i] = s.data[i];
    const double lr = 1e-2, last_lr = 3e-3, wd = 0.05;
    for (int step = 1; step <= 3; step++) {
        fill_grads(&s, (uint64_t)step);
        rd_adamw_step(&opt, &s, lr, last_lr, wd);
        for (int p = 0; p < s.count; p++) {
            const rd_param *q = &s.params[p];
            double lr_g = (q->last_layer ? last_lr : lr) * q->lr_mult, wd_g = wd * q->wd_mult;
            for (size_t j = q->offset; j < q->offset + q->numel; j++) {
                double g = s.grad[j];
                theta[j] *= 1 - lr_g * wd_g;
                m[j] = 0.9 * m[j] + 0.1 * g;
                v[j] = 0.999 * v[j] + 0.001 * g * g;
                double denom = sqrt(v[j]) / sqrt(1 - pow(0.999, step)) + 1e-8;
                theta[j] -= lr_g / (1 - pow(0.9, step)) * m[j] / denom;
            }
        }
    }
    float *want = malloc(s.numel * sizeof(float));
    for (size_t i = 0; i < s.numel; i++) want[i] = (float)theta[i];
    CHECK_CLOSE("theta after 3 steps", s.data, want, s.numel, 1e-6, 1e-7);
    for (size_t i = 0; i < s.numel; i++) want[i] = (float)m[i];
    CHECK_CLOSE("exp_avg", opt.exp_avg, want, s.numel, 1e-5, 1e-9);
    for (size_t i = 0; i < s.numel; i++) want[i] = (float)v[i];
    CHECK_CLOSE("exp_avg_sq", opt.exp_avg_sq, want, s.numel, 1e-5, 1e-12);
    for (int p = 0; p < s.count; p++) CHECK(opt.step[p] == 3);
    /* The multipliers took effect: lr_mult 0.5 (block 0 of 1) and no decay on the bias. */
    CHECK(s.params[0].lr_mult == 0.5f && s.params[1].wd_mult == 0.0f && s.params[2].last_layer);
    free(want);
    free(theta);
    free(m);
    free(v);
    rd_adamw_free(&opt);
    rd_params_free(&s);
}

/* lr = 0 leaves parameters bit-identical (no decay) but moments and step advance;
 * the frozen last layer (last-layer lr 0) likewise while the rest moves. */
static void adamw_zero_lr_and_freeze(rd_test *t) {
    rd_param_set s;
    small_set(t, &s);
    rd_error err = {0};
    rd_adamw opt;
    CHECK_OK(rd_adamw_init(&opt, &s, 0.9, 0.999, 1e-8, &err), &err);
    float *before = malloc(s.numel * sizeof(float));
    memcpy(before, s.data, s.numel * sizeof(float));
    fill_grads(&s, 1);
    rd_adamw_step(&opt, &s, 0.0, 0.0, 0.4);
    CHECK(memcmp(before, s.data, s.numel * sizeof(float)) == 0);
    int moved = 0;
    for (size_t i = 0; i < s.numel; i++) moved += opt.exp_avg[i] != 0.0f && opt.exp_avg_sq[i] > 0;
    CHECK(moved > (int)(3 * N * 9 / 10));
    for (int p = 0; p < s.count; p++) CHECK(opt.step[p] == 1);
    fill_grads(&s, 2);
    rd_adamw_step(&opt, &s, 1e-3, 0.0, 0.4);
    const rd_param *last = &s.params[2];
    CHECK(memcmp(before + last->offset, s.data + last->offset, last->numel * sizeof(float)) == 0);
    CHECK(memcmp(before, s.data, s.params[0].numel * sizeof(float)) != 0);
    CHECK(opt.step[2] == 2);
    free(before);
    rd_adamw_free(&opt);
    rd_params_free(&s);
}

/* Per sub-module, norm <= max after clipping; below the threshold untouched. */
static void clipping_per_module(rd_test *t) {
    rd_param_set s;
    small_set(t, &s);
    fill_grads(&s, 3);
    for (size_t i = 0; i < s.params[2].numel; i++) s.grad[s.params[2].offset + i] *= 1e-3f;
    float *before = malloc(s.numel * sizeof(float));
    memcpy(before, s.grad, s.numel * sizeof(float));
    double norms[RD_MODULE_COUNT], coefs[RD_MODULE_COUNT], after[RD_MODULE_COUNT];
    rd_clip_grad_norms(&s, 0.2, norms, coefs);
    rd_clip_grad_norms(&s, 0.0, after, NULL); /* measure only */
    double want_bb = 0;
    for (int p = 0; p < 2; p++)
        for (size_t i = 0; i < N; i++) {
            double g = before[s.params[p].offset + i];
            want_bb += g * g;
        }
    CHECK_NEAR(norms[RD_MODULE_BACKBONE], sqrt(want_bb), 1e-6);
    CHECK(norms[RD_MODULE_BACKBONE] > 0.2 && coefs[RD_MODULE_BACKBONE] < 1.0);
    CHECK(after[RD_MODULE_BACKBONE] <= 0.2 + 1e-6);
    CHECK_NEAR(after[RD_MODULE_BACKBONE], 0.2 * norms[0] / (norms[0] + 1e-6), 1e-6);
    CHECK(coefs[RD_MODULE_DINO_HEAD] == 1.0);
    const rd_param *head = &s.params[2];
    CHECK(memcmp(before + head->offset, s.grad + head->offset, head->numel * sizeof(float)) == 0);
    CHECK(norms[RD_MODULE_IBOT_HEAD] == 0.0 && coefs[RD_MODULE_IBOT_HEAD] == 1.0);
    free(before);
    rd_params_free(&s);
}

/* m = 1 keeps the teacher bit-identical, m = 0 copies the student; otherwise the mix. */
static void ema_momentum_extremes(rd_test *t) {
    rd_param_set student, teacher;
    small_set(t, &student);
    small_set(t, &teacher);
    for (size_t i = 0; i < teacher.numel; i++) teacher.data[i] = 2.0f * student.data[i] + 1.0f;
    float *before = malloc(teacher.numel * sizeof(float));
    memcpy(before, teacher.data, teacher.numel * sizeof(float));
    rd_error err = {0};
    CHECK_OK(rd_ema_update(&teacher, &student, 1.0, &err), &err);
    CHECK(memcmp(before, teacher.data, teacher.numel * sizeof(float)) == 0);
    CHECK_OK(rd_ema_update(&teacher, &student, 0.99, &err), &err);
    for (size_t i = 0; i < teacher.numel; i++)
        CHECK_NEAR(teacher.data[i], 0.99 * before[i] + 0.01 * student.data[i], 1e-6);
    CHECK_OK(rd_ema_update(&teacher, &student, 0.0, &err), &err);
    CHECK(memcmp(student.data, teacher.data, teacher.numel * sizeof(float)) == 0);
    rd_param_set other;
    rd_params_init(&other);
    add(&other, RD_MODULE_BACKBONE, "x", 3);
    CHECK_OK(rd_params_alloc(&other, 0, &err), &err);
    CHECK(rd_ema_update(&other, &student, 0.5, &err) == RD_EINVAL);
    free(before);
    rd_params_free(&other);
    rd_params_free(&student);
    rd_params_free(&teacher);
}

static const rd_test_case cases[] = {
    {"vit_small_group_table", vit_small_group_table},
    {"adamw_matches_torch_formula", adamw_matches_torch_formula},
    {"adamw_zero_lr_and_freeze", adamw_zero_lr_and_freeze},
    {"clipping_per_module", clipping_per_module},
    {"ema_momentum_extremes", ema_momentum_extremes},
};
RD_TEST_MAIN("train/optim", cases)
