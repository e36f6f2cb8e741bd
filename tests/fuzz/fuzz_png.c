/* PNG ingest (io/png.c): any bytes through rd_png_decode (grey) and rd_png_decode_stored (as
 * stored). Checks: both accept or reject alike, a rejection has a reason and a message, and an
 * accepted image has the header's size, a valid depth, and every sample readable. */
#include "fuzz_util.h"

#include "rdino/png.h"

/* Larger images are refused from the header; the limit keeps each input fast. */
static const size_t max_pixels = (size_t)1 << 20;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static rd_png_reader reader; /* reused across inputs, as preprocessing does */
    rd_grey_image img;
    rd_png_info info;
    rd_reject grey_reason, stored_reason;
    rd_error err = {0};
    rd_status grey =
        rd_png_decode(&reader, data, size, "fuzz.png", max_pixels, &img, &info, &grey_reason, &err);
    if (grey) {
        RD_FUZZ_CHECK(grey_reason != RD_REJECT_NONE && err.msg[0]);
    } else {
        RD_FUZZ_CHECK(grey_reason == RD_REJECT_NONE);
        RD_FUZZ_CHECK(img.width == info.width && img.height == info.height);
        RD_FUZZ_CHECK(img.width > 0 && img.height > 0);
        RD_FUZZ_CHECK((size_t)img.width * (size_t)img.height <= max_pixels);
        RD_FUZZ_CHECK(img.depth == 8 || img.depth == 16);
        size_t n = (size_t)img.width * (size_t)img.height;
        volatile unsigned sum = 0;
        for (size_t i = 0; i < n; i++)
            sum +=
                img.depth == 8 ? ((const uint8_t *)img.data)[i] : ((const uint16_t *)img.data)[i];
    }
    rd_png_image stored;
    rd_status as_stored = rd_png_decode_stored(&reader, data, size, "fuzz.png", max_pixels, &stored,
                                               &stored_reason, &err);
    RD_FUZZ_CHECK((grey == RD_OK) == (as_stored == RD_OK));
    if (!as_stored) {
        RD_FUZZ_CHECK(stored.channels >= 1 && stored.channels <= 4);
        size_t n = (size_t)stored.width * (size_t)stored.height * (size_t)stored.channels;
        volatile unsigned sum = 0;
        for (size_t i = 0; i < n; i++)
            sum += stored.bit_depth <= 8 ? ((const uint8_t *)stored.samples)[i]
                                         : ((const uint16_t *)stored.samples)[i];
        if (stored.color_type == 3) RD_FUZZ_CHECK(stored.palette_size >= 1);
    }
    return 0;
}
