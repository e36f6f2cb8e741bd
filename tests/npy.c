#include "npy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The header is a Python dict literal, e.g.
 * {'descr': '<f4', 'fortran_order': False, 'shape': (1, 3, 518, 518), } */
static int parse_header(const char *h, rd_npy *out, char *why, size_t why_len) {
    if (!strstr(h, "'descr': '<f4'")) {
        snprintf(why, why_len, "dtype is not '<f4': %.120s", h);
        return -1;
    }
    if (!strstr(h, "'fortran_order': False")) {
        snprintf(why, why_len, "not in C order");
        return -1;
    }
    const char *p = strstr(h, "'shape': (");
    if (!p) {
        snprintf(why, why_len, "no shape in header");
        return -1;
    }
    p += strlen("'shape': (");
    out->ndim = 0;
    out->count = 1;
    while (*p != ')') {
        char *end;
        long long d = strtoll(p, &end, 10);
        if (end == p || d < 0 || out->ndim == RD_NPY_MAX_DIMS) {
            snprintf(why, why_len, "cannot read the shape");
            return -1;
        }
        out->dims[out->ndim++] = d;
        out->count *= (size_t)d;
        p = end;
        while (*p == ',' || *p == ' ') p++;
    }
    return 0;
}

int rd_npy_read_f32(const char *path, rd_npy *out, char *why, size_t why_len) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(why, why_len, "%s: cannot open", path);
        return -1;
    }
    unsigned char pre[12];
    int rc = -1;
    char *header = NULL;
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) {
        snprintf(why, why_len, "%s: not a .npy file", path);
        goto done;
    }
    size_t header_len = pre[8] | (size_t)pre[9] << 8;
    if (pre[6] >= 2) { /* versions 2 and 3: a 4-byte length */
        if (fread(pre + 10, 1, 2, f) != 2) goto truncated;
        header_len |= (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
    }
    header = malloc(header_len + 1);
    if (!header || fread(header, 1, header_len, f) != header_len) goto truncated;
    header[header_len] = '\0';
    if (parse_header(header, out, why, why_len) != 0) goto done;
    out->data = malloc(out->count ? out->count * sizeof(float) : 1);
    if (!out->data || fread(out->data, sizeof(float), out->count, f) != out->count) goto truncated;
    if (fgetc(f) != EOF) {
        snprintf(why, why_len, "%s: more data than the shape holds", path);
        goto done;
    }
    rc = 0;
    goto done;
truncated:
    snprintf(why, why_len, "%s: truncated", path);
done:
    free(header);
    fclose(f);
    if (rc != 0) rd_npy_free(out);
    return rc;
}

void rd_npy_free(rd_npy *a) {
    free(a->data);
    a->data = NULL;
}
