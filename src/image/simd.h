/* Eight-lane float vectors through GCC/Clang vector extensions: AVX2/AVX-512 code with
 * -march=native, plain SSE or NEON pairs elsewhere, no intrinsics. Private to src/image. */
#ifndef RDINO_IMAGE_SIMD_H
#define RDINO_IMAGE_SIMD_H

#include <stdint.h>
#include <string.h>

enum { V8 = 8 };
typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

/* Unaligned load and store (memcpy compiles to one vmovups). */
static inline v8f v8_load(const float *p) {
    v8f v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void v8_store(float *p, v8f v) {
    memcpy(p, &v, sizeof v);
}
static inline v8f v8_set1(float x) {
    return (v8f){x, x, x, x, x, x, x, x};
}
/* Lane-wise a < b ? a : b and a > b ? a : b, the semantics of minps/maxps. */
static inline v8f v8_min(v8f a, v8f b) {
    v8i m = a < b;
    return (v8f)((m & (v8i)a) | (~m & (v8i)b));
}
static inline v8f v8_max(v8f a, v8f b) {
    v8i m = a > b;
    return (v8f)((m & (v8i)a) | (~m & (v8i)b));
}

#endif
