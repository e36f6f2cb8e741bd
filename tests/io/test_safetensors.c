/* safetensors reader and writer: round trips, the exact bytes the Python library writes (the
 * shared transformers fixtures, written by that format's rules), F16 against the compiler's
 * _Float16 conversion for all 65536 patterns, BF16 known values, and every malformed file a
 * clear error naming the file (and tensor), never a crash (run under ASan). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "rdino/file.h"
#include "rdino/safetensors.h"

static void path_in(rd_test *t, char *out, size_t n, const char *name) {
    snprintf(out, n, "%s/%s", rd_test_tmpdir(t), name);
}

/* A file: 8-byte length of header (padded to 8 with spaces), header, then data. */
static void write_raw(const char *path, uint64_t header_len_override, const char *header,
                      const void *data, size_t data_len) {
    size_t len = strlen(header), padded = (len + 7) / 8 * 8;
    uint64_t n = header_len_override ? header_len_override : padded;
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(&n, sizeof n, 1, f);
    fwrite(header, 1, len, f);
    for (size_t i = len; i < padded; i++) fputc(' ', f);
    if (data_len) fwrite(data, 1, data_len, f);
    fclose(f);
}

static void round_trip_keeps_names_shapes_values_and_metadata(rd_test *t) {
    char path[1024];
    path_in(t, path, sizeof path, "rt.safetensors");
    float a[6] = {1, -2.5f, 3e-38f, 1e-45f, -0.0f, 65504}, b[1] = {7}, c[1] = {0};
    int64_t sa[2] = {2, 3}, sb[3] = {1, 1, 1}, sc[2] = {0, 5};
    rd_st_entry e[3] = {{"zeta.weight", 2, sa, a}, {"alpha", 3, sb, b}, {"empty", 2, sc, c}};
    const char *meta[] = {"format", "pt", "note", "x\"y", NULL};
    rd_error err = {0};
    CHECK_OK(rd_safetensors_write(path, e, 3, meta, &err), &err);
    rd_safetensors st;
    CHECK_OK(rd_safetensors_open(&st, path, &err), &err);
    if (err.code) return;
    CHECK(st.count == 3 && strcmp(st.tensors[0].name, "alpha") == 0 &&
          strcmp(st.tensors[1].name, "empty") == 0 &&
          strcmp(st.tensors[2].name, "zeta.weight") == 0);
    /* data in sorted-name order, contiguous from 0 */
    CHECK(st.tensors[0].begin == 0 && st.tensors[0].end == 4 && st.tensors[1].begin == 4 &&
          st.tensors[1].end == 4 && st.tensors[2].begin == 4 && st.tensors[2].end == 28);
    CHECK((st.data - st.map) % 8 == 0); /* header padded to a multiple of 8 */
    const rd_st_tensor *z = rd_safetensors_find(&st, "zeta.weight");
    CHECK(z && z->ndim == 2 && z->shape[0] == 2 && z->shape[1] == 3 && z->dtype == RD_ST_F32);
    float got[6] = {0};
    if (z) CHECK_OK(rd_safetensors_read(&st, z, got, &err), &err);
    CHECK(memcmp(got, a, sizeof a) == 0);
    CHECK(rd_safetensors_find(&st, "missing") == NULL);
    CHECK(rd_safetensors_meta(&st, "format") &&
          strcmp(rd_safetensors_meta(&st, "format"), "pt") == 0);
    CHECK(rd_safetensors_meta(&st, "note") &&
          strcmp(rd_safetensors_meta(&st, "note"), "x\"y") == 0);
    CHECK(rd_safetensors_meta(&st, "absent") == NULL);
    rd_safetensors_close(&st);
}

/* The fixtures' files were written by the Python library's rules (make_fixture.py
 * write_safetensors); reading them and writing the tensors back must reproduce every byte. */
static void rewrite_of_the_transformers_fixture_is_byte_identical(rd_test *t) {
    const char *shared = rd_test_shared_dir();
    if (!shared) SKIP("shared data directory not found (set RDINO_SHARED)");
    const char *names[] = {"model.safetensors", "dinov2_original_names.safetensors"};
    for (int k = 0; k < 2; k++) {
        char src[1200], dst[1200];
        snprintf(src, sizeof src, "%s/fixtures/hf_dinov2_tiny/%s", shared, names[k]);
        path_in(t, dst, sizeof dst, names[k]);
        rd_safetensors st;
        rd_error err = {0};
        CHECK_OK(rd_safetensors_open(&st, src, &err), &err);
        if (err.code) return;
        rd_st_entry *e = calloc((size_t)st.count, sizeof *e);
        float **data = calloc((size_t)st.count, sizeof *data);
        for (int i = 0; i < st.count; i++) {
            const rd_st_tensor *ti = &st.tensors[i];
            data[i] = malloc(ti->numel * sizeof(float) + 1);
            CHECK_OK(rd_safetensors_read(&st, ti, data[i], &err), &err);
            e[i] = (rd_st_entry){ti->name, ti->ndim, ti->shape, data[i]};
        }
        CHECK(st.meta_count == 1 && strcmp(rd_safetensors_meta(&st, "format"), "pt") == 0);
        const char *meta[] = {"format", "pt", NULL};
        CHECK_OK(rd_safetensors_write(dst, e, st.count, meta, &err), &err);
        char *a, *b;
        size_t na, nb;
        CHECK_OK(rd_read_file(src, &a, &na, &err), &err);
        CHECK_OK(rd_read_file(dst, &b, &nb, &err), &err);
        CHECK_MSG(na == nb && memcmp(a, b, na) == 0,
                  "%s: rewritten file differs (%zu vs %zu bytes)", names[k], nb, na);
        free(a);
        free(b);
        for (int i = 0; i < st.count; i++) free(data[i]);
        free(data);
        free(e);
        rd_safetensors_close(&st);
    }
}

static uint32_t bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static void f16_matches_the_compiler_for_all_patterns(rd_test *t) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        uint16_t h16 = (uint16_t)h;
        _Float16 x;
        memcpy(&x, &h16, sizeof x);
        float want = (float)x, got = rd_f16_to_f32(h16);
        int same =
            isnan(want) ? isnan(got) && signbit(got) == signbit(want) : bits(got) == bits(want);
        if (!same && bad++ < 5) CHECK_MSG(0, "0x%04x: got %a want %a", h, got, want);
    }
    CHECK(bad == 0);
    /* values worked out by hand from the IEEE 754 binary16 layout */
    static const struct {
        uint16_t h;
        float f;
    } known[] = {{0x3c00, 1.0f},
                 {0xc000, -2.0f},
                 {0x7bff, 65504.0f},
                 {0x0001, 0x1p-24f},
                 {0x03ff, 1023 * 0x1p-24f},
                 {0x0400, 0x1p-14f},
                 {0x3555, 0.333251953125f},
                 {0x7c00, INFINITY},
                 {0xfc00, -INFINITY}};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        CHECK_MSG(rd_f16_to_f32(known[i].h) == known[i].f, "0x%04x -> %a", known[i].h,
                  rd_f16_to_f32(known[i].h));
    CHECK(rd_f16_to_f32(0x8000) == 0.0f && signbit(rd_f16_to_f32(0x8000)));
    CHECK(isnan(rd_f16_to_f32(0x7e00)) && isnan(rd_f16_to_f32(0x7c01)));
}

static void bf16_known_values(rd_test *t) {
    CHECK(rd_bf16_to_f32(0x3f80) == 1.0f);
    CHECK(rd_bf16_to_f32(0xc049) == -3.140625f);
    CHECK(rd_bf16_to_f32(0x0001) == 0x1p-133f); /* smallest subnormal */
    CHECK(rd_bf16_to_f32(0x7f7f) == 0x1.fep127f);
    CHECK(rd_bf16_to_f32(0x7f80) == INFINITY && rd_bf16_to_f32(0xff80) == -INFINITY);
    CHECK(isnan(rd_bf16_to_f32(0x7fc0)));
    CHECK(rd_bf16_to_f32(0x8000) == 0.0f && signbit(rd_bf16_to_f32(0x8000)));
}

static void half_precision_tensors_are_read_as_fp32(rd_test *t) {
    char path[1024];
    path_in(t, path, sizeof path, "half.safetensors");
    uint16_t data[5] = {0x3c00, 0x0001, 0xc000, 0x3f80, 0xc049}; /* F16 x3, BF16 x2 */
    write_raw(path, 0,
              "{\"h\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[0,6]},"
              "\"b\":{\"dtype\":\"BF16\",\"shape\":[1,2],\"data_offsets\":[6,10]}}",
              data, sizeof data);
    rd_safetensors st;
    rd_error err = {0};
    CHECK_OK(rd_safetensors_open(&st, path, &err), &err);
    if (err.code) return;
    float h[3], b[2];
    CHECK_OK(rd_safetensors_read(&st, rd_safetensors_find(&st, "h"), h, &err), &err);
    CHECK_OK(rd_safetensors_read(&st, rd_safetensors_find(&st, "b"), b, &err), &err);
    CHECK(h[0] == 1.0f && h[1] == 0x1p-24f && h[2] == -2.0f && b[0] == 1.0f && b[1] == -3.140625f);
    CHECK(st.meta_count == 0);
    rd_safetensors_close(&st);
}

/* Opens path expecting failure with code and a message holding both substrings. */
static void expect_open_error(rd_test *t, const char *path, rd_status code, const char *what1,
                              const char *what2) {
    rd_safetensors st;
    rd_error err = {0};
    rd_status s = rd_safetensors_open(&st, path, &err);
    CHECK_MSG(s == code, "%s: status %s, want %s (%s)", path, rd_status_name(s),
              rd_status_name(code), err.msg);
    CHECK_MSG(strstr(err.msg, path) && strstr(err.msg, what1) && (!what2 || strstr(err.msg, what2)),
              "message '%s' lacks the file, '%s' or '%s'", err.msg, what1, what2 ? what2 : "");
    CHECK(st.map == NULL && st.tensors == NULL); /* left closed */
}

#define T1 "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}"

static void malformed_files_give_named_errors(rd_test *t) {
    char p[1024];
    float two[2] = {1, 2}, four[4] = {1, 2, 3, 4};
    path_in(t, p, sizeof p, "short.safetensors");
    FILE *f = fopen(p, "wb");
    fwrite("abcde", 1, 5, f);
    fclose(f);
    expect_open_error(t, p, RD_EFORMAT, "truncated", "5 bytes");

    path_in(t, p, sizeof p, "beyond.safetensors");
    write_raw(p, 4096, T1 "}", two, sizeof two);
    expect_open_error(t, p, RD_EFORMAT, "header length 4096", "past the end");

    path_in(t, p, sizeof p, "absurd.safetensors");
    write_raw(p, (uint64_t)1 << 40, T1 "}", two, sizeof two);
    expect_open_error(t, p, RD_EFORMAT, "absurd", NULL);

    path_in(t, p, sizeof p, "notjson.safetensors");
    write_raw(p, 0, "{\"a\": {dtype}", two, sizeof two);
    expect_open_error(t, p, RD_EFORMAT, "header: line 1, column", NULL);

    path_in(t, p, sizeof p, "array.safetensors");
    write_raw(p, 0, "[1, 2]", NULL, 0);
    expect_open_error(t, p, RD_EFORMAT, "must be a JSON object", NULL);

    path_in(t, p, sizeof p, "entry.safetensors");
    write_raw(p, 0, "{\"a\": 3}", NULL, 0);
    expect_open_error(t, p, RD_EFORMAT, "tensor 'a' must be an object", NULL);

    path_in(t, p, sizeof p, "nodtype.safetensors");
    write_raw(p, 0, "{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", two, sizeof two);
    expect_open_error(t, p, RD_ENOTFOUND, "tensor 'a'", "missing key 'dtype'");

    path_in(t, p, sizeof p, "dtype.safetensors");
    write_raw(p, 0, "{\"a\":{\"dtype\":\"F31\",\"shape\":[2],\"data_offsets\":[0,8]}}", two,
              sizeof two);
    expect_open_error(t, p, RD_EFORMAT, "tensor 'a'", "unknown dtype 'F31'");

    path_in(t, p, sizeof p, "shape.safetensors");
    write_raw(p, 0, "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", two,
              sizeof two);
    expect_open_error(t, p, RD_EFORMAT, "tensor 'a'", "negative");

    path_in(t, p, sizeof p, "shapetype.safetensors");
    write_raw(p, 0, "{\"a\":{\"dtype\":\"F32\",\"shape\":\"2\",\"data_offsets\":[0,8]}}", two,
              sizeof two);
    expect_open_error(t, p, RD_EFORMAT, "tensor 'a'", "shape must be an array");

    path_in(t, p, sizeof p, "offsets.safetensors");
    write_raw(p, 0, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", two,
              sizeof two);
    expect_open_error(t, p, RD_EFORMAT, "tensor 'a'", "[begin, end]");

    path_in(t, p, sizeof p, "extra.safetensors");
    write_raw(p, 0, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":1}}", two,
              sizeof two);
    expect_open_error(t, p, RD_EFORMAT, "tensor 'a'", "unexpected field 'x'");

    path_in(t, p, sizeof p, "overflow.safetensors");
    write_raw(p, 0,
              "{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,8],"
              "\"data_offsets\":[0,8]}}",
              two, sizeof two);
    expect_open_error(t, p, RD_EFORMAT, "tensor 'a'", "overflows");

    path_in(t, p, sizeof p, "bytes.safetensors");
    write_raw(p, 0, "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", two,
              sizeof two);
    expect_open_error(t, p, RD_EFORMAT, "tensor 'a'", "need 12");

    path_in(t, p, sizeof p, "reversed.safetensors");
    write_raw(p, 0, "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", two,
              sizeof two);
    expect_open_error(t, p, RD_EFORMAT, "tensor 'a'", "end before they begin");

    path_in(t, p, sizeof p, "outside.safetensors");
    write_raw(p, 0, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", two,
              sizeof two);
    expect_open_error(t, p, RD_EFORMAT, "tensor 'a'", "past the data area (8 bytes)");

    path_in(t, p, sizeof p, "overlap.safetensors");
    write_raw(p, 0, T1 ",\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", four,
              12);
    expect_open_error(t, p, RD_EFORMAT, "tensor 'b'", "overlaps 'a'");

    path_in(t, p, sizeof p, "gap.safetensors");
    write_raw(p, 0, T1 ",\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]}}", four,
              16);
    expect_open_error(t, p, RD_EFORMAT, "4 unused bytes before tensor 'b'", NULL);

    path_in(t, p, sizeof p, "trailing.safetensors");
    write_raw(p, 0, T1 "}", four, 16);
    expect_open_error(t, p, RD_EFORMAT, "8 bytes after the last tensor", NULL);

    path_in(t, p, sizeof p, "dup.safetensors");
    write_raw(p, 0, T1 ",\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", two,
              sizeof two);
    expect_open_error(t, p, RD_EFORMAT, "duplicate", NULL);

    path_in(t, p, sizeof p, "meta.safetensors");
    write_raw(p, 0, T1 ",\"__metadata__\":{\"format\":1}}", two, sizeof two);
    expect_open_error(t, p, RD_EFORMAT, "__metadata__ 'format' must be a string", NULL);

    path_in(t, p, sizeof p, "dir.safetensors");
    mkdir(p, 0777);
    expect_open_error(t, p, RD_EIO, "not a regular file", NULL);

    path_in(t, p, sizeof p, "absent.safetensors");
    expect_open_error(t, p, RD_ENOTFOUND, "cannot open", NULL);
}

static void a_truncated_real_file_is_refused(rd_test *t) {
    char p[1024];
    path_in(t, p, sizeof p, "cut.safetensors");
    float x[8] = {0};
    int64_t s[1] = {8};
    rd_st_entry e = {"blocks.0.attn.qkv.weight", 1, s, x};
    rd_error err = {0};
    CHECK_OK(rd_safetensors_write(p, &e, 1, NULL, &err), &err);
    struct stat sb;
    stat(p, &sb);
    CHECK(truncate(p, sb.st_size - 1) == 0);
    expect_open_error(t, p, RD_EFORMAT, "tensor 'blocks.0.attn.qkv.weight'", "past the data area");
}

static void non_finite_and_unreadable_tensors_fail_on_read(rd_test *t) {
    char p[1024];
    path_in(t, p, sizeof p, "nan.safetensors");
    float v[3] = {1, NAN, 2};
    uint16_t h[2] = {0x3c00, 0x7c00};
    int64_t ints[1] = {7};
    unsigned char data[12 + 4 + 8];
    memcpy(data, v, 12);
    memcpy(data + 12, h, 4);
    memcpy(data + 16, ints, 8);
    write_raw(p, 0,
              "{\"good\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},"
              "\"half\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[12,16]},"
              "\"count\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[16,24]}}",
              data, sizeof data);
    rd_safetensors st;
    rd_error err = {0};
    CHECK_OK(rd_safetensors_open(&st, p, &err), &err); /* values are checked on read */
    if (err.code) return;
    float out[3];
    CHECK(rd_safetensors_read(&st, rd_safetensors_find(&st, "good"), out, &err) == RD_ENUMERIC);
    CHECK_MSG(strstr(err.msg, p) && strstr(err.msg, "tensor 'good': element 1 is NaN"), "%s",
              err.msg);
    CHECK(rd_safetensors_read(&st, rd_safetensors_find(&st, "half"), out, &err) == RD_ENUMERIC);
    CHECK_MSG(strstr(err.msg, "tensor 'half': element 1 is infinite"), "%s", err.msg);
    CHECK(rd_safetensors_read(&st, rd_safetensors_find(&st, "count"), out, &err) == RD_EINVAL);
    CHECK_MSG(strstr(err.msg, "tensor 'count' is I64"), "%s", err.msg);
    rd_safetensors_close(&st);
}

static void writer_refuses_bad_input_and_leaves_nothing(rd_test *t) {
    const char *dir = rd_test_tmpdir(t);
    char p[1024];
    snprintf(p, sizeof p, "%s/w.safetensors", dir);
    float x[2] = {1, INFINITY};
    int64_t s[1] = {2}, s1[1] = {1};
    rd_st_entry bad_value = {"w", 1, s, x};
    rd_error err = {0};
    CHECK(rd_safetensors_write(p, &bad_value, 1, NULL, &err) == RD_ENUMERIC);
    CHECK_MSG(strstr(err.msg, "tensor 'w': element 1 is not finite"), "%s", err.msg);
    rd_st_entry dup[2] = {{"w", 1, s1, x}, {"w", 1, s1, x}};
    CHECK(rd_safetensors_write(p, dup, 2, NULL, &err) == RD_EINVAL);
    CHECK_MSG(strstr(err.msg, "'w'") && strstr(err.msg, "repeated"), "%s", err.msg);
    rd_st_entry reserved = {"__metadata__", 1, s1, x};
    CHECK(rd_safetensors_write(p, &reserved, 1, NULL, &err) == RD_EINVAL);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "test -z \"$(ls -A '%s')\"", dir);
    CHECK_MSG(system(cmd) == 0, "%s is not empty after failed writes", dir);
    snprintf(p, sizeof p, "%s/missing/w.safetensors", dir);
    CHECK(rd_safetensors_write(p, dup, 1, NULL, &err) == RD_EIO);
}

static const rd_test_case cases[] = {
    {"round_trip_keeps_names_shapes_values_and_metadata",
     round_trip_keeps_names_shapes_values_and_metadata},
    {"rewrite_of_the_transformers_fixture_is_byte_identical",
     rewrite_of_the_transformers_fixture_is_byte_identical},
    {"f16_matches_the_compiler_for_all_patterns", f16_matches_the_compiler_for_all_patterns},
    {"bf16_known_values", bf16_known_values},
    {"half_precision_tensors_are_read_as_fp32", half_precision_tensors_are_read_as_fp32},
    {"malformed_files_give_named_errors", malformed_files_give_named_errors},
    {"a_truncated_real_file_is_refused", a_truncated_real_file_is_refused},
    {"non_finite_and_unreadable_tensors_fail_on_read",
     non_finite_and_unreadable_tensors_fail_on_read},
    {"writer_refuses_bad_input_and_leaves_nothing", writer_refuses_bad_input_and_leaves_nothing},
};
RD_TEST_MAIN("io/safetensors", cases)
