/* Manual check driver (tests/reference/manual/README.md; not built by the Makefile, not a test):
 * exports a small random rdino model as a snapshot folder, re-imports it, and writes rdino's
 * last_hidden_state on three input sizes for transformers and facebookresearch/dinov2 to match. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "rdino/rng.h"
#include "rdino/weights.h"
static void die(const rd_error *e) {
    fprintf(stderr, "error: %s\n", e->msg);
    exit(1);
}
int main(int argc, char **argv) {
    if (argc < 3) return 2;
    const char *variant = argv[1], *dir = argv[2];
    rd_vit_config c;
    memset(&c, 0, sizeof c);
    c.embed_dim = 64;
    c.depth = 2;
    c.num_heads = 4;
    c.mlp_ratio = 4;
    c.patch_size = 14;
    c.in_chans = 3;
    c.img_size = 70;
    c.layerscale = 1;
    c.drop_path_uniform = 1;
    c.qkv_bias = c.proj_bias = c.ffn_bias = 1;
    c.ffn = RD_VIT_FFN_MLP;
    rd_pos_interp_apply(&c, RD_POS_INTERP_HF);
    if (!strcmp(variant, "swiglu_reg")) {
        c.ffn = RD_VIT_FFN_SWIGLU;
        c.num_register_tokens = 2;
        c.qkv_bias = 0;
        rd_pos_interp_apply(&c, RD_POS_INTERP_DINOV2_REG);
    }
    if (!strcmp(variant, "legacy")) rd_pos_interp_apply(&c, RD_POS_INTERP_LEGACY);
    if (!strcmp(variant, "neutral")) {
        c.layerscale = 0;
        c.proj_bias = c.ffn_bias = 0;
    }
    rd_error err = {0};
    rd_vit vit;
    rd_param_set set;
    rd_params_init(&set);
    rd_head head;
    rd_head_config hc = {64, 96, 32, 100, 3};
    if (rd_vit_declare(&vit, &c, &set, &err) ||
        rd_head_declare(&head, &set, RD_MODULE_DINO_HEAD, &hc, &err) ||
        rd_params_alloc(&set, 0, &err))
        die(&err);
    rd_rng r;
    rd_rng_init(&r, 42, RD_RNG_TEST, 0, 0, 0);
    for (int i = 0; i < set.count; i++) {
        const rd_param *p = &set.params[i];
        float *x = rd_param_data(&set, i);
        int ln = strstr(p->name, "norm") && strstr(p->name, ".weight"),
            ls = strstr(p->name, ".gamma") != NULL;
        for (size_t j = 0; j < p->numel; j++)
            x[j] = ls ? (float)(0.3 + 0.4 * rd_rng_uniform(&r))
                      : (ln ? 1.0f : 0.0f) + 0.02f * (float)rd_rng_normal(&r);
    }
    if (rd_weights_export(dir, &vit, &set, &head, RD_EXPORT_ORIGINAL_NAMES, &err)) die(&err);
    rd_pretrained pre;
    if (rd_pretrained_open(&pre, dir, &err)) die(&err);
    rd_vit v2;
    rd_param_set s2;
    rd_params_init(&s2);
    if (rd_vit_declare(&v2, &pre.cfg, &s2, &err) || rd_params_alloc(&s2, 0, &err) ||
        rd_pretrained_load_backbone(&pre, &v2, &s2, &err))
        die(&err);
    printf("%s: mode %s, R %d\n", variant, rd_pos_interp_name(rd_pos_interp_of(&pre.cfg)),
           pre.cfg.num_register_tokens);
    static const int sizes[][2] = {{70, 70}, {42, 98}, {112, 112}};
    for (int k = 0; k < 3; k++) {
        int B = 2, H = sizes[k][0], W = sizes[k][1], D = 64, R = c.num_register_tokens;
        size_t nin = (size_t)B * 3 * H * W;
        float *x = malloc(nin * sizeof *x);
        for (size_t i = 0; i < nin; i++) x[i] = (float)rd_rng_normal(&r);
        rd_vit_context ctx;
        rd_vit_output o;
        if (rd_vit_context_init(&ctx, &v2, B, H, W, RD_VIT_INFER, &err) ||
            rd_vit_forward(&ctx, &s2, x, B, 3, H, W, NULL, NULL, &o, &err))
            die(&err);
        int n = o.n_patches, T = 1 + R + n;
        float *y = malloc((size_t)B * T * D * sizeof *y);
        for (int b = 0; b < B; b++) {
            memcpy(y + (size_t)b * T * D, o.cls + (size_t)b * D, D * sizeof(float));
            if (R)
                memcpy(y + ((size_t)b * T + 1) * D, o.reg + (size_t)b * R * D,
                       (size_t)R * D * sizeof(float));
            memcpy(y + ((size_t)b * T + 1 + R) * D, o.patch + (size_t)b * n * D,
                   (size_t)n * D * sizeof(float));
        }
        char path[2048];
        snprintf(path, sizeof path, "%s/in_%dx%d.f32", dir, H, W);
        FILE *f = fopen(path, "wb");
        fwrite(x, sizeof(float), nin, f);
        fclose(f);
        snprintf(path, sizeof path, "%s/out_%dx%d.f32", dir, H, W);
        f = fopen(path, "wb");
        fwrite(y, sizeof(float), (size_t)B * T * D, f);
        fclose(f);
        rd_vit_context_free(&ctx);
        free(x);
        free(y);
    }
    rd_pretrained_close(&pre);
    return 0;
}
