/* The planning half of rdino-preprocess (rank 0): metadata rows and image files reconciled
 * into a list of images to process, plus a report line for every input that is rejected or
 * excluded before any pixel is read, and every warning about a row. The rules are listed in
 * preprocess_stage.h. */
#ifndef RDINO_PREPROCESS_PLAN_H
#define RDINO_PREPROCESS_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "rdino/config.h"
#include "rdino/error.h"
#include "rdino/image_tree.h"
#include "rdino/metadata.h"

/* Reason codes added by reconciliation (the pipeline's own come from rd_reject_name). */
#define RD_REASON_MISSING       "missing"           /* no file for the row (same as png.h) */
#define RD_REASON_PATH_ESCAPES  "path_escapes_root" /* ../, absolute, symlink out of the root */
#define RD_REASON_AMBIGUOUS     "ambiguous_file"    /* a bare name matching several files */
#define RD_REASON_NO_METADATA   "no_metadata"       /* a PNG file no row names */
#define RD_REASON_VIEW_EXCLUDED "view_excluded"     /* view not in preprocess.views */

/* One line of report.csv. */
typedef struct rd_report_line {
    int64_t row; /* metadata line; 0 for files without a row */
    char *file;
    rd_outcome outcome;
    char *reason;
    char *detail;
} rd_report_line;

typedef struct rd_report {
    rd_report_line *lines;
    size_t n, cap;
} rd_report;

rd_status rd_report_add(rd_report *r, int64_t row, const char *file, rd_outcome outcome,
                        const char *reason, const char *detail, rd_error *err);
/* Sorts by row (lines without a row last, by file), keeping the order within a row. */
rd_status rd_report_sort(rd_report *r, rd_error *err);
void rd_report_free(rd_report *r);

/* An image to run through the pipeline. */
typedef struct rd_plan_item {
    const rd_meta_record *record;
    const rd_image_file *input;
    char *output; /* path under preprocessed/images: the input path with a .png extension */
} rd_plan_item;

typedef struct rd_preprocess_plan {
    rd_metadata md;
    rd_image_tree tree;
    rd_plan_item *items; /* rising source row */
    size_t nitems;
    int64_t orphans; /* PNG files without a row (each has a rejected line) */
    rd_report report;
} rd_preprocess_plan;

/* Reads data.metadata_csv (data.format ...), lists data.image_root leaving out exclude_dir,
 * and reconciles them under preprocess.views. */
rd_status rd_preprocess_plan_build(const rd_config *cfg, const char *exclude_dir,
                                   rd_preprocess_plan *plan, rd_error *err);
void rd_preprocess_plan_free(rd_preprocess_plan *plan);

#endif
