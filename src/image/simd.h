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

typedef uint8_t v8u8 __attribute__((vector_size(8)));
typedef uint16_t v8u16 __attribute__((vector_size(16)));

/* Eight consecutive samples as floats. GCC's generic u8/u16 -> float vector conversion goes
 * through general registers lane by lane; with AVX2 this is vpmovzx + vcvtdq2ps. */
#if defined(__AVX2__)
#include <immintrin.h>
static inline v8f v8_load_u8(const uint8_t *p) {
    return (v8f)_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p)));
}
static inline v8f v8_load_u16(const uint16_t *p) {
    return (v8f)_mm256_cvtepi32_ps(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)));
}
#else
static inline v8f v8_load_u8(const uint8_t *p) {
    v8u8 v;
    memcpy(&v, p, sizeof v);
    return __builtin_convertvector(__builtin_convertvector(v, v8i), v8f);
}
static inline v8f v8_load_u16(const uint16_t *p) {
    v8u16 v;
    memcpy(&v, p, sizeof v);
    return __builtin_convertvector(__builtin_convertvector(v, v8i), v8f);
}
#endif
static inline v8f v8_load_f32(const float *p) {
    return v8_load(p);
}

/* Eight consecutive uint8 samples as int32 lanes (vpmovzxbd with AVX2). */
static inline v8i v8i_load_u8(const uint8_t *p) {
#if defined(__AVX2__)
    return (v8i)_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p));
#else
    v8u8 v;
    memcpy(&v, p, sizeof v);
    return __builtin_convertvector(v, v8i);
#endif
}

/* Transposes the 8x8 block m[row][lane] in place. */
static inline void v8_transpose(v8f m[8]) {
#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 12)
#define SHUF __builtin_shufflevector
    /* Written out: GCC -O2 keeps named vectors in registers, not loop-indexed arrays. */
    v8f t0 = SHUF(m[0], m[1], 0, 8, 1, 9, 4, 12, 5, 13),
        t1 = SHUF(m[0], m[1], 2, 10, 3, 11, 6, 14, 7, 15);
    v8f t2 = SHUF(m[2], m[3], 0, 8, 1, 9, 4, 12, 5, 13),
        t3 = SHUF(m[2], m[3], 2, 10, 3, 11, 6, 14, 7, 15);
    v8f t4 = SHUF(m[4], m[5], 0, 8, 1, 9, 4, 12, 5, 13),
        t5 = SHUF(m[4], m[5], 2, 10, 3, 11, 6, 14, 7, 15);
    v8f t6 = SHUF(m[6], m[7], 0, 8, 1, 9, 4, 12, 5, 13),
        t7 = SHUF(m[6], m[7], 2, 10, 3, 11, 6, 14, 7, 15);
    v8f u0 = SHUF(t0, t2, 0, 1, 8, 9, 4, 5, 12, 13), u1 = SHUF(t0, t2, 2, 3, 10, 11, 6, 7, 14, 15);
    v8f u2 = SHUF(t1, t3, 0, 1, 8, 9, 4, 5, 12, 13), u3 = SHUF(t1, t3, 2, 3, 10, 11, 6, 7, 14, 15);
    v8f u4 = SHUF(t4, t6, 0, 1, 8, 9, 4, 5, 12, 13), u5 = SHUF(t4, t6, 2, 3, 10, 11, 6, 7, 14, 15);
    v8f u6 = SHUF(t5, t7, 0, 1, 8, 9, 4, 5, 12, 13), u7 = SHUF(t5, t7, 2, 3, 10, 11, 6, 7, 14, 15);
    m[0] = SHUF(u0, u4, 0, 1, 2, 3, 8, 9, 10, 11);
    m[4] = SHUF(u0, u4, 4, 5, 6, 7, 12, 13, 14, 15);
    m[1] = SHUF(u1, u5, 0, 1, 2, 3, 8, 9, 10, 11);
    m[5] = SHUF(u1, u5, 4, 5, 6, 7, 12, 13, 14, 15);
    m[2] = SHUF(u2, u6, 0, 1, 2, 3, 8, 9, 10, 11);
    m[6] = SHUF(u2, u6, 4, 5, 6, 7, 12, 13, 14, 15);
    m[3] = SHUF(u3, u7, 0, 1, 2, 3, 8, 9, 10, 11);
    m[7] = SHUF(u3, u7, 4, 5, 6, 7, 12, 13, 14, 15);
#undef SHUF
#else
    for (int i = 0; i < 8; i++)
        for (int j = i + 1; j < 8; j++) {
            float x = m[i][j];
            m[i][j] = m[j][i];
            m[j][i] = x;
        }
#endif
}

#endif
