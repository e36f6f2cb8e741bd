#include <string.h>

#include "harness.h"
#include "rdino/rng.h"

/* Known-answer vectors of Philox4x32-10 from the Random123 distribution (kat_vectors). */
static void philox_known_answers(rd_test *t) {
    static const uint32_t cases[3][10] = {
        {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
        {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x408f276d,
         0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
        {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09,
         0x94fdcceb, 0x5001e420, 0x24126ea1},
    };
    for (int c = 0; c < 3; c++) {
        uint32_t out[4];
        rd_philox4x32(&cases[c][0], &cases[c][4], out);
        for (int i = 0; i < 4; i++)
            CHECK_MSG(out[i] == cases[c][6 + i], "vector %d word %d: got %08x want %08x", c, i,
                      out[i], cases[c][6 + i]);
    }
}

static void streams_depend_only_on_their_key(rd_test *t) {
    rd_rng a, b;
    rd_rng_init(&a, 42, RD_RNG_AUGMENT, 3, 1000, 2);
    rd_rng_init(&b, 42, RD_RNG_AUGMENT, 3, 1000, 2);
    for (int i = 0; i < 100; i++) CHECK(rd_rng_u32(&a) == rd_rng_u32(&b));
    /* Changing any key component changes the stream. */
    const struct {
        uint64_t seed;
        rd_rng_purpose p;
        uint32_t epoch;
        uint64_t index;
        uint32_t crop;
    } keys[] = {{43, RD_RNG_AUGMENT, 3, 1000, 2}, {42, RD_RNG_MASK, 3, 1000, 2},
                {42, RD_RNG_AUGMENT, 4, 1000, 2}, {42, RD_RNG_AUGMENT, 3, 1001, 2},
                {42, RD_RNG_AUGMENT, 3, 1000, 3}, {42, RD_RNG_AUGMENT, 3, 1000 + (1ull << 32), 2}};
    rd_rng_init(&a, 42, RD_RNG_AUGMENT, 3, 1000, 2);
    uint32_t ref[8];
    for (int i = 0; i < 8; i++) ref[i] = rd_rng_u32(&a);
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        rd_rng_init(&b, keys[k].seed, keys[k].p, keys[k].epoch, keys[k].index, keys[k].crop);
        int same = 1;
        for (int i = 0; i < 8; i++) same &= rd_rng_u32(&b) == ref[i];
        CHECK_MSG(!same, "key variant %zu gave the same stream", k);
    }
}

static void uniform_moments_and_range(rd_test *t) {
    rd_rng r;
    rd_rng_init(&r, 7, RD_RNG_TEST, 0, 0, 0);
    const int n = 200000;
    double sum = 0, sumsq = 0, nsum = 0, nsumsq = 0;
    for (int i = 0; i < n; i++) {
        double u = rd_rng_uniform(&r);
        CHECK(u >= 0.0 && u < 1.0);
        sum += u;
        sumsq += u * u;
        double z = rd_rng_normal(&r);
        nsum += z;
        nsumsq += z * z;
    }
    /* 5-sigma bounds on the sample mean and variance. */
    CHECK_NEAR(sum / n, 0.5, 5 * 0.2887 / sqrt(n));
    CHECK_NEAR(sumsq / n - (sum / n) * (sum / n), 1.0 / 12, 5 * 0.0745 / sqrt(n));
    CHECK_NEAR(nsum / n, 0.0, 5.0 / sqrt(n));
    CHECK_NEAR(nsumsq / n, 1.0, 5 * sqrt(2.0 / n));
}

static void randint_is_inclusive_and_unbiased(rd_test *t) {
    rd_rng r;
    rd_rng_init(&r, 9, RD_RNG_TEST, 0, 1, 0);
    int counts[7] = {0};
    const int n = 70000;
    for (int i = 0; i < n; i++) {
        int64_t v = rd_rng_randint(&r, -3, 3);
        CHECK(v >= -3 && v <= 3);
        if (v >= -3 && v <= 3) counts[v + 3]++;
    }
    for (int i = 0; i < 7; i++) CHECK_NEAR(counts[i], n / 7.0, 5 * sqrt(n / 7.0));
    CHECK(rd_rng_randint(&r, 5, 5) == 5);
}

static void permutation_is_a_permutation(rd_test *t) {
    rd_rng r;
    rd_rng_init(&r, 1, RD_RNG_TEST, 0, 2, 0);
    int perm[257], seen[257];
    rd_rng_permutation(&r, perm, 257);
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < 257; i++) {
        CHECK(perm[i] >= 0 && perm[i] < 257);
        if (perm[i] >= 0 && perm[i] < 257) seen[perm[i]]++;
    }
    for (int i = 0; i < 257; i++) CHECK(seen[i] == 1);
}

static const rd_test_case cases[] = {
    {"philox_known_answers", philox_known_answers},
    {"streams_depend_only_on_their_key", streams_depend_only_on_their_key},
    {"uniform_moments_and_range", uniform_moments_and_range},
    {"randint_is_inclusive_and_unbiased", randint_is_inclusive_and_unbiased},
    {"permutation_is_a_permutation", permutation_is_a_permutation},
};
RD_TEST_MAIN("core/rng", cases)
