/* Crash-safe bookkeeping for restartable stages.
 *
 * A journal is an append-only text file, one record per line, owned by one rank. Lines are
 * buffered and made durable together (write + fsync) by rd_journal_commit, typically once per
 * chunk of work. After a kill -9 the file ends with complete lines, possibly followed by a
 * torn one: readers get only '\n'-terminated lines, and reopening for append first ends a torn
 * line so the next record starts on its own line (the torn remnant then fails to parse and
 * is ignored by the caller).
 *
 * rd_write_file_atomic (and its streamed form rd_atomic_*) is the other half: a file that
 * appears whole or not at all. */
#ifndef RDINO_JOURNAL_H
#define RDINO_JOURNAL_H

#include <stddef.h>

#include "rdino/error.h"

typedef struct rd_journal {
    int fd;
    char *path;
    char *pending; /* lines not yet committed */
    size_t len, cap;
} rd_journal;

rd_status rd_journal_open(rd_journal *j, const char *path, rd_error *err);
/* Queues one line (without its '\n'; it must not contain one). */
rd_status rd_journal_add(rd_journal *j, const char *line, rd_error *err);
/* Writes the queued lines and fsyncs the file. */
rd_status rd_journal_commit(rd_journal *j, rd_error *err);
/* Commits, then closes. */
rd_status rd_journal_close(rd_journal *j, rd_error *err);

/* Calls fn(ctx, line) for each complete line of every regular file in dir whose name ends in
 * suffix, files in name order. line is NUL-terminated without its '\n' and may be modified.
 * A missing dir is an empty journal. fn returns nonzero to stop with an error it filled. */
typedef rd_status (*rd_journal_line_fn)(void *ctx, char *line, rd_error *err);
rd_status rd_journal_read_dir(const char *dir, const char *suffix, rd_journal_line_fn fn, void *ctx,
                              rd_error *err);

/* Writes data to path atomically: a temporary ".name.tmp-PID" in the same folder, fsync,
 * rename, fsync of the folder. On failure path is untouched and the temporary removed. */
rd_status rd_write_file_atomic(const char *path, const void *data, size_t len, rd_error *err);

/* The same, streamed, for files too large to hold twice in memory (exported weights):
 *     rd_atomic_open(&f, path, err); rd_atomic_write(&f, part, n, err) ...; rd_atomic_commit(&f,
 * err); A failed write or commit removes the temporary itself; a caller that gives up between calls
 * calls rd_atomic_abort (harmless after a failure or a commit). */
typedef struct rd_atomic_file {
    int fd; /* -1 once committed or aborted */
    char path[4096], dir[4096], tmp[4096];
} rd_atomic_file;
rd_status rd_atomic_open(rd_atomic_file *f, const char *path, rd_error *err);
rd_status rd_atomic_write(rd_atomic_file *f, const void *data, size_t len, rd_error *err);
rd_status rd_atomic_commit(rd_atomic_file *f, rd_error *err);
void rd_atomic_abort(rd_atomic_file *f);

#endif
