#include "pillow_fixture.h"

#include <stdlib.h>
#include <string.h>

hid_t pillow_fixture_open(void) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    return H5Fopen(PILLOW_FIXTURE, H5F_ACC_RDONLY, H5P_DEFAULT);
}

typedef struct listing {
    char (*names)[64];
    int max, count;
} listing;

static herr_t add_name(hid_t group, const char *name, const H5L_info_t *info, void *data) {
    (void)group;
    (void)info;
    listing *l = data;
    if (l->count < l->max) snprintf(l->names[l->count], 64, "%s", name);
    l->count++;
    return 0;
}

int pillow_fixture_list(hid_t file, const char *group, char (*names)[64], int max) {
    if (H5Lexists(file, group, H5P_DEFAULT) <= 0) return -1;
    hid_t g = H5Gopen2(file, group, H5P_DEFAULT);
    if (g < 0) return -1;
    listing l = {names, max, 0};
    herr_t rc = H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, add_name, &l);
    H5Gclose(g);
    return rc < 0 ? -1 : l.count < max ? l.count : max;
}

static void *read_dataset(hid_t file, const char *path, hid_t type, size_t elem, size_t *n,
                          int64_t *dims, int *ndim) {
    if (H5Lexists(file, path, H5P_DEFAULT) <= 0) return NULL;
    hid_t ds = H5Dopen2(file, path, H5P_DEFAULT);
    if (ds < 0) return NULL;
    hid_t space = H5Dget_space(ds);
    hsize_t shape[4] = {0};
    int rank = H5Sget_simple_extent_ndims(space);
    void *buf = NULL;
    if (rank >= 0 && rank <= 4) {
        H5Sget_simple_extent_dims(space, shape, NULL);
        size_t count = 1;
        for (int i = 0; i < rank; i++) {
            count *= (size_t)shape[i];
            if (dims) dims[i] = (int64_t)shape[i];
        }
        if (ndim) *ndim = rank;
        if (n) *n = count;
        buf = malloc(count ? count * elem : 1);
        if (buf && H5Dread(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
            free(buf);
            buf = NULL;
        }
    }
    H5Sclose(space);
    H5Dclose(ds);
    return buf;
}

uint8_t *pillow_fixture_u8(hid_t file, const char *path, size_t *n, int64_t *dims, int *ndim) {
    return read_dataset(file, path, H5T_NATIVE_UINT8, 1, n, dims, ndim);
}

float *pillow_fixture_f32(hid_t file, const char *path, size_t *n, int64_t *dims, int *ndim) {
    return read_dataset(file, path, H5T_NATIVE_FLOAT, sizeof(float), n, dims, ndim);
}

int pillow_fixture_attr(hid_t file, const char *path, const char *name, double *values, int n) {
    if (H5Aexists_by_name(file, path, name, H5P_DEFAULT) <= 0) return 0;
    hid_t a = H5Aopen_by_name(file, path, name, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0) return 0;
    hid_t space = H5Aget_space(a);
    int ok = H5Sget_simple_extent_npoints(space) == n && H5Aread(a, H5T_NATIVE_DOUBLE, values) >= 0;
    H5Sclose(space);
    H5Aclose(a);
    return ok;
}

int pillow_fixture_attr_str(hid_t file, const char *path, const char *name, char *buf, size_t len) {
    if (H5Aexists_by_name(file, path, name, H5P_DEFAULT) <= 0) return 0;
    hid_t a = H5Aopen_by_name(file, path, name, H5P_DEFAULT, H5P_DEFAULT);
    hid_t type = H5Aget_type(a);
    size_t size = H5Tget_size(type);
    int ok = 0;
    if (!H5Tis_variable_str(type) && size < len) {
        hid_t mem = H5Tcopy(H5T_C_S1); /* null-terminated: one byte more than the stored text */
        H5Tset_size(mem, size + 1);
        memset(buf, 0, len);
        ok = H5Aread(a, mem, buf) >= 0;
        H5Tclose(mem);
    }
    H5Tclose(type);
    H5Aclose(a);
    return ok;
}

/* Reads attribute name of path into *v; counts the missing ones in *missing. */
static double number(hid_t file, const char *path, const char *name, int *missing) {
    double v = 0.0;
    *missing += !pillow_fixture_attr(file, path, name, &v, 1);
    return v;
}

int pillow_fixture_processor(hid_t file, const char *path, rd_hf_processor *p) {
    int missing = 0;
    memset(p, 0, sizeof *p);
    p->do_convert_rgb = number(file, path, "do_convert_rgb", &missing) != 0;
    p->do_resize = number(file, path, "do_resize", &missing) != 0;
    p->shortest_edge = (int)number(file, path, "shortest_edge", &missing);
    p->size_height = (int)number(file, path, "size_height", &missing);
    p->size_width = (int)number(file, path, "size_width", &missing);
    p->resample = (int)number(file, path, "resample", &missing);
    p->do_center_crop = number(file, path, "do_center_crop", &missing) != 0;
    p->crop_height = (int)number(file, path, "crop_height", &missing);
    p->crop_width = (int)number(file, path, "crop_width", &missing);
    p->do_rescale = number(file, path, "do_rescale", &missing) != 0;
    p->rescale_factor = number(file, path, "rescale_factor", &missing);
    p->do_normalize = number(file, path, "do_normalize", &missing) != 0;
    missing += !pillow_fixture_attr(file, path, "image_mean", p->image_mean, 3);
    missing += !pillow_fixture_attr(file, path, "image_std", p->image_std, 3);
    return missing == 0;
}
