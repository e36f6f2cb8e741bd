/* Per-image preprocessing throughput of rd_prep_image on one core, with the time split.
 *   bench_preprocess SIZE KERNEL FILE...     KERNEL: cubic | bspline
 * One untimed warm-up image, then every file once. images/s is per CPU second (wall time
 * separately). bench/bench_preprocess.sh runs it. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "rdino/log.h"
#include "rdino/preprocess_image.h"

/* CPU seconds of this process: the per-core rate stays meaningful on a busy shared node. */
static double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 4 || rd_kernel_parse(argv[2]) < 0) {
        fprintf(stderr, "usage: %s SIZE cubic|bspline FILE...\n", argv[0]);
        return 2;
    }
    rd_prep_options opt = rd_prep_defaults();
    opt.size = atoi(argv[1]);
    opt.kernel = (rd_kernel)rd_kernel_parse(argv[2]);
    size_t out_bytes = rd_prep_output_bytes(&opt);
    void *out = malloc(out_bytes);
    rd_prep_workspace *ws = rd_prep_workspace_new();
    rd_prep_result res;
    rd_error err = {0};
    if (!out || !ws || rd_prep_image(ws, argv[3], &opt, out, out_bytes, &res, &err) != RD_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    double read = 0, resize = 0, normalize = 0, start = rd_now(), cpu_start = cpu_seconds();
    int n = 0;
    for (int i = 3; i < argc; i++, n++) {
        if (rd_prep_image(ws, argv[i], &opt, out, out_bytes, &res, &err) != RD_OK) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        read += res.seconds_read;
        resize += res.seconds_resize;
        normalize += res.seconds_normalize;
    }
    double total = rd_now() - start, cpu = cpu_seconds() - cpu_start;
    printf("images/s: %.2f\n", n / cpu);
    printf("wall images/s: %.2f\n", n / total);
    printf("ms per image: read+decode %.3f, resize %.3f, normalise %.3f, total %.3f\n",
           1e3 * read / n, 1e3 * resize / n, 1e3 * normalize / n, 1e3 * total / n);
    printf("peak RSS MiB: %.1f (workspace %.1f)\n", rd_peak_rss_mib(),
           rd_prep_workspace_bytes(ws) / 1048576.0);
    rd_prep_workspace_free(ws);
    free(out);
    return 0;
}
