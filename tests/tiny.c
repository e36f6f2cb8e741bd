/* The tiny DINOv2 configuration of the pretraining tests (tiny.h). */
#include "tiny.h"

static const char TINY_YAML[] = "student:\n"
                                "  arch: vit_custom\n"
                                "  embed_dim: 32\n"
                                "  depth: 2\n"
                                "  num_heads: 4\n"
                                "  patch_size: 8\n"
                                "  drop_path_rate: 0.2\n"
                                "  layerscale: 0.1\n"
                                "crops:\n"
                                "  global_crops_size: 32\n"
                                "  local_crops_size: 16\n"
                                "  local_crops_number: 2\n"
                                "dino:\n"
                                "  head_n_prototypes: 64\n"
                                "  head_bottleneck_dim: 16\n"
                                "  head_hidden_dim: 48\n"
                                "ibot:\n"
                                "  separate_head: true\n"
                                "  head_n_prototypes: 48\n"
                                "  head_bottleneck_dim: 16\n"
                                "  head_hidden_dim: 40\n"
                                "train:\n"
                                "  batch_size_per_gpu: 4\n"
                                "  centering: centering\n";

rd_status tiny_config(rd_config *cfg, const char *const *overrides, rd_error *err) {
    rd_status st = rd_config_init(cfg, err);
    if (!st) st = rd_config_load_string(cfg, TINY_YAML, "tiny.yaml", err);
    for (int i = 0; !st && overrides && overrides[i]; i++)
        st = rd_config_override(cfg, overrides[i], err);
    return st;
}

rd_status tiny_trainer(rd_trainer *tr, const rd_config *cfg, rd_error *err) {
    rd_vit_config vc;
    rd_step_config sc;
    rd_head_config dino, ibot;
    int separate;
    rd_status st = rd_vit_config_from(cfg, &vc, err);
    if (!st) st = rd_step_setup_from_config(cfg, &vc, &sc, &dino, &ibot, &separate, err);
    if (!st) st = rd_trainer_init(tr, &vc, &dino, separate ? &ibot : NULL, &sc, err);
    return st;
}
