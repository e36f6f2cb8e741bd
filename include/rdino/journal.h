/* Crash-safe bookkeeping for restartable stages.
 *
 * A journal is an append-only text file, one record per line, owned by one rank. Lines are
 * buffered and made durable together (write + fsync) by rd_journal_commit, typically once per
 * chunk of work. After a kill -9 the file ends with complete lines, possibly followed by a
 * torn one: readers get only '\n'-terminated lines, and reopening for append first ends a torn
 * line so the next record starts on its own line (the torn remnant then fails to parse and
 * is ignored by the caller).
 *
 * The other half, a file that appears whole or not at all, is rd_write_file_atomic (file.h). */
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

#endif
