/* The phantom metadata CSV: exactly the NIH Data_Entry_2017.csv layout (9 header names, 11
 * fields per row), read back by the preprocess stage's NIH reader. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "rdino/metadata.h"
#include "rdino/synth_stage.h"

static int count_fields(const char *line, size_t len) {
    int n = 1;
    for (size_t i = 0; i < len; i++) n += line[i] == ',';
    return n;
}

/* Header names: commas inside [...] do not separate names. */
static int count_header_names(const char *line) {
    int n = 1, depth = 0;
    for (const char *p = line; *p && *p != '\n'; p++) {
        depth += (*p == '[') - (*p == ']');
        n += *p == ',' && depth == 0;
    }
    return n;
}

static rd_phantom_plan make_plan(rd_test *t) {
    rd_phantom_settings s;
    rd_phantom_settings_default(&s);
    s.n_patients = 60;
    s.age_min = 18, s.age_max = 95;
    rd_phantom_plan plan;
    rd_error err = {0};
    CHECK_OK(rd_phantom_plan_make(&s, &plan, &err), &err);
    return plan;
}

static void layout_is_nih(rd_test *t) {
    rd_phantom_plan plan = make_plan(t);
    char *csv = rd_synth_csv(&plan);
    CHECK(csv != NULL);
    if (!csv) return;
    const char *header = "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,"
                         "Patient Gender,View Position,OriginalImage[Width,Height],"
                         "OriginalImagePixelSpacing[x,y]\n";
    CHECK(strncmp(csv, header, strlen(header)) == 0);
    CHECK(count_header_names(csv) == 9);
    CHECK(strchr(csv, '\r') == NULL);
    int64_t rows = 0;
    const char *line = strchr(csv, '\n') + 1;
    while (*line) {
        const char *end = strchr(line, '\n');
        CHECK(end != NULL);
        if (!end) break;
        CHECK_MSG(count_fields(line, (size_t)(end - line)) == 11, "row %lld has %d fields",
                  (long long)rows, count_fields(line, (size_t)(end - line)));
        const rd_phantom_image *img = &plan.images[rows];
        char name[32], sex[4], view[4], label[32];
        int follow, age, w, h;
        long long patient;
        double sx, sy;
        int got = sscanf(line, "%31[^,],%31[^,],%d,%lld,%d,%3[^,],%3[^,],%d,%d,%lf,%lf", name,
                         label, &follow, &patient, &age, sex, view, &w, &h, &sx, &sy);
        CHECK(got == 11);
        if (got == 11) {
            char want[32];
            rd_phantom_image_name(img, want, sizeof want);
            CHECK(strcmp(name, want) == 0 && strcmp(label, "No Finding") == 0);
            CHECK(follow == img->followup && patient == img->patient + 1);
            CHECK(age == (int)floor(img->age) && age >= 18 && age <= 120);
            CHECK(strcmp(sex, img->male ? "M" : "F") == 0);
            CHECK(strcmp(view, img->ap ? "AP" : "PA") == 0);
            CHECK(w == img->width && h == img->height);
            CHECK(sx == sy && fabs(sx - img->spacing_mm) < 5e-4 && sx > 0.1 && sx < 2.0);
        }
        rows++;
        line = end + 1;
    }
    CHECK(rows == plan.n_images);
    free(csv);
    rd_phantom_plan_free(&plan);
}

static void reads_back_with_the_nih_reader(rd_test *t) {
    rd_phantom_plan plan = make_plan(t);
    char *csv = rd_synth_csv(&plan);
    char path[800];
    snprintf(path, sizeof path, "%s/metadata.csv", rd_test_tmpdir(t));
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL && csv != NULL);
    if (!f || !csv) return;
    fputs(csv, f);
    fclose(f);
    rd_metadata_options opt = {.format = "nih", .metadata_csv = path};
    rd_metadata md;
    rd_error err = {0};
    CHECK_OK(rd_metadata_read(&opt, &md, &err), &err);
    CHECK_MSG(md.nproblems == 0, "%zu problems, first: %s", md.nproblems,
              md.nproblems ? md.problems[0].detail : "");
    CHECK((int64_t)md.nrecords == plan.n_images);
    for (size_t i = 0; i < md.nrecords && (int64_t)i < plan.n_images; i++) {
        const rd_meta_record *r = &md.records[i];
        const rd_phantom_image *img = &plan.images[i];
        char name[32], patient[32];
        rd_phantom_image_name(img, name, sizeof name);
        snprintf(patient, sizeof patient, "%lld", (long long)(img->patient + 1));
        CHECK(strcmp(r->image, name) == 0 && strcmp(r->patient_id, patient) == 0);
        CHECK(r->age == (float)floor(img->age));
        CHECK(r->sex == (img->male ? RD_SEX_MALE : RD_SEX_FEMALE));
        CHECK(strcmp(r->view, img->ap ? "AP" : "PA") == 0);
    }
    rd_metadata_free(&md);
    free(csv);
    rd_phantom_plan_free(&plan);
}

static const rd_test_case cases[] = {
    {"layout_is_nih", layout_is_nih},
    {"reads_back_with_the_nih_reader", reads_back_with_the_nih_reader},
};

RD_TEST_MAIN("synth/synth_csv", cases)
