/* Weights in and out of pretraining (docs/PRETRAIN.md, "Starting from released weights" and
 * "Exporting"):
 *   - student.pretrained_weights: an rdino checkpoint (its teacher backbone, else its student
 *     backbone), a .safetensors file or a Hugging Face snapshot folder (weights.h: either name
 *     layout); dino.head_weights: a DINOHead file. Teacher = student at the start.
 *   - released weights fix what the configuration leaves at its defaults: the native size of
 *     the position embedding (student.img_size) and its interpolation
 *     (student.interpolate_offset / interpolate_antialias); the resolved values go into the
 *     run's configuration, hence into every checkpoint, so later stages declare the same model.
 *   - pretrain.export_dir: the teacher as a snapshot folder transformers loads. */
#ifndef RDINO_PRETRAIN_WEIGHTS_H
#define RDINO_PRETRAIN_WEIGHTS_H

#include <mpi.h>

#include "rdino/config.h"
#include "rdino/error.h"
#include "rdino/step.h"

/* 1 when path names released weights (a folder, or a file ending in .safetensors), 0 for an
 * rdino checkpoint. */
int rd_is_released_weights(const char *path);

/* Collective: *out = cfg (rd_config_copy; free it, also on failure) with the values released
 * weights in student.pretrained_weights decide: student.img_size = their native size when it
 * is 0 and differs from crops.global_crops_size, and their interpolation when neither
 * student.interpolate_* key is set. Rank 0 reads the file's header; the values are broadcast. */
rd_status rd_pretrain_resolve_config(const rd_config *cfg, MPI_Comm comm, rd_config *out,
                                     rd_error *err);

/* Rank 0, fresh runs: the student's backbone from student.pretrained_weights and its DINO
 * head from dino.head_weights (each when set), then teacher = student. Every tensor must fit
 * (weights.h loading rules); a snapshot's config.json must agree on the number of heads, which
 * no tensor shape shows. */
rd_status rd_pretrain_load_weights(rd_trainer *tr, const rd_config *cfg, rd_error *err);

/* Rank 0: the teacher (backbone; with pretrain.export_head its DINO head; with
 * pretrain.export_original_names also DINOv2's names) as a snapshot folder in dir, with a
 * preprocessor_config.json describing the run's preprocessing (hf_processor.h: transformers'
 * closest BitImageProcessor, and rdino's exact pipeline under "rdino_preprocessing"). */
rd_status rd_pretrain_export(const rd_trainer *tr, const rd_config *cfg, const char *dir,
                             rd_error *err);

#endif
