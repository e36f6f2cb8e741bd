#include "rdino/rng.h"

#include <math.h>

enum { PHILOX_ROUNDS = 10 };

static inline void mulhilo32(uint32_t a, uint32_t b, uint32_t *hi, uint32_t *lo) {
    uint64_t p = (uint64_t)a * b;
    *hi = (uint32_t)(p >> 32);
    *lo = (uint32_t)p;
}

void rd_philox4x32(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    const uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;
    const uint32_t W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < PHILOX_ROUNDS; round++) {
        uint32_t hi0, lo0, hi1, lo1;
        mulhilo32(M0, c0, &hi0, &lo0);
        mulhilo32(M1, c2, &hi1, &lo1);
        uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
        c0 = n0;
        c1 = lo1;
        c2 = n2;
        c3 = lo0;
        k0 += W0;
        k1 += W1;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

/* Counter layout: ctr[0] = block number (low 24 bits) | purpose << 24,
 * ctr[1] = crop | (index >> 32) << 16, ctr[2] = low 32 bits of index, ctr[3] = epoch. */
void rd_rng_init(rd_rng *r, uint64_t seed, rd_rng_purpose purpose, uint32_t epoch, uint64_t index,
                 uint32_t crop) {
    r->key[0] = (uint32_t)seed;
    r->key[1] = (uint32_t)(seed >> 32);
    r->ctr[0] = ((uint32_t)purpose & 0xFFu) << 24;
    r->ctr[1] = (crop & 0xFFFFu) | (uint32_t)((index >> 32) & 0xFFFFu) << 16;
    r->ctr[2] = (uint32_t)index;
    r->ctr[3] = epoch;
    r->next = 4;
}

uint32_t rd_rng_u32(rd_rng *r) {
    if (r->next == 4) {
        rd_philox4x32(r->ctr, r->key, r->out);
        /* Advance the 24-bit block number; 2^24 blocks = 64 M draws per stream. */
        uint32_t block = (r->ctr[0] + 1u) & 0xFFFFFFu;
        r->ctr[0] = (r->ctr[0] & 0xFF000000u) | block;
        r->next = 0;
    }
    return r->out[r->next++];
}

uint64_t rd_rng_u64(rd_rng *r) {
    uint64_t hi = rd_rng_u32(r);
    return (hi << 32) | rd_rng_u32(r);
}

double rd_rng_uniform(rd_rng *r) {
    return (double)(rd_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
}

double rd_rng_range(rd_rng *r, double lo, double hi) {
    return lo + (hi - lo) * rd_rng_uniform(r);
}

int64_t rd_rng_randint(rd_rng *r, int64_t lo, int64_t hi) {
    if (hi <= lo) return lo;
    uint64_t span = (uint64_t)(hi - lo) + 1u;
    /* Rejection sampling: accept draws below the largest multiple of span. */
    uint64_t limit = UINT64_MAX - (UINT64_MAX % span);
    uint64_t x;
    do x = rd_rng_u64(r);
    while (x >= limit);
    return lo + (int64_t)(x % span);
}

double rd_rng_normal(rd_rng *r) {
    double u1 = 1.0 - rd_rng_uniform(r); /* (0, 1] so log is finite */
    double u2 = rd_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void rd_rng_permutation(rd_rng *r, int *perm, int n) {
    for (int i = 0; i < n; i++) perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)rd_rng_randint(r, 0, i);
        int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}
