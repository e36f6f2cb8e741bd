/* The shard stage: manifest + PNGs of rdino-preprocess -> shards (see shard.h), or, with
 * shard.verify, the check of a shards folder. */
#include "rdino/shard.h"

#include <stdlib.h>
#include <string.h>

#include "rdino/agree.h"
#include "rdino/log.h"
#include "rdino/paths.h"
#include "rdino/shard_reader.h"

static void report_bad_image(void *ctx, const char *shard_path, int64_t local_row, int64_t row,
                             const char *image_id, const char *message) {
    (void)ctx, (void)shard_path, (void)local_row, (void)row, (void)image_id;
    rd_warn("corrupt image: %s", message);
}

/* rdino-shard --verify DIR: the set opens (index.json against every shard's attributes), then each
 * rank reads every nranks-th shard in full: every image against its CRC32C, every /meta dataset
 * against index.json's digest. Each bad image is named; any problem fails the stage. */
static rd_status verify_folder(const rd_config *cfg, const char *dir, MPI_Comm comm,
                               rd_error *err) {
    int rank, nranks;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &nranks);
    rd_shard_set set;
    rd_status st = rd_shard_set_open(&set, dir, 1, comm, err);
    if (st) return st;
    rd_info("rdino-shard --verify: %lld images in %d shards in %s", (long long)set.n, set.count,
            dir);
    int block = (int)rd_cfg_int(cfg, "shard.batch");
    /* counts[0]: corrupt images, counts[1]: shards with a problem */
    int64_t counts[2] = {0, 0};
    rd_error first = {0};
    int first_shard = set.count;
    rd_progress progress;
    rd_progress_start(&progress, "verify", set.count, 0);
    for (int k = rank; k < set.count; k += nranks) {
        int64_t bad = 0;
        rd_error e = {0};
        rd_status shard_st =
            rd_shard_set_verify_shard(&set, k, block, report_bad_image, NULL, &bad, &e);
        counts[0] += bad;
        if (shard_st) {
            counts[1]++;
            if (shard_st != RD_ECORRUPT || bad == 0) rd_warn("%s", e.msg);
            if (k < first_shard) first_shard = k, first = e;
        }
        rd_progress_update(&progress, k + 1, NULL);
    }
    rd_progress_finish(&progress, NULL);
    MPI_Allreduce(MPI_IN_PLACE, counts, 2, MPI_INT64_T, MPI_SUM, comm);
    rd_shard_set_close(&set);
    st = counts[1] ? (first.code ? first.code : RD_ECORRUPT) : RD_OK;
    /* the lowest shard's problem is the message, whatever the rank count */
    st = rd_agree_first(comm, st, first_shard, &first);
    if (!st) {
        rd_info("summary: %s verified: %lld images in %d shards, every CRC32C and metadata "
                "digest matches",
                dir, (long long)set.n, set.count);
        return RD_OK;
    }
    rd_wrap(&first, "%s: %lld corrupt images, %lld damaged shards; the first problem", dir,
            (long long)counts[0], (long long)counts[1]);
    first.agreed = 1; /* every rank holds it (rd_agree_first) */
    if (err) *err = first;
    return st;
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

rd_status rd_shard_stage(const rd_config *cfg, MPI_Comm comm, rd_error *err) {
    const char *verify = rd_cfg_str(cfg, "shard.verify");
    if (*verify) return verify_folder(cfg, verify, comm, err);
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
            .hdf5_checksum = rd_cfg_bool(cfg, "shard.hdf5_checksum"),
            .config_yaml = config_yaml,
            .manifest_sha256 = manifest.sha256,
            .manifest_path = manifest.path,
            .preprocess_yaml = preprocess_yaml,
            .tool_version = "rdino-shard 0.1",
            .nfindings = manifest.nfindings,
            .finding = manifest.finding};
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
