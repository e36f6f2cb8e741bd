/* Embedding PNG files straight into one embeddings file (rdino-embed --images, embed.images):
 * a folder (every *.png below it, rows sorted bytewise by the path relative to it, which is the
 * row's /meta/image_id) or a metadata CSV read exactly as rdino-preprocess reads
 * data.metadata_csv (preprocess_plan.h: formats, image lookup under data.image_root, views;
 * rows in the CSV's order with their image_id, patient, age, sex, view and source row).
 *
 * Preprocessing of each PNG:
 *   hf     transformers' BitImageProcessor (hf_preprocess.h) with the weights'
 *          preprocessor_config.json: the pixels transformers gives the released model, bit for
 *          bit (16-bit grey saturates at 255, as there: counted, and warned about once per run).
 *          Every image must come out the same size: do_center_crop, or size {height, width}.
 *   rdino  rdino-preprocess's per-image pipeline (preprocess_image.h with preprocess.*, centre
 *          crop to preprocess.size), then the shards' model input (rd_embed_input:
 *          embed.resolution, embed.resample, pretrain.augment.mean / std): the numbers the
 *          pipeline preprocess -> shard -> embed gives the same image, 16-bit detail kept.
 * A grey image enters the ViT as one channel (its channel-summed patch embedding); a batch
 * holding a colour image (hf: three different channels) goes in as three channels.
 *
 * Work split as rd_embed_run (embed.h): one global grid of embed.batch images, whole batches
 * per rank, so the file is bit-identical on any number of ranks.
 *
 * An image that cannot be read or preprocessed is an error naming the file (every rank
 * returns it, no output is left), or with skip_corrupt it is left out: every rank first
 * preprocesses its share of the list once to find such images, the rows are the others, and
 * the count goes to the log and the attribute skipped_images. */
#ifndef RDINO_EMBED_IMAGES_H
#define RDINO_EMBED_IMAGES_H

#include <mpi.h>
#include <stdint.h>

#include "rdino/config.h"
#include "rdino/embed.h"
#include "rdino/error.h"
#include "rdino/hf_processor.h"
#include "rdino/metadata.h"
#include "rdino/params.h"
#include "rdino/preprocess_image.h"
#include "rdino/vit.h"

typedef enum { RD_EMBED_PREP_RDINO = 0, RD_EMBED_PREP_HF = 1 } rd_embed_prep;

typedef struct rd_embed_images_params {
    const char *source; /* the folder or CSV given (attribute "images") */
    rd_embed_prep prep;
    rd_hf_processor hf;    /* prep HF */
    const char *hf_path;   /* the preprocessor_config.json hf came from */
    rd_prep_options rdino; /* preprocess.*; max_pixels also bounds hf's PNG decode */
    int skip_corrupt;      /* embed.on_corrupt: skip */
} rd_embed_images_params;

/* The images in output row order, identical on every rank. */
typedef struct rd_embed_image_list {
    int64_t n;
    char **path;                                        /* [n] files to read */
    char **image_id, **patient_id;                      /* [n] "" when unknown */
    char **view;                                        /* [n] */
    float *age;                                         /* [n] NaN = unknown */
    int8_t *sex;                                        /* [n] -1 = unknown */
    int64_t *source_row;                                /* [n] CSV line (has_source_row) */
    int has_source_row;                                 /* 1 for a CSV */
    char *blob;                                         /* the strings, NUL-separated */
    int nfindings;                                      /* a CSV's finding labels (0: none) */
    char finding[RD_MAX_FINDINGS][RD_FINDING_NAME_MAX]; /* their column names */
    int8_t *findings;                                   /* [n, nfindings]: 1, 0, -1 unknown */
} rd_embed_image_list;

/* Collective: rank 0 lists source (a folder, or a CSV with cfg's data.* and preprocess.views)
 * and every rank receives the list. CSV rows that name no usable image are logged (count and
 * first reasons) and left out; an empty list is an error. */
rd_status rd_embed_list_images(const rd_config *cfg, const char *source, MPI_Comm comm,
                               rd_embed_image_list *list, rd_error *err);
void rd_embed_image_list_free(rd_embed_image_list *list);

/* Collective: embeds list with the backbone (vit, params identical on every rank) into
 * p->output, published atomically. p supplies the provenance, embed.batch and, for rdino
 * preprocessing, the resolution, kernel, mean and std. */
rd_status rd_embed_images_run(const rd_embed_params *p, const rd_embed_images_params *ip,
                              const rd_embed_image_list *list, const rd_vit *vit,
                              const rd_param_set *params, MPI_Comm comm, rd_embed_stats *stats,
                              rd_error *err);

#endif
