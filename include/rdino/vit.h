/* The DINOv2 Vision Transformer backbone, forward and backward on the CPU (DinoVisionTransformer
 * in dinov2/models/vision_transformer.py, with the Block of dinov2/layers/block.py).
 *
 * Typical use (one training step does three forwards: teacher on the global crops, student on
 * the masked global crops, student on the local crops; each has its own context):
 *
 *     rd_vit vit;  rd_vit_config cfg;
 *     rd_vit_config_from(config, &cfg, &err);          // student.*, crops.global_crops_size
 *     rd_vit_declare(&vit, &cfg, &student_params, &err); // before the heads declare theirs
 *     rd_params_alloc(&student_params, 1, &err);  rd_vit_init_params(&vit, &student_params, seed);
 *     rd_vit_context ctx;
 *     rd_vit_context_init(&ctx, &vit, 2 * B, 224, 224, RD_VIT_TRAIN, &err);
 *     rd_vit_forward(&ctx, &student_params, crops, 2 * B, 3, 224, 224, masks, &drop, &out, &err);
 *     ... heads and losses produce d_cls [b, D] and d_patch [b, n, D] ...
 *     rd_vit_backward(&ctx, &student_params, d_cls, d_patch, &err); // grads += into the set
 *
 * Token layout inside the network: [CLS, R registers, n patches] (T = 1 + R + n tokens per
 * image), patches in row-major grid order. Parameters keep DINOv2's state-dict names
 * ("cls_token", "blocks.3.attn.qkv.weight", ...) in module RD_MODULE_BACKBONE, declared in
 * DINOv2's own order. A context owns every activation buffer in one arena sized at init: no
 * allocation happens in forward or backward. */
#ifndef RDINO_VIT_H
#define RDINO_VIT_H

#include <stddef.h>
#include <stdint.h>

#include "rdino/arena.h"
#include "rdino/config.h"
#include "rdino/error.h"
#include "rdino/gemm_bf16.h"
#include "rdino/params.h"
#include "rdino/rng.h"

enum { RD_VIT_MAX_DEPTH = 64 };

typedef enum {
    RD_VIT_FFN_MLP = 0,   /* fc2(GELU(fc1(x))), hidden = mlp_ratio * D */
    RD_VIT_FFN_SWIGLU = 1 /* DINOv2 "swiglu"/"swiglufused": w3(silu(a1) * a2), [a1 a2] = w12(x) */
} rd_vit_ffn;

typedef struct rd_vit_config {
    int embed_dim;           /* D */
    int depth;               /* number of blocks */
    int num_heads;           /* head dim = D / num_heads */
    float mlp_ratio;         /* FFN hidden width = int(D * mlp_ratio) (before the SwiGLU rule) */
    int patch_size;          /* p */
    int in_chans;            /* channels of the patch-embedding weight (RAD-DINO: 3) */
    int num_register_tokens; /* R */
    int img_size;            /* native square size: pos_embed has (img_size / p)^2 patches */
    float layerscale;        /* LayerScale init value; 0 = no LayerScale (no gamma tensors) */
    double drop_path_rate;   /* stochastic depth rate q (double: keep = floor(b (1 - q))) */
    int drop_path_uniform;   /* 1: q in every block; 0: linspace(0, q, depth) */
    int qkv_bias, proj_bias, ffn_bias;
    double interpolate_offset; /* pos-embed resampling offset (0.1); 0 = size form */
    int interpolate_antialias; /* 1: antialiased bicubic (DINOv2 *_reg backbones) */
    rd_vit_ffn ffn;
    /* training contexts keep each block's input only and recompute the block's forward in
     * backward (one block's activations, reused): the same gradients for a sixth of the memory
     * and one more forward */
    int activation_checkpointing;
} rd_vit_config;

/* Sets D, depth, heads and mlp_ratio from a DINOv2 name: vit_tiny (192, 12, 3), vit_small
 * (384, 12, 6), vit_base (768, 12, 12), vit_large (1024, 24, 16), vit_giant2 (1536, 40, 24).
 * Leaves the other fields alone. */
rd_status rd_vit_config_arch(rd_vit_config *cfg, const char *arch, rd_error *err);
/* A complete config with DINOv2's defaults for arch, patch size p and native size img_size
 * (LayerScale 1e-5, biases on, no registers, offset 0.1, mlp FFN, no drop path, 3 channels). */
rd_status rd_vit_config_default(rd_vit_config *cfg, const char *arch, int patch_size, int img_size,
                                rd_error *err);
/* From the run configuration: student.{arch, patch_size, drop_path_rate, drop_path_uniform,
 * layerscale, ffn_layer, qkv_bias, proj_bias, ffn_bias, num_register_tokens, interpolate_offset,
 * interpolate_antialias, in_chans, img_size, activation_checkpointing, and for vit_custom
 * embed_dim, depth,
 * num_heads, mlp_ratio}. The position embedding's native size is student.img_size when set, else
 * crops.global_crops_size (DINOv2's rule): released weights keep their native grid (dinov2-base:
 * 37 x 37 for 518 px) this way while training on other crop sizes, and checkpoints of such runs
 * read back. Validates the combination. */
rd_status rd_vit_config_from(const rd_config *config, rd_vit_config *cfg, rd_error *err);
/* Checks divisibility and ranges; the message names the offending field. */
rd_status rd_vit_config_check(const rd_vit_config *cfg, rd_error *err);

/* Indices of one block's tensors in the parameter set (-1 = absent: bias off, no LayerScale). */
typedef struct rd_vit_block_params {
    int norm1_weight, norm1_bias;
    int qkv_weight, qkv_bias;   /* [3D, D], [3D] */
    int proj_weight, proj_bias; /* [D, D], [D] */
    int ls1_gamma;              /* [D] */
    int norm2_weight, norm2_bias;
    int fc1_weight, fc1_bias; /* mlp: [hidden, D] "mlp.fc1"; swiglu: [2h, D] "mlp.w12" */
    int fc2_weight, fc2_bias; /* mlp: [D, hidden] "mlp.fc2"; swiglu: [D, h] "mlp.w3" */
    int ls2_gamma;
} rd_vit_block_params;

/* A backbone: its configuration and where its tensors live in a parameter set. The indices
 * are the same in every set declared the same way (student and teacher). Forward and backward
 * bind them to named pointers into the set they are given (vit.c's vit_view), at every call. */
typedef struct rd_vit {
    rd_vit_config cfg;
    int hidden;          /* FFN hidden width (SwiGLU: h, the width after the gate) */
    int grid;            /* native grid side M = img_size / p */
    int cls_token;       /* [1, 1, D] */
    int pos_embed;       /* [1, 1 + M*M, D] */
    int register_tokens; /* [1, R, D] or -1 */
    int mask_token;      /* [1, D] */
    int patch_weight;    /* [D, in_chans, p, p] */
    int patch_bias;      /* [D] */
    rd_vit_block_params blocks[RD_VIT_MAX_DEPTH];
    int norm_weight, norm_bias; /* [D] */
} rd_vit;

/* Declares the backbone's tensors in set (module RD_MODULE_BACKBONE), in DINOv2's
 * named_parameters order: cls_token, pos_embed, register_tokens, mask_token,
 * patch_embed.proj.{weight,bias}, blocks.i.*, norm.{weight,bias}. */
rd_status rd_vit_declare(rd_vit *vit, const rd_vit_config *cfg, rd_param_set *set, rd_error *err);
/* DINOv2 initialisation (DinoVisionTransformer.init_weights, init_weights_vit_timm) from the
 * counter-based RNG: stream (seed, RD_RNG_INIT, index = parameter number). Linear weights
 * trunc-normal(0.02), biases 0, pos_embed trunc-normal(0.02), cls/register tokens N(0, 1e-6^2),
 * mask_token 0, LayerNorm (1, 0), gamma = layerscale, patch embedding PyTorch's Conv2d default
 * U(+-1/sqrt(C p^2)). */
void rd_vit_init_params(const rd_vit *vit, rd_param_set *set, uint64_t seed);
/* Number of backbone parameters (elements). */
size_t rd_vit_param_count(const rd_vit *vit, const rd_param_set *set);

/* Stochastic depth as DINOv2 trains it (drop_add_residual_stochastic_depth,
 * dinov2/layers/block.py; the paper's "Efficient stochastic depth"): for block i and branch br (0
 * attention, 1 FFN) the samples index[(2 i + br) * batch + 0 .. count[2 i + br] - 1] (distinct, any
 * order) take the branch, rescaled by batch / count; the others skip it entirely. Subsets are
 * inputs so that the trainer draws them from the counter-based RNG and tests inject PyTorch's. */
typedef struct rd_vit_drop_path {
    const int *count; /* [depth * 2] */
    const int *index; /* [depth * 2 * batch] */
} rd_vit_drop_path;

/* Drop rate of block i: q (uniform) or torch.linspace(0, q, depth)[i] (computed in fp32). */
double rd_vit_block_drop_rate(const rd_vit_config *cfg, int block);
/* Samples kept by a branch of a batch of b: max(floor(b (1 - rate)), 1), in double. */
int rd_vit_drop_path_keep(double rate, int b);
/* Draws every block's subsets for a batch of b (ascending indices; count = b where the rate is
 * 0). count [depth * 2], index [depth * 2 * b] are the caller's; rng supplies the permutations. */
void rd_vit_drop_path_draw(const rd_vit_config *cfg, int b, rd_rng *rng, int *count, int *index);

typedef enum {
    RD_VIT_INFER = 0, /* forward only (teacher, embedding): one block's scratch, reused */
    RD_VIT_TRAIN = 1  /* keeps every activation backward needs (or, with activation
                         checkpointing, each block's input) */
} rd_vit_mode;

/* Forward outputs (final LayerNorm applied), contiguous, owned by the context and valid until
 * its next forward. */
typedef struct rd_vit_output {
    int batch, n_patches, grid_h, grid_w;
    const float *cls;   /* [b, D] */
    const float *reg;   /* [b, R, D], NULL when R = 0 */
    const float *patch; /* [b, n, D] */
} rd_vit_output;

/* Where forward and backward spend their time (rd_vit_context_profile). */
typedef enum {
    RD_VIT_TIME_GEMM,       /* qkv, proj, fc1/w12, fc2/w3 linears */
    RD_VIT_TIME_ATTENTION,  /* q k^T, softmax, P v per head */
    RD_VIT_TIME_LAYERNORM,  /* block and final norms */
    RD_VIT_TIME_ACTIVATION, /* GELU or SwiGLU gate */
    RD_VIT_TIME_RESIDUAL,   /* LayerScale residual, drop-path gather/scatter */
    RD_VIT_TIME_EMBED,      /* patch embedding, pos-embed resampling, token assembly */
    RD_VIT_TIME_COUNT
} rd_vit_time;

/* bf16 products for the block linears (docs/BF16.md): copies of the qkv, proj, fc1/w12 and
 * fc2/w3 weights of one parameter set, rounded to bf16 and packed (gemm_bf16.h), and the
 * products' per-thread scratch. Forward: out = bf16(x) bf16(W)^T; with training copies also
 * backward: dx = bf16(dy) bf16(W), dW += bf16(dy)^T bf16(x), fp32 sums and fp32 gradients.
 * The attention's products run in bf16 too in inference contexts (rd_attention_forward_bf16;
 * training keeps them fp32). Everything else stays fp32: the patch embedding, LayerNorms, the
 * softmax, GELU / SwiGLU, LayerScale and the residual stream. 2 bytes
 * per block weight per copy (162 MiB for ViT-B/14; twice that with the backward copy). */
enum { RD_VIT_QKV, RD_VIT_PROJ, RD_VIT_FC1, RD_VIT_FC2, RD_VIT_LINEARS };
typedef struct rd_vit_bf16 {
    rd_bf16_weight linear[RD_VIT_MAX_DEPTH][RD_VIT_LINEARS];
    int depth, threads, training; /* training: backward copies too */
    rd_bf16_path path;            /* the path every copy takes (rd_bf16_select_path at init) */
    const float *data;            /* the parameters the copies were made from (set->data) */
    void *buffer;                 /* the packed copies, NULL on the fp32 path */
    size_t bytes;                 /* of buffer */
    void *scratch;                /* threads * rd_bf16_scratch_bytes() */
} rd_vit_bf16;

/* Packs set's block linears (training = 1: the backward copies too) on the path
 * rd_bf16_select_path picks now (RDINO_BF16 or rd_bf16_set_mode; on the fp32 path nothing is
 * copied and forward and backward stay fp32 bit for bit). Scratch for omp_get_max_threads()
 * threads. Errors: out of memory, a bad RDINO_BF16. */
rd_status rd_vit_bf16_init(rd_vit_bf16 *w, const rd_vit *vit, const rd_param_set *set, int training,
                           rd_error *err);
/* Bytes rd_vit_bf16_init allocates on a bf16 path (copies and scratch, omp_get_max_threads()
 * threads); nothing on the fp32 path. */
size_t rd_vit_bf16_bytes(const rd_vit *vit, int training);
/* Re-packs the copies from the set's current parameters (after they changed in place: an
 * optimiser step, the EMA, a checkpoint read). No-op on the fp32 path. */
void rd_vit_bf16_refresh(rd_vit_bf16 *w);
void rd_vit_bf16_free(rd_vit_bf16 *w);

/* Activations and scratch of one forward/backward pair. Fields are private except seconds. */
typedef struct rd_vit_context {
    const rd_vit *vit;
    rd_vit_mode mode;
    int max_batch, max_patches, max_tokens, max_grid, threads;
    rd_arena arena;
    void *layout; /* buffer map inside the arena (private) */
    /* state of the last forward */
    int batch, channels, height, width, grid_h, grid_w, n_patches, tokens;
    int has_mask, has_drop_path, forward_done;
    float *trace; /* optional: copies of the token stream, see rd_vit_context_trace */
    int profile, phase;
    double seconds[2][RD_VIT_TIME_COUNT];   /* [forward, backward][category], when profiling */
    void (*grad_hook)(void *arg, int part); /* see rd_vit_context_grad_hook */
    void *grad_hook_arg;
    const rd_vit_bf16 *bf16; /* see rd_vit_context_bf16 */
} rd_vit_context;

/* Bytes of the arena a context for up to max_batch images of height x width needs. */
size_t rd_vit_context_bytes(const rd_vit *vit, int max_batch, int height, int width,
                            rd_vit_mode mode);
/* Allocates the arena once (reported with rd_info). The context accepts any batch up to
 * max_batch and any image size whose patch count is at most that of height x width and whose
 * grid sides are at most max(height, width) / p; it may not run with more OpenMP threads than
 * omp_get_max_threads() had at init (per-thread scratch). */
rd_status rd_vit_context_init(rd_vit_context *ctx, const rd_vit *vit, int max_batch, int height,
                              int width, rd_vit_mode mode, rd_error *err);
void rd_vit_context_free(rd_vit_context *ctx);
/* Test hook: when set, forward copies the token stream [b, T, D] after the embedding and after
 * each block into trace[(0 .. depth) * b * T * D] (the caller sizes it). NULL turns it off. */
void rd_vit_context_trace(rd_vit_context *ctx, float *trace);

/* Backward calls fn(arg, part) as soon as it has added its gradients of a part of the network:
 * part = depth for the final norm, then i = depth-1 .. 0 for block i, then -1 for the
 * embeddings (cls/register/mask tokens, pos_embed, patch embedding). A data-parallel trainer
 * starts reducing those gradients while backward goes on. fn NULL turns it off. */
void rd_vit_context_grad_hook(rd_vit_context *ctx, void (*fn)(void *arg, int part), void *arg);

/* Forwards (and backwards) of ctx compute the block linears from w's bf16 copies (NULL: fp32
 * again). w must outlive that use and be sized for at least the context's threads; forward
 * refuses a parameter set other than the one w was packed from. A training context needs
 * training copies (RD_EINVAL otherwise). */
rd_status rd_vit_context_bf16(rd_vit_context *ctx, const rd_vit_bf16 *w, rd_error *err);

/* Starts (on = 1, zeroing the totals) or stops accumulating per-category wall time of forward
 * and backward into ctx->seconds (a clock read around each layer call). */
void rd_vit_context_profile(rd_vit_context *ctx, int on);
const char *rd_vit_time_name(rd_vit_time category);

/* images [b, c, height, width] with c = in_chans, or c = 1 for a 3-channel model (a grey image
 * replicated to 3 channels, computed with the channel-summed weight). Patches cover the
 * top-left (height / p) x (width / p) grid like PyTorch's strided Conv2d.
 * mask [b, n] (1 = replace the patch embedding by mask_token; NULL = none).
 * drop_path: NULL = none (teacher, evaluation); a RD_VIT_INFER context refuses it.
 * Masks and subsets are copied; images need not outlive the call. */
rd_status rd_vit_forward(rd_vit_context *ctx, const rd_param_set *params, const float *images,
                         int b, int c, int height, int width, const uint8_t *mask,
                         const rd_vit_drop_path *drop_path, rd_vit_output *out, rd_error *err);
/* Backward of the last forward of a RD_VIT_TRAIN context (params must be the set that forward
 * used), from the gradients of the outputs: d_cls [b, D], d_patch [b, n, D] (either may be
 * NULL = zero; registers feed no loss). Gradients ACCUMULATE (+=) into params->grad (the global
 * and local crops' contexts add into the same set); the caller zeroes them once per step. */
rd_status rd_vit_backward(rd_vit_context *ctx, rd_param_set *params, const float *d_cls,
                          const float *d_patch, rd_error *err);

/* The positional embedding [1 + gh*gw, D] added to an image of height x width pixels
 * (gh = height / p, gw = width / p; DinoVisionTransformer.interpolate_pos_encoding): pos_embed
 * itself at the native square size, else its patch part resampled (bicubic, antialiased when
 * cfg.interpolate_antialias: a mode of rdino/weights.h). scratch holds (gh + gw) * M + gh * M * D
 * floats. Exposed for tests and weight export. */
void rd_vit_pos_embed(const rd_vit *vit, const rd_param_set *params, int height, int width,
                      float *out, float *scratch);

#endif
