/* A shards folder's index.json as every later stage opens it (shard/shard_reader.c,
 * rd_shard_set_open on one rank): the input is <dir>/index.json, in a folder without shard
 * files, so an index that parses must still fail at its first shard. Checks: the open fails
 * with a message, and nothing is left allocated in the set. */
#include "fuzz_util.h"

#include <mpi.h>

#include "mpi_once.h"
#include "rdino/shard_reader.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    rd_test_need_mpi();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[512];
    rd_fuzz_file("index.json", data, size, path, sizeof path);
    rd_shard_set set;
    rd_error err = {0};
    rd_status st = rd_shard_set_open(&set, rd_fuzz_dir(), 1, MPI_COMM_SELF, &err);
    RD_FUZZ_CHECK(st != RD_OK && err.msg[0]);
    return 0;
}
