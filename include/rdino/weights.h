/* Released DINOv2 / RAD-DINO weights: name maps, loading into rdino's parameter sets, export.
 *
 * Two name layouts hold the same numbers (rdino's own names are the second):
 *   RD_LAYOUT_HF        transformers' Dinov2Model / Dinov2WithRegistersModel state dict
 *                       (microsoft/rad-dino model.safetensors, facebook/dinov2-*):
 *                       embeddings.{cls_token, mask_token, register_tokens, position_embeddings,
 *                       patch_embeddings.projection.*}, encoder.layer.N.{norm1, norm2,
 *                       attention.attention.{query,key,value}, attention.output.dense,
 *                       layer_scale1.lambda1, layer_scale2.lambda1, mlp.fc1, mlp.fc2 |
 *                       mlp.weights_in, mlp.weights_out}, layernorm.*
 *   RD_LAYOUT_ORIGINAL  facebookresearch/dinov2 (timm-style) names, as rdino declares them
 *                       (rad-dino backbone_compatible.safetensors): cls_token, pos_embed,
 *                       mask_token, register_tokens, patch_embed.proj.*, blocks.N.{norm1,
 *                       attn.qkv, attn.proj, ls1.gamma, norm2, mlp.fc1, mlp.fc2 | mlp.w12,
 *                       mlp.w3, ls2.gamma}, norm.*; chunked blocks.C.N.* (block_chunks > 0)
 *                       are read as blocks.N.*
 * attn.qkv holds rows [query; key; value] (transformers' convert_dinov2_to_hf.py splits it so).
 * Either layout may carry one name prefix ("dinov2." in classification checkpoints, "backbone.",
 * "student.backbone.", ...): it is found from where cls_token sits.
 *
 * Loading rules (rd_weights_load_backbone / rd_weights_load_head):
 *   - every tensor under the prefix must map onto a tensor of the model being loaded, with the
 *     same shape: an unknown name, a tensor the model does not have (registers, LayerScale,
 *     biases, a block beyond its depth) or a shape mismatch is an error naming the file, the
 *     tensor and both shapes. Silently dropping a tensor would compute a different network.
 *   - tensors outside the prefix (a classifier, a head stored beside the backbone) are skipped
 *     with one warning giving their count and the first name.
 *   - a tensor of the model that the file lacks is an error, except mask_token (transformers'
 *     use_mask_token=False omits it; it only matters for masked training): zero, with a warning.
 *   - values must be finite (rd_safetensors_read); F16/BF16 files are converted to fp32.
 *   - a failed load leaves the parameter set partly written: do not use it.
 *
 * Position-embedding interpolation (what a grid other than the native one gets) is part of
 * what the weights mean: export records it in the safetensors __metadata__
 * (rdino.interpolate_offset, rdino.interpolate_antialias); a file without the record gets its
 * layout's convention (rd_weights_default_interpolation). Callers may override it
 * (rd_pos_interp_apply) before declaring the model. */
#ifndef RDINO_WEIGHTS_H
#define RDINO_WEIGHTS_H

#include "rdino/config.h"
#include "rdino/error.h"
#include "rdino/file.h"
#include "rdino/heads.h"
#include "rdino/params.h"
#include "rdino/safetensors.h"
#include "rdino/vit.h"

/* ---- position-embedding interpolation modes ---------------------------------------------- */

typedef enum {
    /* transformers >= 4.45 Dinov2Model: bicubic straight to (H/p, W/p); offset 0, no antialias */
    RD_POS_INTERP_HF = 0,
    /* transformers <= 4.44 and facebookresearch/dinov2's ViT-S/B/L/g: scale factor
     * (n + 0.1) / M; offset 0.1, no antialias */
    RD_POS_INTERP_LEGACY = 1,
    /* facebookresearch/dinov2's *_reg backbones and transformers' Dinov2WithRegistersModel:
     * size form, antialiased; offset 0, antialias */
    RD_POS_INTERP_DINOV2_REG = 2
} rd_pos_interp;

/* "hf", "legacy", "dinov2_reg". */
const char *rd_pos_interp_name(rd_pos_interp mode);
rd_status rd_pos_interp_parse(const char *name, rd_pos_interp *mode, rd_error *err);
/* Sets cfg->interpolate_offset and cfg->interpolate_antialias for mode. */
void rd_pos_interp_apply(rd_vit_config *cfg, rd_pos_interp mode);
/* The mode cfg's offset and antialias flag select, or -1 for a combination no mode names. */
int rd_pos_interp_of(const rd_vit_config *cfg);

/* ---- name layouts ------------------------------------------------------------------------ */

typedef enum { RD_LAYOUT_HF = 0, RD_LAYOUT_ORIGINAL = 1 } rd_weight_layout;

/* How a file names a backbone. */
typedef struct rd_weight_names {
    rd_weight_layout layout;
    char prefix[RD_PARAM_NAME_MAX]; /* "" or e.g. "dinov2." */
} rd_weight_names;

/* "hf" or "original". */
const char *rd_weight_layout_name(rd_weight_layout layout);
/* Finds the layout and prefix of the backbone in st from its cls_token. More than one
 * backbone (student and teacher) is an error listing them unless prefix (not NULL) picks one;
 * none is an error. */
rd_status rd_weights_detect(const rd_safetensors *st, const char *prefix, rd_weight_names *names,
                            rd_error *err);
/* transformers' name for rdino's backbone tensor rdino_name: the k-th of its parts (attn.qkv.*
 * has 3: query, key, value, each rows [k D, (k + 1) D); everything else 1). Returns 0 when
 * there is no k-th part. */
int rd_weights_hf_name(const char *rdino_name, int k, char *out, size_t n);

/* ---- model shape ------------------------------------------------------------------------- */

/* Reads a transformers config.json (Dinov2Config or Dinov2WithRegistersConfig schema; missing
 * keys take transformers' defaults) into a complete cfg, interpolation as transformers computes
 * it for that model type. Refuses what rdino cannot compute, naming the key: another
 * model_type, hidden_act other than "gelu" (exact erf; ignored with use_swiglu_ffn, which does
 * not use it), layer_norm_eps other than 1e-6, non-square image or patch sizes. Dropout
 * probabilities other than 0 are warned about (rdino has no dropout; inference is unchanged). */
rd_status rd_weights_read_hf_config(const char *path, rd_vit_config *cfg, rd_error *err);
/* Infers a complete cfg from the tensors' shapes (no config.json): D, depth, patch size,
 * channels, native size, registers, FFN kind and width, which biases and LayerScale exist;
 * num_heads = D / 64 (every released DINOv2 has 64-wide heads; an error when D is not a
 * multiple of 64: give a config.json). Interpolation as rd_weights_default_interpolation. */
rd_status rd_weights_infer_config(const rd_safetensors *st, const rd_weight_names *names,
                                  rd_vit_config *cfg, rd_error *err);
/* The interpolation the file records (rdino.interpolate_* metadata) or, without a record, its
 * convention: registers -> dinov2_reg, else hf names -> hf, original names -> legacy. Sets
 * cfg's interpolation fields only (cfg->num_register_tokens must already be set). */
rd_status rd_weights_default_interpolation(const rd_safetensors *st, const rd_weight_names *names,
                                           rd_vit_config *cfg, rd_error *err);

/* ---- loading ----------------------------------------------------------------------------- */

/* Copies the backbone tensors of st (named as names says) into set, declared by vit, following
 * the loading rules above. */
rd_status rd_weights_load_backbone(const rd_safetensors *st, const rd_weight_names *names,
                                   const rd_vit *vit, rd_param_set *set, rd_error *err);

/* A DINO/iBOT head file (DINOv2's DINOHead state dict: mlp.0/2/4.{weight,bias} or mlp.{weight,
 * bias} for one layer, last_layer.weight_g [K, 1] and last_layer.weight_v [K, bottleneck], or
 * torch's parametrization spelling last_layer.parametrizations.weight.original0 / original1 for
 * g / v), optionally under one prefix such as "dino_head.". prefix (NULL = find it from the
 * last layer) as in rd_weights_detect. */
rd_status rd_weights_head_prefix(const rd_safetensors *st, const char *prefix, char *out, size_t n,
                                 rd_error *err);
/* The head's shape from its tensors (in_dim, hidden_dim, bottleneck, prototypes, nlayers). */
rd_status rd_weights_head_config(const rd_safetensors *st, const char *prefix, rd_head_config *cfg,
                                 rd_error *err);
rd_status rd_weights_load_head(const rd_safetensors *st, const char *prefix, const rd_head *head,
                               rd_param_set *set, rd_error *err);

/* ---- snapshot folders -------------------------------------------------------------------- */

/* File names of a Hugging Face snapshot as microsoft/rad-dino ships it. */
#define RD_WEIGHTS_CONFIG        "config.json"
#define RD_WEIGHTS_HF_FILE       "model.safetensors"
#define RD_WEIGHTS_ORIGINAL_FILE "backbone_compatible.safetensors"
#define RD_WEIGHTS_HEAD_FILE     "dino_head.safetensors"

/* Released weights, ready to declare a model from and load:
 *
 *     rd_pretrained pre;
 *     if (rd_pretrained_open(&pre, "models/rad-dino", err)) return err->code;
 *     rd_vit_config cfg = pre.cfg;            // optionally rd_pos_interp_apply(&cfg, mode)
 *     rd_vit_declare(&vit, &cfg, &set, err);  rd_params_alloc(&set, 0, err);
 *     rd_pretrained_load_backbone(&pre, &vit, &set, err);
 *     rd_pretrained_close(&pre);
 *
 * path is a snapshot folder (config.json if present, else the shapes; model.safetensors, else
 * backbone_compatible.safetensors; dino_head.safetensors if present) or one .safetensors file
 * (no head; the config.json beside it if there is one, as in a snapshot, else the shapes). */
typedef struct rd_pretrained {
    char weights_path[RD_PATH_MAX]; /* the backbone file opened */
    char head_path[RD_PATH_MAX];    /* "" when there is no head file */
    rd_safetensors file;
    rd_weight_names names;
    rd_vit_config cfg;
    int cfg_from_json; /* 1: cfg came from config.json */
} rd_pretrained;

rd_status rd_pretrained_open(rd_pretrained *p, const char *path, rd_error *err);
rd_status rd_pretrained_load_backbone(const rd_pretrained *p, const rd_vit *vit, rd_param_set *set,
                                      rd_error *err);
/* The head file's shape; RD_ENOTFOUND when the snapshot has none. */
rd_status rd_pretrained_head_config(const rd_pretrained *p, rd_head_config *cfg, rd_error *err);
rd_status rd_pretrained_load_head(const rd_pretrained *p, const rd_head *head, rd_param_set *set,
                                  rd_error *err);
void rd_pretrained_close(rd_pretrained *p);

/* ---- export ------------------------------------------------------------------------------ */

enum { RD_EXPORT_ORIGINAL_NAMES = 1 }; /* also write backbone_compatible.safetensors */

/* Writes a snapshot folder (created if needed) that transformers' Dinov2Model.from_pretrained
 * (Dinov2WithRegistersModel with registers) loads: config.json in transformers 4.47.1's
 * Dinov2Config schema (what save_pretrained writes, keys sorted, 2-space indent) and
 * model.safetensors with transformers' names. transformers always has LayerScale and the
 * attention-output and MLP biases: a model without them is written with ones / zeros there,
 * which computes the same. With RD_EXPORT_ORIGINAL_NAMES also backbone_compatible.safetensors
 * (rdino's = DINOv2's names, exactly the declared tensors); with head (not NULL) also
 * dino_head.safetensors (DINOHead names, weight_g / weight_v). The interpolation mode is
 * recorded in every weight file's metadata. Each file is published atomically. */
rd_status rd_weights_export(const char *dir, const rd_vit *vit, const rd_param_set *set,
                            const rd_head *head, int flags, rd_error *err);
/* config.json alone. */
rd_status rd_weights_write_hf_config(const char *path, const rd_vit_config *cfg, rd_error *err);

#endif
