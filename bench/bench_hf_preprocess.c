/* Hugging Face preprocessing throughput on one core: rd_png_read_stored + rd_hf_preprocess_png
 * with microsoft/rad-dino's settings (BitImageProcessor, 518 x 518), the work rdino-embed does per
 * image. bench/bench_hf_preprocess.sh runs it next to bench/peers/hf_preprocess_pillow.py.
 *   bench_hf_preprocess FILE...
 * One untimed warm-up on the first file, then every file once. Prints "images/s" (per CPU
 * second of decode + pipeline), the split, and "crc32" of the float32 [3, 518, 518] outputs in
 * file order (the one-channel output counted three times, as the three equal channels it stands
 * for), which must equal the peer's. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <zlib.h>

#include "rdino/hf_preprocess.h"
#include "rdino/log.h"

/* CPU seconds of this process: the per-core rate stays meaningful on a busy shared node. */
static double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

enum { SIZE = 518 };

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE...\n", argv[0]);
        return 2;
    }
    rd_hf_processor p = rd_hf_bit_defaults(); /* + rad-dino's preprocessor_config.json */
    p.shortest_edge = p.crop_height = p.crop_width = SIZE;
    p.rescale_factor = 0.00392156862745098;
    for (int c = 0; c < 3; c++) {
        p.image_mean[c] = 0.5307;
        p.image_std[c] = 0.2583;
    }
    size_t floats = 3 * SIZE * SIZE;
    float *out = malloc(floats * sizeof(float));
    rd_hf_workspace ws = {0};
    rd_png_reader reader = {0};
    rd_hf_tally tally = {0};
    double decode = 0, pipeline = 0;
    unsigned long crc = crc32(0, NULL, 0);
    for (int i = 0; i <= argc - 1; i++) {
        const char *path = argv[i == 0 ? 1 : i]; /* i == 0: warm-up */
        rd_png_image png;
        rd_hf_result res;
        rd_reject reason;
        rd_error err = {0};
        double t0 = cpu_seconds();
        if (rd_png_read_stored(&reader, path, (size_t)1 << 28, &png, &reason, &err) != RD_OK) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        double t1 = cpu_seconds();
        if (!out ||
            rd_hf_preprocess_png(&ws, &png, path, &p, 1, out, floats, &res, &err) != RD_OK) {
            fprintf(stderr, "%s\n", out ? err.msg : "out of memory");
            return 1;
        }
        double t2 = cpu_seconds();
        if (i == 0) continue;
        decode += t1 - t0;
        pipeline += t2 - t1;
        rd_hf_tally_add(&tally, &res);
        size_t plane = (size_t)res.width * res.height;
        for (int c = 0; c < 3; c++)
            crc = crc32(crc, (const Bytef *)(out + (res.channels == 1 ? 0 : c) * plane),
                        (uInt)(plane * sizeof(float)));
    }
    int n = argc - 1;
    printf("images/s: %.2f\n", n / (decode + pipeline));
    printf("ms per image: decode %.3f, hf pipeline %.3f\n", 1e3 * decode / n, 1e3 * pipeline / n);
    printf("crc32: %08lx\n", crc);
    printf("clipped 16-bit images: %zu of %zu\n", tally.clipped_images, tally.images);
    printf("peak RSS MiB: %.1f\n", rd_peak_rss_mib());
    rd_hf_workspace_free(&ws);
    rd_png_reader_free(&reader);
    free(out);
    return 0;
}
