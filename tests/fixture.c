#include "fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

hid_t rd_fixture_open(const char *name) {
    char path[1024];
    const char *dir = getenv("RDINO_FIXTURES");
    snprintf(path, sizeof path, "%s/%s", dir ? dir : "tests/reference/fixtures", name);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    return H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
}

void rd_fixture_close(hid_t file) {
    if (file >= 0) H5Fclose(file);
}

int rd_fixture_exists(hid_t file, const char *path) {
    /* H5Lexists needs every intermediate group to exist; check each prefix. */
    char buf[512];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (H5Lexists(file, buf, H5P_DEFAULT) <= 0) return 0;
            *p = saved;
            if (!saved) return 1;
        }
    }
}

static void *read_dataset(hid_t file, const char *path, hid_t memtype, size_t elem, size_t *n) {
    if (!rd_fixture_exists(file, path)) return NULL;
    hid_t ds = H5Dopen2(file, path, H5P_DEFAULT);
    if (ds < 0) return NULL;
    hid_t space = H5Dget_space(ds);
    hssize_t count = H5Sget_simple_extent_npoints(space);
    void *buf = malloc((size_t)(count > 0 ? count : 1) * elem);
    if (buf && H5Dread(ds, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        free(buf);
        buf = NULL;
    }
    if (n) *n = (size_t)count;
    H5Sclose(space);
    H5Dclose(ds);
    return buf;
}

float *rd_fixture_floats(hid_t file, const char *path, size_t *n) {
    return read_dataset(file, path, H5T_NATIVE_FLOAT, sizeof(float), n);
}

double *rd_fixture_doubles(hid_t file, const char *path, size_t *n) {
    return read_dataset(file, path, H5T_NATIVE_DOUBLE, sizeof(double), n);
}

int64_t *rd_fixture_ints(hid_t file, const char *path, size_t *n) {
    return read_dataset(file, path, H5T_NATIVE_INT64, sizeof(int64_t), n);
}

int rd_fixture_shape(hid_t file, const char *path, int64_t *dims, int max_dims) {
    if (!rd_fixture_exists(file, path)) return -1;
    hid_t ds = H5Dopen2(file, path, H5P_DEFAULT);
    hid_t space = H5Dget_space(ds);
    hsize_t d[16];
    int nd = H5Sget_simple_extent_dims(space, d, NULL);
    for (int i = 0; i < nd && i < max_dims; i++) dims[i] = (int64_t)d[i];
    H5Sclose(space);
    H5Dclose(ds);
    return nd;
}

double rd_fixture_attr(hid_t file, const char *name) {
    return rd_fixture_attr_or(file, name, 0.0);
}

double rd_fixture_attr_or(hid_t file, const char *name, double fallback) {
    double v = fallback;
    if (H5Aexists(file, name) <= 0) return v;
    hid_t a = H5Aopen(file, name, H5P_DEFAULT);
    H5Aread(a, H5T_NATIVE_DOUBLE, &v);
    H5Aclose(a);
    return v;
}

int rd_fixture_attr_str(hid_t file, const char *name, char *buf, size_t n) {
    if (H5Aexists(file, name) <= 0) return 0;
    hid_t a = H5Aopen(file, name, H5P_DEFAULT);
    hid_t type = H5Aget_type(a);
    int ok = 0;
    if (H5Tis_variable_str(type) > 0) {
        hid_t mem = H5Tcopy(H5T_C_S1);
        H5Tset_size(mem, H5T_VARIABLE);
        char *s = NULL;
        if (H5Aread(a, mem, &s) >= 0 && s) {
            snprintf(buf, n, "%s", s);
            H5free_memory(s);
            ok = 1;
        }
        H5Tclose(mem);
    } else {
        size_t size = H5Tget_size(type);
        char *s = calloc(size + 1, 1);
        if (s && H5Aread(a, type, s) >= 0) {
            snprintf(buf, n, "%s", s);
            ok = 1;
        }
        free(s);
    }
    H5Tclose(type);
    H5Aclose(a);
    return ok;
}
