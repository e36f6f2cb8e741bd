/* CRC32C (rd_crc32c over isa-l) against the standard check value and a bit-at-a-time
 * implementation of the definition (reflected polynomial 0x82F63B78, init and final xor
 * 0xFFFFFFFF), on lengths that exercise isa-l's short and long kernels and their tails. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "rdino/crc32c.h"

static uint32_t crc32c_bitwise(const unsigned char *p, size_t n) {
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int b = 0; b < 8; b++) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
    }
    return ~crc;
}

static void check_value(rd_test *t) {
    CHECK(rd_crc32c("123456789", 9) == 0xE3069283u);
    CHECK(rd_crc32c("", 0) == 0);
    /* RFC 3720 (iSCSI) B.4: 32 bytes of zeros, 32 bytes of 0xFF */
    unsigned char zeros[32] = {0}, ones[32];
    memset(ones, 0xFF, sizeof ones);
    CHECK(rd_crc32c(zeros, 32) == 0x8A9136AAu);
    CHECK(rd_crc32c(ones, 32) == 0x62A8AB43u);
}

static void matches_the_definition(rd_test *t) {
    enum { MAX = 70000 };
    unsigned char *buf = malloc(MAX);
    if (!buf) SKIP("out of memory");
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < MAX; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        buf[i] = (unsigned char)x;
    }
    const size_t lengths[] = {1, 3, 7, 8, 15, 16, 31, 63, 64, 65, 255, 256, 1023, 4096, 65536, MAX};
    for (size_t k = 0; k < sizeof lengths / sizeof *lengths; k++)
        for (size_t offset = 0; offset < 3; offset++) {
            size_t n = lengths[k] - (lengths[k] > offset ? offset : 0);
            CHECK_MSG(rd_crc32c(buf + offset, n) == crc32c_bitwise(buf + offset, n),
                      "length %zu at offset %zu", n, offset);
        }
    free(buf);
}

static void extends_in_pieces(rd_test *t) {
    unsigned char buf[1000];
    for (int i = 0; i < 1000; i++) buf[i] = (unsigned char)(i * 37 + 11);
    uint32_t whole = rd_crc32c(buf, sizeof buf);
    CHECK(rd_crc32c_extend(0, buf, sizeof buf) == whole);
    for (size_t cut = 0; cut <= 1000; cut += 111)
        CHECK(rd_crc32c_extend(rd_crc32c(buf, cut), buf + cut, 1000 - cut) == whole);
}

static const rd_test_case cases[] = {
    {"check_value", check_value},
    {"matches_the_definition", matches_the_definition},
    {"extends_in_pieces", extends_in_pieces},
};

RD_TEST_MAIN("crc32c", cases)
