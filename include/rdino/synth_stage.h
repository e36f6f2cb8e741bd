/* rdino-synth as a library call: the built-in phantom data set (phantom.h) written as an image
 * folder plus a metadata CSV in the NIH ChestX-ray14 Data_Entry_2017.csv layout, so the rest of
 * the pipeline reads it like real data (data.format: nih).
 *
 * Output folder (synth.output_dir, default <data.output_dir>/synth):
 *   images/PPPPPPPP_FFF.png   8-bit grey (16 with synth.bit_depth: 16), each written atomically
 *   metadata.csv              NIH layout, written atomically after every image exists
 *   synth.yaml                the settings the images were made with
 * Restartable: when synth.yaml matches the current settings, images already present are kept
 * (they were written atomically, so they are whole); otherwise the folder's phantom images are
 * deleted first. Images are spread over the ranks with the work queue; every image depends only
 * on the seed, its patient and its follow-up number, so the output is byte-identical for any
 * number of ranks. */
#ifndef RDINO_SYNTH_STAGE_H
#define RDINO_SYNTH_STAGE_H

#include <mpi.h>
#include <stdint.h>

#include "rdino/config.h"
#include "rdino/error.h"
#include "rdino/phantom.h"

/* Bumped whenever the rendering changes, so that a restart never mixes old and new images. */
enum { RD_PHANTOM_VERSION = 2 }; /* 2: stronger age effects and breasts (docs/SYNTH.md) */

/* The NIH header line (9 names; rows have 11 fields). */
#define RD_NIH_HEADER                                                                              \
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View "           \
    "Position,OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]"

typedef struct rd_synth_counts {
    int64_t patients, images;
    int64_t rendered; /* images made by this run (the rest were already there) */
} rd_synth_counts;

/* The synth.* keys as phantom settings (validated). */
rd_status rd_synth_settings(const rd_config *cfg, rd_phantom_settings *s, rd_error *err);

/* The metadata CSV of a plan as text (caller frees), NIH layout with LF line ends. */
char *rd_synth_csv(const rd_phantom_plan *plan);

/* Runs the stage into the pipeline's synth folder (paths.h), with a summary; collective over
 * comm, errors agreed. counts is filled on rank 0. */
rd_status rd_synth_stage(const rd_config *cfg, MPI_Comm comm, rd_synth_counts *counts,
                         rd_error *err);

#endif
