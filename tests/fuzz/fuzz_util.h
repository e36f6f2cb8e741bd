/* Shared by the libFuzzer harnesses tests/fuzz/fuzz_<target>.c (docs/TESTING.md, "Fuzzing").
 * Each harness defines LLVMFuzzerTestOneInput; `make fuzz` links it with libFuzzer, the normal
 * build with tests/fuzz/replay.c (test_replay_<target>, run by `make test`). */
#ifndef RDINO_FUZZ_UTIL_H
#define RDINO_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Optional in a harness: called once before the first input. */
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

/* Writes data to <private temporary folder>/name (readers that take a path) and puts the path in
 * path[0..n). The folder is made on first use and removed at exit; aborts on an I/O error (the
 * machine's fault, not the input's). */
void rd_fuzz_file(const char *name, const void *data, size_t size, char *path, size_t n);
/* The private temporary folder. */
const char *rd_fuzz_dir(void);

/* A harness's own check failed: prints what and aborts, which libFuzzer reports as a finding. */
void rd_fuzz_check_failed(const char *file, int line, const char *what);
#define RD_FUZZ_CHECK(cond) ((cond) ? (void)0 : rd_fuzz_check_failed(__FILE__, __LINE__, #cond))

#endif
