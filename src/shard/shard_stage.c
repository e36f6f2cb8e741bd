/* The shard stage: manifest + PNGs of rdino-preprocess -> shards (see shard.h). */
#include "rdino/shard.h"

#include <stdlib.h>
#include <string.h>

#include "rdino/agree.h"
#include "rdino/log.h"
#include "rdino/paths.h"

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

rd_status rd_shard_stage(const rd_config *cfg, MPI_Comm comm, rd_error *err) {
    char input[RD_PATH_MAX], output[RD_PATH_MAX];
    rd_status st = rd_pipeline_input(cfg, "shard.input_dir", RD_DIR_PREPROCESSED, input, err);
    if (!st) st = rd_pipeline_path(cfg, RD_DIR_SHARDS, output, err);
    if (st) return rd_agree(comm, st, err);

    rd_shard_manifest manifest = {0};
    rd_shard_png_loader *loader = NULL;
    char *config_yaml = rd_config_dump(cfg), *preprocess_yaml = rd_shard_preprocess_yaml(cfg);
    int bit_depth = 0;
    st = rd_shard_manifest_read(input, &manifest, err);
    if (!st) st = rd_shard_png_depth(manifest.images[0].file, &bit_depth, err);
    if (!st) st = rd_shard_png_loader_new(&loader, manifest.size, bit_depth, err);
    if (!st && (!config_yaml || !preprocess_yaml))
        st = rd_fail(err, RD_ENOMEM, "out of memory for the configuration text");
    st = rd_agree(comm, st, err);
    if (!st) {
        rd_shard_params p = {
            .output_dir = output,
            .num_shards = rd_shard_count(manifest.n, (int)rd_cfg_int(cfg, "shard.num_shards"),
                                         rd_cfg_int(cfg, "shard.images_per_shard")),
            .val_fraction = rd_cfg_float(cfg, "shard.val_fraction"),
            .test_fraction = rd_cfg_float(cfg, "shard.test_fraction"),
            .split_seed = (uint64_t)rd_cfg_int(cfg, "shard.split_seed"),
            .deflate = (int)rd_cfg_int(cfg, "shard.compression"),
            .size = manifest.size,
            .bit_depth = bit_depth,
            .batch = (int)rd_cfg_int(cfg, "shard.batch"),
            .force = rd_cfg_bool(cfg, "shard.force"),
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
        st = rd_shard_write_all(&p, manifest.images, manifest.n, rd_shard_png_load, loader, comm,
                                &stats, err);
        if (!st) print_summary(&p, &stats, rd_now() - t0);
    }
    rd_shard_png_loader_free(loader);
    rd_shard_manifest_free(&manifest);
    free(config_yaml);
    free(preprocess_yaml);
    return st;
}
