/* The pipeline's folder layout: where each stage writes, and where the next one looks, when
 * the configuration leaves a path empty. The one place that knows "<data.output_dir>/shards";
 * jobs/submit_pipeline.sh asks the programs (--print-paths) instead of repeating it.
 *
 *   <data.output_dir>/synth/          rdino-synth        (synth.output_dir)
 *   <data.output_dir>/preprocessed/   rdino-preprocess   (fixed; rdino-shard reads shard.input_dir)
 *   <data.output_dir>/shards/         rdino-shard        (shard.output_dir)
 *   <data.output_dir>/pretrain/       rdino-pretrain     (pretrain.output_dir): checkpoints/,
 *                                                         metrics.jsonl, summary.json
 *   <data.output_dir>/embeddings/     rdino-embed        (embed.output names one file)
 *   <data.output_dir>/report/         rdino-analyze      (analyze.output_dir) */
#ifndef RDINO_PATHS_H
#define RDINO_PATHS_H

#include "rdino/config.h"
#include "rdino/error.h"
#include "rdino/file.h"

typedef enum {
    RD_DIR_SYNTH,
    RD_DIR_PREPROCESSED,
    RD_DIR_SHARDS,
    RD_DIR_PRETRAIN,
    RD_DIR_CHECKPOINTS, /* <pretrain>/checkpoints */
    RD_DIR_METRICS,     /* <pretrain>/metrics.jsonl (a file) */
    RD_DIR_EMBEDDINGS,
    RD_DIR_REPORT,
    RD_DIR_COUNT
} rd_pipeline_dir;

/* path = the folder (or file) `which` of the configured pipeline. RD_EINVAL (naming the key)
 * when it does not fit in RD_PATH_MAX. */
rd_status rd_pipeline_path(const rd_config *cfg, rd_pipeline_dir which, char path[RD_PATH_MAX],
                           rd_error *err);
/* What a reading stage uses: the value of its own key (e.g. "embed.shards_dir") when set, else
 * rd_pipeline_path(which). */
rd_status rd_pipeline_input(const rd_config *cfg, const char *key, rd_pipeline_dir which,
                            char path[RD_PATH_MAX], rd_error *err);
/* "synth", "preprocessed", "shards", ... (the --print-paths names). */
const char *rd_pipeline_dir_name(rd_pipeline_dir which);

#endif
