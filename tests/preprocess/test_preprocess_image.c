/* The per-image pipeline: 8-bit NIH images and their 16-bit copies give identical outputs; the
 * result agrees with the Pillow pipeline the benchmark compares against; rejections, keep-aspect,
 * constant images, and a workspace that stops growing. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "pyref.h"
#include "rdino/preprocess_image.h"

static void nih_8_and_16_bit_give_identical_outputs(rd_test *t) {
    const char *shared = rd_test_shared_dir();
    if (!shared) SKIP("shared data directory not found (set RDINO_SHARED)");
    char list[1200];
    snprintf(list, sizeof list, "ls '%s/data/cxr_small/images16' 2>/dev/null", shared);
    FILE *names = popen(list, "r");
    CHECK(names != NULL);
    if (!names) return;
    rd_prep_workspace *ws = rd_prep_workspace_new();
    rd_prep_options variants[3] = {rd_prep_defaults(), rd_prep_defaults(), rd_prep_defaults()};
    variants[0].size = 64; /* native size: the resize is the identity geometry */
    variants[1].size = 100;
    variants[1].kernel = RD_KERNEL_CUBIC;
    variants[1].bit_depth = 16;
    variants[2].size = 37;
    variants[2].norm = RD_NORM_PERCENTILE;
    variants[2].center_crop = 0;
    size_t cap = rd_prep_output_bytes(&variants[2]) > rd_prep_output_bytes(&variants[1])
                     ? rd_prep_output_bytes(&variants[2])
                     : rd_prep_output_bytes(&variants[1]);
    unsigned char *a = malloc(cap), *b = malloc(cap);
    char name[256];
    int n = 0;
    while (fscanf(names, "%255s", name) == 1) {
        char p8[1600], p16[1600];
        snprintf(p8, sizeof p8, "%s/data/cxr_small/images/%s", shared, name);
        snprintf(p16, sizeof p16, "%s/data/cxr_small/images16/%s", shared, name);
        for (int v = 0; v < 3; v++) {
            rd_prep_result ra, rb;
            rd_error err = {0};
            CHECK_OK(rd_prep_image(ws, p8, &variants[v], a, cap, &ra, &err), &err);
            CHECK_OK(rd_prep_image(ws, p16, &variants[v], b, cap, &rb, &err), &err);
            CHECK(ra.source.bit_depth == 8 && rb.source.bit_depth == 16);
            CHECK(ra.out_width == rb.out_width && ra.out_height == rb.out_height);
            size_t bytes = (size_t)ra.out_width * ra.out_height * (variants[v].bit_depth / 8);
            CHECK_MSG(memcmp(a, b, bytes) == 0, "%s variant %d: 8- and 16-bit outputs differ", name,
                      v);
            CHECK(ra.window_lo < ra.window_hi && ra.warnings == 0);
        }
        n++;
    }
    pclose(names);
    CHECK_MSG(n >= 8, "only %d images in images16/", n);
    rd_prep_workspace_free(ws);
    free(a);
    free(b);
}

/* Writes a realistic test image with Pillow and runs the benchmark's Pillow pipeline on it. */
static void agrees_with_the_pillow_pipeline(rd_test *t) {
    if (!rd_test_have_pillow(t)) return;
    char peer[4096];
    if (!realpath("bench/peers/pillow_preprocess.py", peer))
        SKIP("bench/peers/pillow_preprocess.py not found (run from the repository root)");
    const char *dir = rd_test_tmpdir(t);
    char cmd[6000];
    snprintf(
        cmd, sizeof cmd,
        "cd '%s' && /usr/bin/python3 -c \""
        "import numpy as np; from PIL import Image\n"
        "rng = np.random.default_rng(3)\n"
        "for name, (w, h) in {'wide.png': (301, 217), 'tall.png': (190, 263)}.items():\n"
        "    yy, xx = np.mgrid[0:h, 0:w]\n"
        "    a = 128 + 170 * np.sin(xx / 17.0) * np.cos(yy / 23.0) + rng.normal(0, 8, (h, w))\n"
        "    Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), 'L').save(name)\n"
        "\" && /usr/bin/python3 '%s' 128 --out . wide.png tall.png >/dev/null",
        dir, peer);
    CHECK_MSG(system(cmd) == 0, "reference generation failed: %s", cmd);
    rd_prep_workspace *ws = rd_prep_workspace_new();
    rd_prep_options opt = rd_prep_defaults();
    opt.size = 128;
    opt.kernel = RD_KERNEL_CUBIC;
    unsigned char out[128 * 128];
    const char *names[] = {"wide.png", "tall.png"};
    for (int i = 0; i < 2; i++) {
        char path[1200], ref[1200];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        snprintf(ref, sizeof ref, "%s/%s.raw", dir, names[i]);
        rd_prep_result res;
        rd_error err = {0};
        CHECK_OK(rd_prep_image(ws, path, &opt, out, sizeof out, &res, &err), &err);
        FILE *f = fopen(ref, "rb");
        unsigned char want[128 * 128];
        CHECK_MSG(f && fread(want, 1, sizeof want, f) == sizeof want, "cannot read %s", ref);
        if (f) fclose(f);
        /* Pillow rounds to 8 bits after each pass; we round once. The intermediate rounding
         * (error up to half a level) flips the final rounding for about 15% of pixels, by one
         * level. The test images span the full range, so min-max does not stretch it. */
        int worst = 0, off = 0;
        for (size_t k = 0; k < sizeof out; k++) {
            int d = abs((int)out[k] - (int)want[k]);
            worst = d > worst ? d : worst;
            off += d > 0;
        }
        CHECK_MSG(worst <= 1 && off < (int)sizeof out / 4,
                  "%s: worst difference %d levels, %d pixels differ", names[i], worst, off);
    }
    rd_prep_workspace_free(ws);
}

/* A synthetic 8-bit image in memory. */
static rd_grey_image gradient(int w, int h, uint8_t *buf) {
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) buf[(size_t)y * w + x] = (uint8_t)((x * 3 + y * 5) % 256);
    return (rd_grey_image){w, h, 8, buf};
}

static void keep_aspect_and_aspect_limit(rd_test *t) {
    rd_prep_workspace *ws = rd_prep_workspace_new();
    rd_prep_options opt = rd_prep_defaults();
    opt.size = 20;
    opt.center_crop = 0;
    opt.max_aspect = 2.5;
    size_t cap = rd_prep_output_bytes(&opt);
    CHECK(cap == 20 * 50);
    unsigned char *out = malloc(cap);
    static uint8_t buf[100 * 50];
    rd_grey_image img = gradient(100, 50, buf);
    rd_prep_result res;
    rd_error err = {0};
    CHECK_OK(rd_prep_grey(ws, &img, "mem", &opt, out, cap, &res, &err), &err);
    CHECK(res.out_width == 40 && res.out_height == 20 && res.reject == RD_REJECT_NONE);
    img = gradient(100, 30, buf); /* 66x20: longer than 2.5 x 20 */
    CHECK(rd_prep_grey(ws, &img, "wide", &opt, out, cap, &res, &err) == RD_ERANGE);
    CHECK(res.reject == RD_REJECT_ASPECT && strstr(err.msg, "wide") && strstr(err.msg, "aspect"));
    opt.center_crop = 1; /* the same image cropped is fine */
    CHECK_OK(rd_prep_grey(ws, &img, "wide", &opt, out, cap, &res, &err), &err);
    CHECK(res.out_width == 20 && res.out_height == 20);
    CHECK(rd_prep_grey(ws, &img, "small", &opt, out, 399, &res, &err) == RD_ERANGE);
    rd_prep_workspace_free(ws);
    free(out);
}

static void rejects_carry_a_reason_and_the_workspace_survives(rd_test *t) {
    const char *dir = rd_test_tmpdir(t);
    rd_prep_workspace *ws = rd_prep_workspace_new();
    rd_prep_options opt = rd_prep_defaults();
    opt.size = 16;
    unsigned char out[16 * 16];
    rd_prep_result res;
    rd_error err = {0};
    char path[1200];
    snprintf(path, sizeof path, "%s/none.png", dir);
    CHECK(rd_prep_image(ws, path, &opt, out, sizeof out, &res, &err) == RD_ENOTFOUND);
    CHECK(res.reject == RD_REJECT_MISSING && strstr(err.msg, path));
    snprintf(path, sizeof path, "%s/text.png", dir);
    FILE *f = fopen(path, "w");
    fputs("not an image\n", f);
    fclose(f);
    CHECK(rd_prep_image(ws, path, &opt, out, sizeof out, &res, &err) == RD_EFORMAT);
    CHECK(res.reject == RD_REJECT_NOT_PNG);
    /* A good image afterwards. */
    static uint8_t buf[40 * 30];
    rd_grey_image img = gradient(40, 30, buf);
    snprintf(path, sizeof path, "%s/good.png", dir);
    CHECK_OK(rd_png_write_grey(path, &img, 1, &err), &err);
    CHECK_OK(rd_prep_image(ws, path, &opt, out, sizeof out, &res, &err), &err);
    CHECK(res.source.width == 40 && res.source.height == 30 && res.source.color_type == 0);
    CHECK(res.out_width == 16 && res.out_height == 16 && res.reject == RD_REJECT_NONE);
    int lo = 255, hi = 0;
    for (int i = 0; i < 256; i++) {
        lo = out[i] < lo ? out[i] : lo;
        hi = out[i] > hi ? out[i] : hi;
    }
    CHECK(lo == 0 && hi == 255); /* min-max stretches to the full range */
    /* Bad options are refused before any work. */
    opt.bit_depth = 12;
    CHECK(rd_prep_image(ws, path, &opt, out, sizeof out, &res, &err) == RD_EINVAL);
    opt.bit_depth = 8;
    opt.norm = RD_NORM_PERCENTILE;
    opt.lo_pct = 60;
    opt.hi_pct = 40;
    CHECK(rd_prep_image(ws, path, &opt, out, sizeof out, &res, &err) == RD_EINVAL);
    rd_prep_workspace_free(ws);
}

static void constant_image_is_zeros_with_a_warning(rd_test *t) {
    rd_prep_workspace *ws = rd_prep_workspace_new();
    rd_prep_options opt = rd_prep_defaults();
    opt.size = 8;
    opt.bit_depth = 16;
    static uint16_t buf[30 * 20];
    for (int i = 0; i < 600; i++) buf[i] = 1234;
    rd_grey_image img = {30, 20, 16, buf};
    uint16_t out[64];
    memset(out, 0xff, sizeof out);
    rd_prep_result res;
    rd_error err = {0};
    CHECK_OK(rd_prep_grey(ws, &img, "flat", &opt, out, sizeof out, &res, &err), &err);
    CHECK(res.warnings & RD_PREP_WARN_CONSTANT);
    int zeros = 1;
    for (int i = 0; i < 64; i++) zeros &= out[i] == 0;
    CHECK(zeros);
    rd_prep_workspace_free(ws);
}

/* Resampling a flat image leaves float ripples of ~1e-7 relative; they must not be stretched
 * to the full output range. */
static void resized_flat_image_is_still_constant(rd_test *t) {
    rd_prep_workspace *ws = rd_prep_workspace_new();
    static const int sizes[][2] = {{16, 48}, {32, 16}, {16, 64}, {32, 32}};
    static uint8_t buf[32 * 32];
    memset(buf, 77, sizeof buf);
    for (size_t c = 0; c < sizeof sizes / sizeof sizes[0]; c++) {
        rd_prep_options opt = rd_prep_defaults();
        opt.size = sizes[c][1];
        rd_grey_image img = {sizes[c][0], sizes[c][0], 8, buf};
        static uint8_t out[64 * 64];
        memset(out, 0xff, sizeof out);
        rd_prep_result res;
        rd_error err = {0};
        CHECK_OK(rd_prep_grey(ws, &img, "flat", &opt, out, sizeof out, &res, &err), &err);
        CHECK_MSG(res.warnings & RD_PREP_WARN_CONSTANT, "%d -> %d: no constant warning",
                  sizes[c][0], sizes[c][1]);
        int zeros = 1;
        for (int i = 0; i < opt.size * opt.size; i++) zeros &= out[i] == 0;
        CHECK_MSG(zeros, "%d -> %d: output not all zeros", sizes[c][0], sizes[c][1]);
    }
    rd_prep_workspace_free(ws);
}

static void workspace_stops_growing(rd_test *t) {
    rd_prep_workspace *ws = rd_prep_workspace_new();
    rd_prep_options opt = rd_prep_defaults();
    opt.size = 32;
    opt.norm = RD_NORM_PERCENTILE;
    unsigned char out[32 * 32];
    static uint8_t buf[300 * 200];
    rd_prep_result res;
    rd_error err = {0};
    rd_grey_image big = gradient(300, 200, buf);
    CHECK_OK(rd_prep_grey(ws, &big, "big", &opt, out, sizeof out, &res, &err), &err);
    size_t after_big = rd_prep_workspace_bytes(ws);
    int sizes[][2] = {{200, 300}, {64, 64}, {299, 199}, {33, 250}, {300, 200}};
    for (int i = 0; i < 5; i++) {
        rd_grey_image img = gradient(sizes[i][0], sizes[i][1], buf);
        CHECK_OK(rd_prep_grey(ws, &img, "img", &opt, out, sizeof out, &res, &err), &err);
    }
    CHECK_MSG(rd_prep_workspace_bytes(ws) <= after_big + 64 * 1024,
              "workspace grew from %zu to %zu bytes on smaller images", after_big,
              rd_prep_workspace_bytes(ws));
    rd_prep_workspace_free(ws);
}

static const rd_test_case cases[] = {
    {"nih_8_and_16_bit_give_identical_outputs", nih_8_and_16_bit_give_identical_outputs},
    {"agrees_with_the_pillow_pipeline", agrees_with_the_pillow_pipeline},
    {"keep_aspect_and_aspect_limit", keep_aspect_and_aspect_limit},
    {"rejects_carry_a_reason_and_the_workspace_survives",
     rejects_carry_a_reason_and_the_workspace_survives},
    {"constant_image_is_zeros_with_a_warning", constant_image_is_zeros_with_a_warning},
    {"resized_flat_image_is_still_constant", resized_flat_image_is_still_constant},
    {"workspace_stops_growing", workspace_stops_growing},
};
RD_TEST_MAIN("preprocess/preprocess_image", cases)
