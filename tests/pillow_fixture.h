/* Access to tests/reference/fixtures/pillow_hf.h5 (written by
 * tests/reference/make_pillow_fixtures.py) for the tests in tests/image. */
#ifndef RDINO_TEST_PILLOW_FIXTURE_H
#define RDINO_TEST_PILLOW_FIXTURE_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#include "rdino/hf_preprocess.h"

#define PILLOW_FIXTURE "tests/reference/fixtures/pillow_hf.h5"

/* Opens the fixture read-only (tests run from the repository root); negative when absent. */
hid_t pillow_fixture_open(void);

/* Names of the members of group (at most max, each up to 64 bytes), in name order; returns the
 * count, or -1 when the group is missing. */
int pillow_fixture_list(hid_t file, const char *group, char (*names)[64], int max);

/* Dataset path as bytes / floats, malloc'd (NULL if missing); dims (up to 4) and ndim filled. */
uint8_t *pillow_fixture_u8(hid_t file, const char *path, size_t *n, int64_t *dims, int *ndim);
float *pillow_fixture_f32(hid_t file, const char *path, size_t *n, int64_t *dims, int *ndim);

/* Numeric attribute name of the object at path, as doubles (n values; 0 if missing). */
int pillow_fixture_attr(hid_t file, const char *path, const char *name, double *values, int n);
/* String attribute into buf; 0 if missing. */
int pillow_fixture_attr_str(hid_t file, const char *path, const char *name, char *buf, size_t len);

/* The rd_hf_processor settings stored as attributes of a /pipeline group; 1 when all are there. */
int pillow_fixture_processor(hid_t file, const char *path, rd_hf_processor *p);

#endif
