/* Rounding floats to bf16 pairs, shared by the bf16 products of the linear layers
 * (gemm_bf16.c) and of the attention (attention_bf16.c). Private to src/nn.
 *
 * A pair is one 32-bit word holding two bf16 that are summed together: the even index in the
 * low half, the odd one in the high half, the layout VDPBF16PS reads. The AVX-512 helpers are
 * compiled for that instruction set whatever the build's target and may only run after
 * rd_bf16_cpu_has() said yes. */
#ifndef RDINO_NN_BF16_SIMD_H
#define RDINO_NN_BF16_SIMD_H

#include <stdint.h>

#include "rdino/gemm_bf16.h"

/* A pair of bf16 as the kernels read it: even in the low half. */
static inline uint32_t bf16_pair(float even, float odd) {
    return rd_bf16_from_float(even) | (uint32_t)rd_bf16_from_float(odd) << 16;
}

#if defined(__x86_64__) && defined(__GNUC__)
#define RD_BF16_X86 1
#include <immintrin.h>
#define AVX512_BF16 __attribute__((target("avx512bf16,avx512f,avx512bw,avx512vl,avx512dq")))

/* Lanes [0, n) of 16. */
static inline __mmask16 lanes(int n) {
    return n <= 0 ? 0 : n >= 16 ? 0xffff : (__mmask16)((1u << n) - 1);
}

/* 16 floats rounded as rd_bf16_from_float, each bf16 in the upper half of its 32-bit lane
 * (the lower half is garbage). */
AVX512_BF16 static inline __m512i round_16(__m512 x) {
    __m512i u = _mm512_castps_si512(x);
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff)));
    __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    return _mm512_mask_or_epi32(r, nan, u, _mm512_set1_epi32(0x00400000));
}

/* 32 consecutive floats (lo = x[0..15], hi = x[16..31]) to 32 bf16 in order: 16 pairs. */
AVX512_BF16 static inline __m512i bf16_32(__m512 lo, __m512 hi) {
    /* 16-bit indices 1, 3, 5, ..., 63 into lo:hi, two per 32-bit lane */
    const __m512i upper_halves =
        _mm512_setr_epi32(0x00030001, 0x00070005, 0x000b0009, 0x000f000d, 0x00130011, 0x00170015,
                          0x001b0019, 0x001f001d, 0x00230021, 0x00270025, 0x002b0029, 0x002f002d,
                          0x00330031, 0x00370035, 0x003b0039, 0x003f003d);
    return _mm512_permutex2var_epi16(round_16(lo), upper_halves, round_16(hi));
}

/* 16 pairs (even[i], odd[i]): even in the low half. */
AVX512_BF16 static inline __m512i bf16_pairs(__m512 even, __m512 odd) {
    /* 0xf8 = a | (b & c): a = even's bf16 moved down, b & c = odd's bf16 kept in the upper half */
    return _mm512_ternarylogic_epi32(_mm512_srli_epi32(round_16(even), 16), round_16(odd),
                                     _mm512_set1_epi32((int)0xffff0000u), 0xf8);
}
#else
#define RD_BF16_X86 0
#endif

#endif
