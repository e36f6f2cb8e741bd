/* Metadata CSV dialects (preprocess/metadata.c). The first byte picks the dialect (its value
 * modulo 5: nih, chexpert, padchest, mimic, generic), the finding label policy (its value / 5
 * modulo 3: uncertain unknown, negative, positive; / 15 modulo 2: blank negative, unknown) and
 * whether the generic CSV's "label" column holds finding labels (value >= 30); the rest is the
 * metadata CSV, up to a NUL byte after which comes MIMIC-IV's patients.csv, then after another
 * NUL byte MIMIC's findings CSV (mimic only). Checks: a failure has a message; on success every
 * record and problem is well formed, rows rise, ages are NaN or in range, finding labels are
 * 1, 0 or -1 under distinct "finding_" names. */
#include "fuzz_util.h"

#include <math.h>
#include <string.h>

#include "rdino/metadata.h"

static const char *const formats[5] = {"nih", "chexpert", "padchest", "mimic", "generic"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const char *format = formats[data[0] % 5];
    static const char *const uncertain[3] = {"unknown", "negative", "positive"};
    static const char *const blank[2] = {"negative", "unknown"};
    const uint8_t *end = data + size, *csv = data + 1;
    /* three files separated by NUL bytes: metadata, patients, findings */
    const uint8_t *part[3], *part_end[3], *start = csv;
    for (int k = 0; k < 3; k++) {
        const uint8_t *nul = k < 2 ? memchr(start, 0, (size_t)(end - start)) : NULL;
        part[k] = start;
        part_end[k] = nul ? nul : end;
        start = nul ? nul + 1 : end;
    }
    char meta_path[512], patients_path[512], findings_path[512];
    rd_fuzz_file("metadata.csv", part[0], (size_t)(part_end[0] - part[0]), meta_path,
                 sizeof meta_path);
    rd_fuzz_file("patients.csv", part[1], (size_t)(part_end[1] - part[1]), patients_path,
                 sizeof patients_path);
    rd_fuzz_file("findings.csv", part[2], (size_t)(part_end[2] - part[2]), findings_path,
                 sizeof findings_path);
    rd_metadata_options opt = {.format = format,
                               .metadata_csv = meta_path,
                               .patients_csv = patients_path,
                               .col_image = "image",
                               .col_patient = "patient",
                               .col_age = "age",
                               .col_sex = "sex",
                               .col_view = "",
                               .col_findings = data[0] >= 30 ? "label" : "",
                               .findings_csv = part[2] < end ? findings_path : "",
                               .uncertain = uncertain[data[0] / 5 % 3],
                               .blank = blank[data[0] / 15 % 2]};
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
        for (int k = 0; k < md.nfindings; k++)
            RD_FUZZ_CHECK(r->findings[k] >= RD_FINDING_UNKNOWN &&
                          r->findings[k] <= RD_FINDING_POSITIVE);
    }
    RD_FUZZ_CHECK(md.nfindings >= 0 && md.nfindings <= RD_MAX_FINDINGS);
    for (int k = 0; k < md.nfindings; k++) {
        RD_FUZZ_CHECK(strncmp(md.finding[k], "finding_", 8) == 0 && md.finding[k][8]);
        for (int j = 0; j < k; j++) RD_FUZZ_CHECK(strcmp(md.finding[j], md.finding[k]) != 0);
    }
    for (size_t i = 0; i < md.nproblems; i++) {
        const rd_meta_problem *p = &md.problems[i];
        RD_FUZZ_CHECK(p->file && p->reason && p->detail && p->row >= 0);
    }
    RD_FUZZ_CHECK(md.rows >= (int64_t)md.nrecords);
    rd_metadata_free(&md);
    return 0;
}
