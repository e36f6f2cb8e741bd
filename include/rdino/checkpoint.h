/* Training checkpoints: one HDF5 file per saved step, <dir>/step-NNNNNNN.h5 (NNNNNNN = steps
 * completed), written by one rank (every rank holds the same state) under a temporary name,
 * fsync'd and renamed, so a file with the final name is complete (layout: docs/FORMATS.md,
 * "Checkpoints"). Tensors are stored under DINOv2's state-dict names, "/" between model, module
 * and parameter name:
 *     student/backbone/blocks.0.attn.qkv.weight    teacher/dino_head/last_layer.weight_v
 *     optimizer/exp_avg/student/backbone/...        optimizer/exp_avg_sq/student/...
 *     optimizer/step [count] + optimizer/param_names [count]   (steps taken per tensor)
 *     dino_loss/center, ibot_patch_loss/center (+ .../pending)  (centring mode only)
 * so a PyTorch state dict is a rename away ("student/backbone/x" -> "student.backbone.x";
 * the teacher's backbone is DINOv2's "teacher" checkpoint with "backbone." stripped).
 * Every dataset carries a Fletcher32 checksum: a damaged file fails to read and names the
 * dataset. Readers match tensors by name and check shapes, so a file written by another tool
 * (converted DINOv2 / RAD-DINO weights) loads as long as the names and shapes agree. The
 * encoder of a checkpoint, for embedding, is loaded by rd_embed_checkpoint_backbone (embed.h).
 *
 * The random state needs no field: every draw of rdino's counter-based generator is keyed by
 * (train.seed, purpose, iteration, image index), so the step count is the generator's state.
 *
 * All functions are serial (one process; HDF5 opened on MPI_COMM_SELF): call them on one rank
 * and broadcast, or on every rank that needs the data. MPI must be initialised. */
#ifndef RDINO_CHECKPOINT_H
#define RDINO_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "rdino/config.h"
#include "rdino/error.h"
#include "rdino/file.h"
#include "rdino/params.h"

struct rd_trainer; /* step.h: the writer's and resumer's state */

enum { RD_CHECKPOINT_FORMAT_VERSION = 1 };

/* The run-level facts stored as root attributes next to the tensors. */
typedef struct rd_checkpoint_meta {
    int64_t steps;        /* iterations completed; a resumed run continues with this iteration */
    int64_t global_batch; /* images per step over all ranks */
    int64_t seed;         /* train.seed */
    int64_t nranks;       /* ranks of the run that wrote the file (information only) */
    const char *config;   /* resolved configuration (YAML); on read: malloc'd, caller frees */
} rd_checkpoint_meta;

/* "<dir>/step-NNNNNNN.h5" (steps zero-padded to 7 digits). */
void rd_checkpoint_path(char *buf, size_t n, const char *dir, int64_t steps);

/* Step numbers of the checkpoint files in dir (names step-<digits>.h5), newest first, at most
 * max of them; returns how many (0 for a missing dir, -1 with err set when dir is unreadable). */
int rd_checkpoint_list(const char *dir, int64_t *steps, int max, rd_error *err);

/* Writes the trainer's whole state (student, teacher, AdamW moments and step counts, centres
 * with the pending batch sums) and meta to path, atomically. Never leaves a partial file under
 * path; a failed write removes its temporary file. */
rd_status rd_checkpoint_write(const char *path, const struct rd_trainer *tr,
                              const rd_checkpoint_meta *meta, rd_error *err);

/* Reads a whole trainer state written by rd_checkpoint_write into tr, which must have been
 * initialised with the same model (every tensor found by name with its shape, else an error
 * naming the dataset). Reads every byte (checksums verified); on failure tr is partly
 * overwritten. meta->config is malloc'd (free it). */
rd_status rd_checkpoint_read(const char *path, struct rd_trainer *tr, rd_checkpoint_meta *meta,
                             rd_error *err);

/* Loads the tensors of set whose module is in modules (bit mask of 1 << rd_module) from the
 * datasets "<model>/<module>/<name>", model = "teacher" or "student". Shapes must match; a
 * missing dataset is an error naming it. Other datasets in the file are ignored. */
rd_status rd_checkpoint_load_params(const char *path, const char *model, rd_param_set *set,
                                    unsigned modules, rd_error *err);

/* The resolved configuration stored in a checkpoint, loaded into cfg (initialise cfg with
 * rd_config_init first; the file's values are merged over it). */
rd_status rd_checkpoint_load_config(const char *path, rd_config *cfg, rd_error *err);

/* The newest checkpoint in dir whose root attributes read (a cheap check: full validation is
 * rd_checkpoint_read); RD_ENOTFOUND when there is none. */
rd_status rd_checkpoint_find_latest(const char *dir, char *path, size_t n, rd_error *err);

#endif
