/* Growable buffers reused across images (see rd_buf in include/rdino/image.h). */
#include "rdino/image.h"

#include <stdlib.h>

rd_status rd_buf_reserve(rd_buf *b, size_t bytes, rd_error *err) {
    if (bytes <= b->cap) return RD_OK;
    /* Grow by at least half again, so a slowly increasing sequence of sizes reallocates rarely. */
    size_t want = b->cap + b->cap / 2 > bytes ? b->cap + b->cap / 2 : bytes;
    size_t rounded = (want + 63) & ~(size_t)63;
    if (rounded < want) return rd_fail(err, RD_ENOMEM, "cannot allocate %zu bytes", bytes);
    free(b->data);
    b->data = aligned_alloc(64, rounded);
    b->cap = b->data ? rounded : 0;
    if (!b->data) return rd_fail(err, RD_ENOMEM, "cannot allocate %zu bytes", bytes);
    return RD_OK;
}

void rd_buf_free(rd_buf *b) {
    free(b->data);
    b->data = NULL;
    b->cap = 0;
}
