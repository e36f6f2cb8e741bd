/* Counter-based random numbers (Philox4x32-10, Salmon et al. SC'11).
 * A stream is keyed by (seed, purpose, epoch, index, crop): the numbers a sample gets depend
 * only on who it is, never on which rank draws them or in what order, which is what makes
 * training results independent of the number of ranks. */
#ifndef RDINO_RNG_H
#define RDINO_RNG_H

#include <stdint.h>

/* What a stream is used for; distinct purposes never share numbers. Values < 256. */
typedef enum {
    RD_RNG_INIT = 1,      /* parameter initialisation; index = parameter number */
    RD_RNG_AUGMENT = 2,   /* crop geometry and photometric draws; crop = crop number */
    RD_RNG_MASK = 3,      /* iBOT block masks */
    RD_RNG_DROP_PATH = 4, /* stochastic-depth subsets */
    RD_RNG_SAMPLER = 5,   /* data order */
    RD_RNG_SPLIT = 6,     /* patient-level train/val/test split */
    RD_RNG_SYNTH = 7,     /* synthetic phantom generation */
    RD_RNG_PROBE = 8,     /* cross-validation folds, bootstrap, permutations */
    RD_RNG_TEST = 255     /* tests only */
} rd_rng_purpose;

typedef struct rd_rng {
    uint32_t key[2];
    uint32_t ctr[4];
    uint32_t out[4];
    unsigned next; /* index into out; 4 = empty */
} rd_rng;

/* One Philox4x32-10 block: the raw generator, exposed for known-answer tests. */
void rd_philox4x32(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

/* index < 2^48, crop < 2^16. */
void rd_rng_init(rd_rng *r, uint64_t seed, rd_rng_purpose purpose, uint32_t epoch, uint64_t index,
                 uint32_t crop);

uint32_t rd_rng_u32(rd_rng *r);
uint64_t rd_rng_u64(rd_rng *r);
/* Uniform in [0, 1) with 53 random bits. */
double rd_rng_uniform(rd_rng *r);
/* Uniform in [lo, hi) (any order of lo and hi, like Python's random.uniform). */
double rd_rng_range(rd_rng *r, double lo, double hi);
/* Uniform integer in [lo, hi], inclusive, without modulo bias. */
int64_t rd_rng_randint(rd_rng *r, int64_t lo, int64_t hi);
/* Standard normal (Box-Muller, one value per two uniforms). */
double rd_rng_normal(rd_rng *r);
/* A uniformly random permutation of 0..n-1 (Fisher-Yates). */
void rd_rng_permutation(rd_rng *r, int *perm, int n);

#endif
