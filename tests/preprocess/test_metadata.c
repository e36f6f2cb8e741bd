#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "rdino/metadata.h"

static const char *write_file(rd_test *t, const char *name, const char *text) {
    static char path[3][800]; /* MIMIC reads three files at once */
    static int which = 0;
    which = (which + 1) % 3;
    snprintf(path[which], sizeof path[which], "%s/%s", rd_test_tmpdir(t), name);
    FILE *f = fopen(path[which], "wb");
    if (!f) return path[which];
    fputs(text, f);
    fclose(f);
    return path[which];
}

static const rd_meta_record *find(const rd_metadata *md, int64_t row) {
    for (size_t i = 0; i < md->nrecords; i++)
        if (md->records[i].row == row) return &md->records[i];
    return NULL;
}

/* Number of problems on a row with a reason and outcome. */
static int count_problems(const rd_metadata *md, int64_t row, const char *reason,
                          rd_outcome outcome) {
    int n = 0;
    for (size_t i = 0; i < md->nproblems; i++)
        n += md->problems[i].row == row && strcmp(md->problems[i].reason, reason) == 0 &&
             md->problems[i].outcome == outcome;
    return n;
}

static void check_record(rd_test *t, const rd_metadata *md, int64_t row, const char *image,
                         const char *id, const char *patient, double age, rd_sex sex,
                         const char *view) {
    const rd_meta_record *r = find(md, row);
    CHECK_MSG(r != NULL, "no record for line %lld", (long long)row);
    if (!r) return;
    CHECK_MSG(strcmp(r->image, image) == 0, "line %lld image '%s'", (long long)row, r->image);
    CHECK_MSG(strcmp(r->image_id, id) == 0, "line %lld id '%s'", (long long)row, r->image_id);
    CHECK_MSG(strcmp(r->patient_id, patient) == 0, "line %lld patient '%s'", (long long)row,
              r->patient_id);
    if (isnan(age))
        CHECK_MSG(isnan(r->age), "line %lld age %g", (long long)row, r->age);
    else
        CHECK_NEAR(r->age, age, 1e-5);
    CHECK_MSG(r->sex == sex, "line %lld sex %d", (long long)row, r->sex);
    CHECK_MSG(strcmp(r->view, view) == 0, "line %lld view '%s'", (long long)row, r->view);
}

/* Finding labels of the record on a line, as a string of '1', '0', '?' (unknown) in md's
 * finding order. */
static const char *findings_of(const rd_metadata *md, int64_t row) {
    static char text[RD_MAX_FINDINGS + 1];
    const rd_meta_record *r = find(md, row);
    int k = 0;
    for (; r && k < md->nfindings; k++)
        text[k] = r->findings[k] == RD_FINDING_POSITIVE   ? '1'
                  : r->findings[k] == RD_FINDING_NEGATIVE ? '0'
                  : r->findings[k] == RD_FINDING_UNKNOWN  ? '?'
                                                          : 'x';
    text[k] = '\0';
    return r ? text : "(no record)";
}

#define CHECK_FINDINGS(md, row, want)                                                              \
    CHECK_MSG(strcmp(findings_of(md, row), want) == 0, "line %d findings %s, want %s", row,        \
              findings_of(md, row), want)

static rd_metadata read_ok(rd_test *t, rd_metadata_options opt) {
    rd_metadata md;
    rd_error err = {0};
    CHECK_OK(rd_metadata_read(&opt, &md, &err), &err);
    return md;
}

static void ages_in_every_spelling(rd_test *t) {
    const char *reason;
    CHECK_NEAR(rd_parse_age("60", &reason), 60, 0);
    CHECK(reason == NULL);
    CHECK_NEAR(rd_parse_age("060Y", &reason), 60, 0);
    CHECK_NEAR(rd_parse_age(" 60 ", &reason), 60, 0);
    CHECK_NEAR(rd_parse_age("60.5", &reason), 60.5, 1e-6);
    CHECK_NEAR(rd_parse_age("006M", &reason), 0.5, 1e-6);
    CHECK_NEAR(rd_parse_age("052W", &reason), 52 * 7 / 365.25, 1e-6);
    CHECK_NEAR(rd_parse_age("365d", &reason), 365 / 365.25, 1e-6);
    CHECK_NEAR(rd_parse_age("120", &reason), 120, 0);
    const char *missing[] = {"", "  ", "Unknown", "NaN", "None"};
    for (int i = 0; i < 5; i++) {
        CHECK(isnan(rd_parse_age(missing[i], &reason)));
        CHECK_MSG(reason && strcmp(reason, RD_REASON_MISSING_AGE) == 0, "'%s'", missing[i]);
    }
    const char *impossible[] = {"413", "121", "-5", "abc", "0x10", "60 years", "1e2", "60YY"};
    for (int i = 0; i < 8; i++) {
        CHECK(isnan(rd_parse_age(impossible[i], &reason)));
        CHECK_MSG(reason && strcmp(reason, RD_REASON_IMPOSSIBLE_AGE) == 0, "'%s'", impossible[i]);
    }
}

static void sexes(rd_test *t) {
    CHECK(rd_parse_sex("M") == RD_SEX_MALE && rd_parse_sex("male") == RD_SEX_MALE);
    CHECK(rd_parse_sex(" F ") == RD_SEX_FEMALE && rd_parse_sex("Female") == RD_SEX_FEMALE);
    CHECK(rd_parse_sex("O") == RD_SEX_UNKNOWN && rd_parse_sex("Unknown") == RD_SEX_UNKNOWN);
    CHECK(rd_parse_sex("") == RD_SEX_UNKNOWN && rd_parse_sex("MF") == RD_SEX_UNKNOWN);
}

/* Data_Entry_2017.csv as downloaded: BOM, CRLF, 9 header names for 11 fields, a trailing
 * comma on every line, an impossible age; plus the Kaggle "060Y" spelling, a blank line,
 * a short row, a duplicate and a quoted row. */
static void nih_2017_file_with_every_quirk(rd_test *t) {
    const char *csv =
        "\xEF\xBB\xBFImage Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient "
        "Gender,View Position,OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],\r\n"
        "00000001_000.png,Cardiomegaly,0,1,58,M,PA,2682,2749,0.143,0.143,\r\n"
        "00000001_001.png,Cardiomegaly|Emphysema,1,1,060Y,M,PA,2894,2729,0.143,0.143,\r\n"
        "00000002_000.png,No Finding,0,2,413,F,AP,2500,2048,0.171,0.171,\r\n"
        "\r\n"
        "00000003_000.png,Hernia,0,3,81,X,PA,2582,2991,0.143,0.143,\r\n"
        "00000004_000.png,Mass,0,4,82,M,AP,2500,2048\r\n"
        "00000001_000.png,Dup,0,1,58,M,PA,1,2,0.1,0.1,\r\n"
        "\"00000005_000.png\",\"No Finding\",0,5,,F,pa,2048,2500,0.168,0.168,\r\n";
    rd_metadata md = read_ok(
        t, (rd_metadata_options){.format = "nih", .metadata_csv = write_file(t, "nih.csv", csv)});
    CHECK(md.rows == 7);
    CHECK(md.nrecords == 5);
    check_record(t, &md, 2, "00000001_000.png", "00000001_000.png", "1", 58, RD_SEX_MALE, "PA");
    check_record(t, &md, 3, "00000001_001.png", "00000001_001.png", "1", 60, RD_SEX_MALE, "PA");
    check_record(t, &md, 4, "00000002_000.png", "00000002_000.png", "2", NAN, RD_SEX_FEMALE, "AP");
    check_record(t, &md, 6, "00000003_000.png", "00000003_000.png", "3", 81, RD_SEX_UNKNOWN, "PA");
    check_record(t, &md, 9, "00000005_000.png", "00000005_000.png", "5", NAN, RD_SEX_FEMALE, "PA");
    CHECK(count_problems(&md, 4, RD_REASON_IMPOSSIBLE_AGE, RD_OUTCOME_WARNING) == 1);
    CHECK(count_problems(&md, 6, RD_REASON_UNKNOWN_SEX, RD_OUTCOME_WARNING) == 1);
    CHECK(count_problems(&md, 7, RD_REASON_MALFORMED_ROW, RD_OUTCOME_REJECTED) == 1);
    CHECK(count_problems(&md, 8, RD_REASON_DUPLICATE_ID, RD_OUTCOME_REJECTED) == 1);
    CHECK(count_problems(&md, 9, RD_REASON_MISSING_AGE, RD_OUTCOME_WARNING) == 1);
    /* The duplicate's label "Dup" is no NIH finding: warned about before the row is rejected. */
    CHECK(count_problems(&md, 8, RD_REASON_UNKNOWN_FINDING, RD_OUTCOME_WARNING) == 1);
    CHECK(md.nproblems == 6);
    /* Atelectasis Cardiomegaly Effusion Infiltration Mass Nodule Pneumonia Pneumothorax
     * Consolidation Edema Emphysema Fibrosis Pleural_Thickening Hernia */
    CHECK(md.nfindings == 14 && strcmp(md.finding[12], "finding_pleural_thickening") == 0);
    CHECK_FINDINGS(&md, 2, "01000000000000");
    CHECK_FINDINGS(&md, 3, "01000000001000");
    CHECK_FINDINGS(&md, 4, "00000000000000");
    CHECK_FINDINGS(&md, 6, "00000000000001");
    CHECK_FINDINGS(&md, 9, "00000000000000");
    for (size_t i = 1; i < md.nproblems; i++) CHECK(md.problems[i - 1].row <= md.problems[i].row);
    rd_metadata_free(&md);
}

/* The v2020 revision: LF, no trailing comma; the same reader. */
static void nih_2020_file(rd_test *t) {
    const char *csv = "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient "
                      "Gender,View Position,OriginalImage[Width,Height],"
                      "OriginalImagePixelSpacing[x,y]\n"
                      "00000002_000.png,No Finding,0,2,80,M,PA,2500,2048,0.171,0.171\n"
                      "00000004_000.png,Mass|Nodule,0,4,82,M,AP,2500,2048,0.168,0.168\n";
    rd_metadata md = read_ok(
        t, (rd_metadata_options){.format = "nih", .metadata_csv = write_file(t, "v2020.csv", csv)});
    CHECK(md.rows == 2 && md.nrecords == 2 && md.nproblems == 0);
    check_record(t, &md, 3, "00000004_000.png", "00000004_000.png", "4", 82, RD_SEX_MALE, "AP");
    rd_metadata_free(&md);
}

/* NIH's "Finding Labels": names in any case and spelling of the separator, "No Finding", an
 * unknown name (warned about, the row kept), an empty field (all unknown); a file without the
 * column has no findings. */
static void nih_finding_labels(rd_test *t) {
    const char *csv = "Image Index,Finding Labels,Patient ID,Patient Age,Patient Gender,View "
                      "Position\n"
                      "a.png,Effusion|pleural thickening| Hernia ,1,50,M,PA\n"
                      "b.png,No Finding,2,50,M,PA\n"
                      "c.png,Pneumonia|Covid-19,3,50,M,PA\n"
                      "d.png,,4,50,M,PA\n"
                      "e.png,Mass|No Finding|Mass,5,50,M,PA\n";
    rd_metadata md = read_ok(
        t, (rd_metadata_options){.format = "nih", .metadata_csv = write_file(t, "nih.csv", csv)});
    CHECK(md.nrecords == 5 && md.nfindings == 14);
    CHECK(strcmp(md.finding[0], "finding_atelectasis") == 0);
    CHECK(strcmp(md.finding[13], "finding_hernia") == 0);
    CHECK_FINDINGS(&md, 2, "00100000000011");
    CHECK_FINDINGS(&md, 3, "00000000000000");
    CHECK_FINDINGS(&md, 4, "00000010000000");
    CHECK_FINDINGS(&md, 5, "??????????????");
    CHECK_FINDINGS(&md, 6, "00001000000000");
    CHECK(count_problems(&md, 4, RD_REASON_UNKNOWN_FINDING, RD_OUTCOME_WARNING) == 1);
    CHECK(count_problems(&md, 5, RD_REASON_UNKNOWN_FINDING, RD_OUTCOME_WARNING) == 1);
    CHECK(md.nproblems == 2);
    for (size_t i = 0; i < md.nproblems; i++)
        if (md.problems[i].row == 4)
            CHECK_MSG(strstr(md.problems[i].detail, "'Covid-19'"), "%s", md.problems[i].detail);
    rd_metadata_free(&md);

    md = read_ok(t, (rd_metadata_options){
                        .format = "nih",
                        .metadata_csv = write_file(
                            t, "nolabels.csv",
                            "Image Index,Patient ID,Patient Age,Patient Gender,View Position\n"
                            "a.png,1,50,M,PA\n")});
    CHECK(md.nrecords == 1 && md.nfindings == 0);
    rd_metadata_free(&md);

    char name[RD_FINDING_NAME_MAX];
    CHECK(rd_finding_column_name(" Pleural Effusion ", name, sizeof name) == 0);
    CHECK(strcmp(name, "finding_pleural_effusion") == 0);
    CHECK(rd_finding_column_name("Lung/Opacity (x)", name, sizeof name) == 0);
    CHECK(strcmp(name, "finding_lung_opacity__x_") == 0);
    CHECK(rd_finding_column_name("", name, sizeof name) == -1);
    CHECK(rd_finding_column_name("Pneumothorax", name, 12) == -1);
}

/* The labels of shared/data/cxr_small (535 NIH images, the v2020 file's "Finding Labels"): every
 * name understood, each finding's positives as the data's README and a count over the file
 * say, "No Finding" images all negative. */
static void nih_findings_of_the_shared_sample(rd_test *t) {
    const char *shared = rd_test_shared_dir();
    char path[1024];
    snprintf(path, sizeof path, "%s/data/cxr_small/metadata.csv", shared ? shared : "");
    FILE *probe = shared ? fopen(path, "r") : NULL;
    if (!probe)
        SKIP("shared data absent (set RDINO_SHARED to the shared/ folder holding data/cxr_small)");
    fclose(probe);
    rd_metadata md = read_ok(t, (rd_metadata_options){.format = "nih", .metadata_csv = path});
    /* counted with: cut -d, -f2 metadata.csv | tr '|' '\n' | sort | uniq -c */
    static const int positives[14] = {48, 27, 75, 83, 18, 25, 6, 16, 20, 10, 9, 27, 19, 1};
    CHECK(md.nrecords == 535 && md.nfindings == 14 && md.nproblems == 0);
    int count[14] = {0}, none = 0;
    for (size_t i = 0; i < md.nrecords; i++) {
        int any = 0;
        for (int k = 0; k < 14; k++) {
            CHECK(md.records[i].findings[k] == 0 || md.records[i].findings[k] == 1);
            count[k] += md.records[i].findings[k];
            any |= md.records[i].findings[k];
        }
        none += !any;
    }
    for (int k = 0; k < 14; k++)
        CHECK_MSG(count[k] == positives[k], "%s: %d positive, want %d", md.finding[k], count[k],
                  positives[k]);
    CHECK_MSG(none == 289, "%d images without a finding, the README says 289", none);
    rd_metadata_free(&md);
}

/* CheXpert's label cells under each policy: 1.0 / 0.0 / -1.0 / blank / not understood. */
static void chexpert_finding_labels_and_policies(rd_test *t) {
    const char *csv =
        "Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,Cardiomegaly,Edema,Pleural Effusion\n"
        "train/patient00001/study1/view1_frontal.jpg,Female,68,Frontal,AP,1.0,,,\n"
        "train/patient00002/study1/view1_frontal.jpg,Male,70,Frontal,PA,,1.0,-1.0,0.0\n"
        "train/patient00003/study1/view1_frontal.jpg,Male,70,Frontal,PA,,-1,1,maybe\n";
    rd_metadata_options opt = {.format = "chexpert",
                               .metadata_csv = write_file(t, "labels.csv", csv)};
    rd_metadata md = read_ok(t, opt); /* U-Ignore, blank negative */
    CHECK(md.nrecords == 3 && md.nfindings == 4);
    CHECK(strcmp(md.finding[0], "finding_no_finding") == 0);
    CHECK(strcmp(md.finding[3], "finding_pleural_effusion") == 0);
    CHECK_FINDINGS(&md, 2, "1000");
    CHECK_FINDINGS(&md, 3, "01?0");
    CHECK_FINDINGS(&md, 4, "0?1?");
    CHECK(count_problems(&md, 4, RD_REASON_UNKNOWN_FINDING, RD_OUTCOME_WARNING) == 1);
    CHECK(md.nproblems == 1);
    rd_metadata_free(&md);

    opt.uncertain = "positive"; /* U-Ones, blank unknown */
    opt.blank = "unknown";
    md = read_ok(t, opt);
    CHECK_FINDINGS(&md, 2, "1???");
    CHECK_FINDINGS(&md, 3, "?110");
    CHECK_FINDINGS(&md, 4, "?11?");
    rd_metadata_free(&md);
    opt.uncertain = "negative"; /* U-Zeros */
    opt.blank = NULL;
    md = read_ok(t, opt);
    CHECK_FINDINGS(&md, 3, "0100");
    rd_metadata_free(&md);

    rd_error err = {0};
    opt.uncertain = "ones";
    CHECK(rd_metadata_read(&opt, &md, &err) == RD_EINVAL);
    CHECK_MSG(strstr(err.msg, "'ones'"), "message: %s", err.msg);
}

static void chexpert_patients_views_and_sexes(rd_test *t) {
    const char *csv =
        "Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,Enlarged Cardiomediastinum\n"
        "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg,Female,68,Frontal,AP,"
        "1.0,\n"
        "CheXpert-v1.0-small/train/patient00002/study2/view2_lateral.jpg,Male,87,Lateral,,,\n"
        "CheXpert-v1.0-small/train/patient00003/study1/view1_frontal.jpg,Unknown,0,Frontal,PA,,"
        "\n"
        "CheXpert-v1.0-small/train/patient00004/study1/view1_frontal.jpg,Male,41,Frontal,,,\n";
    rd_metadata md =
        read_ok(t, (rd_metadata_options){.format = "chexpert",
                                         .metadata_csv = write_file(t, "train.csv", csv)});
    CHECK(md.rows == 4 && md.nrecords == 4);
    const char *p1 = "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg";
    check_record(t, &md, 2, p1, p1, "patient00001", 68, RD_SEX_FEMALE, "AP");
    const char *p2 = "CheXpert-v1.0-small/train/patient00002/study2/view2_lateral.jpg";
    check_record(t, &md, 3, p2, p2, "patient00002", 87, RD_SEX_MALE, "LATERAL");
    const char *p3 = "CheXpert-v1.0-small/train/patient00003/study1/view1_frontal.jpg";
    check_record(t, &md, 4, p3, p3, "patient00003", 0, RD_SEX_UNKNOWN, "PA");
    const char *p4 = "CheXpert-v1.0-small/train/patient00004/study1/view1_frontal.jpg";
    check_record(t, &md, 5, p4, p4, "patient00004", 41, RD_SEX_MALE, "FRONTAL");
    CHECK(count_problems(&md, 4, RD_REASON_UNKNOWN_SEX, RD_OUTCOME_WARNING) == 1);
    CHECK(md.nproblems == 1);
    rd_metadata_free(&md);
}

static void padchest_age_from_birth_year(rd_test *t) {
    const char *csv =
        "ImageID,ImageDir,StudyDate_DICOM,StudyID,PatientID,PatientBirth,PatientSex_DICOM,"
        "ViewPosition_DICOM,Projection,Labels\n"
        "img1.png,0,20150314,s1,p1,1945.0,M,POSTEROANTERIOR,PA,\"['normal']\"\n"
        "img2.png,0,20120101,s2,p2,,F,LL,L,\"['pneumonia', 'infiltrates']\"\n"
        "img3.png,1,20100505,s3,p3,1930,O,,AP_horizontal,[]\n"
        "img4.png,1,2010,s4,p4,1930,F,,PA,[]\n"
        "img5.png,1,20100505,s5,p5,1850,F,,PA,[]\n";
    rd_metadata md =
        read_ok(t, (rd_metadata_options){.format = "padchest",
                                         .metadata_csv = write_file(t, "padchest.csv", csv)});
    CHECK(md.rows == 5 && md.nrecords == 5);
    check_record(t, &md, 2, "img1.png", "img1.png", "p1", 70, RD_SEX_MALE, "PA");
    check_record(t, &md, 3, "img2.png", "img2.png", "p2", NAN, RD_SEX_FEMALE, "L");
    check_record(t, &md, 4, "img3.png", "img3.png", "p3", 80, RD_SEX_UNKNOWN, "AP_HORIZONTAL");
    check_record(t, &md, 5, "img4.png", "img4.png", "p4", NAN, RD_SEX_FEMALE, "PA");
    check_record(t, &md, 6, "img5.png", "img5.png", "p5", NAN, RD_SEX_FEMALE, "PA");
    CHECK(count_problems(&md, 3, RD_REASON_MISSING_AGE, RD_OUTCOME_WARNING) == 1);
    CHECK(count_problems(&md, 4, RD_REASON_UNKNOWN_SEX, RD_OUTCOME_WARNING) == 1);
    CHECK(count_problems(&md, 5, RD_REASON_MISSING_AGE, RD_OUTCOME_WARNING) == 1);
    CHECK(count_problems(&md, 6, RD_REASON_IMPOSSIBLE_AGE, RD_OUTCOME_WARNING) == 1);
    rd_metadata_free(&md);
}

static void mimic_join_and_paths(rd_test *t) {
    const char *patients = "subject_id,gender,anchor_age,anchor_year,anchor_year_group,dod\n"
                           "10000764,M,86,2132,2014 - 2016,\n"
                           "10000032,F,52,2180,2014 - 2016,2180-09-09\n"
                           "bad,M,x,y,,\n";
    const char *meta =
        "dicom_id,subject_id,study_id,PerformedProcedureStepDescription,ViewPosition,Rows,"
        "Columns,StudyDate,StudyTime,ProcedureCodeSequence_CodeMeaning,"
        "ViewCodeSequence_CodeMeaning,PatientOrientationCodeSequence_CodeMeaning\n"
        "02aa804e-bde0afdd-112c0b34-7bc16630-4e384014,10000032,50414267,CHEST (PA AND LAT),PA,"
        "3056,2544,21800506,213014.531,CHEST (PA AND LAT),postero-anterior,Erect\n"
        "174413ec-4ec4c1f7-34ea26b7-c5f994f8-79ef1962,10000032,50414267,CHEST (PA AND LAT),"
        "LATERAL,3056,2544,21820506,213014.531,CHEST (PA AND LAT),lateral,Erect\n"
        "abc,10000764,57375967,CHEST (PORTABLE AP),AP,2705,2539,21320723,80556.875,CHEST "
        "(PORTABLE AP),antero-posterior,\n"
        "def,19999999,51111111,,AP,1,1,21500101,0,,,\n"
        "ghi,x1,51111111,,AP,1,1,21500101,0,,,\n";
    rd_metadata_options opt = {.format = "mimic",
                               .metadata_csv = write_file(t, "mimic-cxr-2.0.0-metadata.csv", meta),
                               .patients_csv = write_file(t, "patients.csv", patients)};
    rd_metadata md = read_ok(t, opt);
    CHECK(md.rows == 5 && md.nrecords == 4);
    check_record(
        t, &md, 2, "files/p10/p10000032/s50414267/02aa804e-bde0afdd-112c0b34-7bc16630-4e384014.png",
        "02aa804e-bde0afdd-112c0b34-7bc16630-4e384014", "10000032", 52, RD_SEX_FEMALE, "PA");
    check_record(
        t, &md, 3, "files/p10/p10000032/s50414267/174413ec-4ec4c1f7-34ea26b7-c5f994f8-79ef1962.png",
        "174413ec-4ec4c1f7-34ea26b7-c5f994f8-79ef1962", "10000032", 54, RD_SEX_FEMALE, "LATERAL");
    check_record(t, &md, 4, "files/p10/p10000764/s57375967/abc.png", "abc", "10000764", 86,
                 RD_SEX_MALE, "AP");
    check_record(t, &md, 5, "files/p19/p19999999/s51111111/def.png", "def", "19999999", NAN,
                 RD_SEX_UNKNOWN, "AP");
    CHECK(count_problems(&md, 5, RD_REASON_NO_PATIENT, RD_OUTCOME_WARNING) == 1);
    CHECK(count_problems(&md, 5, RD_REASON_UNKNOWN_SEX, RD_OUTCOME_WARNING) == 1);
    CHECK(count_problems(&md, 5, RD_REASON_MISSING_AGE, RD_OUTCOME_WARNING) == 1);
    CHECK(count_problems(&md, 6, RD_REASON_MALFORMED_ROW, RD_OUTCOME_REJECTED) == 1);
    /* The bad patients.csv line is a warning without an image row. */
    CHECK(count_problems(&md, 0, RD_REASON_MALFORMED_ROW, RD_OUTCOME_WARNING) == 1);
    rd_metadata_free(&md);
}

/* mimic-cxr-2.0.0-chexpert.csv joined on study_id: both images of a study get its labels, a
 * study without a row gets unknown ones and a warning, a bad line of the labels file is a
 * warning of its own. */
static void mimic_findings_join_on_study(rd_test *t) {
    const char *patients = "subject_id,gender,anchor_age,anchor_year\n10000032,F,52,2180\n";
    const char *meta = "dicom_id,subject_id,study_id,ViewPosition,StudyDate\n"
                       "a1,10000032,50414267,PA,21800506\n"
                       "a2,10000032,50414267,LATERAL,21800506\n"
                       "b1,10000032,53189527,AP,21810101\n"
                       "c1,10000032,56699142,AP,21820101\n";
    const char *labels = "subject_id,study_id,Atelectasis,Cardiomegaly,No Finding,Pneumothorax\n"
                         "10000032,50414267,,,1.0,\n"
                         "10000032,53189527,-1.0,1.0,,0.0\n"
                         "10000032,x,1.0,,,\n";
    rd_metadata_options opt = {.format = "mimic",
                               .metadata_csv = write_file(t, "meta.csv", meta),
                               .patients_csv = write_file(t, "patients.csv", patients),
                               .findings_csv = write_file(t, "chexpert.csv", labels)};
    rd_metadata md = read_ok(t, opt);
    CHECK(md.nrecords == 4 && md.nfindings == 4);
    /* in CheXpert's order: No Finding, Cardiomegaly, Atelectasis, Pneumothorax */
    CHECK(strcmp(md.finding[0], "finding_no_finding") == 0);
    CHECK(strcmp(md.finding[2], "finding_atelectasis") == 0);
    CHECK_FINDINGS(&md, 2, "1000");
    CHECK_FINDINGS(&md, 3, "1000");
    CHECK_FINDINGS(&md, 4, "01?0");
    CHECK_FINDINGS(&md, 5, "????");
    CHECK(count_problems(&md, 5, RD_REASON_NO_FINDINGS, RD_OUTCOME_WARNING) == 1);
    CHECK(count_problems(&md, 0, RD_REASON_MALFORMED_ROW, RD_OUTCOME_WARNING) == 1);
    for (size_t i = 0; i < md.nproblems; i++)
        if (md.problems[i].row == 0) CHECK(strstr(md.problems[i].file, "chexpert.csv") != NULL);
    rd_metadata_free(&md);

    opt.findings_csv = NULL; /* no labels file: no findings */
    md = read_ok(t, opt);
    CHECK(md.nrecords == 4 && md.nfindings == 0);
    rd_metadata_free(&md);
}

static void generic_columns_from_config(rd_test *t) {
    const char *csv = "path,pid,age_years,gender,projection,extra\n"
                      "a/b.png,P1,33.5,female,pa,\"x, y\"\n"
                      "c.png,P2,,m,AP,\n"
                      ",P3,40,m,AP,\n";
    rd_metadata_options opt = {.format = "generic",
                               .metadata_csv = write_file(t, "g.csv", csv),
                               .col_image = "path",
                               .col_patient = "pid",
                               .col_age = "age_years",
                               .col_sex = "gender",
                               .col_view = "projection"};
    rd_metadata md = read_ok(t, opt);
    CHECK(md.rows == 3 && md.nrecords == 2);
    check_record(t, &md, 2, "a/b.png", "a/b.png", "P1", 33.5, RD_SEX_FEMALE, "PA");
    check_record(t, &md, 3, "c.png", "c.png", "P2", NAN, RD_SEX_MALE, "AP");
    CHECK(count_problems(&md, 4, RD_REASON_MALFORMED_ROW, RD_OUTCOME_REJECTED) == 1);
    rd_metadata_free(&md);

    /* Absent optional columns: every value unknown, each one a warning. */
    opt.col_patient = opt.col_age = opt.col_sex = opt.col_view = "";
    md = read_ok(t, opt);
    CHECK(md.nrecords == 2);
    check_record(t, &md, 2, "a/b.png", "a/b.png", "", NAN, RD_SEX_UNKNOWN, "");
    CHECK(count_problems(&md, 2, RD_REASON_MISSING_AGE, RD_OUTCOME_WARNING) == 1);
    rd_metadata_free(&md);

    /* data.columns.findings: named 0/1 columns, in the order listed; a missing one is an error */
    const char *labelled = "path,Effusion,Lung Lesion,tube\n"
                           "a.png,1,0,\n"
                           "b.png,0,-1,1\n";
    opt = (rd_metadata_options){.format = "generic",
                                .metadata_csv = write_file(t, "labelled.csv", labelled),
                                .col_image = "path",
                                .col_findings = " tube,Lung Lesion , Effusion"};
    md = read_ok(t, opt);
    CHECK(md.nrecords == 2 && md.nfindings == 3);
    CHECK(strcmp(md.finding[0], "finding_tube") == 0);
    CHECK(strcmp(md.finding[1], "finding_lung_lesion") == 0);
    CHECK_FINDINGS(&md, 2, "001");
    CHECK_FINDINGS(&md, 3, "1?0");
    rd_metadata_free(&md);
    rd_error err = {0};
    opt.col_findings = "Effusion,Mass";
    CHECK(rd_metadata_read(&opt, &md, &err) == RD_EFORMAT);
    CHECK_MSG(strstr(err.msg, "'Mass'") && strstr(err.msg, "labelled.csv"), "message: %s", err.msg);
    opt.col_findings = "Effusion,Effusion";
    CHECK(rd_metadata_read(&opt, &md, &err) == RD_EINVAL);
    CHECK_MSG(strstr(err.msg, "finding_effusion"), "message: %s", err.msg);
}

static void missing_columns_and_files_are_errors(rd_test *t) {
    rd_metadata md;
    rd_error err = {0};
    rd_metadata_options opt = {.format = "generic",
                               .metadata_csv = write_file(t, "g.csv", "path,age\nx.png,3\n"),
                               .col_image = "path",
                               .col_patient = "",
                               .col_age = "Age",
                               .col_sex = "",
                               .col_view = ""};
    CHECK(rd_metadata_read(&opt, &md, &err) == RD_EFORMAT);
    CHECK_MSG(strstr(err.msg, "'Age'") && strstr(err.msg, "'age'") && strstr(err.msg, "g.csv"),
              "message: %s", err.msg);
    opt = (rd_metadata_options){.format = "nih",
                                .metadata_csv = write_file(t, "chexpert.csv", "Path,Sex,Age\n")};
    CHECK(rd_metadata_read(&opt, &md, &err) == RD_EFORMAT);
    CHECK_MSG(strstr(err.msg, "Image Index"), "message: %s", err.msg);
    opt = (rd_metadata_options){.format = "nih",
                                .metadata_csv = write_file(t, "empty.csv", "\xEF\xBB\xBF\r\n")};
    CHECK(rd_metadata_read(&opt, &md, &err) == RD_EFORMAT);
    opt =
        (rd_metadata_options){.format = "nih", .metadata_csv = "/nonexistent/Data_Entry_2017.csv"};
    CHECK(rd_metadata_read(&opt, &md, &err) == RD_ENOTFOUND);
    CHECK(strstr(err.msg, "/nonexistent/Data_Entry_2017.csv") != NULL);
    opt = (rd_metadata_options){.format = "mimic",
                                .metadata_csv = write_file(t, "m.csv", "dicom_id\n")};
    CHECK(rd_metadata_read(&opt, &md, &err) == RD_EINVAL);
    CHECK(strstr(err.msg, "patients") != NULL);
}

static const rd_test_case cases[] = {
    {"ages_in_every_spelling", ages_in_every_spelling},
    {"sexes", sexes},
    {"nih_2017_file_with_every_quirk", nih_2017_file_with_every_quirk},
    {"nih_2020_file", nih_2020_file},
    {"nih_finding_labels", nih_finding_labels},
    {"nih_findings_of_the_shared_sample", nih_findings_of_the_shared_sample},
    {"chexpert_finding_labels_and_policies", chexpert_finding_labels_and_policies},
    {"mimic_findings_join_on_study", mimic_findings_join_on_study},
    {"chexpert_patients_views_and_sexes", chexpert_patients_views_and_sexes},
    {"padchest_age_from_birth_year", padchest_age_from_birth_year},
    {"mimic_join_and_paths", mimic_join_and_paths},
    {"generic_columns_from_config", generic_columns_from_config},
    {"missing_columns_and_files_are_errors", missing_columns_and_files_are_errors},
};
RD_TEST_MAIN("preprocess/metadata", cases)
