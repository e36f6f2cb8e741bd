/* Intensity windows (min-max, numpy-style percentiles) and quantisation. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "rdino/image.h"

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* numpy.percentile(x, p) ('linear'), by sorting: the slow, obvious definition. */
static double percentile_by_sorting(const float *x, size_t n, double p) {
    float *s = malloc(n * sizeof *s);
    memcpy(s, x, n * sizeof *s);
    qsort(s, n, sizeof *s, cmp_float);
    double h = p / 100.0 * (double)(n - 1);
    size_t f = (size_t)h;
    double v = f + 1 < n ? s[f] + (h - (double)f) * ((double)s[f + 1] - s[f]) : s[f];
    free(s);
    return v;
}

static void percentiles_match_numpy_definition(rd_test *t) {
    const float four[4] = {4, 1, 3, 2};
    float scratch[4096];
    /* numpy.percentile([1, 2, 3, 4], [0, 25, 50, 100]) = [1, 1.75, 2.5, 4] */
    CHECK(rd_percentile(four, 4, 0, scratch) == 1.0f);
    CHECK(rd_percentile(four, 4, 25, scratch) == 1.75f);
    CHECK(rd_percentile(four, 4, 50, scratch) == 2.5f);
    CHECK(rd_percentile(four, 4, 100, scratch) == 4.0f);
    CHECK(four[0] == 4 && four[1] == 1); /* input untouched */
    const float one = 7;
    CHECK(rd_percentile(&one, 1, 99.5, scratch) == 7.0f);

    /* Random, heavily duplicated, sorted and reverse-sorted data, odd and even sizes. */
    static float x[4096];
    const double ps[] = {0, 0.5, 1, 2.5, 50, 97.5, 99.5, 100};
    uint32_t state = 3;
    for (int pattern = 0; pattern < 4; pattern++) {
        for (size_t n = 1; n <= 4096; n = n * 3 + 1) {
            for (size_t i = 0; i < n; i++) {
                state = state * 1664525u + 1013904223u;
                float r = (float)(state >> 8) / 16777216.0f;
                x[i] = pattern == 0   ? r
                       : pattern == 1 ? (float)(state >> 30) /* four values */
                       : pattern == 2 ? (float)i
                                      : (float)(n - i);
            }
            for (size_t k = 0; k < sizeof ps / sizeof ps[0]; k++) {
                double want = percentile_by_sorting(x, n, ps[k]);
                float got = rd_percentile(x, n, ps[k], scratch);
                CHECK_MSG(fabs(got - want) <= 1e-6 * (1 + fabs(want)),
                          "pattern %d n %zu p %g: got %.9g want %.9g", pattern, n, ps[k], got,
                          want);
            }
        }
    }
}

static void window_minmax_and_percentile(rd_test *t) {
    size_t n = 1001; /* not a multiple of the vector width */
    float *x = malloc(n * sizeof *x), *scratch = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = (float)((i * 7919) % 1001) / 1000.0f - 0.25f;
    x[1000] = -3.0f; /* the extremes sit in the scalar tail and the middle */
    x[517] = 9.0f;
    float lo, hi;
    rd_norm_window(x, n, RD_NORM_MINMAX, 0, 0, scratch, &lo, &hi);
    CHECK(lo == -3.0f && hi == 9.0f);
    rd_norm_window(x, n, RD_NORM_PERCENTILE, 1, 99, scratch, &lo, &hi);
    CHECK_NEAR(lo, percentile_by_sorting(x, n, 1), 1e-6);
    CHECK_NEAR(hi, percentile_by_sorting(x, n, 99), 1e-6);
    CHECK(rd_norm_parse("minmax") == RD_NORM_MINMAX &&
          rd_norm_parse("percentile") == RD_NORM_PERCENTILE && rd_norm_parse("clahe") == -1);
    free(x);
    free(scratch);
}

static void quantize_rounds_half_up_and_clamps(rd_test *t) {
    /* Window [0, 255] on 8 bits: q = floor(x + 0.5). */
    float x[19] = {0, 0.5f, 1.5f, 2.5f, 2.49f, 254.5f, 255, -4,    300,     127.5f,
                   3, 4,    5,    6,    7,     8,      9,   10.5f, 11.4999f};
    uint8_t want8[19] = {0, 1, 2, 3, 2, 255, 255, 0, 255, 128, 3, 4, 5, 6, 7, 8, 9, 11, 11};
    uint8_t q8[19];
    CHECK(rd_quantize(x, 19, 0.0f, 255.0f, 8, q8) == 0);
    for (int i = 0; i < 19; i++)
        CHECK_MSG(q8[i] == want8[i], "x %g -> %d, want %d", x[i], q8[i], want8[i]);
    /* 16 bits over [lo, hi] = [-1, 1]: ends map to 0 and 65535, the middle to 32768 (half up). */
    float y[11] = {-1, 1, 0, -2, 2, 0.5f, -0.5f, 1, 1, 1, 1};
    uint16_t q16[11];
    CHECK(rd_quantize(y, 11, -1.0f, 1.0f, 16, q16) == 0);
    CHECK(q16[0] == 0 && q16[1] == 65535 && q16[2] == 32768 && q16[3] == 0 && q16[4] == 65535);
    CHECK(q16[5] == 49151 && q16[6] == 16384 && q16[10] == 65535);
}

static void constant_image_gives_zeros_and_a_warning(rd_test *t) {
    float x[13], scratch[13];
    uint8_t q8[13];
    uint16_t q16[13];
    for (int i = 0; i < 13; i++) x[i] = 0.3f;
    memset(q8, 7, sizeof q8);
    memset(q16, 7, sizeof q16);
    CHECK(rd_quantize(x, 13, 0.3f, 0.3f, 8, q8) == RD_NORM_WARN_CONSTANT);
    CHECK(rd_quantize(x, 13, 0.3f, 0.3f, 16, q16) == RD_NORM_WARN_CONSTANT);
    int zeros = 1;
    for (int i = 0; i < 13; i++) zeros &= q8[i] == 0 && q16[i] == 0;
    CHECK(zeros);
    float lo, hi;
    rd_norm_window(x, 13, RD_NORM_MINMAX, 0, 0, scratch, &lo, &hi);
    CHECK(lo == hi);
}

static const rd_test_case cases[] = {
    {"percentiles_match_numpy_definition", percentiles_match_numpy_definition},
    {"window_minmax_and_percentile", window_minmax_and_percentile},
    {"quantize_rounds_half_up_and_clamps", quantize_rounds_half_up_and_clamps},
    {"constant_image_gives_zeros_and_a_warning", constant_image_gives_zeros_and_a_warning},
};
RD_TEST_MAIN("normalize", cases)
