/* Files and folders: whole small files (the config, CSVs, index.json, stamps), mkdir -p, and
 * the one way rdino publishes a file: written under a temporary name in the same folder, made
 * durable (fsync), renamed to its final name, and the rename made durable (fsync of the
 * folder). A reader therefore sees a whole file or none; a killed writer leaves at most a
 * temporary, which rd_is_temp_name recognises so that a rerun can remove it. */
#ifndef RDINO_FILE_H
#define RDINO_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "rdino/error.h"

/* The longest path rdino handles (Linux's PATH_MAX), including the NUL. */
enum { RD_PATH_MAX = 4096 };

/* *text = the whole file, NUL-terminated (free it); *len (may be NULL) = its length in bytes.
 * RD_ENOTFOUND if it does not exist, RD_EIO on other failures; the message names the file. */
rd_status rd_read_file(const char *path, char **text, size_t *len, rd_error *err);

/* Creates a directory and its parents (mkdir -p), and checks that it is a directory this
 * process may write in (an output folder fails here, before a stage's work). */
rd_status rd_mkdir_p(const char *path, rd_error *err);

/* ---- room on the file system ---- */

/* Whether the file system holding path (a file or a folder) has room for bytes more, as statvfs
 * says (the blocks free to unprivileged users): 0, ENOSPC, or statvfs's errno. Instant on any
 * file system, tmpfs included; blind to quotas. */
int rd_room_errno(const char *path, int64_t bytes);
/* The same, tested by allocating the bytes to path (an existing file; fallocate KEEP_SIZE, quotas
 * included) and giving them straight back: for writers that do not survive a failed write (HDF5
 * over MPI-IO, h5store.h). It costs what allocating costs (on tmpfs, zeroing the pages); a check,
 * not a reservation (writing into blocks kept reserved costs ext4 about 40% of the write speed).
 * File systems without fallocate pass unchecked. */
int rd_room_alloc_errno(const char *path, int64_t bytes);
/* rd_room_errno for a folder, as an error naming it: a full disk is a clean error before a stage
 * writes its outputs, not a half-written file afterwards. */
rd_status rd_dir_check_room(const char *dir, int64_t bytes, rd_error *err);

/* ---- atomic publication ---- */

/* The temporary name of path: ".NAME.tmp" in the same folder (deterministic: one writer per
 * file, so a rerun overwrites what a killed run left). RD_EINVAL if it does not fit in cap. */
rd_status rd_temp_path(char *tmp, size_t cap, const char *path, rd_error *err);
/* 1 for a file name (without folder) of rd_temp_path's form. */
int rd_is_temp_name(const char *name);
/* Publishes a finished temporary: fsync(tmp), rename(tmp, path), fsync of the folder. On
 * failure the temporary is removed and path is untouched; the message names both. */
rd_status rd_publish_file(const char *tmp, const char *path, rd_error *err);

/* A file written as a stream and published whole:
 *     rd_atomic_file f;
 *     if (rd_atomic_open(&f, path, err)) return err->code;
 *     fprintf(f.fp, ...);                  // or rd_atomic_write(&f, data, len, err)
 *     return rd_atomic_commit(&f, err);   // or rd_atomic_abandon(&f) on an error of the caller
 * commit checks every write (ferror), flushes and publishes; it abandons on failure. */
typedef struct rd_atomic_file {
    FILE *fp;
    char path[RD_PATH_MAX], tmp[RD_PATH_MAX];
} rd_atomic_file;
rd_status rd_atomic_open(rd_atomic_file *f, const char *path, rd_error *err);
/* len bytes of data to the stream; on failure the file is abandoned (RD_EINVAL once it is). */
rd_status rd_atomic_write(rd_atomic_file *f, const void *data, size_t len, rd_error *err);
rd_status rd_atomic_commit(rd_atomic_file *f, rd_error *err);
/* Removes the temporary; harmless after a commit or a failure. */
void rd_atomic_abandon(rd_atomic_file *f);

/* The whole of data as path, published atomically. */
rd_status rd_write_file_atomic(const char *path, const void *data, size_t len, rd_error *err);

#endif
