/* Reading a shards folder written by rdino-shard (docs/FORMATS.md, "Shards") by global row:
 * row r of the set is manifest row r, held by the shard k with first_row[k] <= r <
 * first_row[k + 1]. Reads may span shard boundaries.
 *
 *     rd_shard_set set;
 *     rd_shard_set_open(&set, "out/shards", MPI_COMM_WORLD, &err);  // collective
 *     rd_shard_set_read(&set, "/images", RD_H5_U8, row0, n, pixels, &err);  // independent
 *     rd_shard_set_close(&set);
 *
 * Opening checks that index.json exists (rdino-shard writes it last, so a folder without it
 * is unfinished) and that every shard it announces is there and consistent (format_version,
 * shard_index, shard_count, first_row, total_images, image size and depth); errors name the
 * file. Rank 0 does the checking and broadcasts the result, so a large job does not open every
 * shard from every rank. Afterwards each rank reads on its own (MPI_COMM_SELF), keeping the
 * shard it read last open. */
#ifndef RDINO_SHARD_READER_H
#define RDINO_SHARD_READER_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "rdino/error.h"
#include "rdino/file.h"
#include "rdino/h5store.h"

typedef struct rd_shard_set {
    char dir[RD_PATH_MAX];
    char index_sha256[65]; /* SHA-256 of index.json, as sha256sum prints it */
    int count;             /* K shards */
    int64_t n;             /* N images over all shards */
    int image_size;        /* S: images are S x S */
    int bit_depth;         /* 8 (/images uint8) or 16 (uint16) */
    int64_t *first_row;    /* [K + 1]: shard k holds rows [first_row[k], first_row[k + 1]) */
    uint8_t *split;        /* [N]: /meta/split of every row (rd_split codes) */
    size_t width_image_id, width_patient_id, width_view; /* widest string over all shards */
    int has_source_row;                                  /* every shard has /meta/source_row */
    /* the shard kept open for reading (-1: none) */
    int open_index;
    rd_h5file open;
} rd_shard_set;

/* Collective on comm (identical dir on every rank). On failure every rank returns the same
 * error, and the set needs no close. */
rd_status rd_shard_set_open(rd_shard_set *s, const char *dir, MPI_Comm comm, rd_error *err);
void rd_shard_set_close(rd_shard_set *s);

/* Independent. Rows [row0, row0 + nrows) of a numeric dataset ("/images", "/meta/age", ...)
 * into buf (C order, converted to type). */
rd_status rd_shard_set_read(rd_shard_set *s, const char *dataset, rd_h5_type type, int64_t row0,
                            int64_t nrows, void *buf, rd_error *err);
/* Independent. String rows as NUL-terminated strings at out + i * stride; stride must exceed
 * the dataset's width (the set's width_* + 1 is enough). */
rd_status rd_shard_set_read_strings(rd_shard_set *s, const char *dataset, int64_t row0,
                                    int64_t nrows, char *out, size_t stride, rd_error *err);

#endif
