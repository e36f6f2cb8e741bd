/* Append-only journals; see journal.h. */
#include "rdino/journal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rdino/file.h"

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
        char path[RD_PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (!st) st = read_lines(path, fn, ctx, err);
        free(names[i]);
    }
    free(names);
    return st;
}
