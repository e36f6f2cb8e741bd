/* Reading NumPy .npy files (format versions 1-3) in C tests: the Hugging Face fixtures in
 * ../shared/fixtures/hf_dinov2_tiny are .npy. Little-endian float32 ('<f4'), C order only, read
 * as is: the host must be little-endian (every platform rdino targets is). */
#ifndef RDINO_TEST_NPY_H
#define RDINO_TEST_NPY_H

#include <stddef.h>
#include <stdint.h>

enum { RD_NPY_MAX_DIMS = 8 };

typedef struct rd_npy {
    float *data; /* malloc'd, count elements */
    size_t count;
    int ndim;
    int64_t dims[RD_NPY_MAX_DIMS];
} rd_npy;

/* Reads path into *out. Returns 0, or -1 with why (why_len bytes) saying what is wrong: missing
 * file, not .npy, another dtype, Fortran order, a size that does not match the shape. */
int rd_npy_read_f32(const char *path, rd_npy *out, char *why, size_t why_len);
void rd_npy_free(rd_npy *a);

#endif
