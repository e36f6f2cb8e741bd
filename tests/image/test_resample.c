/* Resampling against Pillow (cubic) and a numpy rendering of Pillow's algorithm (B-spline),
 * torchvision's resize/crop geometry, and exact invariants. References are generated at test
 * time by tests/image/resample_reference.py. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "pyref.h"
#include "rdino/image.h"

static void *slurp(const char *path, size_t want) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    void *buf = malloc(want ? want : 1);
    size_t got = buf ? fread(buf, 1, want, f) : 0;
    int extra = fgetc(f) != EOF;
    fclose(f);
    if (got != want || extra) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* Float ('F') cases: on the [0, 1] scale our float weights and sums differ from Pillow's double
 * ones by a few ulp (measured worst 2.4e-7, up to 21 taps): 1e-6 absolute. 8-bit ('L') cases:
 * Pillow rounds to 8 bits between its passes and uses 22-bit fixed-point weights; we round once
 * at the end, so results may differ by one grey level, never more. */
static void matches_pillow_and_reference(rd_test *t) {
    const char *dir = rd_test_python_reference(t, "tests/image/resample_reference.py");
    if (!dir) return;
    char path[1024], name[128], kernel_name[16], mode[4];
    snprintf(path, sizeof path, "%s/cases.txt", dir);
    FILE *list = fopen(path, "r");
    CHECK(list != NULL);
    if (!list) return;
    rd_resampler rs = {0};
    int ncases = 0, nbspline = 0, ncubic8 = 0, ncrop = 0;
    rd_geometry g;
    while (fscanf(list, "%127s %15s %3s %d %d %d %d %d %d %d %d", name, kernel_name, mode, &g.in_w,
                  &g.in_h, &g.full_w, &g.full_h, &g.crop_x, &g.crop_y, &g.out_w, &g.out_h) == 11) {
        ncases++;
        int kernel = rd_kernel_parse(kernel_name);
        int eight_bit = strcmp(mode, "L") == 0;
        CHECK(kernel >= 0);
        nbspline += kernel == RD_KERNEL_BSPLINE;
        ncubic8 += eight_bit;
        ncrop += g.crop_x > 0 || g.crop_y > 0;
        size_t nin = (size_t)g.in_w * g.in_h, nout = (size_t)g.out_w * g.out_h;
        snprintf(path, sizeof path, "%s/%s.in", dir, name);
        void *in = slurp(path, nin * (eight_bit ? 1 : sizeof(float)));
        snprintf(path, sizeof path, "%s/%s.want", dir, name);
        float *want = slurp(path, nout * sizeof(float));
        float *got = malloc(nout * sizeof(float));
        CHECK_MSG(in && want, "%s: reference files missing or of the wrong size", name);
        rd_error err = {0};
        if (in && want && eight_bit) {
            rd_grey_image img = {g.in_w, g.in_h, 8, in};
            CHECK_OK(rd_resample_grey(&rs, &img, &g, (rd_kernel)kernel, got, &err), &err);
            int worst = 0;
            for (size_t i = 0; i < nout; i++) {
                int q = (int)floorf(got[i] * 255.0f + 0.5f), d = abs(q - (int)want[i]);
                worst = d > worst ? d : worst;
            }
            CHECK_MSG(worst <= 1, "%s: differs from Pillow by %d grey levels", name, worst);
        } else if (in && want) {
            CHECK_OK(rd_resample_float(&rs, in, &g, (rd_kernel)kernel, got, &err), &err);
            if (!CHECK_CLOSE(name, got, want, nout, 0, 1e-6)) fprintf(stderr, "  (%s)\n", name);
        }
        free(in);
        free(want);
        free(got);
    }
    fclose(list);
    rd_resampler_free(&rs);
    CHECK_MSG(ncases >= 30 && nbspline >= 10 && ncubic8 >= 10 && ncrop >= 6,
              "too few reference cases: %d (%d bspline, %d 8-bit, %d cropped)", ncases, nbspline,
              ncubic8, ncrop);
}

static void geometry_matches_torchvision(rd_test *t) {
    const char *dir = rd_test_python_reference(t, "tests/image/resample_reference.py");
    if (!dir) return;
    char path[1024];
    snprintf(path, sizeof path, "%s/geometry.txt", dir);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    if (!f) return;
    int in_w, in_h, size, fw, fh, cx, cy, n = 0;
    while (fscanf(f, "%d %d %d %d %d %d %d", &in_w, &in_h, &size, &fw, &fh, &cx, &cy) == 7) {
        n++;
        rd_geometry g = rd_geometry_shorter_side(in_w, in_h, size, 1);
        CHECK_MSG(g.full_w == fw && g.full_h == fh && g.crop_x == cx && g.crop_y == cy &&
                      g.out_w == size && g.out_h == size,
                  "%dx%d size %d: got %dx%d crop (%d, %d) %dx%d, torchvision %dx%d crop (%d, %d)",
                  in_w, in_h, size, g.full_w, g.full_h, g.crop_x, g.crop_y, g.out_w, g.out_h, fw,
                  fh, cx, cy);
        rd_geometry keep = rd_geometry_shorter_side(in_w, in_h, size, 0);
        CHECK(keep.full_w == fw && keep.full_h == fh && keep.out_w == fw && keep.out_h == fh &&
              keep.crop_x == 0 && keep.crop_y == 0);
    }
    fclose(f);
    CHECK_MSG(n >= 10, "only %d geometry cases", n);
}

/* ---- invariants (no reference needed) ---- */

static float *filled(size_t n, float v) {
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = v;
    return x;
}

static void constant_stays_constant(rd_test *t) {
    int sizes[][4] = {{50, 40, 17, 13}, {17, 13, 50, 41}, {1000, 7, 31, 3}, {5, 5, 5, 5}};
    rd_resampler rs = {0};
    for (int k = 0; k < 2; k++) {
        for (int s = 0; s < 4; s++) {
            rd_geometry g = rd_geometry_resize(sizes[s][0], sizes[s][1], sizes[s][2], sizes[s][3]);
            size_t nin = (size_t)g.in_w * g.in_h, nout = (size_t)g.out_w * g.out_h;
            float *in = filled(nin, 0.7f), *out = malloc(nout * sizeof(float));
            float *want = filled(nout, 0.7f);
            rd_error err = {0};
            CHECK_OK(rd_resample_float(&rs, in, &g, (rd_kernel)k, out, &err), &err);
            /* Weights sum to 1 within float rounding of their own (a few 1e-7). */
            CHECK_CLOSE("constant float", out, want, nout, 1e-6, 0);
            uint16_t *grey = malloc(nin * sizeof *grey);
            for (size_t i = 0; i < nin; i++) grey[i] = 40000;
            rd_grey_image img = {g.in_w, g.in_h, 16, grey};
            CHECK_OK(rd_resample_grey(&rs, &img, &g, (rd_kernel)k, out, &err), &err);
            for (size_t i = 0; i < nout; i++) want[i] = 40000.0f / 65535.0f;
            CHECK_CLOSE("constant grey", out, want, nout, 1e-6, 0);
            free(in);
            free(out);
            free(want);
            free(grey);
        }
    }
    rd_resampler_free(&rs);
}

static uint8_t *noise_u8(size_t n, uint32_t seed) {
    uint8_t *x = malloc(n);
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (uint8_t)(seed >> 24);
    }
    return x;
}

static void cubic_same_size_is_identity(rd_test *t) {
    int w = 37, h = 23;
    size_t n = (size_t)w * h;
    uint8_t *in = noise_u8(n, 1);
    float *out = malloc(n * sizeof *out);
    rd_grey_image img = {w, h, 8, in};
    rd_geometry g = rd_geometry_resize(w, h, w, h);
    rd_resampler rs = {0};
    rd_error err = {0};
    CHECK_OK(rd_resample_grey(&rs, &img, &g, RD_KERNEL_CUBIC, out, &err), &err);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += out[i] != (float)(in[i] * 257) * (1.0f / 65535.0f);
    CHECK_MSG(bad == 0, "%zu of %zu pixels changed", bad, n);
    rd_resampler_free(&rs);
    free(in);
    free(out);
}

static void kernels_have_their_defining_properties(rd_test *t) {
    /* B-spline: partition of unity and non-negative; cubic: interpolating (1 at 0, 0 at other
     * integers) and also a partition of unity. */
    for (double x = 0.0; x < 1.0; x += 0.0625) {
        double sum_b = 0, sum_c = 0;
        for (int n = -3; n <= 3; n++) {
            sum_b += rd_kernel_eval(RD_KERNEL_BSPLINE, x - n);
            sum_c += rd_kernel_eval(RD_KERNEL_CUBIC, x - n);
            CHECK(rd_kernel_eval(RD_KERNEL_BSPLINE, x - n) >= 0.0);
        }
        CHECK_NEAR(sum_b, 1.0, 1e-15);
        CHECK_NEAR(sum_c, 1.0, 1e-15);
    }
    CHECK(rd_kernel_eval(RD_KERNEL_CUBIC, 0.0) == 1.0);
    CHECK(rd_kernel_eval(RD_KERNEL_CUBIC, 1.0) == 0.0 &&
          rd_kernel_eval(RD_KERNEL_CUBIC, -2.0) == 0.0);
    CHECK_NEAR(rd_kernel_eval(RD_KERNEL_BSPLINE, 0.0), 2.0 / 3.0, 1e-15);
    CHECK_NEAR(rd_kernel_eval(RD_KERNEL_BSPLINE, 1.0), 1.0 / 6.0, 1e-15);
    CHECK(rd_kernel_eval(RD_KERNEL_BSPLINE, 2.0) == 0.0);
    CHECK(rd_kernel_eval(RD_KERNEL_BSPLINE, 0.3) == rd_kernel_eval(RD_KERNEL_BSPLINE, -0.3));
    CHECK(rd_kernel_parse("cubic") == RD_KERNEL_CUBIC && rd_kernel_parse("bspline") == 1 &&
          rd_kernel_parse("lanczos") == -1);
}

/* Mirroring the input mirrors the output (symmetric geometry), exactly up to float rounding. */
static void mirror_symmetry(rd_test *t) {
    int w = 61, h = 40, ow = 27, oh = 19;
    size_t n = (size_t)w * h, no = (size_t)ow * oh;
    uint8_t *in = noise_u8(n, 9), *flipped = malloc(n);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) flipped[(size_t)y * w + x] = in[(size_t)y * w + (w - 1 - x)];
    float *a = malloc(no * sizeof *a), *b = malloc(no * sizeof *b), *b_back = malloc(no * 4);
    rd_resampler rs = {0};
    rd_error err = {0};
    rd_geometry g = rd_geometry_resize(w, h, ow, oh);
    for (int k = 0; k < 2; k++) {
        rd_grey_image ia = {w, h, 8, in}, ib = {w, h, 8, flipped};
        CHECK_OK(rd_resample_grey(&rs, &ia, &g, (rd_kernel)k, a, &err), &err);
        CHECK_OK(rd_resample_grey(&rs, &ib, &g, (rd_kernel)k, b, &err), &err);
        for (int y = 0; y < oh; y++)
            for (int x = 0; x < ow; x++)
                b_back[(size_t)y * ow + x] = b[(size_t)y * ow + (ow - 1 - x)];
        CHECK_CLOSE("mirrored", a, b_back, no, 0, 1e-6);
    }
    rd_resampler_free(&rs);
    free(in);
    free(flipped);
    free(a);
    free(b);
    free(b_back);
}

/* B-spline weights are positive: no overshoot; cubic results of integer images are clamped. */
static void range_is_kept(rd_test *t) {
    int w = 80, h = 80;
    size_t n = (size_t)w * h;
    uint8_t *in = malloc(n); /* hard edges: the worst case for overshoot */
    for (size_t i = 0; i < n; i++)
        in[i] = ((i % (size_t)w) / 5 + (i / (size_t)w) / 7) % 2 ? 220 : 30;
    rd_grey_image img = {w, h, 8, in};
    rd_geometry g = rd_geometry_resize(w, h, 131, 57);
    float *out = malloc(131 * 57 * sizeof *out);
    rd_resampler rs = {0};
    rd_error err = {0};
    CHECK_OK(rd_resample_grey(&rs, &img, &g, RD_KERNEL_BSPLINE, out, &err), &err);
    float lo = 1, hi = 0;
    for (int i = 0; i < 131 * 57; i++) {
        lo = out[i] < lo ? out[i] : lo;
        hi = out[i] > hi ? out[i] : hi;
    }
    CHECK_MSG(lo >= 30.0f / 255 - 1e-6f && hi <= 220.0f / 255 + 1e-6f, "bspline range %g..%g",
              lo * 255, hi * 255);
    for (size_t i = 0; i < n; i++) in[i] = in[i] == 220 ? 255 : 0;
    CHECK_OK(rd_resample_grey(&rs, &img, &g, RD_KERNEL_CUBIC, out, &err), &err);
    int clamped = 1;
    for (int i = 0; i < 131 * 57; i++) clamped &= out[i] >= 0.0f && out[i] <= 1.0f;
    CHECK(clamped);
    rd_resampler_free(&rs);
    free(in);
    free(out);
}

/* An 8-bit image and its 16-bit copy (values * 257) give bitwise identical results. */
static void eight_and_sixteen_bit_agree_exactly(rd_test *t) {
    int w = 203, h = 157;
    size_t n = (size_t)w * h;
    uint8_t *in8 = noise_u8(n, 5);
    uint16_t *in16 = malloc(n * sizeof *in16);
    for (size_t i = 0; i < n; i++) in16[i] = (uint16_t)(in8[i] * 257);
    rd_geometry g = rd_geometry_shorter_side(w, h, 64, 1);
    size_t no = 64 * 64;
    float *a = malloc(no * sizeof *a), *b = malloc(no * sizeof *b);
    rd_resampler rs = {0};
    rd_error err = {0};
    for (int k = 0; k < 2; k++) {
        rd_grey_image i8 = {w, h, 8, in8}, i16 = {w, h, 16, in16};
        CHECK_OK(rd_resample_grey(&rs, &i8, &g, (rd_kernel)k, a, &err), &err);
        CHECK_OK(rd_resample_grey(&rs, &i16, &g, (rd_kernel)k, b, &err), &err);
        CHECK_MSG(memcmp(a, b, no * sizeof *a) == 0, "kernel %d: 8 and 16 bit differ", k);
    }
    rd_resampler_free(&rs);
    free(in8);
    free(in16);
    free(a);
    free(b);
}

static void bad_arguments_are_errors(rd_test *t) {
    rd_resampler rs = {0};
    rd_error err = {0};
    uint8_t px[4] = {0};
    float out[16];
    rd_grey_image img = {2, 2, 8, px};
    rd_geometry g = rd_geometry_resize(2, 2, 0, 3);
    CHECK(rd_resample_grey(&rs, &img, &g, RD_KERNEL_CUBIC, out, &err) == RD_EINVAL);
    g = rd_geometry_resize(3, 2, 4, 4);
    CHECK(rd_resample_grey(&rs, &img, &g, RD_KERNEL_CUBIC, out, &err) == RD_EINVAL);
    g = rd_geometry_resize(2, 2, 4, 4);
    g.crop_x = 1; /* window past the edge */
    CHECK(rd_resample_grey(&rs, &img, &g, RD_KERNEL_CUBIC, out, &err) == RD_EINVAL);
    img.depth = 12;
    g.crop_x = 0;
    CHECK(rd_resample_grey(&rs, &img, &g, RD_KERNEL_CUBIC, out, &err) == RD_EINVAL);
    rd_resampler_free(&rs);
}

static const rd_test_case cases[] = {
    {"matches_pillow_and_reference", matches_pillow_and_reference},
    {"geometry_matches_torchvision", geometry_matches_torchvision},
    {"constant_stays_constant", constant_stays_constant},
    {"cubic_same_size_is_identity", cubic_same_size_is_identity},
    {"kernels_have_their_defining_properties", kernels_have_their_defining_properties},
    {"mirror_symmetry", mirror_symmetry},
    {"range_is_kept", range_is_kept},
    {"eight_and_sixteen_bit_agree_exactly", eight_and_sixteen_bit_agree_exactly},
    {"bad_arguments_are_errors", bad_arguments_are_errors},
};
RD_TEST_MAIN("resample", cases)
