#include "rdino/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Layer id of a backbone parameter (get_vit_lr_decay_rate with the "backbone." prefix). */
static int backbone_layer_id(const char *name, int depth) {
    static const char *const embeddings[] = {"pos_embed", "patch_embed", "mask_token", "cls_token",
                                             "register_tokens"};
    for (size_t i = 0; i < sizeof embeddings / sizeof embeddings[0]; i++)
        if (strstr(name, embeddings[i])) return 0;
    if (strncmp(name, "blocks.", 7) == 0) return atoi(name + 7) + 1;
    return depth + 1;
}

void rd_param_group_of(rd_module module, const char *name, int depth, double layerwise_decay,
                       double patch_embed_lr_mult, double *lr_mult, double *wd_mult,
                       int *last_layer) {
    double lr = 1.0;
    if (module == RD_MODULE_BACKBONE)
        lr = pow(layerwise_decay, depth + 1 - backbone_layer_id(name, depth));
    if (strstr(name, "patch_embed")) lr *= patch_embed_lr_mult;
    *lr_mult = lr;
    *wd_mult =
        (ends_with(name, ".bias") || strstr(name, "norm") || strstr(name, "gamma")) ? 0.0 : 1.0;
    *last_layer = module != RD_MODULE_BACKBONE && strstr(name, "last_layer") != NULL;
}

void rd_param_groups_assign(rd_param_set *set, int depth, double layerwise_decay,
                            double patch_embed_lr_mult) {
    for (int i = 0; i < set->count; i++) {
        rd_param *p = &set->params[i];
        double lr, wd;
        rd_param_group_of(p->module, p->name, depth, layerwise_decay, patch_embed_lr_mult, &lr, &wd,
                          &p->last_layer);
        p->lr_mult = (float)lr;
        p->wd_mult = (float)wd;
    }
}

rd_status rd_adamw_init(rd_adamw *opt, const rd_param_set *set, double beta1, double beta2,
                        double eps, rd_error *err) {
    memset(opt, 0, sizeof *opt);
    opt->beta1 = beta1;
    opt->beta2 = beta2;
    opt->eps = eps;
    opt->count = set->count;
    opt->numel = set->numel;
    size_t floats = rd_arena_round(set->numel * sizeof(float));
    size_t steps = rd_arena_round((size_t)set->count * sizeof(int64_t));
    rd_status st = rd_arena_init(&opt->arena, "optimizer", 2 * floats + steps, err);
    if (st) return st;
    opt->exp_avg = rd_arena_floats(&opt->arena, set->numel);
    opt->exp_avg_sq = rd_arena_floats(&opt->arena, set->numel);
    opt->step = rd_arena_alloc(&opt->arena, (size_t)set->count * sizeof(int64_t));
    return RD_OK;
}

void rd_adamw_free(rd_adamw *opt) {
    rd_arena_free(&opt->arena);
    memset(opt, 0, sizeof *opt);
}

void rd_adamw_step(rd_adamw *opt, rd_param_set *set, double lr, double last_layer_lr, double wd) {
    for (int i = 0; i < set->count; i++) {
        const rd_param *p = &set->params[i];
        double lr_g = (p->last_layer ? last_layer_lr : lr) * (double)p->lr_mult;
        double wd_g = wd * (double)p->wd_mult;
        int64_t s = ++opt->step[i];
        double bc1 = 1.0 - pow(opt->beta1, (double)s);
        double bc2_sqrt = sqrt(1.0 - pow(opt->beta2, (double)s));
        const float decay = (float)(1.0 - lr_g * wd_g), step_size = (float)(lr_g / bc1);
        const float b1 = (float)opt->beta1, b2 = (float)opt->beta2;
        const float one_b1 = (float)(1.0 - opt->beta1), one_b2 = (float)(1.0 - opt->beta2);
        const float inv_bc2 = (float)(1.0 / bc2_sqrt), eps = (float)opt->eps;
        float *theta = set->data + p->offset, *m = opt->exp_avg + p->offset;
        float *v = opt->exp_avg_sq + p->offset;
        const float *g = set->grad + p->offset;
        ptrdiff_t n = (ptrdiff_t)p->numel;
#pragma omp parallel for simd schedule(static) if (n > 65536)
        for (ptrdiff_t j = 0; j < n; j++) {
            theta[j] *= decay;
            m[j] = b1 * m[j] + one_b1 * g[j];
            v[j] = b2 * v[j] + one_b2 * g[j] * g[j];
            theta[j] -= step_size * (m[j] / (sqrtf(v[j]) * inv_bc2 + eps));
        }
    }
}

/* Sum of squares in a fixed order: 256 fixed chunks summed in parallel, then in sequence, so
 * the norm does not depend on the thread count. */
static double sum_squares(const float *x, size_t n) {
    enum { CHUNKS = 256 };
    double part[CHUNKS];
    size_t chunk = (n + CHUNKS - 1) / CHUNKS;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int c = 0; c < CHUNKS; c++) {
        size_t lo = (size_t)c * chunk, hi = lo + chunk < n ? lo + chunk : n;
        double s = 0.0;
#pragma omp simd reduction(+ : s)
        for (size_t i = lo; i < hi; i++) s += (double)x[i] * x[i];
        part[c] = s;
    }
    double s = 0.0;
    for (int c = 0; c < CHUNKS; c++) s += part[c];
    return s;
}

void rd_clip_grad_norms(rd_param_set *set, double max_norm, double *norms, double *coefs) {
    for (int mod = 0; mod < RD_MODULE_COUNT; mod++) {
        double ss = 0.0;
        for (int i = 0; i < set->count; i++)
            if (set->params[i].module == (rd_module)mod)
                ss += sum_squares(rd_param_grad(set, i), set->params[i].numel);
        double n = sqrt(ss), coef = 1.0;
        if (max_norm > 0) coef = fmin(1.0, max_norm / (n + 1e-6));
        if (coef < 1.0) {
            float c = (float)coef;
            for (int i = 0; i < set->count; i++) {
                if (set->params[i].module != (rd_module)mod) continue;
                float *g = rd_param_grad(set, i);
                ptrdiff_t n_i = (ptrdiff_t)set->params[i].numel;
#pragma omp parallel for simd schedule(static) if (n_i > 65536)
                for (ptrdiff_t j = 0; j < n_i; j++) g[j] *= c;
            }
        }
        if (norms) norms[mod] = n;
        if (coefs) coefs[mod] = coef;
    }
}

rd_status rd_ema_update(rd_param_set *teacher, const rd_param_set *student, double momentum,
                        rd_error *err) {
    if (teacher->numel != student->numel || teacher->count != student->count)
        return rd_fail(err, RD_EINVAL,
                       "EMA: teacher (%d tensors, %zu values) and student (%d, %zu) differ",
                       teacher->count, teacher->numel, student->count, student->numel);
    const float m = (float)momentum, one_m = (float)(1.0 - momentum);
    float *t = teacher->data;
    const float *s = student->data;
    ptrdiff_t n = (ptrdiff_t)teacher->numel;
#pragma omp parallel for simd schedule(static) if (n > 65536)
    for (ptrdiff_t i = 0; i < n; i++) t[i] = m * t[i] + one_m * s[i];
    return RD_OK;
}
