/* rdino-shard: preprocessed PNGs + manifest.csv -> shards/shard-NNNNN.h5 + shards/index.json
 * (parallel HDF5; layout in docs/FORMATS.md, "Shards"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdino/app.h"
#include "rdino/log.h"
#include "rdino/shard.h"

enum { PATH_MAX_LEN = 4096 };

/* A configured folder, or <data.output_dir>/<fallback> when the key is empty. */
static void folder(const rd_config *cfg, const char *key, const char *fallback, char *buf) {
    const char *value = rd_cfg_str(cfg, key);
    if (*value)
        snprintf(buf, PATH_MAX_LEN, "%s", value);
    else
        snprintf(buf, PATH_MAX_LEN, "%s/%s", rd_cfg_str(cfg, "data.output_dir"), fallback);
}

static void print_summary(const rd_shard_params *p, const rd_shard_stats *s, double seconds) {
    double mb = s->bytes_written / 1e6;
    rd_info("summary: %lld images in %d shards (%d written, %d already current) in %s",
            (long long)s->images, p->num_shards, s->shards_written, s->shards_skipped,
            p->output_dir);
    rd_info("summary: %.1f MB written in %.1f s: %.1f MB/s overall; PNG decoding %.1f s "
            "(slowest rank), HDF5 writing %.1f s",
            mb, seconds, seconds > 0 ? mb / seconds : 0.0, s->decode_seconds, s->write_seconds);
    const char *names[3] = {"train", "val", "test"};
    for (int k = 0; k < 3; k++)
        rd_info("summary: %-5s %8lld images (%5.1f%%) from %lld patients", names[k],
                (long long)s->per_split[k], 100.0 * (double)s->per_split[k] / (double)s->images,
                (long long)s->patients_per_split[k]);
}

int main(int argc, char **argv) {
    const char *force = "0";
    const rd_app_flag flags[] = {
        {"force", NULL, "rewrite every shard, even those a previous run finished", &force}};
    rd_app app;
    int status;
    if (rd_app_start(&app, &argc, &argv, "rdino-shard",
                     "Packs the images of rdino-preprocess (manifest.csv + PNGs) into parallel "
                     "HDF5 shards with patient-level train/val/test splits.",
                     flags, 1, &status))
        return rd_app_finish(&app, status);

    const rd_config *cfg = &app.cfg;
    char input[PATH_MAX_LEN], output[PATH_MAX_LEN];
    folder(cfg, "shard.input_dir", "preprocessed", input);
    folder(cfg, "shard.output_dir", "shards", output);
    rd_error err = {0};
    rd_shard_manifest manifest;
    rd_shard_png_loader *loader = NULL;
    char *config_yaml = rd_config_dump(cfg), *preprocess_yaml = rd_shard_preprocess_yaml(cfg);
    int bit_depth = 0;
    rd_status st = rd_shard_manifest_read(input, &manifest, &err);
    if (!st) st = rd_shard_png_depth(manifest.images[0].file, &bit_depth, &err);
    if (!st) st = rd_shard_png_loader_new(&loader, manifest.size, bit_depth, &err);
    if (!st && (!config_yaml || !preprocess_yaml))
        st = rd_fail(&err, RD_ENOMEM, "out of memory for the configuration text");
    if (st) return rd_app_finish(&app, rd_app_fail(&app, &err));

    rd_shard_params p = {.output_dir = output,
                         .num_shards =
                             rd_shard_count(manifest.n, (int)rd_cfg_int(cfg, "shard.num_shards"),
                                            rd_cfg_int(cfg, "shard.images_per_shard")),
                         .val_fraction = rd_cfg_float(cfg, "shard.val_fraction"),
                         .test_fraction = rd_cfg_float(cfg, "shard.test_fraction"),
                         .split_seed = (uint64_t)rd_cfg_int(cfg, "shard.split_seed"),
                         .deflate = (int)rd_cfg_int(cfg, "shard.compression"),
                         .size = manifest.size,
                         .bit_depth = bit_depth,
                         .batch = (int)rd_cfg_int(cfg, "shard.batch"),
                         .force = strcmp(force, "1") == 0,
                         .config_yaml = config_yaml,
                         .manifest_sha256 = manifest.sha256,
                         .manifest_path = manifest.path,
                         .preprocess_yaml = preprocess_yaml,
                         .tool_version = "rdino-shard 0.1"};
    rd_info("rdino-shard: %lld images %dx%d at %d bits from %s (sha256 %.16s...) -> %d shards",
            (long long)manifest.n, manifest.size, manifest.size, bit_depth, manifest.path,
            manifest.sha256, p.num_shards);
    rd_shard_stats stats;
    double t0 = rd_now();
    st = rd_shard_write_all(&p, manifest.images, manifest.n, rd_shard_png_load, loader,
                            MPI_COMM_WORLD, &stats, &err);
    if (!st) print_summary(&p, &stats, rd_now() - t0);
    rd_shard_png_loader_free(loader);
    rd_shard_manifest_free(&manifest);
    free(config_yaml);
    free(preprocess_yaml);
    if (st) return rd_app_finish(&app, rd_app_fail(&app, &err));
    return rd_app_finish(&app, RD_EXIT_OK);
}
