/* The DINOv2 ViT backbone: parameters, activation arena, forward and backward (vit.h). */
#include "rdino/vit.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdino/log.h"
#include "rdino/nn.h"

/* ---- configuration ----------------------------------------------------------------------- */

static const struct {
    const char *name;
    int dim, depth, heads;
} ARCHS[] = {
    {"vit_tiny", 192, 12, 3},    {"vit_small", 384, 12, 6},    {"vit_base", 768, 12, 12},
    {"vit_large", 1024, 24, 16}, {"vit_giant2", 1536, 40, 24},
};

rd_status rd_vit_config_arch(rd_vit_config *cfg, const char *arch, rd_error *err) {
    for (size_t i = 0; i < sizeof ARCHS / sizeof ARCHS[0]; i++)
        if (strcmp(arch, ARCHS[i].name) == 0) {
            cfg->embed_dim = ARCHS[i].dim;
            cfg->depth = ARCHS[i].depth;
            cfg->num_heads = ARCHS[i].heads;
            cfg->mlp_ratio = 4.0f;
            return RD_OK;
        }
    return rd_fail(err, RD_EINVAL,
                   "unknown ViT architecture '%s' (vit_tiny, vit_small, vit_base, vit_large, "
                   "vit_giant2; vit_custom takes student.embed_dim/depth/num_heads)",
                   arch);
}

rd_status rd_vit_config_default(rd_vit_config *cfg, const char *arch, int patch_size, int img_size,
                                rd_error *err) {
    memset(cfg, 0, sizeof *cfg);
    cfg->patch_size = patch_size;
    cfg->in_chans = 3;
    cfg->img_size = img_size;
    cfg->layerscale = 1e-5f;
    cfg->drop_path_uniform = 1;
    cfg->qkv_bias = cfg->proj_bias = cfg->ffn_bias = 1;
    cfg->interpolate_offset = 0.1;
    cfg->ffn = RD_VIT_FFN_MLP;
    rd_status st = rd_vit_config_arch(cfg, arch, err);
    return st ? st : rd_vit_config_check(cfg, err);
}

rd_status rd_vit_config_from(const rd_config *config, rd_vit_config *cfg, rd_error *err) {
    const char *arch = rd_cfg_str(config, "student.arch");
    memset(cfg, 0, sizeof *cfg);
    if (strcmp(arch, "vit_custom") == 0) {
        cfg->embed_dim = (int)rd_cfg_int(config, "student.embed_dim");
        cfg->depth = (int)rd_cfg_int(config, "student.depth");
        cfg->num_heads = (int)rd_cfg_int(config, "student.num_heads");
        cfg->mlp_ratio = (float)rd_cfg_float(config, "student.mlp_ratio");
    } else {
        rd_status st = rd_vit_config_arch(cfg, arch, err);
        if (st) return rd_wrap(err, "student.arch");
    }
    cfg->patch_size = (int)rd_cfg_int(config, "student.patch_size");
    cfg->in_chans = (int)rd_cfg_int(config, "student.in_chans");
    cfg->num_register_tokens = (int)rd_cfg_int(config, "student.num_register_tokens");
    int64_t native = rd_cfg_int(config, "student.img_size");
    cfg->img_size = (int)(native > 0 ? native : rd_cfg_int(config, "crops.global_crops_size"));
    cfg->layerscale = (float)rd_cfg_float(config, "student.layerscale");
    cfg->drop_path_rate = rd_cfg_float(config, "student.drop_path_rate");
    cfg->drop_path_uniform = rd_cfg_bool(config, "student.drop_path_uniform");
    cfg->qkv_bias = rd_cfg_bool(config, "student.qkv_bias");
    cfg->proj_bias = rd_cfg_bool(config, "student.proj_bias");
    cfg->ffn_bias = rd_cfg_bool(config, "student.ffn_bias");
    cfg->interpolate_offset = rd_cfg_float(config, "student.interpolate_offset");
    cfg->interpolate_antialias = rd_cfg_bool(config, "student.interpolate_antialias");
    const char *ffn = rd_cfg_str(config, "student.ffn_layer");
    cfg->ffn = strcmp(ffn, "mlp") == 0 ? RD_VIT_FFN_MLP : RD_VIT_FFN_SWIGLU;
    cfg->activation_checkpointing = rd_cfg_bool(config, "student.activation_checkpointing");
    return rd_vit_config_check(cfg, err);
}

rd_status rd_vit_config_check(const rd_vit_config *c, rd_error *err) {
    if (c->embed_dim < 1 || c->num_heads < 1 || c->embed_dim % c->num_heads != 0)
        return rd_fail(err, RD_EINVAL,
                       "ViT: embed_dim %d must be a positive multiple of num_heads %d",
                       c->embed_dim, c->num_heads);
    if (c->depth < 1 || c->depth > RD_VIT_MAX_DEPTH)
        return rd_fail(err, RD_EINVAL, "ViT: depth %d outside 1..%d", c->depth, RD_VIT_MAX_DEPTH);
    if (c->patch_size < 1 || c->img_size < c->patch_size)
        return rd_fail(err, RD_EINVAL, "ViT: patch_size %d must be in 1..img_size (%d)",
                       c->patch_size, c->img_size);
    if (c->in_chans < 1 || c->num_register_tokens < 0)
        return rd_fail(err, RD_EINVAL, "ViT: in_chans %d must be >= 1, registers %d >= 0",
                       c->in_chans, c->num_register_tokens);
    if (!(c->mlp_ratio > 0) || (int)(c->embed_dim * c->mlp_ratio) < 1)
        return rd_fail(err, RD_EINVAL, "ViT: mlp_ratio %g gives no FFN width", c->mlp_ratio);
    if (!(c->drop_path_rate >= 0 && c->drop_path_rate < 1))
        return rd_fail(err, RD_EINVAL, "ViT: drop_path_rate %g outside [0, 1)", c->drop_path_rate);
    /* the scale-factor form needs floor(M * (g + offset) / M) == g */
    if (!(c->interpolate_offset >= 0 && c->interpolate_offset < 1))
        return rd_fail(err, RD_EINVAL, "ViT: interpolate_offset %g outside [0, 1)",
                       c->interpolate_offset);
    if (!(c->layerscale >= 0))
        return rd_fail(err, RD_EINVAL, "ViT: layerscale %g must be >= 0", c->layerscale);
    return RD_OK;
}

/* ---- parameters -------------------------------------------------------------------------- */

static int ffn_hidden(const rd_vit_config *c) {
    int hidden = (int)(c->embed_dim * c->mlp_ratio);
    if (c->ffn == RD_VIT_FFN_SWIGLU) hidden = ((int)(hidden * 2.0 / 3.0) + 7) / 8 * 8;
    return hidden;
}

/* Width of the first FFN linear: hidden (mlp) or 2 * hidden (SwiGLU's w12). */
static int ffn_width(const rd_vit *vit) {
    return vit->cfg.ffn == RD_VIT_FFN_SWIGLU ? 2 * vit->hidden : vit->hidden;
}

typedef struct declarer {
    rd_param_set *set;
    rd_error *err;
    int failed;
} declarer;

static int declare(declarer *d, int present, const char *name, int ndim, int64_t s0, int64_t s1,
                   int64_t s2, int64_t s3) {
    if (!present || d->failed) return -1;
    int64_t shape[4] = {s0, s1, s2, s3};
    int idx = rd_params_add(d->set, RD_MODULE_BACKBONE, name, ndim, shape, d->err);
    if (idx < 0) d->failed = 1;
    return idx;
}

rd_status rd_vit_declare(rd_vit *vit, const rd_vit_config *cfg, rd_param_set *set, rd_error *err) {
    rd_status st = rd_vit_config_check(cfg, err);
    if (st) return st;
    memset(vit, 0, sizeof *vit);
    vit->cfg = *cfg;
    vit->hidden = ffn_hidden(cfg);
    vit->grid = cfg->img_size / cfg->patch_size;
    int64_t D = cfg->embed_dim, M = vit->grid, p = cfg->patch_size, F = ffn_width(vit);
    int ls = cfg->layerscale > 0, swiglu = cfg->ffn == RD_VIT_FFN_SWIGLU;
    declarer d = {set, err, 0};
    vit->cls_token = declare(&d, 1, "cls_token", 3, 1, 1, D, 0);
    vit->pos_embed = declare(&d, 1, "pos_embed", 3, 1, 1 + M * M, D, 0);
    vit->register_tokens = declare(&d, cfg->num_register_tokens > 0, "register_tokens", 3, 1,
                                   cfg->num_register_tokens, D, 0);
    vit->mask_token = declare(&d, 1, "mask_token", 2, 1, D, 0, 0);
    vit->patch_weight = declare(&d, 1, "patch_embed.proj.weight", 4, D, cfg->in_chans, p, p);
    vit->patch_bias = declare(&d, 1, "patch_embed.proj.bias", 1, D, 0, 0, 0);
    const char *fc1 = swiglu ? "w12" : "fc1", *fc2 = swiglu ? "w3" : "fc2";
    for (int i = 0; i < cfg->depth; i++) {
        rd_vit_block_params *b = &vit->blocks[i];
        char name[RD_PARAM_NAME_MAX];
#define NAME(fmt, ...) (snprintf(name, sizeof name, "blocks.%d." fmt, i, __VA_ARGS__), name)
        b->norm1_weight = declare(&d, 1, NAME("norm1.%s", "weight"), 1, D, 0, 0, 0);
        b->norm1_bias = declare(&d, 1, NAME("norm1.%s", "bias"), 1, D, 0, 0, 0);
        b->qkv_weight = declare(&d, 1, NAME("attn.qkv.%s", "weight"), 2, 3 * D, D, 0, 0);
        b->qkv_bias = declare(&d, cfg->qkv_bias, NAME("attn.qkv.%s", "bias"), 1, 3 * D, 0, 0, 0);
        b->proj_weight = declare(&d, 1, NAME("attn.proj.%s", "weight"), 2, D, D, 0, 0);
        b->proj_bias = declare(&d, cfg->proj_bias, NAME("attn.proj.%s", "bias"), 1, D, 0, 0, 0);
        b->ls1_gamma = declare(&d, ls, NAME("ls1.%s", "gamma"), 1, D, 0, 0, 0);
        b->norm2_weight = declare(&d, 1, NAME("norm2.%s", "weight"), 1, D, 0, 0, 0);
        b->norm2_bias = declare(&d, 1, NAME("norm2.%s", "bias"), 1, D, 0, 0, 0);
        b->fc1_weight = declare(&d, 1, NAME("mlp.%s.weight", fc1), 2, F, D, 0, 0);
        b->fc1_bias = declare(&d, cfg->ffn_bias, NAME("mlp.%s.bias", fc1), 1, F, 0, 0, 0);
        b->fc2_weight = declare(&d, 1, NAME("mlp.%s.weight", fc2), 2, D, vit->hidden, 0, 0);
        b->fc2_bias = declare(&d, cfg->ffn_bias, NAME("mlp.%s.bias", fc2), 1, D, 0, 0, 0);
        b->ls2_gamma = declare(&d, ls, NAME("ls2.%s", "gamma"), 1, D, 0, 0, 0);
#undef NAME
    }
    vit->norm_weight = declare(&d, 1, "norm.weight", 1, D, 0, 0, 0);
    vit->norm_bias = declare(&d, 1, "norm.bias", 1, D, 0, 0, 0);
    return d.failed ? rd_wrap(err, "declaring the ViT backbone") : RD_OK;
}

size_t rd_vit_param_count(const rd_vit *vit, const rd_param_set *set) {
    (void)vit;
    size_t n = 0;
    for (int i = 0; i < set->count; i++)
        if (set->params[i].module == RD_MODULE_BACKBONE) n += set->params[i].numel;
    return n;
}

/* Normal(0, std^2) truncated at absolute +-2 (DINOv2's trunc_normal_), by rejection. */
static float trunc_normal(rd_rng *r, double std) {
    for (;;) {
        double v = std * rd_rng_normal(r);
        if (v >= -2.0 && v <= 2.0) return (float)v;
    }
}

typedef enum { FILL_ZERO, FILL_ONE, FILL_CONST, FILL_NORMAL, FILL_TRUNC, FILL_UNIFORM } fill_kind;

static void fill(rd_param_set *set, int idx, uint64_t seed, fill_kind kind, double a) {
    if (idx < 0) return;
    float *x = rd_param_data(set, idx);
    size_t n = set->params[idx].numel;
    rd_rng r;
    rd_rng_init(&r, seed, RD_RNG_INIT, 0, (uint64_t)idx, 0);
    for (size_t i = 0; i < n; i++) switch (kind) {
        case FILL_ZERO:
            x[i] = 0.0f;
            break;
        case FILL_ONE:
            x[i] = 1.0f;
            break;
        case FILL_CONST:
            x[i] = (float)a;
            break;
        case FILL_NORMAL:
            x[i] = (float)(a * rd_rng_normal(&r));
            break;
        case FILL_TRUNC:
            x[i] = trunc_normal(&r, a);
            break;
        case FILL_UNIFORM:
            x[i] = (float)rd_rng_range(&r, -a, a);
            break;
        }
}

void rd_vit_init_params(const rd_vit *vit, rd_param_set *set, uint64_t seed) {
    const rd_vit_config *c = &vit->cfg;
    double conv_bound = 1.0 / sqrt((double)c->in_chans * c->patch_size * c->patch_size);
    fill(set, vit->cls_token, seed, FILL_NORMAL, 1e-6);
    fill(set, vit->pos_embed, seed, FILL_TRUNC, 0.02);
    fill(set, vit->register_tokens, seed, FILL_NORMAL, 1e-6);
    fill(set, vit->mask_token, seed, FILL_ZERO, 0);
    fill(set, vit->patch_weight, seed, FILL_UNIFORM, conv_bound);
    fill(set, vit->patch_bias, seed, FILL_UNIFORM, conv_bound);
    for (int i = 0; i < c->depth; i++) {
        const rd_vit_block_params *b = &vit->blocks[i];
        const int weights[] = {b->qkv_weight, b->proj_weight, b->fc1_weight, b->fc2_weight};
        const int biases[] = {b->qkv_bias, b->proj_bias,  b->fc1_bias,
                              b->fc2_bias, b->norm1_bias, b->norm2_bias};
        for (int k = 0; k < 4; k++) fill(set, weights[k], seed, FILL_TRUNC, 0.02);
        for (int k = 0; k < 6; k++) fill(set, biases[k], seed, FILL_ZERO, 0);
        fill(set, b->norm1_weight, seed, FILL_ONE, 0);
        fill(set, b->norm2_weight, seed, FILL_ONE, 0);
        fill(set, b->ls1_gamma, seed, FILL_CONST, c->layerscale);
        fill(set, b->ls2_gamma, seed, FILL_CONST, c->layerscale);
    }
    fill(set, vit->norm_weight, seed, FILL_ONE, 0);
    fill(set, vit->norm_bias, seed, FILL_ZERO, 0);
}

/* ---- stochastic depth --------------------------------------------------------------------- */

double rd_vit_block_drop_rate(const rd_vit_config *cfg, int block) {
    if (cfg->drop_path_uniform) return cfg->drop_path_rate; /* DINOv2: [rate] * depth */
    int n = cfg->depth;
    if (n == 1) return 0.0;
    /* torch.linspace(0, q, n) in fp32: the first half counts up from 0, the rest down from q */
    float q = (float)cfg->drop_path_rate, step = q / (float)(n - 1);
    return block < n / 2 ? step * (float)block : q - step * (float)(n - 1 - block);
}

int rd_vit_drop_path_keep(double rate, int b) {
    int keep = (int)floor((double)b * (1.0 - rate));
    return keep < 1 ? 1 : keep > b ? b : keep;
}

static int compare_int(const void *a, const void *b) {
    return (*(const int *)a > *(const int *)b) - (*(const int *)a < *(const int *)b);
}

void rd_vit_drop_path_draw(const rd_vit_config *cfg, int b, rd_rng *rng, int *count, int *index) {
    for (int i = 0; i < cfg->depth; i++)
        for (int br = 0; br < 2; br++) {
            int *idx = index + (size_t)(2 * i + br) * b;
            double q = rd_vit_block_drop_rate(cfg, i);
            int keep = q > 0 ? rd_vit_drop_path_keep(q, b) : b;
            rd_rng_permutation(rng, idx, b);
            qsort(idx, (size_t)keep, sizeof *idx, compare_int);
            count[2 * i + br] = keep;
        }
}

/* ---- activation arena -------------------------------------------------------------------- */

/* What one residual branch (attention or FFN) of one block keeps for backward, over
 * rows = keep * T tokens. The LayerNorm output and the FFN activation are recomputed in
 * backward instead (cheap elementwise work for a third less memory). */
typedef struct branch_acts {
    float *xin;         /* [rows, D] branch input: the kept samples of the residual stream */
    float *mean, *rstd; /* [rows] */
    float *h;           /* attention: qkv [rows, 3D]; FFN: first linear [rows, F] */
    float *lse;         /* attention: log-sum-exp of each score row [keep, H, 2, T] */
    float *heads;       /* attention: heads output [rows, D] */
    float *y;           /* [rows, D] branch output before LayerScale */
} branch_acts;

typedef struct vit_layout {
    float *patches;               /* [b * n, c * p * p] */
    float *fold;                  /* [D, p * p] channel-summed patch weight (grey input) */
    float *embed;                 /* [b * n, D] patch embeddings */
    float *pos;                   /* [1 + n, D] positional embedding at this grid */
    float *interp;                /* resampling weights and temporary */
    float *x;                     /* [b, T, D] residual stream */
    float *norm_mean, *norm_rstd; /* [b * T] final LayerNorm */
    float *cls, *reg, *patch;     /* outputs */
    float *att_scratch;           /* per thread, rd_attention_bf16_scratch_floats(T, hd) */
    float *ln;                    /* [rows, D] LayerNorm output of the current branch */
    float *act;                   /* [rows, hidden] GELU / gate output of the current FFN */
    branch_acts branch[2 * RD_VIT_MAX_DEPTH]; /* train: one per branch; else 2, reused */
    float *block_in[RD_VIT_MAX_DEPTH];        /* checkpointing: [b, T, D] input of each block */
    /* backward scratch, shared by all blocks */
    float *dx;                /* [b, T, D] gradient of the residual stream */
    float *dy, *dln, *dxin;   /* [rows, D] */
    float *dh;                /* [rows, max(3D, F)] */
    float *da;                /* [rows, max(D, hidden)] */
    float *dembed;            /* [b * n, D] */
    float *dpos;              /* [1 + n, D] */
    float *dtmp;              /* resampling temporary */
    uint8_t *mask;            /* [b * n] copy of the last mask */
    int *dp_count, *dp_index; /* copies of the last drop-path subsets */
} vit_layout;

typedef struct shape {
    int b, n, T, gmax, threads, c_max;
} shape;

static float *floats(rd_arena *a, size_t n) {
    return rd_arena_floats(a, n ? n : 1);
}

/* Carves every buffer out of the arena; with a measuring arena it only counts. */
static void layout(vit_layout *L, rd_arena *a, const rd_vit *vit, const shape *s,
                   rd_vit_mode mode) {
    const rd_vit_config *c = &vit->cfg;
    size_t D = (size_t)c->embed_dim, p = (size_t)c->patch_size, M = (size_t)vit->grid;
    size_t bn = (size_t)s->b * s->n, bT = (size_t)s->b * s->T, rows = bT;
    size_t F = (size_t)ffn_width(vit), hid = (size_t)vit->hidden;
    size_t H = (size_t)c->num_heads, R = (size_t)c->num_register_tokens;
    int train = mode == RD_VIT_TRAIN, recompute = train && c->activation_checkpointing;
    L->patches = floats(a, bn * (size_t)s->c_max * p * p);
    L->fold = floats(a, D * p * p);
    L->embed = floats(a, bn * D);
    L->pos = floats(a, (1 + (size_t)s->n) * D);
    L->interp = floats(a, 2 * (size_t)s->gmax * M + (size_t)s->gmax * M * D);
    L->x = floats(a, bT * D);
    L->norm_mean = floats(a, bT);
    L->norm_rstd = floats(a, bT);
    L->cls = floats(a, (size_t)s->b * D);
    L->reg = floats(a, (size_t)s->b * R * D);
    L->patch = floats(a, bn * D);
    /* the context may run the bf16 attention (rd_vit_context_bf16), whose scratch is larger */
    L->att_scratch =
        floats(a, (size_t)s->threads * rd_attention_bf16_scratch_floats(s->T, (int)(D / H)));
    L->ln = floats(a, rows * D);
    L->act = floats(a, rows * hid);
    int nbranch = train && !recompute ? 2 * c->depth : 2;
    for (int k = 0; k < nbranch; k++) {
        branch_acts *A = &L->branch[k];
        int attn = k % 2 == 0;
        memset(A, 0, sizeof *A);
        A->xin = train ? floats(a, rows * D) : NULL;
        A->mean = floats(a, rows);
        A->rstd = floats(a, rows);
        A->h = floats(a, rows * (attn ? 3 * D : F));
        A->lse = train && attn ? floats(a, (size_t)s->b * H * 2 * s->T) : NULL;
        A->heads = attn ? floats(a, rows * D) : NULL;
        A->y = floats(a, rows * D);
    }
    /* inference and checkpointing reuse one pair of branch buffers for every block */
    for (int k = nbranch; k < 2 * RD_VIT_MAX_DEPTH; k++) L->branch[k] = L->branch[k % 2];
    for (int blk = 0; blk < RD_VIT_MAX_DEPTH; blk++)
        L->block_in[blk] = recompute && blk < c->depth ? floats(a, bT * D) : NULL;
    L->mask = rd_arena_alloc(a, bn ? bn : 1);
    L->dp_count = rd_arena_alloc(a, sizeof(int) * 2 * (size_t)c->depth);
    L->dp_index = rd_arena_alloc(a, sizeof(int) * 2 * (size_t)c->depth * (size_t)s->b);
    if (!train) return;
    L->dx = floats(a, bT * D);
    L->dy = floats(a, rows * D);
    L->dln = floats(a, rows * D);
    L->dxin = floats(a, rows * D);
    L->dh = floats(a, rows * (F > 3 * D ? F : 3 * D));
    L->da = floats(a, rows * (hid > D ? hid : D));
    L->dembed = floats(a, bn * D);
    L->dpos = floats(a, (1 + (size_t)s->n) * D);
    L->dtmp = floats(a, (size_t)s->gmax * M * D);
}

static shape context_shape(const rd_vit *vit, int max_batch, int height, int width) {
    int p = vit->cfg.patch_size;
    shape s;
    s.b = max_batch;
    s.n = (height / p) * (width / p);
    s.T = 1 + vit->cfg.num_register_tokens + s.n;
    s.gmax = height / p > width / p ? height / p : width / p;
    s.threads = omp_get_max_threads();
    s.c_max = vit->cfg.in_chans;
    return s;
}

size_t rd_vit_context_bytes(const rd_vit *vit, int max_batch, int height, int width,
                            rd_vit_mode mode) {
    rd_arena a;
    rd_arena_init_measure(&a, "vit activations");
    rd_arena_alloc(&a, sizeof(vit_layout));
    vit_layout L;
    shape s = context_shape(vit, max_batch, height, width);
    layout(&L, &a, vit, &s, mode);
    return a.used;
}

rd_status rd_vit_context_init(rd_vit_context *ctx, const rd_vit *vit, int max_batch, int height,
                              int width, rd_vit_mode mode, rd_error *err) {
    memset(ctx, 0, sizeof *ctx);
    int p = vit->cfg.patch_size;
    if (max_batch < 1 || height < p || width < p)
        return rd_fail(err, RD_EINVAL,
                       "ViT context: batch %d and image %dx%d must hold at least one %dx%d patch",
                       max_batch, height, width, p, p);
    size_t bytes = rd_vit_context_bytes(vit, max_batch, height, width, mode);
    rd_status st = rd_arena_init(&ctx->arena, "vit activations", bytes, err);
    if (st) return st;
    vit_layout *L = rd_arena_alloc(&ctx->arena, sizeof *L);
    shape s = context_shape(vit, max_batch, height, width);
    layout(L, &ctx->arena, vit, &s, mode);
    ctx->vit = vit;
    ctx->mode = mode;
    ctx->layout = L;
    ctx->max_batch = max_batch;
    ctx->max_patches = s.n;
    ctx->max_tokens = s.T;
    ctx->max_grid = s.gmax;
    ctx->threads = s.threads;
    rd_info("ViT context (%s, %d x %dx%d, %d threads): %.1f MiB", mode ? "train" : "inference",
            max_batch, height, width, s.threads, (double)bytes / (1024.0 * 1024.0));
    return RD_OK;
}

void rd_vit_context_free(rd_vit_context *ctx) {
    rd_arena_free(&ctx->arena);
    memset(ctx, 0, sizeof *ctx);
}

void rd_vit_context_trace(rd_vit_context *ctx, float *trace) {
    ctx->trace = trace;
}

void rd_vit_context_grad_hook(rd_vit_context *ctx, void (*fn)(void *arg, int part), void *arg) {
    ctx->grad_hook = fn;
    ctx->grad_hook_arg = arg;
}

void rd_vit_context_profile(rd_vit_context *ctx, int on) {
    ctx->profile = on;
    if (on) memset(ctx->seconds, 0, sizeof ctx->seconds);
}

const char *rd_vit_time_name(rd_vit_time category) {
    static const char *names[RD_VIT_TIME_COUNT] = {
        "GEMM (qkv, proj, fc1, fc2)", "attention (QK^T, softmax, PV)", "layernorm", "GELU / SwiGLU",
        "residual, drop-path copies", "patch embed, pos-embed, tokens"};
    return category < RD_VIT_TIME_COUNT ? names[category] : "?";
}

/* ---- bf16 copies of the block linears ------------------------------------------------------ */

/* Shape [OC, C] and parameter index of block i's linear k. */
static void linear_shape(const rd_vit *vit, int i, int k, int *param, int *OC, int *C) {
    const rd_vit_block_params *ix = &vit->blocks[i];
    int D = vit->cfg.embed_dim, F = ffn_width(vit), hid = vit->hidden;
    const int params[RD_VIT_LINEARS] = {ix->qkv_weight, ix->proj_weight, ix->fc1_weight,
                                        ix->fc2_weight};
    const int oc[RD_VIT_LINEARS] = {3 * D, D, F, D}, c[RD_VIT_LINEARS] = {D, D, D, hid};
    *param = params[k];
    *OC = oc[k];
    *C = c[k];
}

/* Bytes of the packed copies of every block linear (multiples of 64: each stays aligned). */
static size_t copies_bytes(const rd_vit *vit, int training) {
    int param, OC, C;
    size_t bytes = 0;
    for (int i = 0; i < vit->cfg.depth; i++)
        for (int k = 0; k < RD_VIT_LINEARS; k++) {
            linear_shape(vit, i, k, &param, &OC, &C);
            bytes += rd_bf16_weight_bytes(OC, C, training);
        }
    return bytes;
}

size_t rd_vit_bf16_bytes(const rd_vit *vit, int training) {
    return copies_bytes(vit, training) + (size_t)omp_get_max_threads() * rd_bf16_scratch_bytes();
}

rd_status rd_vit_bf16_init(rd_vit_bf16 *w, const rd_vit *vit, const rd_param_set *set, int training,
                           rd_error *err) {
    memset(w, 0, sizeof *w);
    rd_status st = rd_bf16_select_path(&w->path, err);
    if (st) return st;
    int depth = vit->cfg.depth, param, OC, C;
    size_t bytes = copies_bytes(vit, training);
    w->depth = depth;
    w->training = training;
    w->threads = omp_get_max_threads();
    w->data = set->data;
    if (w->path != RD_BF16_PATH_FP32) {
        size_t scratch = (size_t)w->threads * rd_bf16_scratch_bytes();
        w->buffer = aligned_alloc(64, bytes);
        w->bytes = bytes;
        w->scratch = aligned_alloc(64, scratch);
        if (!w->buffer || !w->scratch) {
            rd_vit_bf16_free(w);
            return rd_fail(err, RD_ENOMEM, "ViT bf16 copies: cannot allocate %.1f MiB",
                           (double)(bytes + scratch) / (1024.0 * 1024.0));
        }
    }
    unsigned char *at = w->buffer;
    for (int i = 0; i < depth && !st; i++)
        for (int k = 0; k < RD_VIT_LINEARS && !st; k++) {
            linear_shape(vit, i, k, &param, &OC, &C);
            st = rd_bf16_weight_init(&w->linear[i][k], at, rd_param_in(set, set->data, param), OC,
                                     C, training, err);
            if (at) at += rd_bf16_weight_bytes(OC, C, training);
        }
    if (st) rd_vit_bf16_free(w);
    return st;
}

void rd_vit_bf16_refresh(rd_vit_bf16 *w) {
    for (int i = 0; i < w->depth; i++)
        for (int k = 0; k < RD_VIT_LINEARS; k++) rd_bf16_weight_refresh(&w->linear[i][k]);
}

void rd_vit_bf16_free(rd_vit_bf16 *w) {
    free(w->buffer);
    free(w->scratch);
    memset(w, 0, sizeof *w);
}

rd_status rd_vit_context_bf16(rd_vit_context *ctx, const rd_vit_bf16 *w, rd_error *err) {
    if (w && ctx->mode == RD_VIT_TRAIN && !w->training)
        return rd_fail(err, RD_EINVAL,
                       "ViT context: a training context needs bf16 copies made for training");
    if (w && (w->depth != ctx->vit->cfg.depth || w->threads < ctx->threads))
        return rd_fail(err, RD_EINVAL,
                       "ViT context: bf16 copies of %d blocks for %d threads, the context has %d "
                       "blocks and %d threads",
                       w->depth, w->threads, ctx->vit->cfg.depth, ctx->threads);
    ctx->bf16 = w;
    return RD_OK;
}

/* out[rows, OC] = in[rows, C] W^T + bias for block blk's linear k: through its bf16 copy when
 * the context has them, else rd_linear_forward on the fp32 weight. */
static void block_linear(const rd_vit_context *ctx, int blk, int k, float *out, const float *in,
                         const float *weight, const float *bias, int rows, int C, int OC) {
    if (ctx->bf16)
        rd_bf16_linear_forward(out, in, &ctx->bf16->linear[blk][k], bias, rows, ctx->bf16->scratch);
    else
        rd_linear_forward(out, in, weight, bias, rows, C, OC);
}

/* The attention of a block's qkv and its backward: in bf16 when the context has bf16 copies
 * (the backward recomputes the probabilities from the same bf16 scores as the forward). */
static void block_attention(const rd_vit_context *ctx, float *heads, float *lse, float *scratch,
                            const float *qkv, int b, int T, int D, int H) {
    if (ctx->bf16)
        rd_attention_forward_bf16(heads, lse, scratch, qkv, b, T, D, H, ctx->bf16->path);
    else
        rd_attention_forward(heads, lse, scratch, qkv, b, T, D, H);
}

static void block_attention_backward(const rd_vit_context *ctx, float *dqkv, float *scratch,
                                     const float *dheads, const float *heads, const float *qkv,
                                     const float *lse, int b, int T, int D, int H) {
    if (ctx->bf16)
        rd_attention_backward_bf16(dqkv, scratch, dheads, heads, qkv, lse, b, T, D, H,
                                   ctx->bf16->path);
    else
        rd_attention_backward(dqkv, scratch, dheads, heads, qkv, lse, b, T, D, H);
}

/* Runs call, adding its wall time to category when the context profiles. */
#define TIMED(ctx, category, call)                                                                 \
    do {                                                                                           \
        double t0_ = (ctx)->profile ? rd_now() : 0.0;                                              \
        call;                                                                                      \
        if ((ctx)->profile) (ctx)->seconds[(ctx)->phase][category] += rd_now() - t0_;              \
    } while (0)

/* ---- named views ------------------------------------------------------------------------- */

/* The backbone's tensors inside one buffer laid out like its parameter set, by name: the
 * parameters (forward and backward read them) or the gradients (backward adds into them), as
 * llm.c's ParameterTensors. NULL where a tensor is absent (bias off, no LayerScale, no
 * registers) or the buffer is (a set without gradients). Bound at each forward and backward
 * call from the set that call receives, so a view never outlives its buffer, and one rd_vit
 * serves the student and the teacher set. */
typedef struct block_view {
    float *norm1_w, *norm1_b; /* [D] */
    float *qkv_w, *qkv_b;     /* [3D, D], [3D] */
    float *proj_w, *proj_b;   /* [D, D], [D] */
    float *ls1;               /* [D] LayerScale gamma of the attention branch */
    float *norm2_w, *norm2_b; /* [D] */
    float *fc1_w, *fc1_b;     /* mlp.fc1 [hidden, D] or mlp.w12 [2h, D] */
    float *fc2_w, *fc2_b;     /* mlp.fc2 [D, hidden] or mlp.w3 [D, h] */
    float *ls2;               /* [D] LayerScale gamma of the FFN branch */
} block_view;

typedef struct vit_view {
    float *cls_token, *pos_embed, *register_tokens, *mask_token;
    float *patch_w, *patch_b; /* [D, in_chans, p, p], [D] */
    block_view blocks[RD_VIT_MAX_DEPTH];
    float *norm_w, *norm_b; /* [D] final LayerNorm */
} vit_view;

/* Points v into buf (set->data or set->grad; any buffer laid out like set). */
static void bind_view(vit_view *v, const rd_vit *vit, const rd_param_set *set, float *buf) {
    v->cls_token = rd_param_in(set, buf, vit->cls_token);
    v->pos_embed = rd_param_in(set, buf, vit->pos_embed);
    v->register_tokens = rd_param_in(set, buf, vit->register_tokens);
    v->mask_token = rd_param_in(set, buf, vit->mask_token);
    v->patch_w = rd_param_in(set, buf, vit->patch_weight);
    v->patch_b = rd_param_in(set, buf, vit->patch_bias);
    for (int i = 0; i < vit->cfg.depth; i++) {
        const rd_vit_block_params *ix = &vit->blocks[i];
        block_view *b = &v->blocks[i];
        b->norm1_w = rd_param_in(set, buf, ix->norm1_weight);
        b->norm1_b = rd_param_in(set, buf, ix->norm1_bias);
        b->qkv_w = rd_param_in(set, buf, ix->qkv_weight);
        b->qkv_b = rd_param_in(set, buf, ix->qkv_bias);
        b->proj_w = rd_param_in(set, buf, ix->proj_weight);
        b->proj_b = rd_param_in(set, buf, ix->proj_bias);
        b->ls1 = rd_param_in(set, buf, ix->ls1_gamma);
        b->norm2_w = rd_param_in(set, buf, ix->norm2_weight);
        b->norm2_b = rd_param_in(set, buf, ix->norm2_bias);
        b->fc1_w = rd_param_in(set, buf, ix->fc1_weight);
        b->fc1_b = rd_param_in(set, buf, ix->fc1_bias);
        b->fc2_w = rd_param_in(set, buf, ix->fc2_weight);
        b->fc2_b = rd_param_in(set, buf, ix->fc2_bias);
        b->ls2 = rd_param_in(set, buf, ix->ls2_gamma);
    }
    v->norm_w = rd_param_in(set, buf, vit->norm_weight);
    v->norm_b = rd_param_in(set, buf, vit->norm_bias);
}

/* ---- forward ----------------------------------------------------------------------------- */

/* Positional embedding for an image of height x width (interpolate_pos_encoding): pos_embed itself
 * at the native square size, else its patch grid resampled into out [1 + g0 g1, D] with the weights
 * kept in scratch (wrow [g0, M], wcol [g1, M], then a [g0, M, D] temporary). */
static int pos_is_native(const rd_vit *vit, int height, int width) {
    int p = vit->cfg.patch_size;
    return (height / p) * (width / p) == vit->grid * vit->grid && height == width;
}

static const float *pos_for(const rd_vit *vit, const float *pos_embed, int height, int width,
                            float *out, float *scratch) {
    int M = vit->grid, p = vit->cfg.patch_size, D = vit->cfg.embed_dim;
    int g0 = height / p, g1 = width / p;
    if (pos_is_native(vit, height, width)) return pos_embed;
    float *wrow = scratch, *wcol = scratch + (size_t)g0 * M, *tmp = wcol + (size_t)g1 * M;
    double off = vit->cfg.interpolate_offset;
    void (*weights)(float *, int, int, double) =
        vit->cfg.interpolate_antialias ? rd_bicubic_aa_weights : rd_bicubic_weights;
    weights(wrow, M, g0, off > 0 ? (g0 + off) / M : 0.0);
    weights(wcol, M, g1, off > 0 ? (g1 + off) / M : 0.0);
    memcpy(out, pos_embed, (size_t)D * sizeof(float)); /* CLS entry is never resampled */
    rd_resample_forward(out + D, tmp, pos_embed + D, wrow, wcol, M, g0, g1, D);
    return out;
}

void rd_vit_pos_embed(const rd_vit *vit, const rd_param_set *params, int height, int width,
                      float *out, float *scratch) {
    int p = vit->cfg.patch_size, n = (height / p) * (width / p);
    const float *pos_embed = rd_param_in(params, params->data, vit->pos_embed);
    const float *pos = pos_for(vit, pos_embed, height, width, out, scratch);
    if (pos != out) memcpy(out, pos, (size_t)(1 + n) * vit->cfg.embed_dim * sizeof(float));
}

/* x [b, T, D] = [cls + pos0, registers, (mask ? mask_token : embed) + pos] */
static void assemble_tokens(const rd_vit *vit, const vit_view *w, vit_layout *L, const float *pos,
                            int b, int n, int has_mask) {
    int D = vit->cfg.embed_dim, R = vit->cfg.num_register_tokens, T = 1 + R + n;
    const float *cls = w->cls_token, *reg = w->register_tokens, *mask_token = w->mask_token;
#pragma omp parallel for collapse(2) schedule(static) if ((long)b * T * D > RD_PARALLEL_MIN)
    for (int i = 0; i < b; i++)
        for (int t = 0; t < T; t++) {
            float *dst = L->x + ((size_t)i * T + t) * D;
            if (t >= 1 && t <= R) {
                memcpy(dst, reg + (size_t)(t - 1) * D, (size_t)D * sizeof(float));
                continue;
            }
            int j = t - 1 - R; /* patch index, -1 for CLS */
            const float *src = j < 0 ? cls
                               : has_mask && L->mask[(size_t)i * n + j]
                                   ? mask_token
                                   : L->embed + ((size_t)i * n + j) * D;
            const float *pe = pos + (size_t)(j < 0 ? 0 : j + 1) * D;
#pragma omp simd
            for (int c = 0; c < D; c++) dst[c] = src[c] + pe[c];
        }
}

/* Which samples take branch br of block blk and their rescale (vit.h, rd_vit_drop_path). */
static const int *branch_subset(const rd_vit_context *ctx, int blk, int br, int b, int *keep,
                                float *scale) {
    const vit_layout *L = ctx->layout;
    *keep = b;
    *scale = 1.0f;
    if (!ctx->has_drop_path) return NULL;
    *keep = L->dp_count[2 * blk + br];
    *scale = (float)((double)b / *keep);
    return L->dp_index + (size_t)(2 * blk + br) * b;
}

static void block_forward(rd_vit_context *ctx, const block_view *w, int blk) {
    const rd_vit *vit = ctx->vit;
    vit_layout *L = ctx->layout;
    int D = vit->cfg.embed_dim, H = vit->cfg.num_heads, T = ctx->tokens, b = ctx->batch;
    int hid = vit->hidden, F = ffn_width(vit), train = ctx->mode == RD_VIT_TRAIN;
    for (int br = 0; br < 2; br++) {
        int keep;
        float scale;
        const int *S = branch_subset(ctx, blk, br, b, &keep, &scale);
        branch_acts *A = &L->branch[2 * blk + br];
        int rows = keep * T;
        const float *in = L->x; /* inference: no subsets, nothing to keep */
        if (train) {
            TIMED(ctx, RD_VIT_TIME_RESIDUAL,
                  rd_gather_samples(A->xin, L->x, S, keep, (size_t)T * D));
            in = A->xin;
        }
        if (br == 0) {
            TIMED(
                ctx, RD_VIT_TIME_LAYERNORM,
                rd_layernorm_forward(L->ln, A->mean, A->rstd, in, w->norm1_w, w->norm1_b, rows, D));
            TIMED(ctx, RD_VIT_TIME_GEMM,
                  block_linear(ctx, blk, RD_VIT_QKV, A->h, L->ln, w->qkv_w, w->qkv_b, rows, D,
                               3 * D));
            TIMED(ctx, RD_VIT_TIME_ATTENTION,
                  block_attention(ctx, A->heads, A->lse, L->att_scratch, A->h, keep, T, D, H));
            TIMED(ctx, RD_VIT_TIME_GEMM,
                  block_linear(ctx, blk, RD_VIT_PROJ, A->y, A->heads, w->proj_w, w->proj_b, rows, D,
                               D));
        } else {
            TIMED(
                ctx, RD_VIT_TIME_LAYERNORM,
                rd_layernorm_forward(L->ln, A->mean, A->rstd, in, w->norm2_w, w->norm2_b, rows, D));
            TIMED(ctx, RD_VIT_TIME_GEMM,
                  block_linear(ctx, blk, RD_VIT_FC1, A->h, L->ln, w->fc1_w, w->fc1_b, rows, D, F));
            if (vit->cfg.ffn == RD_VIT_FFN_SWIGLU)
                TIMED(ctx, RD_VIT_TIME_ACTIVATION, rd_swiglu_forward(L->act, A->h, rows, hid));
            else
                TIMED(ctx, RD_VIT_TIME_ACTIVATION,
                      rd_gelu_forward(L->act, A->h, (size_t)rows * hid));
            TIMED(
                ctx, RD_VIT_TIME_GEMM,
                block_linear(ctx, blk, RD_VIT_FC2, A->y, L->act, w->fc2_w, w->fc2_b, rows, hid, D));
        }
        TIMED(ctx, RD_VIT_TIME_RESIDUAL,
              rd_residual_forward(L->x, A->y, br == 0 ? w->ls1 : w->ls2, S, keep, T, D, scale));
    }
}

/* Final LayerNorm straight into the three contiguous outputs. */
static void final_norm(rd_vit_context *ctx, const vit_view *w) {
    const rd_vit *vit = ctx->vit;
    vit_layout *L = ctx->layout;
    int D = vit->cfg.embed_dim, R = vit->cfg.num_register_tokens, T = ctx->tokens;
    int n = ctx->n_patches;
#pragma omp parallel for schedule(static) if ((long)ctx->batch * T * D > RD_PARALLEL_MIN)
    for (int i = 0; i < ctx->batch; i++) {
        const float *x = L->x + (size_t)i * T * D;
        float *mean = L->norm_mean + (size_t)i * T, *rstd = L->norm_rstd + (size_t)i * T;
        rd_layernorm_forward(L->cls + (size_t)i * D, mean, rstd, x, w->norm_w, w->norm_b, 1, D);
        if (R > 0)
            rd_layernorm_forward(L->reg + (size_t)i * R * D, mean + 1, rstd + 1, x + D, w->norm_w,
                                 w->norm_b, R, D);
        rd_layernorm_forward(L->patch + (size_t)i * n * D, mean + 1 + R, rstd + 1 + R,
                             x + (size_t)(1 + R) * D, w->norm_w, w->norm_b, n, D);
    }
}

static void trace(rd_vit_context *ctx, int k) {
    if (!ctx->trace) return;
    size_t size = (size_t)ctx->batch * ctx->tokens * ctx->vit->cfg.embed_dim;
    memcpy(ctx->trace + (size_t)k * size, ((vit_layout *)ctx->layout)->x, size * sizeof(float));
}

/* Copies the drop-path subsets after checking counts, ranges and distinctness. */
static rd_status copy_drop_path(rd_vit_context *ctx, const rd_vit_drop_path *dp, int b,
                                rd_error *err) {
    vit_layout *L = ctx->layout;
    int depth = ctx->vit->cfg.depth;
    for (int k = 0; k < 2 * depth; k++) {
        int keep = dp->count[k];
        const int *idx = dp->index + (size_t)k * b;
        if (keep < 1 || keep > b)
            return rd_fail(err, RD_EINVAL,
                           "ViT forward: drop-path count %d of block %d %s outside 1..%d", keep,
                           k / 2, k % 2 ? "ffn" : "attn", b);
        memset(L->mask, 0, (size_t)b); /* reused as a seen-flag array before the mask copy */
        for (int j = 0; j < keep; j++) {
            if (idx[j] < 0 || idx[j] >= b || L->mask[idx[j]])
                return rd_fail(err, RD_EINVAL,
                               "ViT forward: drop-path subset of block %d %s has a repeated or "
                               "out-of-range sample %d (batch %d)",
                               k / 2, k % 2 ? "ffn" : "attn", idx[j], b);
            L->mask[idx[j]] = 1;
        }
        L->dp_count[k] = keep;
        memcpy(L->dp_index + (size_t)k * b, idx, (size_t)keep * sizeof(int));
    }
    return RD_OK;
}

rd_status rd_vit_forward(rd_vit_context *ctx, const rd_param_set *params, const float *images,
                         int b, int c, int height, int width, const uint8_t *mask,
                         const rd_vit_drop_path *drop_path, rd_vit_output *out, rd_error *err) {
    const rd_vit *vit = ctx->vit;
    const rd_vit_config *cfg = &vit->cfg;
    vit_layout *L = ctx->layout;
    int p = cfg->patch_size, D = cfg->embed_dim, C = cfg->in_chans;
    int g0 = height / p, g1 = width / p, n = g0 * g1;
    ctx->forward_done = 0;
    if (b < 1 || b > ctx->max_batch)
        return rd_fail(err, RD_EINVAL, "ViT forward: batch %d outside 1..%d (context size)", b,
                       ctx->max_batch);
    if (g0 < 1 || g1 < 1 || n > ctx->max_patches || g0 > ctx->max_grid || g1 > ctx->max_grid)
        return rd_fail(err, RD_EINVAL,
                       "ViT forward: %dx%d image gives a %dx%d patch grid; the context holds at "
                       "most %d patches and %d per side",
                       height, width, g0, g1, ctx->max_patches, ctx->max_grid);
    if (c != C && !(c == 1 && C > 1))
        return rd_fail(err, RD_EINVAL,
                       "ViT forward: images have %d channels, the patch embedding takes %d (or 1 "
                       "for a replicated grey image)",
                       c, C);
    if (omp_get_max_threads() > ctx->threads)
        return rd_fail(err, RD_EINVAL,
                       "ViT forward: %d OpenMP threads but the context was sized for %d",
                       omp_get_max_threads(), ctx->threads);
    if (drop_path && ctx->mode != RD_VIT_TRAIN)
        return rd_fail(err, RD_EINVAL, "ViT forward: drop path needs a training context");
    if (!images || !params->data)
        return rd_fail(err, RD_EINVAL, "ViT forward: no images or unallocated parameters");
    if (ctx->bf16 && ctx->bf16->data != params->data)
        return rd_fail(err, RD_EINVAL,
                       "ViT forward: the bf16 copies were made from another parameter set");
    ctx->batch = b;
    ctx->channels = c;
    ctx->height = height;
    ctx->width = width;
    ctx->grid_h = g0;
    ctx->grid_w = g1;
    ctx->n_patches = n;
    ctx->tokens = 1 + cfg->num_register_tokens + n;
    ctx->has_drop_path = drop_path != NULL;
    if (drop_path) {
        rd_status st = copy_drop_path(ctx, drop_path, b, err);
        if (st) return st;
    }
    ctx->has_mask = mask != NULL;
    if (mask) memcpy(L->mask, mask, (size_t)b * n);

    vit_view w;
    bind_view(&w, vit, params, params->data);
    ctx->phase = 0;
    double t0 = ctx->profile ? rd_now() : 0.0;
    rd_patchify(L->patches, images, b, c, height, width, p);
    rd_patch_embed_forward(L->embed, L->fold, L->patches, w.patch_w, w.patch_b, b * n, c, C, p, D);
    const float *pos = pos_for(vit, w.pos_embed, height, width, L->pos, L->interp);
    assemble_tokens(vit, &w, L, pos, b, n, ctx->has_mask);
    if (ctx->profile) ctx->seconds[0][RD_VIT_TIME_EMBED] += rd_now() - t0;
    trace(ctx, 0);
    for (int blk = 0; blk < cfg->depth; blk++) {
        if (L->block_in[blk])
            memcpy(L->block_in[blk], L->x, (size_t)b * ctx->tokens * D * sizeof(float));
        block_forward(ctx, &w.blocks[blk], blk);
        trace(ctx, blk + 1);
    }
    TIMED(ctx, RD_VIT_TIME_LAYERNORM, final_norm(ctx, &w));
    ctx->forward_done = 1;
    if (out) {
        out->batch = b;
        out->n_patches = n;
        out->grid_h = g0;
        out->grid_w = g1;
        out->cls = L->cls;
        out->reg = cfg->num_register_tokens > 0 ? L->reg : NULL;
        out->patch = L->patch;
    }
    return RD_OK;
}

/* ---- backward ---------------------------------------------------------------------------- */

static void zero(float *x, size_t n) {
    const size_t chunk = 1 << 14;
#pragma omp parallel for schedule(static) if (n > RD_PARALLEL_MIN)
    for (size_t i = 0; i < n; i += chunk)
        memset(x + i, 0, (n - i < chunk ? n - i : chunk) * sizeof(float));
}

/* rd_linear_backward of block blk's linear k, but dinp[N, C] = dout @ weight is overwritten,
 * not accumulated (a fresh scratch buffer needs no zeroing first); through its bf16 copies when
 * the context has them. */
static void linear_backward_into(const rd_vit_context *ctx, int blk, int k, float *dinp,
                                 float *dweight, float *dbias, const float *dout, const float *inp,
                                 const float *weight, int N, int C, int OC) {
    if (ctx->bf16) {
        rd_bf16_linear_backward(dinp, 0, dweight, dbias, dout, inp, &ctx->bf16->linear[blk][k], N,
                                ctx->bf16->scratch);
        return;
    }
    rd_sgemm(0, 0, N, C, OC, 1.0f, dout, OC, weight, C, 0.0f, dinp, C, NULL);
    rd_linear_backward(NULL, dweight, dbias, dout, inp, weight, N, C, OC);
}

/* FFN activation recomputed from the kept first-linear output. */
static void ffn_activation(rd_vit_context *ctx, const branch_acts *A, int rows) {
    const rd_vit *vit = ctx->vit;
    vit_layout *L = ctx->layout;
    if (vit->cfg.ffn == RD_VIT_FFN_SWIGLU)
        rd_swiglu_forward(L->act, A->h, rows, vit->hidden);
    else
        rd_gelu_forward(L->act, A->h, (size_t)rows * vit->hidden);
}

/* w: the block's parameters, g: its gradients. */
static void block_backward(rd_vit_context *ctx, const block_view *w, const block_view *g, int blk) {
    const rd_vit *vit = ctx->vit;
    vit_layout *L = ctx->layout;
    int D = vit->cfg.embed_dim, H = vit->cfg.num_heads, T = ctx->tokens, b = ctx->batch;
    int hid = vit->hidden, F = ffn_width(vit);
    for (int br = 1; br >= 0; br--) {
        int keep;
        float scale;
        const int *S = branch_subset(ctx, blk, br, b, &keep, &scale);
        const branch_acts *A = &L->branch[2 * blk + br];
        int rows = keep * T;
        const float *gamma = br == 0 ? w->ls1 : w->ls2;
        const float *norm_w = br == 0 ? w->norm1_w : w->norm2_w;
        const float *norm_b = br == 0 ? w->norm1_b : w->norm2_b;
        float *dgamma = br == 0 ? g->ls1 : g->ls2;
        float *dnorm_w = br == 0 ? g->norm1_w : g->norm2_w;
        float *dnorm_b = br == 0 ? g->norm1_b : g->norm2_b;
        /* the LayerNorm output again (same arithmetic as forward, so the same values) */
        TIMED(ctx, RD_VIT_TIME_LAYERNORM,
              rd_layernorm_forward(L->ln, NULL, NULL, A->xin, norm_w, norm_b, rows, D));
        /* dy = d(branch output) from the residual stream's gradient */
        zero(L->dy, (size_t)rows * D);
        TIMED(ctx, RD_VIT_TIME_RESIDUAL,
              rd_residual_backward(L->dy, dgamma, L->dx, A->y, gamma, S, keep, T, D, scale));
        if (br == 1) {
            TIMED(ctx, RD_VIT_TIME_ACTIVATION, ffn_activation(ctx, A, rows));
            TIMED(ctx, RD_VIT_TIME_GEMM,
                  linear_backward_into(ctx, blk, RD_VIT_FC2, L->da, g->fc2_w, g->fc2_b, L->dy,
                                       L->act, w->fc2_w, rows, hid, D));
            zero(L->dh, (size_t)rows * F);
            if (vit->cfg.ffn == RD_VIT_FFN_SWIGLU)
                TIMED(ctx, RD_VIT_TIME_ACTIVATION,
                      rd_swiglu_backward(L->dh, L->da, A->h, rows, hid));
            else
                TIMED(ctx, RD_VIT_TIME_ACTIVATION,
                      rd_gelu_backward(L->dh, A->h, L->da, (size_t)rows * hid));
            TIMED(ctx, RD_VIT_TIME_GEMM,
                  linear_backward_into(ctx, blk, RD_VIT_FC1, L->dln, g->fc1_w, g->fc1_b, L->dh,
                                       L->ln, w->fc1_w, rows, D, F));
        } else {
            TIMED(ctx, RD_VIT_TIME_GEMM,
                  linear_backward_into(ctx, blk, RD_VIT_PROJ, L->da, g->proj_w, g->proj_b, L->dy,
                                       A->heads, w->proj_w, rows, D, D));
            zero(L->dh, (size_t)rows * 3 * D);
            TIMED(ctx, RD_VIT_TIME_ATTENTION,
                  block_attention_backward(ctx, L->dh, L->att_scratch, L->da, A->heads, A->h,
                                           A->lse, keep, T, D, H));
            TIMED(ctx, RD_VIT_TIME_GEMM,
                  linear_backward_into(ctx, blk, RD_VIT_QKV, L->dln, g->qkv_w, g->qkv_b, L->dh,
                                       L->ln, w->qkv_w, rows, D, 3 * D));
        }
        /* without subsets the branch input is the whole stream: accumulate in place */
        float *dxin = S ? L->dxin : L->dx;
        if (S) zero(L->dxin, (size_t)rows * D);
        TIMED(ctx, RD_VIT_TIME_LAYERNORM,
              rd_layernorm_backward(dxin, dnorm_w, dnorm_b, L->dln, A->xin, A->mean, A->rstd,
                                    norm_w, rows, D));
        if (S)
            TIMED(ctx, RD_VIT_TIME_RESIDUAL,
                  rd_scatter_add_samples(L->dx, L->dxin, S, keep, (size_t)T * D));
    }
}

/* Gradients of the token assembly: cls, registers, positional embedding, mask token and the
 * patch embedding (prepare_tokens_with_masks adds pos to every patch, masked ones too). Sums over
 * samples run in sample order. */
static void embedding_backward(rd_vit_context *ctx, const vit_view *grads) {
    const rd_vit *vit = ctx->vit;
    vit_layout *L = ctx->layout;
    int D = vit->cfg.embed_dim, R = vit->cfg.num_register_tokens, T = ctx->tokens;
    int b = ctx->batch, n = ctx->n_patches, M = vit->grid;
    int native = pos_is_native(vit, ctx->height, ctx->width);
    float *dpos_embed = grads->pos_embed;
    float *dpos = native ? dpos_embed : L->dpos; /* [1 + n, D] */
    if (!native) zero(L->dpos, (size_t)(1 + n) * D);
    float *dcls = grads->cls_token, *dreg = grads->register_tokens;
#pragma omp parallel for schedule(static) if ((long)b * T * D > RD_PARALLEL_MIN)
    for (int t = 0; t < T; t++) {
        float *dst = t == 0   ? dpos
                     : t <= R ? dreg + (size_t)(t - 1) * D
                              : dpos + (size_t)(t - R) * D;
        for (int i = 0; i < b; i++) {
            const float *g = L->dx + ((size_t)i * T + t) * D;
#pragma omp simd
            for (int c = 0; c < D; c++) dst[c] += g[c];
            if (t == 0)
#pragma omp simd
                for (int c = 0; c < D; c++) dcls[c] += g[c];
        }
    }
    /* patch tokens: masked ones feed mask_token, the others the patch embedding */
    float *dmask = grads->mask_token;
    for (int i = 0; i < b; i++)
        for (int j = 0; j < n; j++) {
            const float *g = L->dx + ((size_t)i * T + 1 + R + j) * D;
            float *de = L->dembed + ((size_t)i * n + j) * D;
            if (ctx->has_mask && L->mask[(size_t)i * n + j]) {
                for (int c = 0; c < D; c++) dmask[c] += g[c];
                memset(de, 0, (size_t)D * sizeof(float));
            } else {
                memcpy(de, g, (size_t)D * sizeof(float));
            }
        }
    rd_patch_embed_backward(grads->patch_w, grads->patch_b, L->fold, L->dembed, L->patches, b * n,
                            ctx->channels, vit->cfg.in_chans, vit->cfg.patch_size, D);
    if (native) return;
    const float *wrow = L->interp, *wcol = wrow + (size_t)ctx->grid_h * M;
    for (int c = 0; c < D; c++) dpos_embed[c] += dpos[c];
    rd_resample_backward(dpos_embed + D, L->dtmp, dpos + D, wrow, wcol, M, ctx->grid_h, ctx->grid_w,
                         D);
}

rd_status rd_vit_backward(rd_vit_context *ctx, rd_param_set *params, const float *d_cls,
                          const float *d_patch, rd_error *err) {
    const rd_vit *vit = ctx->vit;
    vit_layout *L = ctx->layout;
    if (ctx->mode != RD_VIT_TRAIN || !ctx->forward_done)
        return rd_fail(err, RD_EINVAL, "ViT backward: needs a training context after a forward");
    if (!params->grad)
        return rd_fail(err, RD_EINVAL, "ViT backward: the parameter set has no gradients");
    if (omp_get_max_threads() > ctx->threads)
        return rd_fail(err, RD_EINVAL,
                       "ViT backward: %d OpenMP threads but the context was sized for %d",
                       omp_get_max_threads(), ctx->threads);
    int D = vit->cfg.embed_dim, R = vit->cfg.num_register_tokens, T = ctx->tokens;
    int b = ctx->batch, n = ctx->n_patches;
    /* gradient of the final-norm output [b, T, D] (registers feed no loss) */
    float *dz = L->dy;
    zero(dz, (size_t)b * T * D);
    for (int i = 0; i < b; i++) {
        float *row = dz + (size_t)i * T * D;
        if (d_cls) memcpy(row, d_cls + (size_t)i * D, (size_t)D * sizeof(float));
        if (d_patch)
            memcpy(row + (size_t)(1 + R) * D, d_patch + (size_t)i * n * D,
                   (size_t)n * D * sizeof(float));
    }
    zero(L->dx, (size_t)b * T * D);
    vit_view w, g;
    bind_view(&w, vit, params, params->data);
    bind_view(&g, vit, params, params->grad);
    ctx->phase = 1;
    TIMED(ctx, RD_VIT_TIME_LAYERNORM,
          rd_layernorm_backward(L->dx, g.norm_w, g.norm_b, dz, L->x, L->norm_mean, L->norm_rstd,
                                w.norm_w, b * T, D));
    if (ctx->grad_hook) ctx->grad_hook(ctx->grad_hook_arg, vit->cfg.depth);
    for (int blk = vit->cfg.depth - 1; blk >= 0; blk--) {
        if (L->block_in[blk]) {
            /* checkpointing: the block's activations again, by the same arithmetic (the stream
             * L->x is free once the final norm's backward has run) */
            memcpy(L->x, L->block_in[blk], (size_t)b * T * D * sizeof(float));
            block_forward(ctx, &w.blocks[blk], blk);
        }
        block_backward(ctx, &w.blocks[blk], &g.blocks[blk], blk);
        if (ctx->grad_hook) ctx->grad_hook(ctx->grad_hook_arg, blk);
    }
    TIMED(ctx, RD_VIT_TIME_EMBED, embedding_backward(ctx, &g));
    if (ctx->grad_hook) ctx->grad_hook(ctx->grad_hook_arg, -1);
    return RD_OK;
}
