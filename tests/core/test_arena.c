#include <stdint.h>

#include "harness.h"
#include "rdino/arena.h"

static void allocations_are_aligned_and_bounded(rd_test *t) {
    rd_arena a;
    rd_error err = {0};
    CHECK_OK(rd_arena_init(&a, "test", 1000, &err), &err);
    void *p = rd_arena_alloc(&a, 3);
    void *q = rd_arena_alloc(&a, 100);
    CHECK(p && q);
    CHECK(((uintptr_t)p % RD_ARENA_ALIGN) == 0 && ((uintptr_t)q % RD_ARENA_ALIGN) == 0);
    CHECK((char *)q - (char *)p == RD_ARENA_ALIGN);
    size_t mark = rd_arena_mark(&a);
    CHECK(rd_arena_alloc(&a, 10000) == NULL); /* too big: refused, nothing consumed */
    CHECK(rd_arena_mark(&a) == mark);
    float *f = rd_arena_floats(&a, 10);
    CHECK(f && f[0] == 0.0f); /* arenas start zeroed */
    rd_arena_reset(&a, mark);
    CHECK(rd_arena_floats(&a, 10) == f);
    rd_arena_free(&a);
}

static void measuring_arena_counts_what_a_real_one_needs(rd_test *t) {
    rd_arena m;
    rd_arena_init_measure(&m, "measure");
    size_t sizes[] = {1, 64, 65, 4096, 7};
    for (size_t i = 0; i < 5; i++) CHECK(rd_arena_alloc(&m, sizes[i]) == NULL);
    rd_arena a;
    rd_error err = {0};
    CHECK_OK(rd_arena_init(&a, "real", m.used, &err), &err);
    for (size_t i = 0; i < 5; i++) CHECK(rd_arena_alloc(&a, sizes[i]) != NULL);
    CHECK(rd_arena_alloc(&a, 1) == NULL);
    rd_arena_free(&a);
}

static const rd_test_case cases[] = {
    {"allocations_are_aligned_and_bounded", allocations_are_aligned_and_bounded},
    {"measuring_arena_counts_what_a_real_one_needs", measuring_arena_counts_what_a_real_one_needs},
};
RD_TEST_MAIN("core/arena", cases)
