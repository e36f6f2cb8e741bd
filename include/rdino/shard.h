/* Shards: the preprocessed images and their metadata packed into K HDF5 files
 * shards/shard-NNNNN.h5 plus shards/index.json (layout: docs/FORMATS.md, "Shards").
 *
 * Images keep the manifest's order: shard k holds rows [k*N/K, (k+1)*N/K) of the manifest.
 * Shard k is written by rank k mod nranks alone (HDF5's POSIX driver, no MPI-IO), in rounds of
 * nranks shards; ranks without a shard in a round wait (with fewer shards than ranks, the extra
 * ranks write nothing). A rank decodes the images of its shard into a piece of about 2 MiB,
 * computing each image's CRC32C right after it lands there, and writes the piece to the
 * contiguous /images with one call; the same writes in the same order on any number of ranks,
 * so the files do not depend on it. /meta/crc32c keeps the CRC32Cs; index.json records each
 * shard's /meta digest (docs/FORMATS.md, "Checksums"). Before each round the writers check that
 * the folder has room for the round's shards; shards are published atomically (temporary name,
 * fsync, rename); a rerun skips shards whose content key, metadata and image checksums match and
 * rewrites the others. Reading: shard_reader.h. */
#ifndef RDINO_SHARD_H
#define RDINO_SHARD_H

#include <mpi.h>
#include <stdint.h>

#include "rdino/config.h"
#include "rdino/error.h"
#include "rdino/file.h"
#include "rdino/findings.h"

/* Format 3 added the optional /meta/finding_* columns (in meta_sha256); readers accept 2. */
enum { RD_SHARD_FORMAT_VERSION = 3, RD_SHARD_FORMAT_OLDEST = 2 };

typedef enum { RD_SPLIT_TRAIN = 0, RD_SPLIT_VAL = 1, RD_SPLIT_TEST = 2 } rd_split;

/* One image as rdino-shard sees it (a manifest row). */
typedef struct rd_shard_image {
    const char *image_id;
    const char *patient_id;
    const char *view;       /* "" when unknown */
    const char *file;       /* path of the PNG (resolved), for the loader and error messages */
    float age;              /* years; NaN when unknown */
    int8_t sex;             /* 0 F, 1 M, -1 unknown */
    int64_t source_row;     /* row of the original metadata CSV (manifest column source_row) */
    const int8_t *findings; /* [rd_shard_params.nfindings]: 1, 0, -1 unknown; NULL when none */
} rd_shard_image;

/* Writes image `index` (size x size pixels, uint8 for 8 bits, uint16 for 16) into dst. */
typedef rd_status (*rd_shard_load_fn)(void *ctx, const rd_shard_image *img, int64_t index,
                                      void *dst, rd_error *err);

typedef struct rd_shard_params {
    const char *output_dir; /* the shards folder (created if missing) */
    int num_shards;         /* K >= 1; see rd_shard_count */
    double val_fraction, test_fraction;
    uint64_t split_seed;
    int deflate;       /* 0 = none, 1..9 */
    int size;          /* S: images are S x S */
    int bit_depth;     /* 8 or 16 */
    int batch;         /* images per read when checking an existing shard */
    int force;         /* rewrite shards even when a matching one exists */
    int hdf5_checksum; /* also HDF5's Fletcher32 on every chunk (the images carry CRC32C anyway) */
    /* Provenance stored as attributes (strings; may be ""). */
    const char *config_yaml;     /* the resolved configuration */
    const char *manifest_sha256; /* digest of the manifest.csv the images come from */
    const char *manifest_path;   /* as given, for the record */
    const char *preprocess_yaml; /* the preprocessing parameters */
    const char *tool_version;    /* e.g. "rdino-shard 0.1" */
    /* Finding label columns /meta/<finding[k]> ("finding_mass", ...; 0: none), in name order. */
    int nfindings;
    const char (*finding)[RD_FINDING_NAME_MAX];
} rd_shard_params;

typedef struct rd_shard_stats {
    int64_t images;
    int shards_written, shards_skipped;
    int64_t per_split[3]; /* images per split */
    int64_t patients_per_split[3];
    double bytes_written;  /* sizes of the shards written in this run */
    double decode_seconds; /* loader time, slowest rank */
    double write_seconds;  /* HDF5 create + write + publish time */
} rd_shard_stats;

/* The output of rdino-preprocess, read by every rank. */
typedef struct rd_shard_manifest {
    rd_shard_image *images; /* in manifest order; strings owned by the manifest */
    int64_t n;
    int size;               /* S: every image is S x S (width and height columns) */
    char path[RD_PATH_MAX]; /* the manifest.csv read */
    char sha256[65];        /* its SHA-256, as sha256sum prints it */
    int nfindings;          /* finding label columns (finding_*), in name order */
    char finding[RD_MAX_FINDINGS][RD_FINDING_NAME_MAX];
    int8_t *findings; /* [n, nfindings]: each image's points into it */
} rd_shard_manifest;

/* Reads <dir>/manifest.csv (RFC 4180, header line; columns image_id, file, patient_id, age,
 * sex, view, width, height, source_row in any order, and any finding_<label> columns; age in
 * years or empty; sex M, F or empty; findings 1, 0 or empty = unknown). Each image's file is
 * resolved against dir. Errors name the file and the line. */
rd_status rd_shard_manifest_read(const char *dir, rd_shard_manifest *m, rd_error *err);
void rd_shard_manifest_free(rd_shard_manifest *m);

/* Loads a manifest's PNGs for rd_shard_write_all: each must decode (png.h) to a grey image of
 * size x size pixels at bit_depth bits, else the error names the file. One per rank. */
typedef struct rd_shard_png_loader rd_shard_png_loader;
rd_status rd_shard_png_loader_new(rd_shard_png_loader **loader, int size, int bit_depth,
                                  rd_error *err);
void rd_shard_png_loader_free(rd_shard_png_loader *loader);
/* An rd_shard_load_fn; ctx is an rd_shard_png_loader. */
rd_status rd_shard_png_load(void *ctx, const rd_shard_image *img, int64_t index, void *dst,
                            rd_error *err);
/* The bit depth (8 or 16) a PNG decodes to: rdino-shard takes it from the first image. */
rd_status rd_shard_png_depth(const char *path, int *bit_depth, rd_error *err);

/* The provenance text stored in each shard's "preprocess" attribute: the data.* and
 * preprocess.* keys of cfg as YAML lines ("key: value"). Caller frees. */
char *rd_shard_preprocess_yaml(const rd_config *cfg);

/* The split of a patient: a Philox draw keyed by (seed, RD_RNG_SPLIT, FNV-1a-64 of the id
 * truncated to 48 bits), so it depends on nothing but the id and the seed. */
rd_split rd_split_of_patient(const char *patient_id, uint64_t seed, double val_fraction,
                             double test_fraction);

/* K: num_shards when > 0, else ceil(n / images_per_shard); never more than n (n >= 1). */
int rd_shard_count(int64_t n, int num_shards, int64_t images_per_shard);

/* Path of shard k: "<dir>/shard-NNNNN.h5" (k zero-padded to 5 digits). */
void rd_shard_path(char *buf, size_t n, const char *dir, int k);

/* The stage rdino-shard runs: the manifest of shard.input_dir (default: the preprocessed
 * folder) -> K shards + index.json in shard.output_dir (default: the shards folder), with
 * progress and a summary. With shard.verify = DIR it writes nothing and verifies DIR instead:
 * every image against its CRC32C, every shard's /meta against index.json (each rank every
 * nranks-th shard); each corrupt image is named in a warning, and any problem is an error
 * (RD_ECORRUPT for damaged data). Collective on comm; errors are agreed (every rank returns the
 * same). */
rd_status rd_shard_stage(const rd_config *cfg, MPI_Comm comm, rd_error *err);

/* Collective on comm: writes all K shards and index.json. Every rank passes the same images
 * (the whole manifest, n >= 1) and params; the loader is called only for the rows of a rank's
 * own shards. */
rd_status rd_shard_write_all(const rd_shard_params *p, const rd_shard_image *images, int64_t n,
                             rd_shard_load_fn load, void *ctx, MPI_Comm comm, rd_shard_stats *stats,
                             rd_error *err);

#endif
