/* rdino-embed: shards + a backbone (a checkpoint's teacher, or random initialisation) ->
 * embeddings/<name>.h5 with CLS and mean-patch features per image (parallel HDF5; layout in
 * docs/FORMATS.md, "Embeddings"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdino/app.h"
#include "rdino/checkpoint.h"
#include "rdino/embed.h"
#include "rdino/log.h"

enum { PATH_MAX_LEN = 4096 };

/* The shards folder: embed.shards_dir, else shard.output_dir, else <data.output_dir>/shards. */
static void shards_dir(const rd_config *cfg, char *buf) {
    const char *embed = rd_cfg_str(cfg, "embed.shards_dir"),
               *shard = rd_cfg_str(cfg, "shard.output_dir");
    if (*embed)
        snprintf(buf, PATH_MAX_LEN, "%s", embed);
    else if (*shard)
        snprintf(buf, PATH_MAX_LEN, "%s", shard);
    else
        snprintf(buf, PATH_MAX_LEN, "%s/shards", rd_cfg_str(cfg, "data.output_dir"));
}

/* The checkpoint to embed with: embed.checkpoint, else the newest in
 * <pretrain.output_dir>/checkpoints (default <data.output_dir>/pretrain/checkpoints). */
static rd_status checkpoint_path(const rd_config *cfg, char *path, rd_error *err) {
    const char *given = rd_cfg_str(cfg, "embed.checkpoint"),
               *out = rd_cfg_str(cfg, "pretrain.output_dir");
    if (*given) {
        snprintf(path, PATH_MAX_LEN, "%s", given);
        return RD_OK;
    }
    char dir[PATH_MAX_LEN];
    if (*out)
        snprintf(dir, sizeof dir, "%s/checkpoints", out);
    else
        snprintf(dir, sizeof dir, "%s/pretrain/checkpoints", rd_cfg_str(cfg, "data.output_dir"));
    rd_status st = rd_checkpoint_find_latest(dir, path, PATH_MAX_LEN, err);
    return st ? rd_wrap(err, "embed.checkpoint is empty, so the newest checkpoint was looked for "
                             "(or use --init random)")
              : RD_OK;
}

/* The encoder and the configuration describing it (*enc): a checkpoint's backbone with the
 * checkpoint's configuration under this command line's overrides (held in ckpt_cfg), or a
 * seeded random initialisation described by the run's configuration. */
static rd_status load_encoder(const rd_config *cfg, int random, char *checkpoint,
                              rd_config *ckpt_cfg, const rd_config **enc, rd_vit *vit,
                              rd_param_set *set, rd_error *err) {
    *enc = cfg;
    if (random)
        return rd_embed_random_backbone(cfg, (uint64_t)rd_cfg_int(cfg, "embed.seed"), vit, set,
                                        err);
    rd_status st = checkpoint_path(cfg, checkpoint, err);
    if (!st) st = rd_embed_checkpoint_config(checkpoint, cfg, ckpt_cfg, err);
    if (st) return st;
    *enc = ckpt_cfg;
    return rd_embed_checkpoint_backbone(checkpoint, rd_cfg_str(cfg, "embed.model"), ckpt_cfg,
                                        MPI_COMM_WORLD, vit, set, err);
}

static void print_summary(const rd_embed_stats *s, const char *output, int nranks) {
    double rss = rd_peak_rss_mib(), max_rss = rss;
    MPI_Reduce(&rss, &max_rss, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
    double rate = s->seconds > 0 ? (double)s->images / s->seconds : 0.0;
    rd_info("summary: %lld images -> %s (D = %d, %d px) in %.1f s: %.2f img/s on %d rank%s "
            "(%.2f img/s per rank); peak RSS %.1f MiB (largest rank)",
            (long long)s->images, output, s->embed_dim, s->resolution, s->seconds, rate, nranks,
            nranks > 1 ? "s" : "", rate / nranks, max_rss);
    rd_info("summary: slowest rank: reading + preparing images %.1f s, ViT forwards %.1f s, "
            "HDF5 %.1f s",
            s->read_seconds, s->forward_seconds, s->write_seconds);
}

int main(int argc, char **argv) {
    const char *init = NULL;
    const rd_app_flag flags[] = {
        {"init", "MODE", "checkpoint or random (the same as embed.init=MODE)", &init}};
    rd_app app;
    int status;
    if (rd_app_start(&app, &argc, &argv, "rdino-embed",
                     "Embeds every image of the shards with a frozen ViT backbone (a checkpoint's "
                     "teacher, or a random initialisation) into one HDF5 file of CLS and "
                     "mean-patch features with the images' metadata.",
                     flags, 1, &status))
        return rd_app_finish(&app, status);

    rd_config *cfg = &app.cfg;
    rd_error err = {0};
    char assignment[64];
    snprintf(assignment, sizeof assignment, "embed.init=%s", init ? init : "");
    rd_status st = init ? rd_config_override(cfg, assignment, &err) : RD_OK;
    int random = strcmp(rd_cfg_str(cfg, "embed.init"), "random") == 0;
    const char *name = *rd_cfg_str(cfg, "embed.name") ? rd_cfg_str(cfg, "embed.name")
                       : random                       ? "random-init"
                                                      : "trained";
    char shards[PATH_MAX_LEN], output[PATH_MAX_LEN];
    shards_dir(cfg, shards);
    if (*rd_cfg_str(cfg, "embed.output"))
        snprintf(output, sizeof output, "%s", rd_cfg_str(cfg, "embed.output"));
    else
        snprintf(output, sizeof output, "%s/embeddings/%s.h5", rd_cfg_str(cfg, "data.output_dir"),
                 name);
    unsigned splits = 0;
    if (!st) st = rd_embed_parse_splits(rd_cfg_str(cfg, "embed.splits"), &splits, &err);
    rd_vit vit;
    rd_param_set set;
    rd_config ckpt_cfg = {0};
    const rd_config *enc = cfg;
    char checkpoint[PATH_MAX_LEN] = "none";
    rd_params_init(&set);
    if (!st) st = load_encoder(cfg, random, checkpoint, &ckpt_cfg, &enc, &vit, &set, &err);
    char *model_yaml = st ? NULL : rd_embed_model_yaml(enc), *config_yaml = rd_config_dump(cfg);
    if (!st && (!model_yaml || !config_yaml))
        st = rd_fail(&err, RD_ENOMEM, "out of memory for the configuration text");
    if (st) {
        free(model_yaml), free(config_yaml);
        rd_config_free(&ckpt_cfg);
        return rd_app_finish(&app, rd_app_fail(&app, &err));
    }
    rd_info("rdino-embed: encoder '%s' = %s%s%s, ViT D=%d depth=%d heads=%d p=%d registers=%d "
            "native %d px, %zu parameters",
            name, random ? "random initialisation" : rd_cfg_str(cfg, "embed.model"),
            random ? "" : " of ", random ? "" : checkpoint, vit.cfg.embed_dim, vit.cfg.depth,
            vit.cfg.num_heads, vit.cfg.patch_size, vit.cfg.num_register_tokens, vit.cfg.img_size,
            rd_vit_param_count(&vit, &set));

    rd_embed_params p = {.shards_dir = shards,
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
                         .batch = (int)rd_cfg_int(cfg, "embed.batch")};
    rd_embed_stats stats;
    st = rd_embed_run(&p, &vit, &set, MPI_COMM_WORLD, &stats, &err);
    if (!st) print_summary(&stats, output, app.nranks);
    free(model_yaml), free(config_yaml);
    rd_config_free(&ckpt_cfg);
    rd_params_free(&set);
    if (st) return rd_app_finish(&app, rd_app_fail(&app, &err));
    return rd_app_finish(&app, RD_EXIT_OK);
}
