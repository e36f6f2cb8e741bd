#include "damage.h"

#include <hdf5.h>
#include <stdio.h>

/* File offset of image row's bytes: the contiguous dataset's offset plus the rows before, or the
 * address of the row's chunk (one image per chunk); -1 when there is none. */
static long long image_offset(const char *path, int64_t row, hsize_t *bytes) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t ds = file >= 0 ? H5Dopen2(file, "/images", H5P_DEFAULT) : -1;
    hid_t space = ds >= 0 ? H5Dget_space(ds) : -1;
    hid_t type = ds >= 0 ? H5Dget_type(ds) : -1;
    hid_t dcpl = ds >= 0 ? H5Dget_create_plist(ds) : -1;
    hsize_t dims[3] = {0, 0, 0};
    long long offset = -1;
    if (space >= 0 && type >= 0 && dcpl >= 0 && H5Sget_simple_extent_dims(space, dims, NULL) == 3 &&
        row >= 0 && (hsize_t)row < dims[0]) {
        *bytes = dims[1] * dims[2] * H5Tget_size(type);
        haddr_t addr = HADDR_UNDEF;
        if (H5Pget_layout(dcpl) == H5D_CONTIGUOUS) {
            addr = H5Dget_offset(ds);
            if (addr != HADDR_UNDEF) addr += (haddr_t)row * *bytes;
        } else {
            hsize_t start[3] = {(hsize_t)row, 0, 0};
            unsigned mask = 0;
            H5Dget_chunk_info_by_coord(ds, start, &mask, &addr, bytes); /* as stored */
        }
        if (addr != HADDR_UNDEF) offset = (long long)addr;
    }
    if (dcpl >= 0) H5Pclose(dcpl);
    if (type >= 0) H5Tclose(type);
    if (space >= 0) H5Sclose(space);
    if (ds >= 0) H5Dclose(ds);
    if (file >= 0) H5Fclose(file);
    return offset;
}

int rd_test_damage_image(const char *path, int64_t row, unsigned char mask) {
    hsize_t bytes = 0;
    long long offset = image_offset(path, row, &bytes);
    FILE *fp = offset >= 0 ? fopen(path, "r+b") : NULL;
    if (!fp) return -1;
    offset += (long long)(bytes / 2);
    int c = fseek(fp, (long)offset, SEEK_SET) == 0 ? fgetc(fp) : EOF;
    int ok = c != EOF && fseek(fp, (long)offset, SEEK_SET) == 0 && fputc(c ^ mask, fp) != EOF;
    return fclose(fp) == 0 && ok ? 0 : -1;
}

int rd_test_poke_pixel(const char *path, int64_t row) {
    hid_t file = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t ds = file >= 0 ? H5Dopen2(file, "/images", H5P_DEFAULT) : -1;
    hid_t space = ds >= 0 ? H5Dget_space(ds) : -1;
    hsize_t start[3] = {(hsize_t)row, 0, 0}, count[3] = {1, 1, 1}, one = 1;
    hid_t mem = H5Screate_simple(1, &one, NULL);
    uint8_t v = 0;
    int ok = space >= 0 &&
             H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, count, NULL) >= 0 &&
             H5Dread(ds, H5T_NATIVE_UINT8, mem, space, H5P_DEFAULT, &v) >= 0;
    v ^= 0x01;
    ok = ok && H5Dwrite(ds, H5T_NATIVE_UINT8, mem, space, H5P_DEFAULT, &v) >= 0;
    H5Sclose(mem);
    if (space >= 0) H5Sclose(space);
    if (ds >= 0) H5Dclose(ds);
    if (file >= 0 && H5Fclose(file) < 0) ok = 0;
    return ok ? 0 : -1;
}
