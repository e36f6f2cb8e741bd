/* Oracle step fixtures as trainer settings and tensors (step_fixture.h). */
#include "step_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void step_fixture_config_read(hid_t f, step_fixture_config *c) {
    char centering[64] = "", ffn[16] = "mlp";
    rd_fixture_attr_str(f, "centering", centering, sizeof centering);
    rd_fixture_attr_str(f, "ffn", ffn, sizeof ffn);
    c->vit = (rd_vit_config){
        .embed_dim = (int)rd_fixture_attr(f, "embed_dim"),
        .depth = (int)rd_fixture_attr(f, "depth"),
        .num_heads = (int)rd_fixture_attr(f, "num_heads"),
        .mlp_ratio = (float)rd_fixture_attr(f, "mlp_ratio"),
        .patch_size = (int)rd_fixture_attr(f, "patch_size"),
        .in_chans = (int)rd_fixture_attr(f, "in_chans"),
        .num_register_tokens = (int)rd_fixture_attr(f, "num_register_tokens"),
        .img_size = (int)rd_fixture_attr(f, "global_size"),
        .layerscale = (float)rd_fixture_attr_or(f, "layerscale", 1e-5),
        .drop_path_rate = rd_fixture_attr(f, "drop_path_rate"),
        .drop_path_uniform = 1,
        .qkv_bias = (int)rd_fixture_attr_or(f, "qkv_bias", 1),
        .proj_bias = 1,
        .ffn_bias = 1,
        .interpolate_offset = rd_fixture_attr(f, "interpolate_offset"),
        .ffn = strcmp(ffn, "swiglu") == 0 ? RD_VIT_FFN_SWIGLU : RD_VIT_FFN_MLP,
    };
    const int D = c->vit.embed_dim;
    c->dino =
        (rd_head_config){D, (int)rd_fixture_attr(f, "hidden"),
                         (int)rd_fixture_attr(f, "bottleneck"), (int)rd_fixture_attr(f, "K"), 3};
    c->ibot = (rd_head_config){D, (int)rd_fixture_attr(f, "ibot_hidden"),
                               (int)rd_fixture_attr(f, "ibot_bottleneck"),
                               (int)rd_fixture_attr(f, "ibot_K"), 3};
    c->separate = (int)rd_fixture_attr(f, "separate_ibot_head");
    c->step = (rd_step_config){
        .batch = (int)rd_fixture_attr(f, "batch_size"),
        .n_local = (int)rd_fixture_attr(f, "n_local"),
        .channels = (int)rd_fixture_attr_or(f, "channels", c->vit.in_chans),
        .global_size = c->vit.img_size,
        .local_size = (int)rd_fixture_attr(f, "local_size"),
        .max_masked =
            (int)rd_fixture_attr_or(f, "max_masked", rd_fixture_attr(f, "n_masked_patches")),
        .targets =
            strcmp(centering, "sinkhorn_knopp") == 0 ? RD_TARGETS_SINKHORN : RD_TARGETS_CENTERING,
        .sinkhorn_iterations = (int)rd_fixture_attr(f, "sinkhorn_iterations"),
        .center_momentum = rd_fixture_attr(f, "center_momentum"),
        .student_temp = rd_fixture_attr(f, "student_temp"),
        .dino_weight = rd_fixture_attr(f, "dino_loss_weight"),
        .ibot_weight = rd_fixture_attr(f, "ibot_loss_weight"),
        .koleo_weight = rd_fixture_attr(f, "koleo_weight"),
        .koleo_group = (int)rd_fixture_attr_or(f, "koleo_group", 0),
        .clip_grad = rd_fixture_attr(f, "clip_grad"),
        .layerwise_decay = rd_fixture_attr(f, "layerwise_decay"),
        .patch_embed_lr_mult = rd_fixture_attr(f, "patch_embed_lr_mult"),
        .beta1 = rd_fixture_attr(f, "beta1"),
        .beta2 = rd_fixture_attr(f, "beta2"),
        .adam_eps = rd_fixture_attr(f, "adam_eps"),
    };
}

int step_fixture_load(rd_test *t, hid_t f, const rd_param_set *set, const char *prefix,
                      float *dst) {
    for (int i = 0; i < set->count; i++) {
        const rd_param *p = &set->params[i];
        char path[256];
        snprintf(path, sizeof path, "%s/%s/%s", prefix, rd_module_name(p->module), p->name);
        size_t n = 0;
        float *v = rd_fixture_floats(f, path, &n);
        CHECK_MSG(v && n == p->numel, "%s: missing or %zu values instead of %zu", path, n,
                  p->numel);
        if (!v || n != p->numel) {
            free(v);
            return 0;
        }
        memcpy(dst + p->offset, v, n * sizeof(float));
        free(v);
    }
    return 1;
}

rd_status step_fixture_trainer(hid_t f, rd_trainer *tr, step_fixture_config *c, rd_error *err) {
    step_fixture_config_read(f, c);
    return rd_trainer_init(tr, &c->vit, &c->dino, c->separate ? &c->ibot : NULL, &c->step, err);
}
