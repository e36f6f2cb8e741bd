/* The one reader of a shards folder written by rdino-shard (docs/FORMATS.md, "Shards"): the
 * pretraining loader, embed, analyze's raw-pixel baseline and rdino-shard --verify all read
 * through it. Rows are global: row r of the set is manifest row r, held by the shard k with
 * first_row[k] <= r < first_row[k + 1]; reads may span shard boundaries.
 *
 *     rd_shard_set set;
 *     rd_shard_set_open(&set, "out/shards", 1, MPI_COMM_WORLD, &err);       // collective
 *     rd_shard_set_read_images(&set, row0, n, pixels, &err);                // independent
 *     rd_shard_set_read(&set, "/meta/age", RD_H5_F32, row0, n, ages, &err); // independent
 *     rd_shard_set_close(&set);
 *
 * Opening parses index.json (jansson; rdino-shard writes it last, so a folder without it is
 * unfinished) and checks every shard it lists against it and against the others
 * (format_version, shard_index, shard_count, first_row, num_images, total_images, image size and
 * depth, dataset shapes, the same finding label columns); errors name the file. Formats 2 (no
 * finding labels) and 3 are read; shards of format 1 (before per-image CRC32C) are refused with
 * a message saying to rewrite them (rdino-shard --force). Rank 0 does the checking
 * and broadcasts what it learnt (the splits and the CRC32C of every image), so a large job does
 * not open every shard from every rank.
 *
 * Every image read is verified: its CRC32C is computed and compared with /meta/crc32c; a
 * mismatch fails the read with RD_ECORRUPT and a message naming the shard file, the row (in the
 * shard and in the set) and the image id, and sets corrupt_row, so a caller may skip the image.
 *
 * Files: afterwards each rank reads on its own (MPI_COMM_SELF), keeping up to max_open shard
 * files open (least recently used closed first). The loader reads from its prefetch thread: it
 * "holds" the rows of a batch on the calling thread (rd_shard_set_hold opens their shards), and
 * reads of held rows never open or close a file. The set has no lock of its own: while another
 * thread may call HDF5, callers hold rd_hdf5_lock() around every call (h5store.h). */
#ifndef RDINO_SHARD_READER_H
#define RDINO_SHARD_READER_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "rdino/error.h"
#include "rdino/file.h"
#include "rdino/h5store.h"
#include "rdino/findings.h"

typedef struct rd_shard_open_file rd_shard_open_file;

typedef struct rd_shard_set {
    char dir[RD_PATH_MAX];
    char index_sha256[65];   /* SHA-256 of index.json, as sha256sum prints it */
    int count;               /* K shards */
    int64_t n;               /* N images over all shards */
    int image_size;          /* S: images are S x S */
    int bit_depth;           /* 8 (/images uint8) or 16 (uint16) */
    int64_t *first_row;      /* [K + 1]: shard k holds rows [first_row[k], first_row[k + 1]) */
    uint8_t *split;          /* [N]: /meta/split of every row (rd_split codes) */
    uint32_t *crc32c;        /* [N]: /meta/crc32c of every row */
    char (*meta_sha256)[65]; /* [K]: index.json's digest of each shard's /meta datasets */
    size_t width_image_id, width_patient_id, width_view; /* widest string over all shards */
    int has_source_row;                                  /* every shard has /meta/source_row */
    int nfindings; /* finding label columns /meta/<finding[k]> every shard has, name order */
    char finding[RD_MAX_FINDINGS][RD_FINDING_NAME_MAX];
    int verify;          /* 1 (the default): images read are checked against their CRC32C */
    int64_t corrupt_row; /* the row of the last RD_ECORRUPT read, -1 before any */
    int64_t opens;       /* shard files this rank opened (the checks at open included) */
    /* open files */
    int max_open;
    rd_shard_open_file *files; /* [max_open] */
    int *file_of;              /* [K]: entry of files holding shard k, -1 if closed */
    uint64_t tick, hold_epoch;
} rd_shard_set;

/* Collective on comm (identical dir and max_open >= 1 on every rank). On failure every rank
 * returns the same error, and the set needs no close. */
rd_status rd_shard_set_open(rd_shard_set *s, const char *dir, int max_open, MPI_Comm comm,
                            rd_error *err);
void rd_shard_set_close(rd_shard_set *s);

/* The shard holding global row (0 <= row < n) and the row within it. */
void rd_shard_set_locate(const rd_shard_set *s, int64_t row, int *shard, int64_t *local_row);
/* Path of shard k ("<dir>/shard-NNNNN.h5"). */
void rd_shard_set_path(const rd_shard_set *s, int k, char *buf, size_t n);

/* Independent. Images [row0, row0 + nrows) into pixels ([nrows, S, S] uint8 or uint16 as
 * bit_depth says), each verified against its CRC32C unless verify is 0. */
rd_status rd_shard_set_read_images(rd_shard_set *s, int64_t row0, int64_t nrows, void *pixels,
                                   rd_error *err);
/* Independent. Rows [row0, row0 + nrows) of a numeric /meta dataset ("/meta/age", ...) into buf
 * (C order, converted to type). Not for "/images" (use rd_shard_set_read_images). */
rd_status rd_shard_set_read(rd_shard_set *s, const char *dataset, rd_h5_type type, int64_t row0,
                            int64_t nrows, void *buf, rd_error *err);
/* Independent. String rows as NUL-terminated strings at out + i * stride; stride must exceed
 * the dataset's width (the set's width_* + 1 is enough). */
rd_status rd_shard_set_read_strings(rd_shard_set *s, const char *dataset, int64_t row0,
                                    int64_t nrows, char *out, size_t stride, rd_error *err);

/* For readers on another thread: rd_shard_set_begin_holds ends the earlier holds,
 * rd_shard_set_hold opens the shard of row (closing an unheld file if the table is full) and
 * keeps it open until the next rd_shard_set_begin_holds. Calling thread only. */
void rd_shard_set_begin_holds(rd_shard_set *s);
rd_status rd_shard_set_hold(rd_shard_set *s, int64_t row, rd_error *err);

/* A corrupt image found by rd_shard_set_verify_shard. */
typedef void (*rd_shard_bad_image_fn)(void *ctx, const char *shard_path, int64_t local_row,
                                      int64_t row, const char *image_id, const char *message);

/* Independent. Reads all of shard k: every image against its CRC32C (in blocks of `block`
 * images), every /meta dataset, and their SHA-256 against index.json's meta_sha256. Each corrupt
 * image is passed to bad (may be NULL) and counted in *bad_images. Returns RD_OK when the shard
 * is intact, RD_ECORRUPT when images or the digest are not (err names the first problem), or the
 * error that made the shard unreadable. */
rd_status rd_shard_set_verify_shard(rd_shard_set *s, int k, int block, rd_shard_bad_image_fn bad,
                                    void *ctx, int64_t *bad_images, rd_error *err);

#endif
