/* rdino-preprocess as a library call: metadata CSV + image folder -> normalised, resized PNGs,
 * a manifest of the kept images, a report of every problem, a summary.
 *
 * Steps (rank 0 plans, every rank works):
 *  1. read the metadata (metadata.h), list the image folder (image_tree.h);
 *  2. reconcile: each row's image path must stay inside data.image_root (no "../", no
 *     absolute path, no symlink leading out); it is looked up as given, then with a .png
 *     extension, then by file name alone when that name is unique in the folder (NIH and
 *     PadChest ship flat names for images stored in subfolders); rows whose view is not in
 *     preprocess.views are excluded; PNG files no row names are rejected as no_metadata;
 *  3. images whose result is already in the journal (same input size and mtime, same
 *     preprocessing parameters, output still there) are reused; the rest are spread over the
 *     ranks with the work queue (workqueue.h) and go through the per-image pipeline, output
 *     written atomically to <out>/preprocessed/images/<input path with .png extension>; each
 *     rank appends its results to <out>/preprocessed/journal/rank-NNNNN.tsv, fsync'd per
 *     chunk, so a killed run resumes where it stopped;
 *  4. rank 0 reads the journals and writes manifest.csv, report.csv and summary.json
 *     atomically (formats in docs/FORMATS.md), and logs the summary.
 * Outputs do not depend on the number of ranks. The output folder must be on a file system
 * every rank sees (as on any cluster). */
#ifndef RDINO_PREPROCESS_STAGE_H
#define RDINO_PREPROCESS_STAGE_H

#include <mpi.h>
#include <stdint.h>

#include "rdino/config.h"
#include "rdino/error.h"

typedef struct rd_preprocess_counts {
    int64_t inputs;                   /* metadata rows + image files no row names */
    int64_t metadata_rows;            /* data records of the metadata CSV */
    int64_t orphan_images;            /* PNG files no row names */
    int64_t kept, rejected, excluded; /* kept + rejected + excluded == inputs */
    int64_t warnings;                 /* warning lines in the report */
    int64_t processed;                /* images run through the pipeline by this run */
    int64_t reused;                   /* images whose result came from the journal */
} rd_preprocess_counts;

/* Runs the stage; collective over comm. counts is filled on rank 0. */
rd_status rd_preprocess_stage(const rd_config *cfg, MPI_Comm comm, rd_preprocess_counts *counts,
                              rd_error *err);

#endif
