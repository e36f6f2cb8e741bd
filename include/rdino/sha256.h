/* SHA-256 (FIPS 180-4), for provenance digests that users can check with sha256sum. */
#ifndef RDINO_SHA256_H
#define RDINO_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "rdino/error.h"

typedef struct rd_sha256 {
    uint32_t state[8];
    uint64_t length; /* bytes hashed so far */
    unsigned char block[64];
    size_t fill;
} rd_sha256;

void rd_sha256_init(rd_sha256 *h);
void rd_sha256_update(rd_sha256 *h, const void *data, size_t n);
/* Writes the digest as 64 lowercase hex digits and a NUL into hex[65]. */
void rd_sha256_final_hex(rd_sha256 *h, char hex[65]);

/* Digest of a whole file (as sha256sum prints it). */
rd_status rd_sha256_file(const char *path, char hex[65], rd_error *err);

#endif
