/* preprocessor_config.json: the shared fixture's file (microsoft/rad-dino's settings, written by
 * transformers' save_pretrained) reads as RAD-DINO's settings and is written back byte for byte;
 * the other key forms; unknown keys, other processors and settings rdino cannot run are errors
 * naming the file and the key. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "rdino/file.h"
#include "rdino/hf_processor.h"

/* Writes text to dir/name and returns the path (static buffer). */
static const char *write_text(const char *dir, const char *name, const char *text) {
    static char path[RD_PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
    return path;
}

static void fixture_reads_as_rad_dino_and_writes_back_identically(rd_test *t) {
    const char *shared = rd_test_shared_dir();
    if (!shared) SKIP("../shared is absent (the hf_dinov2_tiny fixture)");
    char path[RD_PATH_MAX], out[RD_PATH_MAX];
    snprintf(path, sizeof path, "%s/fixtures/hf_dinov2_tiny/%s", shared, RD_HF_PROCESSOR_FILE);
    rd_hf_processor p;
    rd_error err = {0};
    CHECK_OK(rd_hf_processor_load(path, &p, &err), &err);
    CHECK(p.do_convert_rgb && p.do_resize && p.do_center_crop && p.do_rescale && p.do_normalize);
    CHECK(p.shortest_edge == 518 && p.crop_height == 518 && p.crop_width == 518);
    CHECK(p.resample == 3 && p.rescale_factor == 1.0 / 255.0);
    for (int c = 0; c < 3; c++) CHECK(p.image_mean[c] == 0.5307 && p.image_std[c] == 0.2583);

    snprintf(out, sizeof out, "%s/%s", rd_test_tmpdir(t), RD_HF_PROCESSOR_FILE);
    CHECK_OK(rd_hf_processor_save(out, &p, NULL, &err), &err);
    char *want = NULL, *got = NULL;
    size_t nwant = 0, ngot = 0;
    CHECK_OK(rd_read_file(path, &want, &nwant, &err), &err);
    CHECK_OK(rd_read_file(out, &got, &ngot, &err), &err);
    CHECK_MSG(want && got && nwant == ngot && memcmp(want, got, nwant) == 0,
              "written file differs from transformers':\n%.*s", (int)ngot, got ? got : "");
    free(want);
    free(got);
}

static void other_forms_and_the_rdino_record(rd_test *t) {
    const char *dir = rd_test_tmpdir(t);
    rd_error err = {0};
    rd_hf_processor p;
    /* bare numbers, one mean for all channels, and defaults for what is left out */
    const char *path = write_text(dir, "a.json",
                                  "{\"image_processor_type\": \"BitImageProcessor\", \"size\": 256,"
                                  " \"crop_size\": 224, \"image_mean\": 0.5, \"do_rescale\": false,"
                                  " \"processor_class\": \"x\"}");
    CHECK_OK(rd_hf_processor_load(path, &p, &err), &err);
    CHECK(p.shortest_edge == 256 && p.crop_height == 224 && p.crop_width == 224);
    CHECK(p.image_mean[0] == 0.5 && p.image_mean[2] == 0.5 && p.do_rescale == 0);
    CHECK(p.image_std[0] == 0.26862954 && p.do_convert_rgb == 1); /* BitImageProcessor's */
    path = write_text(dir, "b.json",
                      "{\"image_processor_type\": \"BitImageProcessor\", \"size\": {\"height\": "
                      "300, \"width\": 200}, \"crop_size\": {\"height\": 100, \"width\": 50}}");
    CHECK_OK(rd_hf_processor_load(path, &p, &err), &err);
    CHECK(p.shortest_edge == 0 && p.size_height == 300 && p.size_width == 200);
    CHECK(p.crop_height == 100 && p.crop_width == 50);

    /* a written record reads back exactly, and the reader ignores it */
    p.image_mean[1] = 0.1 + 0.2; /* needs 17 digits */
    json_t *record = json_pack("{s:s, s:f}", "preprocess.normalize", "minmax", "x", 1.0 / 3.0);
    char out[RD_PATH_MAX];
    snprintf(out, sizeof out, "%s/c.json", dir);
    CHECK_OK(rd_hf_processor_save(out, &p, record, &err), &err);
    json_decref(record);
    rd_hf_processor back;
    CHECK_OK(rd_hf_processor_load(out, &back, &err), &err);
    CHECK(memcmp(&back, &p, sizeof p) == 0);
}

/* The load of text fails with code and a message holding every one of the words. */
static void expect_error(rd_test *t, const char *dir, const char *text, rd_status code,
                         const char *word1, const char *word2) {
    const char *path = write_text(dir, "bad.json", text);
    rd_hf_processor p;
    rd_error err = {0};
    rd_status st = rd_hf_processor_load(path, &p, &err);
    CHECK_MSG(st == code, "%s: status %d, want %d (%s)", text, st, code, err.msg);
    CHECK_MSG(strstr(err.msg, "bad.json") && strstr(err.msg, word1) &&
                  (!word2 || strstr(err.msg, word2)),
              "%s: message '%s' lacks the file or '%s'", text, err.msg, word1);
}

static void errors_name_file_and_key(rd_test *t) {
    const char *dir = rd_test_tmpdir(t);
#define BIT "\"image_processor_type\": \"BitImageProcessor\""
    expect_error(t, dir, "{" BIT ", \"do_pad\": true}", RD_EINVAL, "do_pad", NULL);
    expect_error(t, dir, "{\"image_processor_type\": \"BitImageProcessorFast\"}", RD_EINVAL,
                 "BitImageProcessorFast", NULL);
    expect_error(t, dir, "{\"size\": 224}", RD_ENOTFOUND, "image_processor_type", NULL);
    expect_error(t, dir, "{" BIT ", \"resample\": 2}", RD_EINVAL, "resample", NULL);
    expect_error(t, dir, "{" BIT ", \"size\": {\"longest_edge\": 9}}", RD_EINVAL, "size", NULL);
    expect_error(t, dir, "{" BIT ", \"crop_size\": [1, 2]}", RD_EINVAL, "crop_size", NULL);
    expect_error(t, dir, "{" BIT ", \"image_std\": [1, 2]}", RD_EINVAL, "image_std", NULL);
    expect_error(t, dir, "{" BIT ", \"image_std\": 0}", RD_EINVAL, "image_std", NULL);
    expect_error(t, dir, "{" BIT ", \"do_resize\": 1}", RD_EFORMAT, "do_resize", NULL);
    expect_error(t, dir, "{" BIT ", \"size\": {\"shortest_edge\": 1e3}}", RD_EFORMAT,
                 "shortest_edge", NULL);
    expect_error(t, dir, "{" BIT ", \"crop_size\": 99999999999}", RD_EINVAL, "crop_size", "range");
    expect_error(t, dir, "[1]", RD_EFORMAT, "object", NULL);
    expect_error(t, dir, "{" BIT ",}", RD_EFORMAT, "line 1", NULL);
#undef BIT
}

static const rd_test_case cases[] = {
    {"fixture_reads_as_rad_dino_and_writes_back_identically",
     fixture_reads_as_rad_dino_and_writes_back_identically},
    {"other_forms_and_the_rdino_record", other_forms_and_the_rdino_record},
    {"errors_name_file_and_key", errors_name_file_and_key},
};
RD_TEST_MAIN("io/hf_processor", cases)
