/* PNG decoding against Pillow for every colour type, depth and interlacing; hostile files; the
 * atomic writer's round trip. Fixtures are generated at test time by tests/io/png_fixtures.py. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "harness.h"
#include "pyref.h"
#include "rdino/png.h"

static unsigned char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(n > 0 ? (size_t)n : 1);
    *len = buf ? fread(buf, 1, (size_t)n, f) : 0;
    fclose(f);
    return buf;
}

static int spit(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t n = fwrite(data, 1, len, f);
    return fclose(f) == 0 && n == len ? 0 : -1;
}

static void decodes_like_pillow(rd_test *t) {
    const char *dir = rd_test_python_reference(t, "tests/io/png_fixtures.py");
    if (!dir) return;
    char path[1024];
    snprintf(path, sizeof path, "%s/cases.txt", dir);
    FILE *list = fopen(path, "r");
    CHECK(list != NULL);
    if (!list) return;
    rd_png_reader reader = {0};
    char name[256];
    int w, h, color_type, depth, interlaced, out_depth, ncases = 0, nadam7 = 0;
    uint64_t seen = 0, plain_seen = 0; /* bit per (colour type, depth), interlaced and not */
    while (fscanf(list, "%255s %d %d %d %d %d %d", name, &w, &h, &color_type, &depth, &interlaced,
                  &out_depth) == 7) {
        ncases++;
        nadam7 += interlaced;
        uint64_t bit = (uint64_t)1 << (color_type * 5 + (depth == 16  ? 4
                                                         : depth == 8 ? 3
                                                                      : depth / 2));
        if (interlaced)
            seen |= bit;
        else
            plain_seen |= bit;
        snprintf(path, sizeof path, "%s/%s.png", dir, name);
        rd_grey_image img;
        rd_png_info info;
        rd_reject reason;
        rd_error err = {0};
        rd_status st = rd_png_read(&reader, path, 1 << 20, &img, &info, &reason, &err);
        CHECK_MSG(st == RD_OK, "%s: %s", name, err.msg);
        if (st != RD_OK) continue;
        CHECK_MSG(img.width == w && img.height == h && img.depth == out_depth,
                  "%s: got %dx%d depth %d", name, img.width, img.height, img.depth);
        CHECK_MSG(info.width == w && info.height == h && info.bit_depth == depth &&
                      info.color_type == color_type && info.interlaced == interlaced,
                  "%s: header info %dx%d depth %d type %d interlaced %d", name, info.width,
                  info.height, info.bit_depth, info.color_type, info.interlaced);
        CHECK(reason == RD_REJECT_NONE);
        snprintf(path, sizeof path, "%s/%s.expected", dir, name);
        size_t len = 0;
        unsigned char *want = slurp(path, &len);
        size_t n = (size_t)w * (size_t)h;
        CHECK_MSG(want && len == n * (size_t)(out_depth / 8), "%s: expected file", name);
        if (!want || len != n * (size_t)(out_depth / 8) || img.depth != out_depth) {
            free(want);
            continue;
        }
        size_t bad = 0, first = 0;
        for (size_t i = 0; i < n; i++) {
            unsigned got =
                out_depth == 16 ? ((const uint16_t *)img.data)[i] : ((const uint8_t *)img.data)[i];
            unsigned exp =
                out_depth == 16 ? (unsigned)(want[2 * i] | want[2 * i + 1] << 8) : want[i];
            if (got != exp && bad++ == 0) first = i;
        }
        CHECK_MSG(bad == 0, "%s: %zu of %zu pixels differ from Pillow, first at %zu", name, bad, n,
                  first);
        free(want);
    }
    fclose(list);
    rd_png_reader_free(&reader);
    /* 15 valid (type, depth) combinations, each plain and interlaced, at two sizes. */
    CHECK_MSG(ncases >= 60 && nadam7 >= 30, "only %d cases (%d interlaced)", ncases, nadam7);
    CHECK_MSG(__builtin_popcountll(seen) == 15 && seen == plain_seen,
              "colour type / depth combinations covered: %#llx interlaced, %#llx plain",
              (unsigned long long)seen, (unsigned long long)plain_seen);
}

/* ---- hostile input ---- */

static void put32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* Appends a chunk with a correct CRC; returns the new length. */
static size_t put_chunk(unsigned char *buf, size_t len, const char *type, const void *data,
                        uint32_t n) {
    put32(buf + len, n);
    memcpy(buf + len + 4, type, 4);
    if (n) memcpy(buf + len + 8, data, n);
    put32(buf + len + 8 + n, (uint32_t)crc32(0, buf + len + 4, n + 4));
    return len + 12 + n;
}

/* A complete PNG with the given header and IDAT payload (CRCs valid). */
static size_t make_png(unsigned char *buf, uint32_t w, uint32_t h, int depth, int color_type,
                       const void *idat, uint32_t idat_len) {
    static const unsigned char sig[8] = {137, 80, 78, 71, 13, 10, 26, 10};
    unsigned char ihdr[13] = {0};
    put32(ihdr, w);
    put32(ihdr + 4, h);
    ihdr[8] = (unsigned char)depth;
    ihdr[9] = (unsigned char)color_type;
    memcpy(buf, sig, 8);
    size_t len = put_chunk(buf, 8, "IHDR", ihdr, 13);
    len = put_chunk(buf, len, "IDAT", idat, idat_len);
    return put_chunk(buf, len, "IEND", NULL, 0);
}

/* A valid 8-bit grey 16x8 image's zlib stream: rows of filter byte 0 + 16 samples. */
static uLong grey_stream(unsigned char *out, uLong cap) {
    unsigned char raw[8 * 17];
    for (int i = 0; i < 8 * 17; i++) raw[i] = i % 17 == 0 ? 0 : (unsigned char)(i * 7);
    uLongf n = cap;
    compress(out, &n, raw, sizeof raw);
    return n;
}

static void expect_reject(rd_test *t, const char *what, const unsigned char *buf, size_t len,
                          size_t max_pixels, rd_reject want) {
    rd_png_reader reader = {0};
    rd_grey_image img;
    rd_reject reason = RD_REJECT_NONE;
    rd_error err = {0};
    rd_status st = rd_png_decode(&reader, buf, len, what, max_pixels, &img, NULL, &reason, &err);
    CHECK_MSG(st != RD_OK && reason == want, "%s: status %d reason %s, want %s (%s)", what, (int)st,
              rd_reject_name(reason), rd_reject_name(want), err.msg);
    CHECK_MSG(strstr(err.msg, what) && strstr(err.msg, rd_reject_name(want)),
              "%s: message '%s' names neither the file nor the reason", what, err.msg);
    rd_png_reader_free(&reader);
}

static void hostile_buffers_are_rejected_with_reasons(rd_test *t) {
    unsigned char stream[512], good[1024], bad[1024];
    uLong slen = grey_stream(stream, sizeof stream);
    size_t len = make_png(good, 16, 8, 8, 0, stream, (uint32_t)slen);
    rd_png_reader reader = {0};
    rd_grey_image img;
    rd_reject reason;
    rd_error err = {0};
    CHECK_OK(rd_png_decode(&reader, good, len, "good.png", 1000, &img, NULL, &reason, &err), &err);
    CHECK(img.width == 16 && img.height == 8 && ((uint8_t *)img.data)[1] == 14);

    expect_reject(t, "empty.png", good, 0, 1000, RD_REJECT_EMPTY);
    size_t cuts[] = {4, 8, 20, 32, 40, 33 + slen / 2, len - 13, len - 12, len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        char what[64];
        snprintf(what, sizeof what, "cut%zu.png", cuts[i]);
        expect_reject(t, what, good, cuts[i], 1000, RD_REJECT_TRUNCATED);
    }
    memcpy(bad, good, len);
    bad[1] = 'Q';
    expect_reject(t, "signature.png", bad, len, 1000, RD_REJECT_NOT_PNG);
    expect_reject(t, "text.png", (const unsigned char *)"hello, world", 12, 1000,
                  RD_REJECT_NOT_PNG);
    /* A CRC byte of IHDR, of IDAT, of IEND; then a data byte of IDAT (its CRC now wrong). */
    size_t crc_at[] = {29, 33 + 8 + slen, len - 1, 33 + 8 + 3};
    for (size_t i = 0; i < sizeof crc_at / sizeof crc_at[0]; i++) {
        memcpy(bad, good, len);
        bad[crc_at[i]] ^= 0x20;
        char what[64];
        snprintf(what, sizeof what, "crc%zu.png", crc_at[i]);
        expect_reject(t, what, bad, len, 1000, RD_REJECT_CRC);
    }
    size_t n = make_png(bad, 0, 8, 8, 0, stream, (uint32_t)slen);
    expect_reject(t, "zero_width.png", bad, n, 1000, RD_REJECT_ZERO_SIZE);
    n = make_png(bad, 16, 0, 8, 0, stream, (uint32_t)slen);
    expect_reject(t, "zero_height.png", bad, n, 1000, RD_REJECT_ZERO_SIZE);
    n = make_png(bad, 100000, 100000, 8, 0, stream, (uint32_t)slen);
    expect_reject(t, "huge.png", bad, n, 400000000, RD_REJECT_TOO_LARGE);
    n = make_png(bad, 0xffffffffu, 0xffffffffu, 16, 6, stream, (uint32_t)slen);
    expect_reject(t, "huger.png", bad, n, (size_t)-1, RD_REJECT_TOO_LARGE);
    n = make_png(bad, 16, 8, 8, 0, stream, (uint32_t)slen);
    expect_reject(t, "limit.png", bad, n, 127, RD_REJECT_TOO_LARGE);
    /* The refusal comes from the header alone: nothing was allocated for pixels. */
    rd_png_reader fresh = {0};
    n = make_png(bad, 100000, 100000, 8, 0, stream, (uint32_t)slen);
    CHECK(rd_png_decode(&fresh, bad, n, "huge.png", 400000000, &img, NULL, &reason, &err) ==
          RD_ERANGE);
    CHECK(fresh.pixels.cap == 0 && fresh.rows.cap == 0 && fresh.scratch.cap == 0);
    rd_png_reader_free(&fresh);

    int combos[][2] = {{2, 4}, {0, 3}, {3, 16}, {4, 1}, {6, 2}, {1, 8}, {7, 8}, {0, 0}};
    for (size_t i = 0; i < sizeof combos / sizeof combos[0]; i++) {
        char what[64];
        snprintf(what, sizeof what, "type%d_depth%d.png", combos[i][0], combos[i][1]);
        n = make_png(bad, 16, 8, combos[i][1], combos[i][0], stream, (uint32_t)slen);
        expect_reject(t, what, bad, n, 1000, RD_REJECT_UNSUPPORTED);
    }
    /* Valid chunks, broken contents: these reach libpng and leave through longjmp. */
    unsigned char junk[64];
    for (int i = 0; i < 64; i++) junk[i] = (unsigned char)(i * 37 + 11);
    n = make_png(bad, 16, 8, 8, 0, junk, sizeof junk);
    expect_reject(t, "junk_deflate.png", bad, n, 1000, RD_REJECT_CORRUPT);
    n = make_png(bad, 16, 8, 8, 0, stream, (uint32_t)slen / 2);
    expect_reject(t, "short_deflate.png", bad, n, 1000, RD_REJECT_CORRUPT);
    n = make_png(bad, 16, 9, 8, 0, stream, (uint32_t)slen); /* one row of data missing */
    expect_reject(t, "missing_row.png", bad, n, 1000, RD_REJECT_CORRUPT);
    n = make_png(bad, 16, 8, 8, 3, stream, (uint32_t)slen); /* palette without PLTE */
    expect_reject(t, "no_plte.png", bad, n, 1000, RD_REJECT_CORRUPT);
    memcpy(bad, good, 33);
    n = put_chunk(bad, 33, "IEND", NULL, 0);
    expect_reject(t, "no_idat.png", bad, n, 1000, RD_REJECT_CORRUPT);
    /* A bad filter type byte in the first row. */
    unsigned char raw[8 * 17] = {0}, zbad[512];
    raw[0] = 9;
    uLongf zn = sizeof zbad;
    compress(zbad, &zn, raw, sizeof raw);
    n = make_png(bad, 16, 8, 8, 0, zbad, (uint32_t)zn);
    expect_reject(t, "bad_filter.png", bad, n, 1000, RD_REJECT_CORRUPT);

    /* The reader still works after all that. */
    CHECK_OK(rd_png_decode(&reader, good, len, "good.png", 1000, &img, NULL, &reason, &err), &err);
    rd_png_reader_free(&reader);
}

static void expect_file_reject(rd_test *t, const char *path, rd_reject want) {
    rd_png_reader reader = {0};
    rd_grey_image img;
    rd_reject reason;
    rd_error err = {0};
    rd_status st = rd_png_read(&reader, path, 1000, &img, NULL, &reason, &err);
    CHECK_MSG(st != RD_OK && reason == want, "%s: reason %s, want %s (%s)", path,
              rd_reject_name(reason), rd_reject_name(want), err.msg);
    CHECK_MSG(strstr(err.msg, path) != NULL, "message '%s' does not name the file", err.msg);
    rd_png_reader_free(&reader);
}

static void hostile_files_are_rejected_with_reasons(rd_test *t) {
    const char *dir = rd_test_tmpdir(t);
    char path[1024];
    snprintf(path, sizeof path, "%s/missing.png", dir);
    expect_file_reject(t, path, RD_REJECT_MISSING);
    snprintf(path, sizeof path, "%s/no_such_dir/x.png", dir);
    expect_file_reject(t, path, RD_REJECT_MISSING);
    expect_file_reject(t, dir, RD_REJECT_UNREADABLE); /* a directory */
    snprintf(path, sizeof path, "%s/empty.png", dir);
    CHECK(spit(path, "", 0) == 0);
    expect_file_reject(t, path, RD_REJECT_EMPTY);
    unsigned char stream[512], buf[1024];
    uLong slen = grey_stream(stream, sizeof stream);
    size_t len = make_png(buf, 16, 8, 8, 0, stream, (uint32_t)slen);
    snprintf(path, sizeof path, "%s/truncated.png", dir);
    CHECK(spit(path, buf, len - 20) == 0);
    expect_file_reject(t, path, RD_REJECT_TRUNCATED);
    snprintf(path, sizeof path, "%s/huge.png", dir);
    len = make_png(buf, 100000, 100000, 16, 2, stream, (uint32_t)slen);
    CHECK(spit(path, buf, len) == 0);
    expect_file_reject(t, path, RD_REJECT_TOO_LARGE);
}

/* ---- writing ---- */

static void write_then_read_gives_the_same_pixels(rd_test *t) {
    const char *dir = rd_test_tmpdir(t);
    int sizes[][2] = {{1, 1}, {37, 29}, {518, 518}, {300, 7}};
    int levels[] = {RD_PNG_LEVEL_FAST, 0, 2, 9}; /* each writer configuration */
    rd_png_reader reader = {0};
    uint32_t state = 12345;
    for (int depth = 8; depth <= 16; depth += 8) {
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            int w = sizes[s][0], h = sizes[s][1];
            size_t n = (size_t)w * h;
            void *pix = malloc(n * (size_t)(depth / 8));
            for (size_t i = 0; i < n; i++) {
                state = state * 1664525u + 1013904223u;
                if (depth == 8)
                    ((uint8_t *)pix)[i] = (uint8_t)(state >> 24);
                else
                    ((uint16_t *)pix)[i] = (uint16_t)(state >> 16);
            }
            rd_grey_image img = {w, h, depth, pix}, back;
            char path[1024];
            snprintf(path, sizeof path, "%s/rt_%d_%dx%d.png", dir, depth, w, h);
            rd_error err = {0};
            rd_reject reason;
            CHECK_OK(rd_png_write_grey(path, &img, levels[s], &err), &err);
            CHECK_OK(rd_png_read(&reader, path, n, &back, NULL, &reason, &err), &err);
            CHECK(back.width == w && back.height == h && back.depth == depth);
            CHECK_MSG(memcmp(back.data, pix, n * (size_t)(depth / 8)) == 0,
                      "depth %d %dx%d: pixels differ after the round trip", depth, w, h);
            free(pix);
        }
    }
    rd_png_reader_free(&reader);
}

static void write_is_atomic_and_leaves_no_temporaries(rd_test *t) {
    const char *dir = rd_test_tmpdir(t);
    char path[1024], cmd[1200];
    snprintf(path, sizeof path, "%s/out.png", dir);
    uint8_t pix[12] = {0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110};
    rd_grey_image img = {4, 3, 8, pix};
    rd_error err = {0};
    CHECK_OK(rd_png_write_grey(path, &img, RD_PNG_LEVEL_FAST, &err), &err);
    pix[0] = 255; /* overwrite replaces */
    CHECK_OK(rd_png_write_grey(path, &img, RD_PNG_LEVEL_FAST, &err), &err);
    rd_png_reader reader = {0};
    rd_grey_image back;
    rd_reject reason;
    CHECK_OK(rd_png_read(&reader, path, 100, &back, NULL, &reason, &err), &err);
    CHECK(((uint8_t *)back.data)[0] == 255);
    rd_png_reader_free(&reader);
    snprintf(cmd, sizeof cmd, "test $(ls -A '%s' | wc -l) -eq 1", dir);
    CHECK_MSG(system(cmd) == 0, "temporary files left in %s", dir);
    /* Failures: no directory to write into; invalid image. Nothing is left behind. */
    snprintf(path, sizeof path, "%s/nodir/out.png", dir);
    CHECK(rd_png_write_grey(path, &img, 1, &err) == RD_EIO && strstr(err.msg, path));
    rd_grey_image odd = {4, 3, 12, pix};
    snprintf(path, sizeof path, "%s/bad.png", dir);
    CHECK(rd_png_write_grey(path, &odd, 1, &err) == RD_EINVAL);
    CHECK(rd_png_write_grey(path, &img, 10, &err) == RD_EINVAL);
    CHECK_MSG(system(cmd) == 0, "files left in %s after failed writes", dir);
}

static void reject_names_are_stable(rd_test *t) {
    CHECK(strcmp(rd_reject_name(RD_REJECT_NONE), "ok") == 0);
    CHECK(strcmp(rd_reject_name(RD_REJECT_TRUNCATED), "truncated") == 0);
    CHECK(strcmp(rd_reject_name(RD_REJECT_TOO_LARGE), "too_large") == 0);
    CHECK(strcmp(rd_reject_name(RD_REJECT_ASPECT), "aspect") == 0);
    CHECK(strcmp(rd_reject_name(RD_REJECT_COUNT), "unknown") == 0);
    for (int i = 0; i < RD_REJECT_COUNT; i++)
        for (int j = 0; j < i; j++)
            CHECK(strcmp(rd_reject_name((rd_reject)i), rd_reject_name((rd_reject)j)) != 0);
}

static const rd_test_case cases[] = {
    {"decodes_like_pillow", decodes_like_pillow},
    {"hostile_buffers_are_rejected_with_reasons", hostile_buffers_are_rejected_with_reasons},
    {"hostile_files_are_rejected_with_reasons", hostile_files_are_rejected_with_reasons},
    {"write_then_read_gives_the_same_pixels", write_then_read_gives_the_same_pixels},
    {"write_is_atomic_and_leaves_no_temporaries", write_is_atomic_and_leaves_no_temporaries},
    {"reject_names_are_stable", reject_names_are_stable},
};
RD_TEST_MAIN("png", cases)
