/* Append-only journals and atomic whole-file writes; see journal.h. */
#include "rdino/journal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static rd_status write_all(int fd, const char *data, size_t len, const char *path, rd_error *err) {
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return rd_fail(err, RD_EIO, "cannot write %s: %s", path, strerror(errno));
        data += n;
        len -= (size_t)n;
    }
    return RD_OK;
}

rd_status rd_journal_open(rd_journal *j, const char *path, rd_error *err) {
    memset(j, 0, sizeof *j);
    j->fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
    if (j->fd < 0) return rd_fail(err, RD_EIO, "cannot open journal %s: %s", path, strerror(errno));
    j->path = strdup(path);
    if (!j->path) {
        close(j->fd);
        return rd_fail(err, RD_ENOMEM, "out of memory");
    }
    off_t end = lseek(j->fd, 0, SEEK_END);
    char last = '\n';
    if (end > 0 && pread(j->fd, &last, 1, end - 1) != 1) last = '\n';
    if (last != '\n') return rd_journal_add(j, "", err); /* ends the torn line */
    return RD_OK;
}

rd_status rd_journal_add(rd_journal *j, const char *line, rd_error *err) {
    size_t n = strlen(line);
    if (j->len + n + 1 > j->cap) {
        size_t cap = j->cap ? j->cap : 4096;
        while (cap < j->len + n + 1) cap *= 2;
        char *bigger = realloc(j->pending, cap);
        if (!bigger) return rd_fail(err, RD_ENOMEM, "journal %s: out of memory", j->path);
        j->pending = bigger;
        j->cap = cap;
    }
    memcpy(j->pending + j->len, line, n);
    j->pending[j->len + n] = '\n';
    j->len += n + 1;
    return RD_OK;
}

rd_status rd_journal_commit(rd_journal *j, rd_error *err) {
    if (j->len == 0) return RD_OK;
    if (write_all(j->fd, j->pending, j->len, j->path, err)) return err->code;
    if (fsync(j->fd) != 0)
        return rd_fail(err, RD_EIO, "cannot fsync journal %s: %s", j->path, strerror(errno));
    j->len = 0;
    return RD_OK;
}

rd_status rd_journal_close(rd_journal *j, rd_error *err) {
    rd_status st = j->fd >= 0 ? rd_journal_commit(j, err) : RD_OK;
    if (j->fd >= 0) close(j->fd);
    free(j->path);
    free(j->pending);
    memset(j, 0, sizeof *j);
    j->fd = -1;
    return st;
}

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static rd_status read_lines(const char *path, rd_journal_line_fn fn, void *ctx, rd_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return rd_fail(err, RD_EIO, "cannot open journal %s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    rd_status st = RD_OK;
    while (!st && (n = getline(&line, &cap, f)) > 0) {
        if (line[n - 1] != '\n') break; /* torn last line */
        line[n - 1] = '\0';
        st = fn(ctx, line, err);
    }
    free(line);
    fclose(f);
    return st;
}

rd_status rd_journal_read_dir(const char *dir, const char *suffix, rd_journal_line_fn fn, void *ctx,
                              rd_error *err) {
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) return RD_OK;
        return rd_fail(err, RD_EIO, "cannot list %s: %s", dir, strerror(errno));
    }
    char **names = NULL;
    size_t n = 0, cap = 0, slen = strlen(suffix);
    rd_status st = RD_OK;
    struct dirent *e;
    while (!st && (e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' || len < slen || strcmp(e->d_name + len - slen, suffix) != 0)
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            char **bigger = realloc(names, cap * sizeof *bigger);
            if (!bigger) {
                st = rd_fail(err, RD_ENOMEM, "out of memory");
                break;
            }
            names = bigger;
        }
        if (!(names[n] = strdup(e->d_name)))
            st = rd_fail(err, RD_ENOMEM, "out of memory");
        else
            n++;
    }
    closedir(d);
    if (names) qsort(names, n, sizeof *names, cmp_names);
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (!st) st = read_lines(path, fn, ctx, err);
        free(names[i]);
    }
    free(names);
    return st;
}

rd_status rd_atomic_open(rd_atomic_file *f, const char *path, rd_error *err) {
    char dir[4096], base[4096];
    f->fd = -1;
    snprintf(dir, sizeof dir, "%s", path);
    snprintf(base, sizeof base, "%s", path);
    const char *d = dirname(dir), *b = basename(base);
    if (snprintf(f->path, sizeof f->path, "%s", path) >= (int)sizeof f->path ||
        snprintf(f->dir, sizeof f->dir, "%s", d) >= (int)sizeof f->dir ||
        snprintf(f->tmp, sizeof f->tmp, "%s/.%s.tmp-%ld", d, b, (long)getpid()) >=
            (int)sizeof f->tmp)
        return rd_fail(err, RD_EINVAL, "path too long: %s", path);
    f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (f->fd < 0) return rd_fail(err, RD_EIO, "cannot create %s: %s", f->tmp, strerror(errno));
    return RD_OK;
}

void rd_atomic_abort(rd_atomic_file *f) {
    if (f->fd < 0) return;
    close(f->fd);
    unlink(f->tmp);
    f->fd = -1;
}

rd_status rd_atomic_write(rd_atomic_file *f, const void *data, size_t len, rd_error *err) {
    if (f->fd < 0) return rd_fail(err, RD_EINVAL, "%s: write after the file was closed", f->path);
    rd_status st = write_all(f->fd, data, len, f->tmp, err);
    if (st) rd_atomic_abort(f);
    return st;
}

rd_status rd_atomic_commit(rd_atomic_file *f, rd_error *err) {
    if (f->fd < 0) return rd_fail(err, RD_EINVAL, "%s: commit after the file was closed", f->path);
    rd_status st = RD_OK;
    if (fsync(f->fd) != 0)
        st = rd_fail(err, RD_EIO, "cannot fsync %s: %s", f->tmp, strerror(errno));
    if (close(f->fd) != 0 && !st)
        st = rd_fail(err, RD_EIO, "cannot close %s: %s", f->tmp, strerror(errno));
    f->fd = -1;
    if (!st && rename(f->tmp, f->path) != 0)
        st = rd_fail(err, RD_EIO, "cannot rename %s to %s: %s", f->tmp, f->path, strerror(errno));
    if (st) {
        unlink(f->tmp);
        return st;
    }
    int dfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) { /* make the rename itself durable */
        fsync(dfd);
        close(dfd);
    }
    return RD_OK;
}

rd_status rd_write_file_atomic(const char *path, const void *data, size_t len, rd_error *err) {
    rd_atomic_file f;
    rd_status st = rd_atomic_open(&f, path, err);
    if (!st) st = rd_atomic_write(&f, data, len, err);
    return st ? st : rd_atomic_commit(&f, err);
}
