/* A small layer over HDF5 used by every stage that writes or reads .h5 files (shards,
 * checkpoints, embeddings).
 *
 * Drivers: a file on a communicator of one rank (MPI_COMM_SELF) goes through HDF5's POSIX driver
 * (sec2: pread/pwrite, a failed write is an ordinary error); a file shared by several ranks
 * through MPI-IO.
 *
 * Writing: rd_h5_create opens the temporary "<dir>/.<name>.tmp" (rd_temp_path) collectively on
 * a communicator; datasets are Fletcher32-checksummed (unless the file says otherwise:
 * rd_h5_set_fletcher32) and optionally deflated, and then chunked (filters need chunks); a
 * dataset without a filter is contiguous, its space allocated at creation, so rows go from the
 * caller's buffer straight to the file. Rows are written collectively, each rank passing its own
 * hyperslab (possibly empty); on a POSIX file the disk starts writing them as they come
 * (sync_file_range). rd_h5_publish closes the file and publishes it (rd_publish_file: fsync,
 * rename, fsync of the folder), so a killed job leaves only a temporary file that no reader
 * trusts. rd_h5_discard closes and removes the temporary file.
 *
 * HDF5 1.10.8 writes filtered datasets through MPI-IO only with collective transfers: an
 * independent H5Dwrite fails with "Can't perform independent write with filters in pipeline".
 * rd_h5_write_rows is therefore collective; every rank of the file's communicator calls it, in
 * the same order, with the same dataset. Reads are independent: any rank may read any range on
 * its own (a Fletcher32 mismatch fails the read and names the file and dataset).
 *
 * Strings: datasets hold fixed-length, NUL-padded UTF-8 strings (h5py: numpy 'S' arrays;
 * .asstr() or .astype(str) give str). Variable-length strings cannot be written by parallel
 * HDF5, and their bytes live in the global heap where Fletcher32 does not cover them.
 * String attributes are variable-length UTF-8 scalars, which h5py returns as str.
 *
 * Every function that can fail returns rd_status and fills err with a message naming the file,
 * the object and HDF5's own reason; HDF5's automatic error printing is switched off. All
 * metadata-changing calls (create, attributes, publish, close) are collective on a file opened
 * for writing and must be made with identical arguments on every rank. */
#ifndef RDINO_H5STORE_H
#define RDINO_H5STORE_H

#include <hdf5.h>
#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "rdino/error.h"
#include "rdino/file.h"

typedef enum {
    RD_H5_U8,
    RD_H5_U16,
    RD_H5_U32,
    RD_H5_I8,
    RD_H5_I32,
    RD_H5_I64,
    RD_H5_F32,
    RD_H5_F64,
    RD_H5_STRING /* fixed-length UTF-8; only for rd_h5_create_strings / *_strings */
} rd_h5_type;

enum { RD_H5_MAX_DIMS = 8 };

typedef struct rd_h5file {
    hid_t id; /* H5I_INVALID_HID when closed */
    MPI_Comm comm;
    int rank, nranks;
    int writing;                /* created by rd_h5_create, not yet published */
    int fd;                     /* the POSIX driver's descriptor while writing, else -1 */
    size_t unflushed;           /* bytes written since the disk was last told to write */
    int fletcher32;             /* datasets created from now on get Fletcher32 (default 1) */
    char path[RD_PATH_MAX];     /* final name */
    char tmp_path[RD_PATH_MAX]; /* name while writing ("" when opened for reading) */
} rd_h5file;

/* The process-wide HDF5 lock (not recursive). While another thread of the process may call
 * HDF5 (the pretraining loader's prefetch thread), every HDF5 call must hold it. */
void rd_hdf5_lock(void);
void rd_hdf5_unlock(void);

/* Size in bytes of one element of type (0 for RD_H5_STRING). */
size_t rd_h5_type_size(rd_h5_type type);

/* Collective on comm. Creates (truncating) the temporary file "<dir>/.<basename>.tmp". */
rd_status rd_h5_create(rd_h5file *f, const char *path, MPI_Comm comm, rd_error *err);
/* Whether datasets created afterwards carry Fletcher32 (rd_h5_create turns it on). The shards
 * turn it off: their images carry rdino's own CRC32C (docs/FORMATS.md, "Shards"). Same value on
 * every rank. */
void rd_h5_set_fletcher32(rd_h5file *f, int on);

/* Collective, right after rd_h5_create: checks that the file system has room for bytes more
 * (what the caller expects the file to grow to, with a margin for HDF5's own metadata). A full
 * disk is then a clean error naming the file before HDF5 writes anything. A POSIX file is checked
 * with statvfs (rd_room_errno in file.h: instant, blind to quotas; a write that fails anyway is an
 * ordinary error). A file shared through MPI-IO is checked by allocation (rd_room_alloc_errno,
 * quotas included), because HDF5 1.10.8 with Open MPI 4.1 does not survive a write that fails for
 * lack of space there (OMPIO retries ENOSPC forever, or, after a failed H5Fclose, the library
 * crashes when MPI shuts down). Writers of large files call it: checkpoints, embeddings (shards
 * check their folder per round of shards instead). A disk filled by someone else during the
 * write still ends badly through MPI-IO. */
rd_status rd_h5_check_room(rd_h5file *f, int64_t bytes, rd_error *err);

/* Collective. Closes the file, fsyncs it, renames it to f->path (rank 0) and fsyncs the
 * directory; every rank returns the same status. The handle is closed afterwards either way (a
 * file that could not be written to the end is discarded). */
rd_status rd_h5_publish(rd_h5file *f, rd_error *err);
/* Collective. Closes a file being written and removes its temporary file; safe on a closed
 * handle. Use on error paths. */
void rd_h5_discard(rd_h5file *f);

/* Opens a published file read-only. comm may be MPI_COMM_SELF (one rank reads alone) or a
 * communicator whose ranks all call rd_h5_open and rd_h5_close together. */
rd_status rd_h5_open(rd_h5file *f, const char *path, MPI_Comm comm, rd_error *err);
/* Closes a file opened with rd_h5_open (collective on its comm); safe on a closed handle. */
void rd_h5_close(rd_h5file *f);

/* 1 if the object (dataset or group, "/a/b") exists, 0 if not. */
int rd_h5_exists(const rd_h5file *f, const char *name);

/* Collective. Creates a dataset of shape dims[0..ndim) (missing parent groups included), with
 * Fletcher32 (rd_h5_set_fletcher32) and, when deflate is 1..9, deflate at that level after
 * shuffling; filtered datasets are chunked as chunk[0..ndim) (NULL: one row per chunk), others
 * contiguous (see above). Zero-size dims are allowed (no chunks). */
rd_status rd_h5_create_dataset(rd_h5file *f, const char *name, rd_h5_type type, int ndim,
                               const int64_t *dims, const int64_t *chunk, int deflate,
                               rd_error *err);
/* Collective. A 1-D dataset of n fixed-length strings of width bytes (width >= 1; longer
 * strings are an error at write time), chunked by chunk_rows (0: a default) when filtered. */
rd_status rd_h5_create_strings(rd_h5file *f, const char *name, int64_t n, size_t width,
                               int64_t chunk_rows, int deflate, rd_error *err);

/* Collective. Writes rows [row0, row0 + nrows) along the first dimension from buf (C order,
 * nrows * row elements of type). nrows may be 0 on some ranks; ranges must not overlap. */
rd_status rd_h5_write_rows(rd_h5file *f, const char *name, rd_h5_type type, int64_t row0,
                           int64_t nrows, const void *buf, rd_error *err);
/* Collective. Same for a string dataset: strs[0..nrows) become rows row0.. */
rd_status rd_h5_write_strings(rd_h5file *f, const char *name, int64_t row0, int64_t nrows,
                              const char *const *strs, rd_error *err);

/* Independent. Reads rows [row0, row0 + nrows) into buf, converting to type. */
rd_status rd_h5_read_rows(const rd_h5file *f, const char *name, rd_h5_type type, int64_t row0,
                          int64_t nrows, void *buf, rd_error *err);
/* Independent. Reads string rows as NUL-terminated strings at out + i * stride; stride must
 * exceed the dataset's string width (see rd_h5_shape). */
rd_status rd_h5_read_strings(const rd_h5file *f, const char *name, int64_t row0, int64_t nrows,
                             char *out, size_t stride, rd_error *err);

/* Shape of a dataset; *ndim receives its rank (<= RD_H5_MAX_DIMS). For string datasets,
 * *string_width (optional) receives the fixed width in bytes, 0 for other types. */
rd_status rd_h5_shape(const rd_h5file *f, const char *name, int64_t *dims, int *ndim,
                      size_t *string_width, rd_error *err);
/* The element type of a numeric dataset as stored. */
rd_status rd_h5_dataset_type(const rd_h5file *f, const char *name, rd_h5_type *type, rd_error *err);
/* Names of the members of group ("/meta") that start with prefix (NULL or "": all), in name
 * order (bytewise, as h5py lists them): *names is a malloc'd array of *n malloc'd strings, free
 * it with rd_h5_names_free. An absent group has none. */
rd_status rd_h5_list(const rd_h5file *f, const char *group, const char *prefix, char ***names,
                     int *n, rd_error *err);
void rd_h5_names_free(char **names, int n);

/* Attributes on an object ("/" for the root group), replacing an existing one of that name.
 * Collective when writing. */
rd_status rd_h5_set_attr_str(rd_h5file *f, const char *obj, const char *name, const char *value,
                             rd_error *err);
rd_status rd_h5_set_attr_int(rd_h5file *f, const char *obj, const char *name, int64_t value,
                             rd_error *err);
rd_status rd_h5_set_attr_float(rd_h5file *f, const char *obj, const char *name, double value,
                               rd_error *err);
/* *value is malloc'd; the caller frees it. Reads variable- and fixed-length strings. */
rd_status rd_h5_get_attr_str(const rd_h5file *f, const char *obj, const char *name, char **value,
                             rd_error *err);
rd_status rd_h5_get_attr_int(const rd_h5file *f, const char *obj, const char *name, int64_t *value,
                             rd_error *err);
rd_status rd_h5_get_attr_float(const rd_h5file *f, const char *obj, const char *name, double *value,
                               rd_error *err);

#endif
