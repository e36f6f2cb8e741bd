#include "rdino/arena.h"

#include <stdlib.h>
#include <string.h>

rd_status rd_arena_init(rd_arena *a, const char *name, size_t capacity, rd_error *err) {
    a->name = name;
    a->used = 0;
    a->peak = 0;
    a->capacity = rd_arena_round(capacity);
    a->base = NULL;
    if (a->capacity == 0) return RD_OK;
    void *mem = NULL;
    if (posix_memalign(&mem, RD_ARENA_ALIGN, a->capacity) != 0)
        return rd_fail(err, RD_ENOMEM, "arena '%s': cannot allocate %zu bytes", name, a->capacity);
    memset(mem, 0, a->capacity);
    a->base = mem;
    return RD_OK;
}

void rd_arena_init_measure(rd_arena *a, const char *name) {
    a->name = name;
    a->base = NULL;
    a->capacity = 0;
    a->used = 0;
    a->peak = 0;
}

void rd_arena_free(rd_arena *a) {
    free(a->base);
    a->base = NULL;
    a->capacity = 0;
    a->used = 0;
}

void *rd_arena_alloc(rd_arena *a, size_t bytes) {
    size_t need = rd_arena_round(bytes);
    if (a->base == NULL) { /* measuring */
        a->used += need;
        if (a->used > a->peak) a->peak = a->used;
        return NULL;
    }
    if (need > a->capacity - a->used) return NULL;
    void *p = a->base + a->used;
    a->used += need;
    if (a->used > a->peak) a->peak = a->used;
    return p;
}

float *rd_arena_floats(rd_arena *a, size_t count) {
    return rd_arena_alloc(a, count * sizeof(float));
}

void rd_arena_reset(rd_arena *a, size_t mark) {
    if (mark <= a->used) a->used = mark;
}
