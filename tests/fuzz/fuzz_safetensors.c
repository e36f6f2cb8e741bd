/* The safetensors reader (io/safetensors.c) that released weights go through: the input is the
 * file. Checks: a failure has a message; on success every tensor lies inside the data area with
 * numel * dtype size bytes, can be found by name, and (when small) reads or fails cleanly. */
#include "fuzz_util.h"

#include <stdlib.h>

#include "rdino/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[512];
    rd_fuzz_file("model.safetensors", data, size, path, sizeof path);
    rd_safetensors st;
    rd_error err = {0};
    if (rd_safetensors_open(&st, path, &err)) {
        RD_FUZZ_CHECK(err.msg[0]);
        return 0;
    }
    for (int i = 0; i < st.count; i++) {
        const rd_st_tensor *t = &st.tensors[i];
        RD_FUZZ_CHECK(t->begin <= t->end && t->end <= st.data_bytes);
        RD_FUZZ_CHECK(rd_safetensors_find(&st, t->name) == t);
        if (t->numel > ((uint64_t)1 << 20)) continue;
        float *out = malloc((size_t)(t->numel ? t->numel : 1) * sizeof *out);
        if (!out) continue;
        if (rd_safetensors_read(&st, t, out, &err)) RD_FUZZ_CHECK(err.msg[0]);
        free(out);
    }
    for (int i = 0; i < st.meta_count; i++)
        RD_FUZZ_CHECK(rd_safetensors_meta(&st, st.meta[2 * i]) != NULL);
    rd_safetensors_close(&st);
    return 0;
}
