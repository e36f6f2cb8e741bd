/* The pipeline's folder layout; see paths.h. */
#include "rdino/paths.h"

#include <stdio.h>

static const struct {
    const char *name;     /* --print-paths name */
    const char *key;      /* the writer's own key ("" = none) */
    const char *default_; /* under data.output_dir, or under the pretrain folder */
    int under_pretrain;
} layout[RD_DIR_COUNT] = {
    [RD_DIR_SYNTH] = {"synth", "synth.output_dir", "synth", 0},
    [RD_DIR_PREPROCESSED] = {"preprocessed", "", "preprocessed", 0},
    [RD_DIR_SHARDS] = {"shards", "shard.output_dir", "shards", 0},
    [RD_DIR_PRETRAIN] = {"pretrain", "pretrain.output_dir", "pretrain", 0},
    [RD_DIR_CHECKPOINTS] = {"checkpoints", "", "checkpoints", 1},
    [RD_DIR_METRICS] = {"metrics", "", "metrics.jsonl", 1},
    [RD_DIR_EMBEDDINGS] = {"embeddings", "", "embeddings", 0},
    [RD_DIR_REPORT] = {"report", "analyze.output_dir", "report", 0},
};

const char *rd_pipeline_dir_name(rd_pipeline_dir which) {
    return which >= 0 && which < RD_DIR_COUNT ? layout[which].name : "?";
}

rd_status rd_pipeline_path(const rd_config *cfg, rd_pipeline_dir which, char path[RD_PATH_MAX],
                           rd_error *err) {
    if (which < 0 || which >= RD_DIR_COUNT)
        return rd_fail(err, RD_EINVAL, "unknown pipeline folder %d", (int)which);
    char base[RD_PATH_MAX];
    const char *base_key = "data.output_dir";
    if (layout[which].under_pretrain) {
        if (rd_pipeline_path(cfg, RD_DIR_PRETRAIN, base, err)) return err->code;
        base_key = "pretrain.output_dir";
    } else {
        snprintf(base, sizeof base, "%s", rd_cfg_str(cfg, base_key));
    }
    const char *own = *layout[which].key ? rd_cfg_str(cfg, layout[which].key) : "";
    int n = *own ? snprintf(path, RD_PATH_MAX, "%s", own)
                 : snprintf(path, RD_PATH_MAX, "%s/%s", base, layout[which].default_);
    if (n < 0 || n >= RD_PATH_MAX)
        return rd_fail(err, RD_EINVAL, "%s is too long for a path (at most %d bytes)",
                       *own ? layout[which].key : base_key, RD_PATH_MAX - 64);
    return RD_OK;
}

rd_status rd_pipeline_input(const rd_config *cfg, const char *key, rd_pipeline_dir which,
                            char path[RD_PATH_MAX], rd_error *err) {
    const char *value = rd_cfg_str(cfg, key);
    if (!*value) return rd_pipeline_path(cfg, which, path, err);
    if (snprintf(path, RD_PATH_MAX, "%s", value) >= RD_PATH_MAX)
        return rd_fail(err, RD_EINVAL, "%s is too long for a path", key);
    return RD_OK;
}
