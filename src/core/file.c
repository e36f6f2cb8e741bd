#include "rdino/file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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
    char buf[4096];
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
    return RD_OK;
}
