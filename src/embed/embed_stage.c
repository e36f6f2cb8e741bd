/* The embed stage: resolves the shards, the encoder and the output of a configuration, then
 * embeds (see embed.h). */
#include "rdino/embed.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdino/agree.h"
#include "rdino/checkpoint.h"
#include "rdino/file.h"
#include "rdino/log.h"
#include "rdino/paths.h"

/* The checkpoint to embed with: embed.checkpoint, else the newest in the pipeline's
 * checkpoints folder. */
static rd_status checkpoint_path(const rd_config *cfg, char *path, rd_error *err) {
    const char *given = rd_cfg_str(cfg, "embed.checkpoint");
    if (*given) {
        if (snprintf(path, RD_PATH_MAX, "%s", given) >= RD_PATH_MAX)
            return rd_fail(err, RD_EINVAL, "embed.checkpoint is too long for a path");
        return RD_OK;
    }
    char dir[RD_PATH_MAX];
    rd_status st = rd_pipeline_path(cfg, RD_DIR_CHECKPOINTS, dir, err);
    if (!st) st = rd_checkpoint_find_latest(dir, path, RD_PATH_MAX, err);
    return st ? rd_wrap(err, "embed.checkpoint is empty, so the newest checkpoint was looked for "
                             "(or use --init random)")
              : RD_OK;
}

/* The encoder and the configuration describing it (*enc): a checkpoint's backbone with the
 * checkpoint's configuration under this command line's overrides (held in ckpt_cfg), or a
 * seeded random initialisation described by the run's configuration. */
static rd_status load_encoder(const rd_config *cfg, int random, char *checkpoint,
                              rd_config *ckpt_cfg, const rd_config **enc, MPI_Comm comm,
                              rd_vit *vit, rd_param_set *set, rd_error *err) {
    *enc = cfg;
    if (random)
        return rd_embed_random_backbone(cfg, (uint64_t)rd_cfg_int(cfg, "embed.seed"), vit, set,
                                        err);
    rd_status st = checkpoint_path(cfg, checkpoint, err);
    if (!st) st = rd_embed_checkpoint_config(checkpoint, cfg, ckpt_cfg, err);
    if (st) return st;
    *enc = ckpt_cfg;
    return rd_embed_checkpoint_backbone(checkpoint, rd_cfg_str(cfg, "embed.model"), ckpt_cfg, comm,
                                        vit, set, err);
}

static void print_summary(const rd_embed_stats *s, const char *output, MPI_Comm comm) {
    int nranks;
    MPI_Comm_size(comm, &nranks);
    double rss = rd_peak_rss_mib(), max_rss = rss;
    MPI_Reduce(&rss, &max_rss, 1, MPI_DOUBLE, MPI_MAX, 0, comm);
    double rate = s->seconds > 0 ? (double)s->images / s->seconds : 0.0;
    rd_info("summary: %lld images -> %s (D = %d, %d px) in %.1f s: %.2f img/s on %d rank%s "
            "(%.2f img/s per rank); peak RSS %.1f MiB (largest rank)",
            (long long)s->images, output, s->embed_dim, s->resolution, s->seconds, rate, nranks,
            nranks > 1 ? "s" : "", rate / nranks, max_rss);
    if (s->corrupt_skipped > 0)
        rd_info("summary: %lld corrupt images left out (embed.on_corrupt: skip; each named in a "
                "warning above)",
                (long long)s->corrupt_skipped);
    rd_info("summary: slowest rank: reading + preparing images %.1f s, ViT forwards %.1f s, "
            "HDF5 %.1f s",
            s->read_seconds, s->forward_seconds, s->write_seconds);
}

rd_status rd_embed_stage(const rd_config *cfg, MPI_Comm comm, rd_error *err) {
    int random = strcmp(rd_cfg_str(cfg, "embed.init"), "random") == 0;
    const char *name = *rd_cfg_str(cfg, "embed.name") ? rd_cfg_str(cfg, "embed.name")
                       : random                       ? "random-init"
                                                      : "trained";
    char shards[RD_PATH_MAX], output[RD_PATH_MAX], checkpoint[RD_PATH_MAX] = "none";
    unsigned splits = 0;
    rd_status st = rd_pipeline_input(cfg, "embed.shards_dir", RD_DIR_SHARDS, shards, err);
    if (!st && *rd_cfg_str(cfg, "embed.output")) {
        if (snprintf(output, sizeof output, "%s", rd_cfg_str(cfg, "embed.output")) >=
            (int)sizeof output)
            st = rd_fail(err, RD_EINVAL, "embed.output is too long for a path");
    } else if (!st) {
        char dir[RD_PATH_MAX];
        st = rd_pipeline_path(cfg, RD_DIR_EMBEDDINGS, dir, err);
        if (!st && snprintf(output, sizeof output, "%s/%s.h5", dir, name) >= (int)sizeof output)
            st = rd_fail(err, RD_EINVAL, "data.output_dir is too long for a path");
    }
    if (!st) st = rd_embed_parse_splits(rd_cfg_str(cfg, "embed.splits"), &splits, err);
    if ((st = rd_agree(comm, st, err))) return st;

    rd_vit vit;
    rd_param_set set;
    rd_config ckpt_cfg = {0};
    const rd_config *enc = cfg;
    rd_params_init(&set);
    st = rd_agree(
        comm, load_encoder(cfg, random, checkpoint, &ckpt_cfg, &enc, comm, &vit, &set, err), err);
    char *model_yaml = st ? NULL : rd_embed_model_yaml(enc), *config_yaml = rd_config_dump(cfg);
    if (!st && (!model_yaml || !config_yaml))
        st = rd_fail(err, RD_ENOMEM, "out of memory for the configuration text");
    if (!st) {
        rd_info("rdino-embed: encoder '%s' = %s%s%s, ViT D=%d depth=%d heads=%d p=%d "
                "registers=%d native %d px, %zu parameters",
                name, random ? "random initialisation" : rd_cfg_str(cfg, "embed.model"),
                random ? "" : " of ", random ? "" : checkpoint, vit.cfg.embed_dim, vit.cfg.depth,
                vit.cfg.num_heads, vit.cfg.patch_size, vit.cfg.num_register_tokens,
                vit.cfg.img_size, rd_vit_param_count(&vit, &set));
        rd_embed_params p = {
            .shards_dir = shards,
            .output = output,
            .encoder = name,
            .init = random ? "random" : "checkpoint",
            .checkpoint = checkpoint,
            .seed = rd_cfg_int(cfg, "embed.seed"),
            .model_config = model_yaml,
            .config = config_yaml,
            .creator = "rdino-embed 0.1",
            .resolution = (int)rd_cfg_int(cfg, "embed.resolution"),
            .kernel = (rd_kernel)rd_kernel_parse(rd_cfg_str(cfg, "embed.resample")),
            .mean = rd_cfg_float(enc, "pretrain.augment.mean"),
            .std = rd_cfg_float(enc, "pretrain.augment.std"),
            .splits = splits,
            .batch = (int)rd_cfg_int(cfg, "embed.batch"),
            .skip_corrupt = strcmp(rd_cfg_str(cfg, "embed.on_corrupt"), "skip") == 0};
        rd_embed_stats stats;
        st = rd_embed_run(&p, &vit, &set, comm, &stats, err);
        if (!st) print_summary(&stats, output, comm);
    }
    free(model_yaml);
    free(config_yaml);
    rd_config_free(&ckpt_cfg);
    rd_params_free(&set);
    return st;
}
