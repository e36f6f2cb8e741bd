#include "npy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reads path if its descr is one of want (NULL-terminated); elem bytes per element. */
static void *npy_read(const char *path, const char *const *want, size_t elem, size_t *n,
                      int64_t *shape, int *ndim) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "npy: cannot open %s\n", path);
        return NULL;
    }
    unsigned char magic[10];
    char header[4096];
    void *data = NULL;
    size_t hlen = 0, count = 1;
    int dims = 0;
    int64_t sh[RD_NPY_MAX_DIMS];
    const char *why = NULL;
    if (fread(magic, 1, 8, f) != 8 || memcmp(magic, "\x93NUMPY", 6) != 0) {
        why = "not a .npy file";
    } else if (magic[6] == 1) {
        unsigned char b[2];
        if (fread(b, 1, 2, f) == 2) hlen = b[0] | (size_t)b[1] << 8;
    } else {
        unsigned char b[4];
        if (fread(b, 1, 4, f) == 4)
            hlen = b[0] | (size_t)b[1] << 8 | (size_t)b[2] << 16 | (size_t)b[3] << 24;
    }
    if (!why && (hlen == 0 || hlen >= sizeof header || fread(header, 1, hlen, f) != hlen))
        why = "bad header length";
    if (!why) {
        header[hlen] = '\0';
        int ok = 0;
        for (int i = 0; want[i]; i++) {
            char d[32];
            snprintf(d, sizeof d, "'descr': '%s'", want[i]);
            ok |= strstr(header, d) != NULL;
        }
        const char *s = strstr(header, "'shape': (");
        if (!ok || strstr(header, "'fortran_order': True") || !s) {
            why = "unexpected dtype or order";
        } else {
            s += strlen("'shape': (");
            while (*s && *s != ')') {
                char *end;
                long long v = strtoll(s, &end, 10);
                if (end == s || dims == RD_NPY_MAX_DIMS) break;
                sh[dims++] = v;
                count *= (size_t)v;
                s = end;
                while (*s == ',' || *s == ' ') s++;
            }
            if (*s != ')') why = "cannot parse the shape";
        }
    }
    if (!why) {
        data = malloc(count * elem + 1);
        if (!data || fread(data, elem, count, f) != count) why = "short data";
    }
    fclose(f);
    if (why) {
        fprintf(stderr, "npy: %s: %s\n", path, why);
        free(data);
        return NULL;
    }
    if (n) *n = count;
    if (shape) memcpy(shape, sh, (size_t)dims * sizeof *sh);
    if (ndim) *ndim = dims;
    return data;
}

float *rd_npy_floats(const char *path, size_t *n, int64_t *shape, int *ndim) {
    static const char *const want[] = {"<f4", NULL};
    return npy_read(path, want, sizeof(float), n, shape, ndim);
}

uint8_t *rd_npy_bytes(const char *path, size_t *n, int64_t *shape, int *ndim) {
    static const char *const want[] = {"|u1", "|b1", NULL};
    return npy_read(path, want, 1, n, shape, ndim);
}
