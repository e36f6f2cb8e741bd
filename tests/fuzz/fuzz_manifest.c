/* The preprocessing manifest as rdino-shard reads it (shard/shard_input.c,
 * rd_shard_manifest_read): the input is <dir>/manifest.csv. Checks: a failure has a message;
 * on success every image has its strings, the common size is positive. */
#include "fuzz_util.h"

#include "rdino/shard.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[512];
    rd_fuzz_file("manifest.csv", data, size, path, sizeof path);
    rd_shard_manifest m;
    rd_error err = {0};
    if (rd_shard_manifest_read(rd_fuzz_dir(), &m, &err)) {
        RD_FUZZ_CHECK(err.msg[0]);
        return 0;
    }
    RD_FUZZ_CHECK(m.n >= 0 && m.size > 0);
    for (int64_t i = 0; i < m.n; i++)
        RD_FUZZ_CHECK(m.images[i].image_id && m.images[i].file && m.images[i].patient_id);
    rd_shard_manifest_free(&m);
    return 0;
}
