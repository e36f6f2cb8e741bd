/* Reading NumPy .npy arrays (format 1.0/2.0, C order, little-endian) in C tests: the shared
 * transformers fixtures store their inputs and outputs this way. */
#ifndef RDINO_TEST_NPY_H
#define RDINO_TEST_NPY_H

#include <stddef.h>
#include <stdint.h>

enum { RD_NPY_MAX_DIMS = 8 };

/* descr "<f4" (float32) read as floats, or "|u1" / "|b1" read as bytes. Returns malloc'd
 * data and fills n (elements), shape and ndim (any may be NULL); NULL on any problem, with the
 * reason printed to stderr. */
float *rd_npy_floats(const char *path, size_t *n, int64_t *shape, int *ndim);
uint8_t *rd_npy_bytes(const char *path, size_t *n, int64_t *shape, int *ndim);

#endif
