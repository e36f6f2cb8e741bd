/* CRC32C through isa-l: see include/rdino/crc32c.h. */
#include "rdino/crc32c.h"

#include <isa-l/crc.h>
#include <limits.h>

uint32_t rd_crc32c_extend(uint32_t crc, const void *data, size_t n) {
    /* crc32_iscsi keeps the register complemented and takes an int length. */
    unsigned int reg = ~crc;
    unsigned char *p = (unsigned char *)data;
    while (n > 0) {
        int piece = n > (size_t)INT_MAX ? INT_MAX : (int)n;
        reg = crc32_iscsi(p, piece, reg);
        p += piece;
        n -= (size_t)piece;
    }
    return ~reg;
}

uint32_t rd_crc32c(const void *data, size_t n) {
    return rd_crc32c_extend(0, data, n);
}
