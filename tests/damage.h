/* Damaging shard files for the tests of the per-image CRC32C: HDF5's own metadata stay valid, so
 * only rdino's check can tell. */
#ifndef RDINO_TEST_DAMAGE_H
#define RDINO_TEST_DAMAGE_H

#include <stdint.h>

/* XORs mask into a byte in the middle of image `row` of /images in the HDF5 file at path,
 * wherever its layout puts it (contiguous: the dataset's offset; chunked: the chunk's address).
 * 0 on success, -1 when the row does not exist or the file cannot be changed. */
int rd_test_damage_image(const char *path, int64_t row, unsigned char mask);
/* Changes pixel 0 of image `row` through HDF5 (as h5py would): a valid write that only the CRC32C
 * notices. 0 on success, -1 on failure. */
int rd_test_poke_pixel(const char *path, int64_t row);

#endif
