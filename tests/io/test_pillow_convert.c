/* rd_png_decode_stored + rd_pillow_png_to_rgb against Pillow 9.4's
 * np.asarray(Image.open(png).convert("RGB")) for every PNG kind (colour type x bit depth, tRNS,
 * short palettes, Adam7): /convert in tests/reference/fixtures/pillow_hf.h5. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "pillow_fixture.h"
#include "rdino/pillow_convert.h"
#include "rdino/png.h"

/* Decodes /convert/<name>/png; returns the malloc'd PNG bytes (kept alive for png->samples'
 * reader) or NULL. */
static uint8_t *decode_case(rd_test *t, hid_t file, const char *name, rd_png_reader *reader,
                            rd_png_image *png) {
    char path[256];
    size_t len = 0;
    snprintf(path, sizeof path, "/convert/%.63s/png", name);
    uint8_t *bytes = pillow_fixture_u8(file, path, &len, NULL, NULL);
    CHECK_MSG(bytes != NULL, "%s missing", path);
    if (!bytes) return NULL;
    rd_reject reason;
    rd_error err = {0};
    rd_status st = rd_png_decode_stored(reader, bytes, len, name, 1 << 20, png, &reason, &err);
    CHECK_MSG(st == RD_OK, "%s: %s", name, err.msg);
    if (st != RD_OK) {
        free(bytes);
        return NULL;
    }
    return bytes;
}

/* Kinds whose three channels are identical in Pillow's result: one plane expected. */
static int expect_one_plane(const char *name) {
    return strncmp(name, "grey", 4) == 0 || strcmp(name, "rgb8_grey") == 0 ||
           strcmp(name, "palette8_grey") == 0;
}

static void every_png_kind(rd_test *t) {
    hid_t file = pillow_fixture_open();
    CHECK_MSG(file >= 0, "%s is missing (tests/reference/make_pillow_fixtures.py writes it)",
              PILLOW_FIXTURE);
    if (file < 0) return;
    char names[64][64];
    int n = pillow_fixture_list(file, "convert", names, 64);
    CHECK_MSG(n >= 25, "only %d convert cases", n);
    rd_png_reader reader = {0};
    rd_buf store = {0};
    uint64_t kinds_seen = 0; /* bit per (colour type, depth) */
    for (int i = 0; i < n; i++) {
        const char *name = names[i];
        rd_png_image png;
        uint8_t *bytes = decode_case(t, file, name, &reader, &png);
        if (!bytes) continue;
        char path[256];
        double attrs[3] = {0};
        snprintf(path, sizeof path, "/convert/%.63s", name);
        CHECK(pillow_fixture_attr(file, path, "color_type", &attrs[0], 1));
        CHECK(pillow_fixture_attr(file, path, "bit_depth", &attrs[1], 1));
        CHECK(pillow_fixture_attr(file, path, "clipped", &attrs[2], 1));
        CHECK_MSG(png.color_type == (int)attrs[0] && png.bit_depth == (int)attrs[1],
                  "%s: decoded as type %d depth %d", name, png.color_type, png.bit_depth);
        kinds_seen |=
            (uint64_t)1 << (png.color_type * 5 + (png.bit_depth == 16  ? 4
                                                  : png.bit_depth == 8 ? 3
                                                                       : png.bit_depth / 2));
        /* Stored samples are unscaled: below 8 bits they stay under 2^depth. */
        if (png.bit_depth < 8) {
            const uint8_t *s = png.samples;
            int top = 0;
            for (size_t k = 0; k < (size_t)png.width * png.height; k++)
                top = s[k] > top ? s[k] : top;
            CHECK_MSG(top < 1 << png.bit_depth && top > 0, "%s: stored samples reach %d", name,
                      top);
        }

        snprintf(path, sizeof path, "/convert/%.63s/rgb", name);
        int64_t dims[4];
        int ndim = 0;
        uint8_t *want = pillow_fixture_u8(file, path, NULL, dims, &ndim);
        CHECK_MSG(want && ndim == 3 && dims[0] == png.height && dims[1] == png.width &&
                      dims[2] == 3,
                  "%s: rgb fixture", name);
        rd_rgb_planes rgb;
        rd_pillow_loss loss;
        rd_error err = {0};
        rd_status st = rd_pillow_png_to_rgb(&png, 1, name, &store, &rgb, &loss, &err);
        CHECK_MSG(st == RD_OK, "%s: %s", name, err.msg);
        if (st == RD_OK && want) {
            CHECK_MSG(rgb.planes == (expect_one_plane(name) ? 1 : 3), "%s: %d planes", name,
                      rgb.planes);
            size_t px = (size_t)rgb.width * rgb.height, bad = 0, first = 0;
            for (size_t k = 0; k < px; k++)
                for (int c = 0; c < 3; c++)
                    if (rgb.plane[rgb.planes == 3 ? c : 0][k] != want[3 * k + (size_t)c] && !bad++)
                        first = k;
            CHECK_MSG(bad == 0, "%s: %zu samples differ from Pillow, first at pixel %zu", name, bad,
                      first);
            CHECK_MSG(loss.clipped_samples == (size_t)attrs[2], "%s: %zu clipped, Pillow %g", name,
                      loss.clipped_samples, attrs[2]);
            CHECK_MSG(loss.high_byte_only == (png.bit_depth == 16 && png.color_type != 0),
                      "%s: high_byte_only %d", name, loss.high_byte_only);
        }
        free(want);
        free(bytes);
    }
    /* 1/2/4/8/16-bit grey, 8/16 RGB, 1/2/4/8 palette, 8/16 grey+alpha, 8/16 RGBA. */
    const uint64_t two = 3, all = 0x1f | two << (2 * 5 + 3) | (uint64_t)0xf << (3 * 5) |
                                  two << (4 * 5 + 3) | two << (6 * 5 + 3);
    CHECK_MSG((kinds_seen & all) == all, "kinds covered %#llx, want %#llx",
              (unsigned long long)kinds_seen, (unsigned long long)all);
    rd_buf_free(&store);
    rd_png_reader_free(&reader);
    H5Fclose(file);
}

static void without_convert_rgb(rd_test *t) {
    hid_t file = pillow_fixture_open();
    CHECK(file >= 0);
    if (file < 0) return;
    rd_png_reader reader = {0};
    rd_buf store = {0};
    rd_rgb_planes rgb;
    rd_pillow_loss loss;
    rd_error err = {0};
    rd_png_image png;
    /* 8-bit RGB is Pillow mode "RGB": convert_to_rgb leaves it alone, so no difference. */
    uint8_t *bytes = decode_case(t, file, "rgb8", &reader, &png);
    if (bytes) {
        CHECK_OK(rd_pillow_png_to_rgb(&png, 0, "rgb8", &store, &rgb, &loss, &err), &err);
        CHECK(rgb.planes == 3);
    }
    free(bytes);
    const char *refused[] = {"grey8", "rgb16", "rgba8", "palette8", "grey_alpha8"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        bytes = decode_case(t, file, refused[i], &reader, &png);
        if (!bytes) continue;
        CHECK_MSG(rd_pillow_png_to_rgb(&png, 0, refused[i], &store, &rgb, &loss, &err) == RD_EINVAL,
                  "%s accepted without do_convert_rgb", refused[i]);
        CHECK(strstr(err.msg, "do_convert_rgb") && strstr(err.msg, refused[i]));
        free(bytes);
    }
    rd_buf_free(&store);
    rd_png_reader_free(&reader);
    H5Fclose(file);
}

static void stored_decode_rejects_like_grey_decode(rd_test *t) {
    /* The stored path shares the checks: a truncated file and a non-PNG are refused. */
    hid_t file = pillow_fixture_open();
    CHECK(file >= 0);
    if (file < 0) return;
    size_t len = 0;
    uint8_t *bytes = pillow_fixture_u8(file, "/convert/rgb8/png", &len, NULL, NULL);
    CHECK(bytes && len > 100);
    rd_png_reader reader = {0};
    rd_png_image png;
    rd_reject reason;
    rd_error err = {0};
    if (bytes) {
        CHECK(rd_png_decode_stored(&reader, bytes, len - 20, "cut.png", 1 << 20, &png, &reason,
                                   &err) != RD_OK);
        CHECK(reason == RD_REJECT_TRUNCATED);
        CHECK(rd_png_decode_stored(&reader, bytes, len, "small.png", 100, &png, &reason, &err) ==
              RD_ERANGE);
        CHECK(reason == RD_REJECT_TOO_LARGE);
        bytes[1] = 'X';
        CHECK(rd_png_decode_stored(&reader, bytes, len, "x.png", 1 << 20, &png, &reason, &err) ==
              RD_EFORMAT);
        CHECK(reason == RD_REJECT_NOT_PNG);
    }
    CHECK(rd_png_read_stored(&reader, "/nonexistent/x.png", 1 << 20, &png, &reason, &err) ==
          RD_ENOTFOUND);
    CHECK(reason == RD_REJECT_MISSING && strstr(err.msg, "/nonexistent/x.png"));
    free(bytes);
    rd_png_reader_free(&reader);
    H5Fclose(file);
}

static const rd_test_case cases[] = {
    {"every_png_kind", every_png_kind},
    {"without_convert_rgb", without_convert_rgb},
    {"stored_decode_rejects_like_grey_decode", stored_decode_rejects_like_grey_decode},
};

RD_TEST_MAIN("image/pillow_convert", cases)
