/* Metadata CSV dialects (preprocess/metadata.c). The first byte picks the dialect (its value
 * modulo 5: nih, chexpert, padchest, mimic, generic); the rest is the metadata CSV, up to a NUL
 * byte after which comes MIMIC-IV's patients.csv (mimic only). Checks: a failure has a message;
 * on success every record and problem is well formed, rows rise, ages are NaN or in range. */
#include "fuzz_util.h"

#include <math.h>
#include <string.h>

#include "rdino/metadata.h"

static const char *const formats[5] = {"nih", "chexpert", "padchest", "mimic", "generic"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const char *format = formats[data[0] % 5];
    const uint8_t *csv = data + 1, *nul = memchr(csv, 0, size - 1);
    size_t csv_len = nul ? (size_t)(nul - csv) : size - 1;
    char meta_path[512], patients_path[512];
    rd_fuzz_file("metadata.csv", csv, csv_len, meta_path, sizeof meta_path);
    const uint8_t *patients = nul ? nul + 1 : csv + csv_len;
    rd_fuzz_file("patients.csv", patients, size - 1 - (size_t)(patients - csv), patients_path,
                 sizeof patients_path);
    rd_metadata_options opt = {.format = format,
                               .metadata_csv = meta_path,
                               .patients_csv = patients_path,
                               .col_image = "image",
                               .col_patient = "patient",
                               .col_age = "age",
                               .col_sex = "sex",
                               .col_view = ""};
    rd_metadata md;
    rd_error err = {0};
    if (rd_metadata_read(&opt, &md, &err)) {
        RD_FUZZ_CHECK(err.msg[0] && md.nrecords == 0);
        rd_metadata_free(&md);
        return 0;
    }
    int64_t last = 0;
    for (size_t i = 0; i < md.nrecords; i++) {
        const rd_meta_record *r = &md.records[i];
        RD_FUZZ_CHECK(r->image && r->image_id && r->patient_id && r->view);
        RD_FUZZ_CHECK(r->row > last);
        last = r->row;
        RD_FUZZ_CHECK(isnan(r->age) || (r->age >= 0 && r->age <= RD_MAX_AGE));
        RD_FUZZ_CHECK(r->sex == RD_SEX_UNKNOWN || r->sex == RD_SEX_FEMALE || r->sex == RD_SEX_MALE);
    }
    for (size_t i = 0; i < md.nproblems; i++) {
        const rd_meta_problem *p = &md.problems[i];
        RD_FUZZ_CHECK(p->file && p->reason && p->detail && p->row >= 0);
    }
    RD_FUZZ_CHECK(md.rows >= (int64_t)md.nrecords);
    rd_metadata_free(&md);
    return 0;
}
