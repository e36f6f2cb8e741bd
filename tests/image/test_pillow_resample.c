/* rd_pillow_resize against Pillow 9.4's Image.resize(..., BICUBIC), bit for bit: the committed
 * cases of tests/reference/fixtures/pillow_hf.h5 (make_pillow_fixtures.py), every window of them,
 * and 300 random geometries resized by Pillow at test time (pillow_resize_random.py). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "pillow_fixture.h"
#include "pyref.h"
#include "rdino/pillow_resample.h"

/* Index of the first differing byte, or -1. */
static long first_difference(const uint8_t *a, const uint8_t *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i]) return (long)i;
    return -1;
}

/* Resizes the in_w x in_h input to the window of g and compares with want (the whole out_w x
 * out_h Pillow result, full_w wide). Returns 1 when equal. */
static int window_matches(rd_test *t, rd_pillow_resampler *r, const char *name,
                          const uint8_t *input, const rd_geometry *g, const uint8_t *want) {
    uint8_t *got = malloc((size_t)g->out_w * g->out_h);
    rd_error err = {0};
    const uint8_t *src[1] = {input};
    uint8_t *dst[1] = {got};
    rd_status st = rd_pillow_resize(r, g, 1, src, dst, &err);
    CHECK_MSG(st == RD_OK, "%s: %s", name, err.msg);
    int ok = st == RD_OK;
    for (int y = 0; ok && y < g->out_h; y++) {
        const uint8_t *w = want + (size_t)(g->crop_y + y) * g->full_w + g->crop_x;
        long at = first_difference(got + (size_t)y * g->out_w, w, (size_t)g->out_w);
        if (at >= 0) {
            rd_test_fail(t, __FILE__, __LINE__,
                         "%s %dx%d -> %dx%d window %dx%d at (%d, %d): pixel (%ld, %d) is %d, "
                         "Pillow %d",
                         name, g->in_w, g->in_h, g->full_w, g->full_h, g->out_w, g->out_h,
                         g->crop_x, g->crop_y, g->crop_x + at, g->crop_y + y,
                         got[(size_t)y * g->out_w + (size_t)at], w[at]);
            ok = 0;
        }
    }
    free(got);
    return ok;
}

static void committed_cases(rd_test *t) {
    hid_t file = pillow_fixture_open();
    CHECK_MSG(file >= 0, "%s is missing (tests/reference/make_pillow_fixtures.py writes it)",
              PILLOW_FIXTURE);
    if (file < 0) return;
    char names[64][64];
    int n = pillow_fixture_list(file, "resize", names, 64);
    CHECK_MSG(n >= 18, "only %d resize cases", n);
    rd_pillow_resampler r = {0};
    for (int i = 0; i < n; i++) {
        char path[256];
        int64_t in_dims[4], out_dims[4];
        int nd_in = 0, nd_out = 0;
        snprintf(path, sizeof path, "/resize/%.63s/input", names[i]);
        uint8_t *input = pillow_fixture_u8(file, path, NULL, in_dims, &nd_in);
        snprintf(path, sizeof path, "/resize/%.63s/output", names[i]);
        uint8_t *want = pillow_fixture_u8(file, path, NULL, out_dims, &nd_out);
        CHECK_MSG(input && want && nd_in == 2 && nd_out == 2, "%s: unreadable case", names[i]);
        if (input && want && nd_in == 2 && nd_out == 2) {
            rd_geometry g = rd_geometry_resize((int)in_dims[1], (int)in_dims[0], (int)out_dims[1],
                                               (int)out_dims[0]);
            window_matches(t, &r, names[i], input, &g, want);
            /* Windows: each output pixel depends only on its taps, so every window of the
             * result must equal the same window of Pillow's whole result. */
            for (int k = 0; k < 6; k++) {
                rd_geometry w = g;
                w.out_w = 1 + (k * 7 + i) % g.full_w;
                w.out_h = 1 + (k * 5 + 3 * i) % g.full_h;
                w.crop_x = (k * 3 + i) % (g.full_w - w.out_w + 1);
                w.crop_y = (k + 2 * i) % (g.full_h - w.out_h + 1);
                window_matches(t, &r, names[i], input, &w, want);
            }
        }
        free(input);
        free(want);
    }
    rd_pillow_resampler_free(&r);
    H5Fclose(file);
}

static uint8_t *slurp(const char *path, size_t want) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    uint8_t *buf = malloc(want ? want : 1);
    size_t got = buf ? fread(buf, 1, want, f) : 0;
    fclose(f);
    if (got != want) {
        free(buf);
        return NULL;
    }
    return buf;
}

static void random_geometries_live(rd_test *t) {
    const char *dir = rd_test_python_reference(t, "tests/image/pillow_resize_random.py");
    if (!dir) return;
    char path[1024];
    snprintf(path, sizeof path, "%s/cases.txt", dir);
    FILE *list = fopen(path, "r");
    CHECK(list != NULL);
    if (!list) return;
    rd_pillow_resampler r = {0};
    char name[64];
    int w, h, ow, oh, cases = 0, failed = 0;
    while (fscanf(list, "%63s %d %d %d %d", name, &w, &h, &ow, &oh) == 5 && failed < 5) {
        snprintf(path, sizeof path, "%s/%s.in", dir, name);
        uint8_t *input = slurp(path, (size_t)w * h);
        snprintf(path, sizeof path, "%s/%s.out", dir, name);
        uint8_t *want = slurp(path, (size_t)ow * oh);
        CHECK_MSG(input && want, "%s: missing files", name);
        rd_geometry g = rd_geometry_resize(w, h, ow, oh);
        if (input && want) failed += !window_matches(t, &r, name, input, &g, want);
        free(input);
        free(want);
        cases++;
    }
    fclose(list);
    CHECK_MSG(cases == 300 || failed, "%d random cases read, 300 written", cases);
    rd_pillow_resampler_free(&r);
}

static void planes_share_coefficients(rd_test *t) {
    /* Three different planes in one call give what three one-plane calls give. */
    enum { W = 37, H = 23 };
    uint8_t in[3][W * H], together[3][16 * 41] = {{0}}, alone[16 * 41] = {0};
    for (int p = 0; p < 3; p++)
        for (int i = 0; i < W * H; i++) in[p][i] = (uint8_t)((i * (7 + 13 * p)) ^ (i >> 3));
    rd_geometry g = rd_geometry_resize(W, H, 16, 41);
    rd_pillow_resampler r = {0};
    rd_error err = {0};
    const uint8_t *src[3] = {in[0], in[1], in[2]};
    uint8_t *dst[3] = {together[0], together[1], together[2]};
    CHECK_OK(rd_pillow_resize(&r, &g, 3, src, dst, &err), &err);
    for (int p = 0; p < 3; p++) {
        uint8_t *one[1] = {alone};
        CHECK_OK(rd_pillow_resize(&r, &g, 1, &src[p], one, &err), &err);
        CHECK_MSG(memcmp(alone, together[p], sizeof alone) == 0, "plane %d differs", p);
    }
    rd_pillow_resampler_free(&r);
}

static void rejects_bad_geometry(rd_test *t) {
    uint8_t px[4] = {0}, out[4];
    const uint8_t *src[1] = {px};
    uint8_t *dst[1] = {out};
    rd_pillow_resampler r = {0};
    rd_error err = {0};
    rd_geometry bad[] = {
        rd_geometry_resize(0, 2, 2, 2),
        rd_geometry_resize(2, 2, 0, 2),
        {.in_w = 2, .in_h = 2, .full_w = 4, .full_h = 4, .crop_x = 3, .out_w = 2, .out_h = 2},
        {.in_w = 2, .in_h = 2, .full_w = 4, .full_h = 4, .crop_y = -1, .out_w = 2, .out_h = 2},
        rd_geometry_resize(1 << 24, 1, 2, 1),
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(rd_pillow_resize(&r, &bad[i], 1, src, dst, &err) == RD_EINVAL);
        CHECK(strstr(err.msg, "invalid geometry") != NULL);
    }
    rd_geometry ok = rd_geometry_resize(2, 2, 2, 2);
    CHECK(rd_pillow_resize(&r, &ok, 0, src, dst, &err) == RD_EINVAL);
    rd_pillow_resampler_free(&r);
}

static const rd_test_case cases[] = {
    {"committed_cases", committed_cases},
    {"random_geometries_live", random_geometries_live},
    {"planes_share_coefficients", planes_share_coefficients},
    {"rejects_bad_geometry", rejects_bad_geometry},
};

RD_TEST_MAIN("image/pillow_resample", cases)
