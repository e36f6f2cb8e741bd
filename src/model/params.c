#include "rdino/params.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rd_params_init(rd_param_set *set) {
    memset(set, 0, sizeof *set);
}

void rd_params_free(rd_param_set *set) {
    free(set->params);
    rd_arena_free(&set->arena);
    memset(set, 0, sizeof *set);
}

int rd_params_add(rd_param_set *set, rd_module module, const char *name, int ndim,
                  const int64_t *shape, rd_error *err) {
    if (set->data) {
        rd_fail(err, RD_EINVAL, "parameter %s declared after allocation", name);
        return -1;
    }
    if (ndim < 1 || ndim > RD_PARAM_MAX_DIMS || strlen(name) >= RD_PARAM_NAME_MAX) {
        rd_fail(err, RD_EINVAL, "parameter %s: bad rank %d or name too long", name, ndim);
        return -1;
    }
    /* Modules must be declared in order so each one is a contiguous range. */
    if (set->count > 0 && set->params[set->count - 1].module > module) {
        rd_fail(err, RD_EINVAL, "parameter %s: modules must be declared in order", name);
        return -1;
    }
    if (set->count == set->capacity) {
        int cap = set->capacity ? 2 * set->capacity : 64;
        rd_param *p = realloc(set->params, (size_t)cap * sizeof *p);
        if (!p) {
            rd_fail(err, RD_ENOMEM, "out of memory declaring parameters");
            return -1;
        }
        set->params = p;
        set->capacity = cap;
    }
    rd_param *p = &set->params[set->count];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->module = module;
    p->ndim = ndim;
    p->numel = 1;
    for (int d = 0; d < ndim; d++) {
        p->shape[d] = shape[d];
        p->numel *= (size_t)shape[d];
    }
    /* Each tensor starts on a 64-byte boundary (16 floats) so kernels can assume alignment. */
    p->offset = (set->numel + 15) & ~(size_t)15;
    p->lr_mult = 1.0f;
    p->wd_mult = 1.0f;
    set->numel = p->offset + p->numel;
    return set->count++;
}

rd_status rd_params_alloc(rd_param_set *set, int with_grad, rd_error *err) {
    size_t bytes = rd_arena_round(set->numel * sizeof(float));
    rd_status st = rd_arena_init(&set->arena, "parameters", with_grad ? 2 * bytes : bytes, err);
    if (st) return st;
    set->data = rd_arena_floats(&set->arena, set->numel);
    set->grad = with_grad ? rd_arena_floats(&set->arena, set->numel) : NULL;
    return RD_OK;
}

int rd_params_find(const rd_param_set *set, rd_module module, const char *name) {
    for (int i = 0; i < set->count; i++)
        if (set->params[i].module == module && strcmp(set->params[i].name, name) == 0) return i;
    return -1;
}

void rd_params_module_range(const rd_param_set *set, rd_module module, size_t *begin, size_t *end) {
    *begin = *end = 0;
    int first = 1;
    for (int i = 0; i < set->count; i++) {
        const rd_param *p = &set->params[i];
        if (p->module != module) continue;
        if (first) *begin = p->offset;
        first = 0;
        *end = p->offset + p->numel;
    }
}

const char *rd_module_name(rd_module module) {
    switch (module) {
    case RD_MODULE_BACKBONE:
        return "backbone";
    case RD_MODULE_DINO_HEAD:
        return "dino_head";
    case RD_MODULE_IBOT_HEAD:
        return "ibot_head";
    case RD_MODULE_COUNT:
        break;
    }
    return "?";
}
