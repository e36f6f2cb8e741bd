/* What the shard writer and the shards reader both need to write or check a shard: the /meta
 * columns and their SHA-256 (index.json's meta_sha256, docs/FORMATS.md "Shards"), and every image
 * against its CRC32C. Private to src/shard. */
#ifndef RDINO_SHARD_CHECK_H
#define RDINO_SHARD_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "rdino/error.h"
#include "rdino/h5store.h"
#include "rdino/shard_reader.h"

/* The /meta datasets of one shard, n rows. */
typedef struct shard_meta {
    int64_t n;
    size_t width[3];  /* image_id, patient_id, view: the stored fixed widths */
    size_t stride[3]; /* bytes between rows of strings[c] (> width[c]) */
    char *strings[3]; /* [n, stride]: NUL-terminated, NUL-padded to width */
    float *age;
    int8_t *sex;
    uint8_t *split;
    int64_t *source_row;
    uint32_t *crc32c;
    int nfindings; /* finding label columns /meta/<finding[k]>, in name order */
    char finding[RD_MAX_FINDINGS][RD_FINDING_NAME_MAX];
    int8_t *findings; /* [nfindings, n]: column k at findings + k * n */
} shard_meta;

/* Buffers for n rows of strings up to max_width[c] bytes. RD_ENOMEM (err naming what) or RD_OK. */
rd_status shard_meta_alloc(shard_meta *m, int64_t n, const size_t max_width[3], rd_error *err);
void shard_meta_free(shard_meta *m);
/* Buffers for the finding label columns names[0..n) of an allocated m. */
rd_status shard_meta_set_findings(shard_meta *m, int n, const char (*names)[RD_FINDING_NAME_MAX],
                                  rd_error *err);
/* The finding label columns shard f has (/meta/finding_*, at most RD_MAX_FINDINGS), in name
 * order. */
rd_status shard_list_findings(const rd_h5file *f, int *n,
                              char names[RD_MAX_FINDINGS][RD_FINDING_NAME_MAX], rd_error *err);
/* Every row of every /meta dataset of f (string widths must fit the buffers; the finding
 * columns are m's). */
rd_status shard_meta_read(const rd_h5file *f, shard_meta *m, rd_error *err);
/* Every row of every /meta dataset of f, a shard being written by this rank alone. */
rd_status shard_meta_write(rd_h5file *f, const shard_meta *m, rd_error *err);
/* SHA-256 (hex) of, in this order: image_id, patient_id, view (each row's width bytes,
 * NUL-padded as stored), age (float32), sex (int8), split (uint8), source_row (int64), crc32c
 * (uint32), then the finding columns in name order (int8), numbers little-endian: the bytes of
 * numpy's tobytes() of each dataset, concatenated. */
void shard_meta_sha256(const shard_meta *m, char hex[65]);

/* RD_ECORRUPT naming the file, the shard row, the set row and the image id. */
rd_status shard_corrupt(rd_error *err, const rd_h5file *f, int64_t local_row, int64_t row,
                        uint32_t stored, uint32_t computed);

/* Reads images [0, n) of the open shard f (S x S at bit_depth) in blocks of `block`, comparing
 * each CRC32C with crc32c[i]; first_row turns shard rows into set rows for messages. Each bad
 * image goes to bad (may be NULL) and is counted in *bad_images. RD_OK, RD_ECORRUPT (err: the
 * first bad image; "N corrupt images, the first: ..."), or the read's error. */
rd_status shard_check_images(const rd_h5file *f, int64_t n, int size, int bit_depth,
                             const uint32_t *crc32c, int64_t first_row, int block,
                             rd_shard_bad_image_fn bad, void *ctx, int64_t *bad_images,
                             rd_error *err);

#endif
