/* Metadata readers: the CSV files chest X-ray datasets ship, turned into one record per image
 * {image path, image id, patient id, age in years, sex, view, finding labels, source line},
 * plus a list of per-row problems (rejected rows and warnings) for the preprocessing report.
 *
 * Formats (data.format):
 *   nih       NIH ChestX-ray14 Data_Entry_2017.csv (and the v2020 file, the Kaggle sample):
 *             "Image Index", "Patient ID", "Patient Age" (60 or 060Y), "Patient Gender" (M/F),
 *             "View Position", and when present "Finding Labels" (pipe-separated names of the
 *             14 findings, or "No Finding"). The unquoted bracketed header names
 *             OriginalImage[Width,Height] and OriginalImagePixelSpacing[x,y] each stand for two
 *             fields, and the 2017 file ends every line with an extra comma.
 *   chexpert  CheXpert train.csv/valid.csv: Path, Sex (Male/Female/Unknown), Age,
 *             Frontal/Lateral, AP/PA; the patient id is the path's "patientNNNNN" component.
 *             Findings: whichever of the 14 label columns (No Finding ... Support Devices) the
 *             header has.
 *   padchest  PadChest: ImageID, PatientID, StudyDate_DICOM (YYYYMMDD), PatientBirth (year),
 *             PatientSex_DICOM (M/F/O), Projection; age = study year - birth year. No findings
 *             (its 174 report labels are not read).
 *   mimic     MIMIC-CXR-JPG mimic-cxr-2.0.0-metadata.csv (dicom_id, subject_id, study_id,
 *             ViewPosition, StudyDate) joined on subject_id with MIMIC-IV patients.csv
 *             (gender, anchor_age, anchor_year); age = anchor_age + study year - anchor_year.
 *             Image path: files/pNN/pSUBJECT/sSTUDY/DICOM_ID.png (NN = first two digits of
 *             the subject id), relative to data.image_root. Findings: joined on study_id with
 *             mimic-cxr-2.0.0-chexpert.csv (data.findings_csv; CheXpert's 14 label columns).
 *   generic   any CSV; the columns are named by data.columns.{image,patient,age,sex,view}
 *             (an empty name means the column is absent: every value unknown), finding label
 *             columns by data.columns.findings.
 * Finding labels become 1 positive / 0 negative / -1 unknown per image. NIH: the listed
 * findings are positive, the other 13 negative ("No Finding": all 14 negative). CheXpert,
 * MIMIC, generic cells: 1 positive, 0 negative, -1 uncertain, blank (not mentioned); the
 * policy maps uncertain to unknown (U-Ignore, the default), negative or positive, and blank to
 * negative (the default, as NIH codes an unlisted finding) or unknown (docs/FORMATS.md says
 * why). A label name or value not understood is a warning and counts as unknown.
 * Every format accepts a UTF-8 BOM, CRLF line ends, blank lines, quoted fields and one
 * trailing empty field per line. Header names are matched exactly, after trimming spaces. */
#ifndef RDINO_METADATA_H
#define RDINO_METADATA_H

#include <stddef.h>
#include <stdint.h>

#include "rdino/error.h"
#include "rdino/findings.h"

/* Values match the shard format's /meta/sex. */
typedef enum { RD_SEX_UNKNOWN = -1, RD_SEX_FEMALE = 0, RD_SEX_MALE = 1 } rd_sex;

typedef struct rd_meta_record {
    char *image;      /* image path relative to the image root, as the CSV gives it */
    char *image_id;   /* unique key: NIH/PadChest file name, CheXpert path, MIMIC dicom_id */
    char *patient_id; /* "" when unknown */
    char *view;       /* upper case as in the source (PA, AP, LL, LATERAL, L, ...); "" unknown */
    float age;        /* years; NaN when unknown */
    rd_sex sex;
    int8_t findings[RD_MAX_FINDINGS]; /* [nfindings] of the metadata: 1, 0, -1 unknown */
    int64_t row; /* line of the metadata CSV where the record starts (header = line 1) */
} rd_meta_record;

/* Outcomes in the report. Every input ends either kept, rejected or excluded (filtered out by
 * the configuration); warnings are notes on an input and do not change its outcome. */
typedef enum { RD_OUTCOME_WARNING, RD_OUTCOME_REJECTED, RD_OUTCOME_EXCLUDED } rd_outcome;
const char *rd_outcome_name(rd_outcome outcome);

/* Reason codes of metadata problems (report.csv "reason" column). */
#define RD_REASON_MALFORMED_ROW  "malformed_row"      /* wrong field count, CSV grammar, no path */
#define RD_REASON_DUPLICATE_ID   "duplicate_image_id" /* a later row with an id already seen */
#define RD_REASON_UNKNOWN_SEX    "unknown_sex"        /* warning: not M/F/Male/Female */
#define RD_REASON_MISSING_AGE    "missing_age"        /* warning: empty or unknown age */
#define RD_REASON_IMPOSSIBLE_AGE "impossible_age"     /* warning: unparsable, < 0 or > RD_MAX_AGE */
#define RD_REASON_NO_PATIENT     "no_patient_row"     /* warning (MIMIC): subject not in patients */
#define RD_REASON_UNKNOWN_FINDING                                                                  \
    "unknown_finding"                           /* warning: finding name/value not understood      \
                                                 */
#define RD_REASON_NO_FINDINGS "no_findings_row" /* warning (MIMIC): study not in findings_csv */

enum { RD_MAX_AGE = 120 };

typedef struct rd_meta_problem {
    int64_t row; /* source line, or 0 when the problem has none */
    char *file;  /* image path as given, "" when unknown */
    rd_outcome outcome;
    const char *reason; /* one of the RD_REASON_* strings (static) */
    char *detail;       /* human-readable explanation naming the value */
} rd_meta_problem;

typedef struct rd_metadata {
    rd_meta_record *records; /* in file order (rising row) */
    size_t nrecords, records_cap;
    rd_meta_problem *problems; /* in file order */
    size_t nproblems, problems_cap;
    int64_t rows;  /* data records read: kept records + rejected rows */
    int nfindings; /* finding labels the data set has (0: none) */
    char finding[RD_MAX_FINDINGS][RD_FINDING_NAME_MAX]; /* their column names, source order */
} rd_metadata;

typedef struct rd_metadata_options {
    const char *format;       /* nih|chexpert|padchest|mimic|generic */
    const char *metadata_csv; /* the per-image CSV */
    const char *patients_csv; /* mimic: patients.csv */
    /* generic: column names ("" = absent) */
    const char *col_image, *col_patient, *col_age, *col_sex, *col_view;
    /* Finding labels (NULL or "" = none): generic label columns, comma-separated; mimic:
     * mimic-cxr-2.0.0-chexpert.csv. The policy: uncertain = "unknown" (NULL: the default),
     * "negative" or "positive"; blank = "negative" (NULL: the default) or "unknown". */
    const char *col_findings, *findings_csv;
    const char *uncertain, *blank;
} rd_metadata_options;

/* Reads the metadata. Problems with single rows are recorded in md->problems; only a file
 * that cannot be read or lacks a required column is an error. Duplicate image ids: the first
 * row wins, later rows are rejected. On error md is left empty. */
rd_status rd_metadata_read(const rd_metadata_options *opt, rd_metadata *md, rd_error *err);
void rd_metadata_free(rd_metadata *md);

/* Field parsers, exposed for tests. Ages: "60", "60.5", "060Y", "006M", "010W", "020D"
 * (DICOM age strings). Returns the age in years, or NaN with *reason set to
 * RD_REASON_MISSING_AGE (empty/unknown) or RD_REASON_IMPOSSIBLE_AGE. */
float rd_parse_age(const char *text, const char **reason);
/* M, F, Male, Female in any case; anything else is unknown. */
rd_sex rd_parse_sex(const char *text);
/* The /meta column of a finding label: "finding_" + the label lowercased, every character but
 * a-z, 0-9 and _ replaced by _ ("Pleural Effusion" -> "finding_pleural_effusion"). 0, or -1
 * when the name does not fit cap bytes. */
int rd_finding_column_name(const char *label, char *out, size_t cap);

#endif
