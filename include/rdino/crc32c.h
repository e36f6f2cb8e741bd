/* CRC32C (Castagnoli: polynomial 0x1EDC6F41, reflected, initial value 0xFFFFFFFF, final xor
 * 0xFFFFFFFF; the CRC of iSCSI, ext4 and SSE4.2's crc32 instruction), through Debian's libisal
 * (isa-l 2.30 crc32_iscsi, which picks its PCLMUL/SSE4.2 kernel at run time: over 10 GB/s per
 * core). rd_crc32c("123456789", 9) = 0xE3069283, the standard check value.
 *
 * The value is the standard one, so `crc32c` of any library agrees; isa-l's own crc32_iscsi
 * returns it complemented (it applies the initial value but not the final xor). A pure-Python
 * recomputation is in scripts/verify_shards.py. */
#ifndef RDINO_CRC32C_H
#define RDINO_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* CRC32C of data[0, n). */
uint32_t rd_crc32c(const void *data, size_t n);

/* Continues a CRC: rd_crc32c_extend(rd_crc32c(a, na), b, nb) = CRC32C of a followed by b;
 * rd_crc32c_extend(0, d, n) = rd_crc32c(d, n). */
uint32_t rd_crc32c_extend(uint32_t crc, const void *data, size_t n);

#endif
