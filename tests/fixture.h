/* Reading the PyTorch oracle's HDF5 fixtures (tests/reference/fixtures/NAME.h5) in C tests. */
#ifndef RDINO_TEST_FIXTURE_H
#define RDINO_TEST_FIXTURE_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

/* Opens tests/reference/fixtures/<name> read-only; returns a negative id if absent. */
hid_t rd_fixture_open(const char *name);
void rd_fixture_close(hid_t file);
int rd_fixture_exists(hid_t file, const char *path);
/* Dataset (any numeric type) converted to float / double / int64; malloc'd, NULL if missing.
 * n (optional) receives the element count; dims (optional, up to 8) the shape, ndim its rank. */
float *rd_fixture_floats(hid_t file, const char *path, size_t *n);
double *rd_fixture_doubles(hid_t file, const char *path, size_t *n);
int64_t *rd_fixture_ints(hid_t file, const char *path, size_t *n);
int rd_fixture_shape(hid_t file, const char *path, int64_t *dims, int max_dims);
/* Attributes of the root group. */
double rd_fixture_attr(hid_t file, const char *name); /* 0 when absent */
double rd_fixture_attr_or(hid_t file, const char *name, double fallback);
/* Copies a string attribute of the root group into buf; returns 0 if absent. */
int rd_fixture_attr_str(hid_t file, const char *name, char *buf, size_t n);

#endif
