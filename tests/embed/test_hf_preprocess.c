/* rd_hf_preprocess_png against transformers' BitImageProcessor, bit for bit:
 *  - the three PNGs of ../shared/fixtures/hf_dinov2_tiny and their png_*_pixel_values.npy,
 *    computed by transformers v4.47.1 with Pillow 9.4 (microsoft/rad-dino's settings);
 *  - tests/reference/fixtures/pillow_hf.h5 /pipeline and /convert cases (other settings, every PNG
 *    kind), computed by bench/peers/hf_preprocess_pillow.py, whose agreement with transformers
 *    is checked here too (peer_matches_transformers). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "harness.h"
#include "npy.h"
#include "pillow_fixture.h"
#include "pyref.h"
#include "rdino/hf_preprocess.h"

static const char *const shared_pngs[] = {"png_grey8_600x500", "png_grey8_1024x1024",
                                          "png_grey16_700x900"};
enum { N_SHARED = 3, RAD = 518 };

/* microsoft/rad-dino's preprocessor_config.json, as the coordinator's JSON wiring fills it. */
static rd_hf_processor rad_dino(void) {
    rd_hf_processor p = rd_hf_bit_defaults();
    p.shortest_edge = RAD;
    p.crop_height = p.crop_width = RAD;
    p.rescale_factor = 0.00392156862745098;
    for (int c = 0; c < 3; c++) {
        p.image_mean[c] = 0.5307;
        p.image_std[c] = 0.2583;
    }
    return p;
}

static const char *shared_fixture_dir(rd_test *t) {
    static char dir[1024];
    const char *shared = rd_test_shared_dir();
    if (!shared) {
        rd_test_skip(t, "../shared is absent (set RDINO_SHARED): no transformers fixtures");
        return NULL;
    }
    snprintf(dir, sizeof dir, "%s/fixtures/hf_dinov2_tiny", shared);
    return dir;
}

/* The settings above must be the ones in the fixture's preprocessor_config.json. */
static void config_is_rad_dinos(rd_test *t) {
    const char *dir = shared_fixture_dir(t);
    if (!dir) return;
    char path[1200], text[4096] = {0};
    snprintf(path, sizeof path, "%s/preprocessor_config.json", dir);
    FILE *f = fopen(path, "r");
    CHECK_MSG(f != NULL, "%s missing", path);
    if (!f) return;
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    CHECK(n > 0);
    const char *expected[] = {"\"shortest_edge\": 518",
                              "\"height\": 518",
                              "\"width\": 518",
                              "\"resample\": 3",
                              "\"do_center_crop\": true",
                              "\"do_convert_rgb\": true",
                              "\"do_normalize\": true",
                              "\"do_rescale\": true",
                              "\"do_resize\": true",
                              "0.5307,\n    0.5307,\n    0.5307",
                              "0.2583,\n    0.2583,\n    0.2583",
                              "\"rescale_factor\": 0.00392156862745098",
                              "\"BitImageProcessor\""};
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++)
        CHECK_MSG(strstr(text, expected[i]) != NULL, "%s lacks %s", path, expected[i]);
}

static void shared_pngs_bit_exact(rd_test *t) {
    const char *dir = shared_fixture_dir(t);
    if (!dir) return;
    rd_hf_processor p = rad_dino();
    rd_hf_workspace ws = {0};
    rd_png_reader reader = {0};
    float *out = malloc(3 * RAD * RAD * sizeof(float));
    for (int i = 0; i < N_SHARED; i++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/%s_pixel_values.npy", dir, shared_pngs[i]);
        int64_t dims[RD_NPY_MAX_DIMS];
        int ndim = 0;
        float *want = rd_npy_floats(path, NULL, dims, &ndim);
        CHECK_MSG(want, "%s: not a float32 .npy (see stderr)", path);
        if (!want) continue;
        CHECK(ndim == 4 && dims[1] == 1 && dims[2] == RAD && dims[3] == RAD);
        snprintf(path, sizeof path, "%s/%s.png", dir, shared_pngs[i]);
        rd_png_image png;
        rd_reject reason;
        rd_error err = {0};
        CHECK_OK(rd_png_read_stored(&reader, path, 1 << 22, &png, &reason, &err), &err);
        size_t above = 0; /* independent count of what Pillow saturates */
        if (png.bit_depth == 16)
            for (size_t k = 0; k < (size_t)png.width * png.height; k++)
                above += ((const uint16_t *)png.samples)[k] > 255;
        for (int allow_one = 1; allow_one >= 0; allow_one--) {
            rd_hf_result res;
            rd_status st = rd_hf_preprocess_png(&ws, &png, path, &p, allow_one, out, 3 * RAD * RAD,
                                                &res, &err);
            CHECK_MSG(st == RD_OK, "%s", err.msg);
            if (st != RD_OK) continue;
            CHECK(res.width == RAD && res.height == RAD);
            CHECK_MSG(res.channels == (allow_one ? 1 : 3), "%s: %d channels", shared_pngs[i],
                      res.channels);
            for (int c = 0; c < res.channels; c++) {
                /* Bit for bit: memcmp, not a tolerance. */
                int same =
                    memcmp(out + (size_t)c * RAD * RAD, want, RAD * RAD * sizeof(float)) == 0;
                if (!same)
                    CHECK_CLOSE(shared_pngs[i], out + (size_t)c * RAD * RAD, want, RAD * RAD, 0.0,
                                0.0);
            }
            CHECK_MSG(res.loss.clipped_samples == above, "%s: %zu clipped, %zu above 255",
                      shared_pngs[i], res.loss.clipped_samples, above);
        }
        if (png.bit_depth == 16) CHECK(above > (size_t)png.width * png.height / 2);
        free(want);
    }
    free(out);
    rd_png_reader_free(&reader);
    rd_hf_workspace_free(&ws);
}

/* The Python peer (the oracle of the committed fixtures) equals transformers: its CRC-32 of the
 * three [3, 518, 518] outputs equals that of the transformers arrays, each channel repeated. */
static void peer_matches_transformers(rd_test *t) {
    const char *dir = shared_fixture_dir(t);
    if (!dir || !rd_test_have_pillow(t)) return;
    char cmd[4096] = "/usr/bin/python3 bench/peers/hf_preprocess_pillow.py";
    unsigned long want_crc = crc32(0, NULL, 0);
    for (int i = 0; i < N_SHARED; i++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/%s_pixel_values.npy", dir, shared_pngs[i]);
        size_t count = 0;
        float *a = rd_npy_floats(path, &count, NULL, NULL);
        CHECK_MSG(a, "%s: not a float32 .npy (see stderr)", path);
        if (!a) return;
        for (int c = 0; c < 3; c++)
            want_crc = crc32(want_crc, (const Bytef *)a, (uInt)(count * sizeof(float)));
        free(a);
        size_t len = strlen(cmd);
        snprintf(cmd + len, sizeof cmd - len, " '%s/%s.png'", dir, shared_pngs[i]);
    }
    FILE *p = popen(cmd, "r");
    CHECK(p != NULL);
    if (!p) return;
    char line[256];
    unsigned long got_crc = 0;
    int found = 0;
    while (fgets(line, sizeof line, p))
        if (sscanf(line, "crc32: %lx", &got_crc) == 1) found = 1;
    CHECK(pclose(p) == 0);
    CHECK_MSG(found, "%s printed no crc32", cmd);
    CHECK_MSG(got_crc == want_crc, "peer crc32 %08lx, transformers %08lx", got_crc, want_crc);
}

/* Runs one /pipeline or /convert case: the settings p on /convert/<image>/png, compared with
 * the float32 [3, H, W] at want_path, with and without the one-channel output. */
static void run_case(rd_test *t, hid_t file, const char *image, const rd_hf_processor *p,
                     const char *want_path, rd_hf_workspace *ws, rd_png_reader *reader) {
    char path[256];
    size_t len = 0, n = 0;
    int64_t dims[4];
    int ndim = 0;
    snprintf(path, sizeof path, "/convert/%.63s/png", image);
    uint8_t *bytes = pillow_fixture_u8(file, path, &len, NULL, NULL);
    float *want = pillow_fixture_f32(file, want_path, &n, dims, &ndim);
    CHECK_MSG(bytes && want && ndim == 3 && dims[0] == 3, "%s: unreadable case", want_path);
    rd_png_image png;
    rd_reject reason;
    rd_error err = {0};
    if (bytes && want && ndim == 3 &&
        rd_png_decode_stored(reader, bytes, len, image, 1 << 20, &png, &reason, &err) == RD_OK) {
        int w, h;
        rd_hf_output_size(p, png.width, png.height, &w, &h);
        CHECK_MSG(w == dims[2] && h == dims[1], "%s: output %dx%d, transformers %dx%d", want_path,
                  w, h, (int)dims[2], (int)dims[1]);
        float *out = malloc(n * sizeof(float));
        for (int allow_one = 0; allow_one < 2 && w == dims[2] && h == dims[1]; allow_one++) {
            rd_hf_result res;
            rd_status st = rd_hf_preprocess_png(ws, &png, image, p, allow_one, out, n, &res, &err);
            CHECK_MSG(st == RD_OK, "%s: %s", want_path, err.msg);
            if (st != RD_OK) break;
            size_t plane = (size_t)w * h;
            for (int c = 0; c < 3; c++) {
                const float *got = out + (res.channels == 1 ? 0 : (size_t)c) * plane;
                if (memcmp(got, want + (size_t)c * plane, plane * sizeof(float)) != 0) {
                    rd_test_fail(t, __FILE__, __LINE__, "%s channel %d (of %d written):", want_path,
                                 c, res.channels);
                    CHECK_CLOSE(want_path, got, want + (size_t)c * plane, plane, 0.0, 0.0);
                }
            }
        }
        free(out);
    } else if (bytes && want) {
        CHECK_MSG(0, "%s: %s", image, err.msg);
    }
    free(bytes);
    free(want);
}

static void committed_cases(rd_test *t) {
    hid_t file = pillow_fixture_open();
    CHECK_MSG(file >= 0, "%s is missing (tests/reference/make_pillow_fixtures.py writes it)",
              PILLOW_FIXTURE);
    if (file < 0) return;
    rd_hf_workspace ws = {0};
    rd_png_reader reader = {0};
    char names[64][64], path[256], image[64];
    int n = pillow_fixture_list(file, "pipeline", names, 64);
    CHECK_MSG(n >= 18, "only %d pipeline cases", n);
    for (int i = 0; i < n; i++) {
        rd_hf_processor p;
        snprintf(path, sizeof path, "/pipeline/%.63s", names[i]);
        CHECK_MSG(pillow_fixture_processor(file, path, &p), "%s: settings missing", path);
        CHECK(pillow_fixture_attr_str(file, path, "image", image, sizeof image));
        snprintf(path, sizeof path, "/pipeline/%.63s/pixel_values", names[i]);
        run_case(t, file, image, &p, path, &ws, &reader);
    }
    /* Every PNG kind through the small settings of make_pillow_fixtures.py (SMALL). */
    rd_hf_processor small = rad_dino();
    small.shortest_edge = small.crop_height = small.crop_width = 16;
    n = pillow_fixture_list(file, "convert", names, 64);
    CHECK_MSG(n >= 25, "only %d convert cases", n);
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "/convert/%.63s/pixel_values", names[i]);
        run_case(t, file, names[i], &small, path, &ws, &reader);
    }
    rd_png_reader_free(&reader);
    rd_hf_workspace_free(&ws);
    H5Fclose(file);
}

/* An RGB image of w x h with the given planes, for the checks below. */
static rd_rgb_planes rgb_image(int w, int h, int planes, uint8_t *data) {
    rd_rgb_planes rgb = {.width = w, .height = h, .planes = planes, .plane = {data}};
    for (int c = 1; c < planes; c++) rgb.plane[c] = data + (size_t)c * w * h;
    for (int i = 0; i < planes * w * h; i++) data[i] = (uint8_t)(i * 37 + i / 11);
    return rgb;
}

static void one_channel_only_when_identical(rd_test *t) {
    enum { W = 20, H = 14 };
    uint8_t data[3 * W * H];
    float out[3 * 8 * 8];
    rd_hf_processor p = rad_dino();
    p.shortest_edge = p.crop_height = p.crop_width = 8;
    rd_hf_workspace ws = {0};
    rd_hf_result res;
    rd_error err = {0};
    rd_rgb_planes grey = rgb_image(W, H, 1, data);
    CHECK_OK(rd_hf_preprocess_rgb(&ws, &grey, &p, 1, out, 3 * 64, &res, &err), &err);
    CHECK(res.channels == 1);
    /* Per-channel statistics make the channels differ even on a grey image. */
    rd_hf_processor clip = rd_hf_bit_defaults();
    clip.shortest_edge = clip.crop_height = clip.crop_width = 8;
    CHECK_OK(rd_hf_preprocess_rgb(&ws, &grey, &clip, 1, out, 3 * 64, &res, &err), &err);
    CHECK(res.channels == 3);
    CHECK(memcmp(out, out + 64, 64 * sizeof(float)) != 0);
    rd_rgb_planes colour = rgb_image(W, H, 3, data);
    CHECK_OK(rd_hf_preprocess_rgb(&ws, &colour, &p, 1, out, 3 * 64, &res, &err), &err);
    CHECK(res.channels == 3);
    rd_hf_workspace_free(&ws);
}

static void rejects_bad_settings(rd_test *t) {
    enum { W = 9, H = 7 };
    uint8_t data[W * H];
    float out[3 * 4 * 4];
    rd_rgb_planes grey = rgb_image(W, H, 1, data);
    rd_hf_workspace ws = {0};
    rd_hf_result res;
    rd_error err = {0};
    rd_hf_processor base = rad_dino();
    base.shortest_edge = base.crop_height = base.crop_width = 4;
    CHECK_OK(rd_hf_check(&base, &err), &err);
    CHECK_OK(rd_hf_check(&(rd_hf_processor){0}, &err), &err); /* every step off */
    struct {
        const char *field, *message;
        rd_hf_processor p;
    } bad[] = {{"resample", "resample 2", base}, {"shortest_edge", "shortest_edge", base},
               {"crop", "crop_size", base},      {"std", "image_std[1]", base},
               {"mean", "image_mean[2]", base},  {"rescale", "rescale_factor", base}};
    bad[0].p.resample = 2;
    bad[1].p.shortest_edge = 0;
    bad[2].p.crop_width = 0;
    bad[3].p.image_std[1] = 0.0;
    bad[4].p.image_mean[2] = NAN;
    bad[5].p.rescale_factor = INFINITY;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_MSG(rd_hf_preprocess_rgb(&ws, &grey, &bad[i].p, 1, out, 48, &res, &err) == RD_EINVAL,
                  "bad %s accepted", bad[i].field);
        CHECK_MSG(strstr(err.msg, bad[i].message) != NULL, "bad %s: %s", bad[i].field, err.msg);
    }
    /* resample does not matter when nothing is resized (transformers ignores it too). */
    rd_hf_processor no_resize = base;
    no_resize.do_resize = 0;
    no_resize.resample = 2;
    CHECK_OK(rd_hf_preprocess_rgb(&ws, &grey, &no_resize, 1, out, 48, &res, &err), &err);
    CHECK(rd_hf_preprocess_rgb(&ws, &grey, &base, 1, out, 47, &res, &err) == RD_ERANGE);
    CHECK(strstr(err.msg, "48 needed") != NULL);
    /* 1 x 40000 to a shorter side of 518 would be 20.7 million pixels high: refused. */
    uint8_t *tall_data = calloc(40000, 1);
    rd_rgb_planes tall = {.width = 1, .height = 40000, .planes = 1, .plane = {tall_data}};
    rd_hf_processor rad = rad_dino();
    rad.crop_height = rad.crop_width = 4;
    CHECK(tall_data && rd_hf_preprocess_rgb(&ws, &tall, &rad, 1, out, 48, &res, &err) == RD_EINVAL);
    CHECK(strstr(err.msg, "1x40000 -> 518x20720000") != NULL);
    free(tall_data);
    rd_hf_workspace_free(&ws);
}

static void tally_counts_losses(rd_test *t) {
    rd_hf_tally tally = {0};
    rd_hf_result clean = {0}, clipped = {.loss = {.clipped_samples = 5}},
                 high = {.loss = {.high_byte_only = 1}};
    rd_hf_tally_add(&tally, &clean);
    rd_hf_tally_add(&tally, &clipped);
    rd_hf_tally_add(&tally, &clipped);
    rd_hf_tally_add(&tally, &high);
    CHECK(tally.images == 4 && tally.clipped_images == 2 && tally.high_byte_images == 1);
}

static const rd_test_case cases[] = {
    {"config_is_rad_dinos", config_is_rad_dinos},
    {"shared_pngs_bit_exact", shared_pngs_bit_exact},
    {"peer_matches_transformers", peer_matches_transformers},
    {"committed_cases", committed_cases},
    {"one_channel_only_when_identical", one_channel_only_when_identical},
    {"rejects_bad_settings", rejects_bad_settings},
    {"tally_counts_losses", tally_counts_losses},
};

RD_TEST_MAIN("image/hf_preprocess", cases)
