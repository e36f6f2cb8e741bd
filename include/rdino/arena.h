/* Bump allocator: one block sized up front, 64-byte aligned slices, freed all at once.
 * Parameters, gradients, optimiser state and activations each live in one arena, so the
 * training step never calls malloc. A measuring arena (capacity 0, no memory) only counts
 * bytes, which lets a module size its arena from the config before allocating it. */
#ifndef RDINO_ARENA_H
#define RDINO_ARENA_H

#include <stddef.h>

#include "rdino/error.h"

enum { RD_ARENA_ALIGN = 64 };

typedef struct rd_arena {
    const char *name;
    unsigned char *base; /* NULL for a measuring arena */
    size_t capacity;
    size_t used;
    size_t peak;
} rd_arena;

/* Allocates capacity bytes (zeroed). */
rd_status rd_arena_init(rd_arena *a, const char *name, size_t capacity, rd_error *err);
/* An arena that counts the bytes requested without holding memory. */
void rd_arena_init_measure(rd_arena *a, const char *name);
void rd_arena_free(rd_arena *a);

/* Returns NULL when the arena is exhausted or measuring; 'used' still advances when measuring. */
void *rd_arena_alloc(rd_arena *a, size_t bytes);
float *rd_arena_floats(rd_arena *a, size_t count);

static inline size_t rd_arena_mark(const rd_arena *a) {
    return a->used;
}
/* Releases everything allocated after mark. */
void rd_arena_reset(rd_arena *a, size_t mark);

/* Rounds bytes up to the arena alignment: what one allocation of 'bytes' consumes. */
static inline size_t rd_arena_round(size_t bytes) {
    return (bytes + RD_ARENA_ALIGN - 1) & ~(size_t)(RD_ARENA_ALIGN - 1);
}

#endif
