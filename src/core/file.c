#include "rdino/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

rd_status rd_read_file(const char *path, char **text, size_t *len, rd_error *err) {
    *text = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return rd_fail(err, errno == ENOENT ? RD_ENOTFOUND : RD_EIO, "cannot open %s: %s", path,
                       strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - 1 - n, f);
        if (n < cap - 1) break; /* end of file or an error: ferror tells */
        char *bigger = realloc(buf, cap *= 2);
        if (!bigger) free(buf);
        buf = bigger;
    }
    int failed = ferror(f);
    fclose(f);
    if (!buf) return rd_fail(err, RD_ENOMEM, "%s: out of memory reading the file", path);
    if (failed) {
        free(buf);
        return rd_fail(err, RD_EIO, "cannot read %s", path);
    }
    buf[n] = '\0';
    *text = buf;
    if (len) *len = n;
    return RD_OK;
}

rd_status rd_mkdir_p(const char *path, rd_error *err) {
    char buf[RD_PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return rd_fail(err, RD_EINVAL, "path too long: %s", path);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                return rd_fail(err, RD_EIO, "cannot create directory %s: %s", buf, strerror(errno));
            *p = saved;
            if (!saved) break;
        }
    }
    /* An output folder that cannot be used is an error now, not after a stage's work: a file in
     * its place (mkdir said EEXIST), or no write permission. */
    struct stat sb;
    if (stat(buf, &sb) != 0)
        return rd_fail(err, RD_EIO, "cannot create directory %s: %s", buf, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return rd_fail(err, RD_EIO, "cannot create directory %s: a file of that name is in the way",
                       buf);
    if (access(buf, W_OK | X_OK) != 0)
        return rd_fail(err, RD_EIO, "cannot write in directory %s: %s", buf, strerror(errno));
    return RD_OK;
}

/* ---- room on the file system ---- */

int rd_room_errno(const char *path, int64_t bytes) {
    struct statvfs sb;
    if (statvfs(path, &sb) != 0) return errno;
    return (double)sb.f_bavail * (double)sb.f_frsize < (double)bytes ? ENOSPC : 0;
}

int rd_room_alloc_errno(const char *path, int64_t bytes) {
    struct stat sb;
    int fd = open(path, O_WRONLY);
    int rc = fd < 0 || fstat(fd, &sb) != 0                              ? errno
             : fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, (off_t)bytes) != 0 ? errno
             : ftruncate(fd, sb.st_size) != 0                           ? errno
                                                                        : 0;
    if (fd >= 0) close(fd);
    return rc == EOPNOTSUPP ? 0 : rc;
}

rd_status rd_dir_check_room(const char *dir, int64_t bytes, rd_error *err) {
    int rc = rd_room_errno(dir, bytes);
    if (rc)
        return rd_fail(err, RD_EIO, "%s: no room for the %.2f MB needed: %s", dir,
                       (double)bytes / 1e6, strerror(rc));
    return RD_OK;
}

/* ---- atomic publication ---- */

/* Length of path's folder part ("" -> 0 for a bare name, "/x" -> 1 keeps the root). */
static size_t folder_length(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return 0;
    return slash == path ? 1 : (size_t)(slash - path);
}

rd_status rd_temp_path(char *tmp, size_t cap, const char *path, rd_error *err) {
    size_t dir = folder_length(path);
    const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    int n = dir ? snprintf(tmp, cap, "%.*s/.%s.tmp", (int)(dir == 1 && path[0] == '/' ? 0 : dir),
                           path, name)
                : snprintf(tmp, cap, ".%s.tmp", name);
    if (!*name || n < 0 || (size_t)n >= cap)
        return rd_fail(err, RD_EINVAL, "cannot make a temporary name for '%s' (empty or too long)",
                       path);
    return RD_OK;
}

int rd_is_temp_name(const char *name) {
    size_t n = strlen(name);
    return n > 5 && name[0] == '.' && strcmp(name + n - 4, ".tmp") == 0;
}

static rd_status fsync_path(const char *path, int flags, rd_error *err) {
    int fd = open(path, flags | O_CLOEXEC);
    if (fd < 0) return rd_fail(err, RD_EIO, "cannot open %s to sync it: %s", path, strerror(errno));
    rd_status st = RD_OK;
    if (fsync(fd) != 0) st = rd_fail(err, RD_EIO, "cannot fsync %s: %s", path, strerror(errno));
    close(fd);
    return st;
}

rd_status rd_publish_file(const char *tmp, const char *path, rd_error *err) {
    rd_status st = fsync_path(tmp, O_RDONLY, err);
    if (!st && rename(tmp, path) != 0)
        st = rd_fail(err, RD_EIO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    if (st) {
        unlink(tmp);
        return st;
    }
    char dir[RD_PATH_MAX];
    size_t len = folder_length(path);
    snprintf(dir, sizeof dir, "%.*s", (int)(len ? len : 1), len ? path : ".");
    return fsync_path(dir, O_RDONLY | O_DIRECTORY, err); /* makes the rename itself durable */
}

rd_status rd_atomic_open(rd_atomic_file *f, const char *path, rd_error *err) {
    f->fp = NULL;
    if (snprintf(f->path, sizeof f->path, "%s", path) >= (int)sizeof f->path)
        return rd_fail(err, RD_EINVAL, "path too long: %s", path);
    rd_status st = rd_temp_path(f->tmp, sizeof f->tmp, path, err);
    if (st) return st;
    f->fp = fopen(f->tmp, "w");
    if (!f->fp)
        return rd_fail(err, RD_EIO, "cannot create %s (to write %s): %s", f->tmp, path,
                       strerror(errno));
    return RD_OK;
}

rd_status rd_atomic_write(rd_atomic_file *f, const void *data, size_t len, rd_error *err) {
    if (!f->fp)
        return rd_fail(err, RD_EINVAL, "%s: written after it was committed or abandoned", f->path);
    if (len && fwrite(data, 1, len, f->fp) != len) {
        int saved = errno;
        rd_atomic_abandon(f);
        return rd_fail(err, RD_EIO, "cannot write %s: %s", f->tmp, strerror(saved));
    }
    return RD_OK;
}

rd_status rd_atomic_commit(rd_atomic_file *f, rd_error *err) {
    if (!f->fp) return rd_fail(err, RD_EINVAL, "%s: committed twice or after a failure", f->path);
    int failed = ferror(f->fp) || fflush(f->fp) != 0;
    int saved = errno;
    if (fclose(f->fp) != 0 && !failed) failed = 1, saved = errno;
    f->fp = NULL;
    if (failed) {
        unlink(f->tmp);
        return rd_fail(err, RD_EIO, "cannot write %s: %s", f->tmp, strerror(saved));
    }
    return rd_publish_file(f->tmp, f->path, err);
}

void rd_atomic_abandon(rd_atomic_file *f) {
    if (f->fp) fclose(f->fp);
    f->fp = NULL;
    unlink(f->tmp);
}

rd_status rd_write_file_atomic(const char *path, const void *data, size_t len, rd_error *err) {
    rd_atomic_file f;
    rd_status st = rd_atomic_open(&f, path, err);
    if (!st) st = rd_atomic_write(&f, data, len, err);
    return st ? st : rd_atomic_commit(&f, err);
}
