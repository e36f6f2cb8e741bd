/* Shapes of the attention tests (tests/nn/test_attention*.c): b images of T tokens, D channels
 * in H heads; the element counts of qkv [b, T, 3D], out [b, T, D] and lse [b, H, 2, T]. */
#ifndef RDINO_TESTS_NN_ATTENTION_SHAPES_H
#define RDINO_TESTS_NN_ATTENTION_SHAPES_H

#include <stddef.h>

typedef struct shape {
    int b, T, D, H;
} shape;

static inline size_t n_qkv(shape s) {
    return (size_t)s.b * s.T * 3 * s.D;
}
static inline size_t n_out(shape s) {
    return (size_t)s.b * s.T * s.D;
}
static inline size_t n_lse(shape s) {
    return (size_t)s.b * s.H * 2 * s.T;
}

#endif
