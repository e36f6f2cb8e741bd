#include "rdino/heads.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "rdino/nn.h"
#include "rdino/rng.h"

#define HEAD_NORM_EPS 1e-12

static int layer_in(const rd_head_config *c, int i) {
    return i == 0 ? c->in_dim : c->hidden_dim;
}
static int layer_out(const rd_head_config *c, int i) {
    return i == c->nlayers - 1 ? c->bottleneck : c->hidden_dim;
}

rd_status rd_head_declare(rd_head *head, rd_param_set *set, rd_module module,
                          const rd_head_config *cfg, rd_error *err) {
    if (cfg->nlayers < 1 || cfg->nlayers > RD_HEAD_MAX_LAYERS || cfg->in_dim < 1 ||
        cfg->hidden_dim < 1 || cfg->bottleneck < 1 || cfg->prototypes < 1)
        return rd_fail(err, RD_EINVAL,
                       "%s: bad head shape (in %d, hidden %d, bottleneck %d, K %d, %d layers)",
                       rd_module_name(module), cfg->in_dim, cfg->hidden_dim, cfg->bottleneck,
                       cfg->prototypes, cfg->nlayers);
    memset(head, 0, sizeof *head);
    head->cfg = *cfg;
    head->module = module;
    for (int i = 0; i < cfg->nlayers; i++) {
        /* nn.Sequential numbers Linear layers 0, 2, 4 (GELUs between); one layer is bare. */
        char prefix[32], name[48];
        if (cfg->nlayers == 1)
            snprintf(prefix, sizeof prefix, "mlp");
        else
            snprintf(prefix, sizeof prefix, "mlp.%d", 2 * i);
        int64_t wshape[2] = {layer_out(cfg, i), layer_in(cfg, i)};
        snprintf(name, sizeof name, "%s.weight", prefix);
        head->weight[i] = rd_params_add(set, module, name, 2, wshape, err);
        snprintf(name, sizeof name, "%s.bias", prefix);
        head->bias[i] = rd_params_add(set, module, name, 1, wshape, err);
        if (head->weight[i] < 0 || head->bias[i] < 0) return err ? err->code : RD_EINVAL;
    }
    int64_t gshape[2] = {cfg->prototypes, 1}, vshape[2] = {cfg->prototypes, cfg->bottleneck};
    head->weight_g = rd_params_add(set, module, "last_layer.weight_g", 2, gshape, err);
    head->weight_v = rd_params_add(set, module, "last_layer.weight_v", 2, vshape, err);
    if (head->weight_g < 0 || head->weight_v < 0) return err ? err->code : RD_EINVAL;
    return RD_OK;
}

void rd_head_init(const rd_head *head, rd_param_set *set, uint64_t seed) {
    rd_rng r;
    for (int i = 0; i < head->cfg.nlayers; i++) {
        const rd_param *p = &set->params[head->weight[i]];
        float *w = rd_param_data(set, head->weight[i]);
        rd_rng_init(&r, seed, RD_RNG_INIT, 0, (uint64_t)head->weight[i], 0);
        for (size_t j = 0; j < p->numel; j++) {
            double v;
            do v = 0.02 * rd_rng_normal(&r);
            while (fabs(v) > 2.0);
            w[j] = (float)v;
        }
        memset(rd_param_data(set, head->bias[i]), 0,
               set->params[head->bias[i]].numel * sizeof(float));
    }
    const rd_param *pv = &set->params[head->weight_v];
    float *v = rd_param_data(set, head->weight_v), *g = rd_param_data(set, head->weight_g);
    double bound = 1.0 / sqrt((double)head->cfg.bottleneck);
    rd_rng_init(&r, seed, RD_RNG_INIT, 0, (uint64_t)head->weight_v, 0);
    for (size_t j = 0; j < pv->numel; j++) v[j] = (float)rd_rng_range(&r, -bound, bound);
    for (int k = 0; k < head->cfg.prototypes; k++) g[k] = 1.0f;
}

rd_status rd_head_acts_alloc(rd_head_acts *acts, const rd_head *head, int capacity,
                             int with_backward, rd_arena *arena, rd_error *err) {
    const rd_head_config *c = &head->cfg;
    size_t rows = (size_t)(capacity > 0 ? capacity : 1), K = (size_t)c->prototypes;
    size_t hid = rows * (size_t)c->hidden_dim, bn = rows * (size_t)c->bottleneck;
    memset(acts, 0, sizeof *acts);
    acts->capacity = capacity;
    for (int i = 0; i < c->nlayers - 1; i++) {
        acts->pre[i] = rd_arena_floats(arena, hid);
        acts->act[i] = rd_arena_floats(arena, hid);
    }
    acts->y = rd_arena_floats(arena, bn);
    acts->inv_norm = rd_arena_floats(arena, rows);
    acts->z = rd_arena_floats(arena, bn);
    acts->logits = rd_arena_floats(arena, rows * K);
    acts->weight = rd_arena_floats(arena, K * (size_t)c->bottleneck);
    acts->inv_vnorm = rd_arena_floats(arena, K);
    if (with_backward) {
        acts->dhidden[0] = rd_arena_floats(arena, hid);
        acts->dhidden[1] = rd_arena_floats(arena, hid);
        acts->dz = rd_arena_floats(arena, bn);
        acts->dweight = rd_arena_floats(arena, K * (size_t)c->bottleneck);
    }
    if (arena->base && (!acts->logits || (with_backward && !acts->dweight)))
        return rd_fail(err, RD_ENOMEM, "arena '%s' too small for the %s activations (%d rows)",
                       arena->name, rd_module_name(head->module), capacity);
    return RD_OK;
}

/* The head's tensors inside one buffer laid out like its parameter set, by name: the parameters
 * or the gradients (see vit.c's vit_view). Bound at each forward and backward call from the set
 * that call receives. */
typedef struct head_view {
    float *weight[RD_HEAD_MAX_LAYERS]; /* mlp layer i [out_i, in_i] */
    float *bias[RD_HEAD_MAX_LAYERS];   /* [out_i] */
    float *weight_g;                   /* [K, 1] */
    float *weight_v;                   /* [K, bottleneck] */
} head_view;

/* Points v into buf (set->data or set->grad). */
static void bind_view(head_view *v, const rd_head *head, const rd_param_set *set, float *buf) {
    for (int i = 0; i < head->cfg.nlayers; i++) {
        v->weight[i] = rd_param_in(set, buf, head->weight[i]);
        v->bias[i] = rd_param_in(set, buf, head->bias[i]);
    }
    v->weight_g = rd_param_in(set, buf, head->weight_g);
    v->weight_v = rd_param_in(set, buf, head->weight_v);
}

/* weight[k] = g_k v_k / ||v_k|| (torch _weight_norm: v * (g / ||v||)). */
static void effective_weight(const rd_head *head, const head_view *w, rd_head_acts *a) {
    const int K = head->cfg.prototypes, bn = head->cfg.bottleneck;
    const float *v = w->weight_v, *g = w->weight_g;
#pragma omp parallel for schedule(static)
    for (int k = 0; k < K; k++) {
        const float *vk = v + (size_t)k * bn;
        double s = 0.0;
        for (int j = 0; j < bn; j++) s += (double)vk[j] * vk[j];
        double inv = 1.0 / sqrt(s);
        a->inv_vnorm[k] = (float)inv;
        float scale = (float)(g[k] * inv);
        for (int j = 0; j < bn; j++) a->weight[(size_t)k * bn + j] = vk[j] * scale;
    }
}

rd_status rd_head_forward(const rd_head *head, const rd_param_set *set, rd_head_acts *a,
                          const float *x, int rows, rd_error *err) {
    const rd_head_config *c = &head->cfg;
    if (rows < 0 || rows > a->capacity)
        return rd_fail(err, RD_ERANGE, "%s forward: %d rows exceed the capacity %d",
                       rd_module_name(head->module), rows, a->capacity);
    a->rows = rows;
    a->x = x;
    head_view w;
    bind_view(&w, head, set, set->data);
    effective_weight(head, &w, a);
    if (rows == 0) return RD_OK;
    const float *in = x;
    for (int i = 0; i < c->nlayers; i++) {
        float *out = i == c->nlayers - 1 ? a->y : a->pre[i];
        rd_linear_forward(out, in, w.weight[i], w.bias[i], rows, layer_in(c, i), layer_out(c, i));
        if (i < c->nlayers - 1) {
            rd_gelu_forward(a->act[i], a->pre[i], (size_t)rows * c->hidden_dim);
            in = a->act[i];
        }
    }
    const int bn = c->bottleneck;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) {
        const float *y = a->y + (size_t)r * bn;
        double s = 0.0;
        for (int j = 0; j < bn; j++) s += (double)y[j] * y[j];
        float inv = (float)(1.0 / fmax(sqrt(s), HEAD_NORM_EPS));
        a->inv_norm[r] = inv;
        for (int j = 0; j < bn; j++) a->z[(size_t)r * bn + j] = y[j] * inv;
    }
    rd_linear_forward(a->logits, a->z, a->weight, NULL, rows, bn, c->prototypes);
    return RD_OK;
}

/* dy = d(y / max(||y||, eps)): (dz - z <z, dz>) / ||y||, or dz / eps where the norm is clamped.
 * Computed in place in dz. */
static void normalize_backward(rd_head_acts *a, int bn) {
#pragma omp parallel for schedule(static)
    for (int r = 0; r < a->rows; r++) {
        float *dz = a->dz + (size_t)r * bn;
        const float *z = a->z + (size_t)r * bn, *y = a->y + (size_t)r * bn;
        double ss = 0.0, dot = 0.0;
        for (int j = 0; j < bn; j++) {
            ss += (double)y[j] * y[j];
            dot += (double)z[j] * dz[j];
        }
        float inv = a->inv_norm[r], proj = sqrt(ss) > HEAD_NORM_EPS ? (float)dot : 0.0f;
        for (int j = 0; j < bn; j++) dz[j] = (dz[j] - z[j] * proj) * inv;
    }
}

/* torch weight_norm backward from dW = dL/d(effective weight): w the parameters, grads their
 * gradients. */
static void weight_norm_backward(const rd_head *head, const head_view *w, const head_view *grads,
                                 const rd_head_acts *a) {
    const int K = head->cfg.prototypes, bn = head->cfg.bottleneck;
    const float *v = w->weight_v, *g = w->weight_g;
    float *dv = grads->weight_v, *dg = grads->weight_g;
#pragma omp parallel for schedule(static)
    for (int k = 0; k < K; k++) {
        const float *vk = v + (size_t)k * bn, *dwk = a->dweight + (size_t)k * bn;
        double dot = 0.0;
        for (int j = 0; j < bn; j++) dot += (double)dwk[j] * vk[j];
        double inv = a->inv_vnorm[k];
        dg[k] += (float)(dot * inv);
        float scale = (float)(g[k] * inv), along = (float)(dot * inv * inv);
        for (int j = 0; j < bn; j++) dv[(size_t)k * bn + j] += scale * (dwk[j] - along * vk[j]);
    }
}

void rd_head_backward(const rd_head *head, rd_param_set *set, rd_head_acts *a, const float *dlogits,
                      float *dx) {
    const rd_head_config *c = &head->cfg;
    const int rows = a->rows, bn = c->bottleneck, K = c->prototypes;
    size_t hid_n = (size_t)rows * c->hidden_dim;
    if (rows == 0) return;
    /* dW[K, bn] = dlogits^T z (overwritten), dz[rows, bn] = dlogits W. */
    rd_sgemm(1, 0, K, bn, rows, 1.0f, dlogits, K, a->z, bn, 0.0f, a->dweight, bn, NULL);
    rd_sgemm(0, 0, rows, bn, K, 1.0f, dlogits, K, a->weight, bn, 0.0f, a->dz, bn, NULL);
    head_view w, grads;
    bind_view(&w, head, set, set->data);
    bind_view(&grads, head, set, set->grad);
    weight_norm_backward(head, &w, &grads, a);
    normalize_backward(a, bn);
    /* MLP backward, last layer first. dout holds dL/d(layer output); of the two scratch
     * buffers, the one dout is not in takes dL/d(layer input), the other the pre-GELU gradient
     * (dout is consumed by then). */
    const float *dout = a->dz;
    for (int i = c->nlayers - 1; i >= 0; i--) {
        float *dw = grads.weight[i], *db = grads.bias[i];
        if (i == 0) {
            rd_linear_backward(dx, dw, db, dout, a->x, w.weight[0], rows, layer_in(c, 0),
                               layer_out(c, 0));
            break;
        }
        float *dact = dout == a->dhidden[0] ? a->dhidden[1] : a->dhidden[0];
        float *dpre = dact == a->dhidden[0] ? a->dhidden[1] : a->dhidden[0];
        memset(dact, 0, hid_n * sizeof(float));
        rd_linear_backward(dact, dw, db, dout, a->act[i - 1], w.weight[i], rows, layer_in(c, i),
                           layer_out(c, i));
        memset(dpre, 0, hid_n * sizeof(float));
        rd_gelu_backward(dpre, a->pre[i - 1], dact, hid_n);
        dout = dpre;
    }
}
