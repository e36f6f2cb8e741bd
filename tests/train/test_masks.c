/* iBOT masks (collate_data_and_cast, MaskingGenerator): block-generator bounds, the collate
 * invariants over many groups, the float32 upperbound as torch computes it, and determinism of the
 * counter-based keys (seed, epoch, first image of the group). */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "rdino/masks.h"

static void config_defaults(rd_test *t) {
    rd_mask_config c;
    rd_mask_config_default(&c, 224, 16, 0.5, 0.1, 0.5);
    CHECK(c.grid_h == 14 && c.grid_w == 14 && c.max_patches == 98.0 && c.min_patches == 4);
    rd_mask_config_default(&c, 224, 14, 0.5, 0.1, 0.5);
    CHECK(c.grid_h == 16 && c.max_patches == 128.0);
    /* sum floor(N probs[i+1]) with torch.linspace in float32 (values from torch 1.13). */
    rd_mask_config_default(&c, 224, 16, 0.5, 0.1, 0.5);
    CHECK(rd_ibot_masks_upperbound(&c, 16) == 507);
    CHECK(rd_ibot_masks_upperbound(&c, 64) == 1906);
    rd_mask_config_default(&c, 224, 14, 0.5, 0.1, 0.5);
    CHECK(rd_ibot_masks_upperbound(&c, 128) == 4941);
    rd_mask_config_default(&c, 32, 8, 0.5, 0.1, 0.5);
    CHECK(rd_ibot_masks_upperbound(&c, 6) == 16);
}

static void block_mask_bounds(rd_test *t) {
    rd_mask_config c;
    rd_mask_config_default(&c, 224, 16, 0.5, 0.1, 0.5);
    uint8_t mask[196];
    int exact = 0;
    for (int target = 0; target <= 98; target++) {
        rd_rng r;
        rd_rng_init(&r, 3, RD_RNG_MASK, 0, (uint64_t)target, 0);
        memset(mask, 0, sizeof mask);
        int n = rd_block_mask(&c, mask, target, &r), set = 0;
        for (int i = 0; i < 196; i++) set += mask[i];
        CHECK_MSG(n == set && n <= target, "target %d: returned %d, set %d", target, n, set);
        if (target == 0) CHECK(set == 0);
        if (target >= 4) CHECK(set > 0);
        exact += n == target;
    }
    CHECK(exact > 50); /* usually reaches the target exactly */
}

static void collate_invariants(rd_test *t) {
    enum { IMAGES = 16, N = 196, GROUPS = 200 };
    rd_mask_config c;
    rd_mask_config_default(&c, 224, 16, 0.5, 0.1, 0.5);
    rd_error err = {0};
    rd_arena arena;
    rd_arena_init_measure(&arena, "measure");
    rd_ibot_masks m;
    rd_ibot_masks_alloc(&m, IMAGES, N, &arena, &err);
    size_t bytes = arena.peak;
    CHECK_OK(rd_arena_init(&arena, "masks", bytes, &err), &err);
    CHECK_OK(rd_ibot_masks_alloc(&m, IMAGES, N, &arena, &err), &err);
    long masked_per_slot[IMAGES] = {0};
    for (int g = 0; g < GROUPS; g++) {
        CHECK_OK(rd_ibot_masks_generate(&m, &c, IMAGES, 42, 1, (uint64_t)g * 8, &err), &err);
        CHECK(m.masked_images == 8 && m.upperbound == 507 && m.count <= m.upperbound);
        int masked = 0;
        double wsum = 0;
        for (int i = 0; i < IMAGES; i++) {
            int cnt = 0;
            for (int p = 0; p < N; p++) cnt += m.mask[i * N + p];
            masked += cnt > 0;
            masked_per_slot[i] += cnt > 0;
            CHECK(cnt <= 98);             /* at most N x 0.5 */
            CHECK(cnt == 0 || cnt >= 19); /* at least floor(N x 0.1) */
        }
        CHECK(masked == 8);
        for (int p = 0; p < m.count; p++) {
            if (p > 0) CHECK(m.indices[p] > m.indices[p - 1]);
            int img = m.indices[p] / N, cnt = 0;
            for (int q = 0; q < N; q++) cnt += m.mask[img * N + q];
            CHECK(m.mask[m.indices[p]] == 1 && m.weight[p] == 1.0f / (float)cnt);
            wsum += m.weight[p];
        }
        CHECK_NEAR(wsum, 8.0, 1e-5);
    }
    /* The shuffle spreads the masks over both crops of all images. */
    for (int i = 0; i < IMAGES; i++)
        CHECK_MSG(masked_per_slot[i] > GROUPS / 4 && masked_per_slot[i] < 3 * GROUPS / 4,
                  "image %d masked in %ld of %d groups", i, masked_per_slot[i], GROUPS);
    rd_arena_free(&arena);
}

static void deterministic_keys(rd_test *t) {
    enum { IMAGES = 8, N = 196 };
    rd_mask_config c;
    rd_mask_config_default(&c, 224, 16, 0.5, 0.1, 0.5);
    rd_error err = {0};
    rd_arena arena;
    CHECK_OK(rd_arena_init(&arena, "masks", 1 << 16, &err), &err);
    rd_ibot_masks a, b;
    CHECK_OK(rd_ibot_masks_alloc(&a, IMAGES, N, &arena, &err), &err);
    CHECK_OK(rd_ibot_masks_alloc(&b, IMAGES, N, &arena, &err), &err);
    CHECK_OK(rd_ibot_masks_generate(&a, &c, IMAGES, 7, 3, 100, &err), &err);
    CHECK_OK(rd_ibot_masks_generate(&b, &c, IMAGES, 7, 3, 100, &err), &err);
    CHECK(a.count == b.count && memcmp(a.mask, b.mask, IMAGES * N) == 0);
    CHECK_OK(rd_ibot_masks_generate(&b, &c, IMAGES, 7, 4, 100, &err), &err);
    CHECK(memcmp(a.mask, b.mask, IMAGES * N) != 0);
    CHECK_OK(rd_ibot_masks_generate(&b, &c, IMAGES, 7, 3, 104, &err), &err);
    CHECK(memcmp(a.mask, b.mask, IMAGES * N) != 0);
    CHECK(rd_ibot_masks_generate(&b, &c, IMAGES + 1, 7, 3, 100, &err) == RD_ERANGE);
    /* Injected masks: index rebuilds count, indices and weights. */
    memset(b.mask, 0, IMAGES * N);
    b.n_images = IMAGES;
    b.mask[5] = b.mask[N + 1] = b.mask[N + 2] = 1;
    rd_ibot_masks_index(&b);
    CHECK(b.count == 3 && b.indices[0] == 5 && b.indices[2] == N + 2);
    CHECK(b.weight[0] == 1.0f && b.weight[1] == 0.5f);
    rd_arena_free(&arena);
}

static const rd_test_case cases[] = {
    {"config_defaults", config_defaults},
    {"block_mask_bounds", block_mask_bounds},
    {"collate_invariants", collate_invariants},
    {"deterministic_keys", deterministic_keys},
};
RD_TEST_MAIN("train/masks", cases)
