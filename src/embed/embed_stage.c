/* The embed stage: resolves the input (shards or PNG files), the encoder (a checkpoint's
 * backbone, released weights, or a random initialisation), the preprocessing and the output of
 * a configuration, then embeds (embed.h, embed_images.h). */
#include "rdino/embed.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "embed_images.h"
#include "rdino/agree.h"
#include "rdino/checkpoint.h"
#include "rdino/file.h"
#include "rdino/log.h"
#include "rdino/paths.h"
#include "rdino/weights.h"

typedef enum { ENCODER_CHECKPOINT, ENCODER_RANDOM, ENCODER_WEIGHTS } encoder_kind;

/* What the configuration asks for, resolved and checked before any model is loaded. */
typedef struct stage_plan {
    encoder_kind kind;
    const char *weights, *images;
    char name[RD_PATH_MAX];
    char output[RD_PATH_MAX], shards[RD_PATH_MAX], checkpoint[RD_PATH_MAX];
    char processor[RD_PATH_MAX + 32]; /* the weights' preprocessor_config.json, "" if none */
    unsigned splits;
    rd_embed_prep prep;
    int interpolation; /* rd_pos_interp, or -1 for auto: the encoder's own */
} stage_plan;

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
                             "(or use --init random, or --weights)")
              : RD_OK;
}

/* The encoder's default name for released weights: the folder's name ("rad-dino"), or the
 * file's without .safetensors unless it is one of a snapshot's own files (then the folder's). */
static void weights_name(const char *path, char *name, size_t n) {
    char copy[RD_PATH_MAX];
    snprintf(copy, sizeof copy, "%s", path);
    for (int part = 0; part < 2; part++) {
        size_t len = strlen(copy);
        while (len > 1 && copy[len - 1] == '/') copy[--len] = '\0';
        char *slash = strrchr(copy, '/');
        const char *base = slash ? slash + 1 : copy;
        int snapshot_file =
            strcmp(base, RD_WEIGHTS_HF_FILE) == 0 || strcmp(base, RD_WEIGHTS_ORIGINAL_FILE) == 0;
        if (part == 1 || !snapshot_file || !slash) {
            snprintf(name, n, "%s", base);
            break;
        }
        *slash = '\0'; /* the snapshot's folder */
    }
    size_t len = strlen(name), ext = strlen(".safetensors");
    if (len > ext && strcmp(name + len - ext, ".safetensors") == 0) name[len - ext] = '\0';
}

static rd_status plan_encoder(const rd_config *cfg, stage_plan *s, rd_error *err) {
    s->weights = rd_cfg_str(cfg, "embed.weights");
    int random = strcmp(rd_cfg_str(cfg, "embed.init"), "random") == 0;
    s->kind = *s->weights ? ENCODER_WEIGHTS : random ? ENCODER_RANDOM : ENCODER_CHECKPOINT;
    if (*s->weights && (random || *rd_cfg_str(cfg, "embed.checkpoint")))
        return rd_fail(err, RD_EINVAL,
                       "embed.weights (%s) and %s both name the encoder: give one of them",
                       s->weights, random ? "embed.init: random" : "embed.checkpoint");
    const char *name = rd_cfg_str(cfg, "embed.name");
    if (*name)
        snprintf(s->name, sizeof s->name, "%s", name);
    else if (s->kind == ENCODER_WEIGHTS)
        weights_name(s->weights, s->name, sizeof s->name);
    else
        snprintf(s->name, sizeof s->name, "%s", random ? "random-init" : "trained");
    snprintf(s->checkpoint, sizeof s->checkpoint, "none");
    const char *mode = rd_cfg_str(cfg, "embed.interpolation");
    s->interpolation = -1;
    if (strcmp(mode, "auto") != 0) {
        rd_pos_interp m;
        if (rd_pos_interp_parse(mode, &m, err)) return rd_wrap(err, "embed.interpolation");
        s->interpolation = (int)m;
    }
    return RD_OK;
}

/* embed.preprocess. hf is transformers' pipeline on PNG files. Shards hold images rdino-preprocess
 * already resized, cropped and windowed (min-max or percentiles), which BitImageProcessor
 * never does: running it on them would reproduce nothing, so shards are refused with hf. */
static rd_status plan_preprocessing(const rd_config *cfg, stage_plan *s, rd_error *err) {
    /* the weights' processor: in the snapshot folder, or beside the file (as config.json) */
    struct stat sb;
    s->processor[0] = '\0';
    if (s->kind == ENCODER_WEIGHTS && stat(s->weights, &sb) == 0) {
        const char *slash = strrchr(s->weights, '/');
        if (S_ISDIR(sb.st_mode))
            snprintf(s->processor, sizeof s->processor, "%s/%s", s->weights, RD_HF_PROCESSOR_FILE);
        else
            snprintf(s->processor, sizeof s->processor, "%.*s%s",
                     slash ? (int)(slash - s->weights + 1) : 0, s->weights, RD_HF_PROCESSOR_FILE);
        if (stat(s->processor, &sb) != 0) s->processor[0] = '\0';
    }
    const char *mode = rd_cfg_str(cfg, "embed.preprocess");
    if (strcmp(mode, "hf") == 0 && !*s->images)
        return rd_fail(err, RD_EINVAL,
                       "embed.preprocess: hf is transformers' preprocessing of PNG files "
                       "(embed.images); shards hold images rdino-preprocess already resized and "
                       "windowed, so it cannot be reproduced on them (use embed.preprocess: "
                       "rdino, or embed.images)");
    if (strcmp(mode, "hf") == 0 && !s->processor[0])
        return rd_fail(err, RD_EINVAL,
                       "embed.preprocess: hf needs embed.weights to be a snapshot folder holding "
                       "%s, or a file beside one (%s)",
                       RD_HF_PROCESSOR_FILE, *s->weights ? s->weights : "no weights given");
    s->prep =
        strcmp(mode, "hf") == 0 || (strcmp(mode, "auto") == 0 && *s->images && s->processor[0])
            ? RD_EMBED_PREP_HF
            : RD_EMBED_PREP_RDINO;
    if (s->prep == RD_EMBED_PREP_HF && rd_cfg_int(cfg, "embed.resolution") != 0)
        return rd_fail(err, RD_EINVAL,
                       "embed.resolution %lld: with hf preprocessing %s decides the input size "
                       "(crop_size); set embed.preprocess: rdino to choose it",
                       (long long)rd_cfg_int(cfg, "embed.resolution"), s->processor);
    return RD_OK;
}

static rd_status plan_stage(const rd_config *cfg, stage_plan *s, rd_error *err) {
    memset(s, 0, sizeof *s);
    s->images = rd_cfg_str(cfg, "embed.images");
    rd_status st = plan_encoder(cfg, s, err);
    if (!st) st = plan_preprocessing(cfg, s, err);
    if (!st && !*s->images)
        st = rd_pipeline_input(cfg, "embed.shards_dir", RD_DIR_SHARDS, s->shards, err);
    if (!st && !*s->images)
        st = rd_embed_parse_splits(rd_cfg_str(cfg, "embed.splits"), &s->splits, err);
    if (!st && *rd_cfg_str(cfg, "embed.output")) {
        if (snprintf(s->output, sizeof s->output, "%s", rd_cfg_str(cfg, "embed.output")) >=
            (int)sizeof s->output)
            st = rd_fail(err, RD_EINVAL, "embed.output is too long for a path");
    } else if (!st) {
        char dir[RD_PATH_MAX];
        st = rd_pipeline_path(cfg, RD_DIR_EMBEDDINGS, dir, err);
        if (!st && snprintf(s->output, sizeof s->output, "%s/%s.h5", dir, s->name) >=
                       (int)sizeof s->output)
            st = rd_fail(err, RD_EINVAL, "data.output_dir is too long for a path");
    }
    return st;
}

/* ---- the encoder ------------------------------------------------------------------------ */

static rd_status set_key(rd_config *cfg, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static rd_status set_key(rd_config *cfg, const char *key, const char *fmt, ...) {
    char assignment[256];
    int n = snprintf(assignment, sizeof assignment, "%s=", key);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(assignment + n, sizeof assignment - (size_t)n, fmt, ap);
    va_end(ap);
    return rd_config_override(cfg, assignment, NULL);
}

/* embed.interpolation, when not auto, over the encoder's configuration. */
static rd_status apply_interpolation(rd_config *enc, int mode, rd_error *err) {
    if (mode < 0) return RD_OK;
    rd_vit_config c = {0};
    rd_pos_interp_apply(&c, (rd_pos_interp)mode);
    if (set_key(enc, "student.interpolate_offset", "%.17g", c.interpolate_offset) ||
        set_key(enc, "student.interpolate_antialias", "%s",
                c.interpolate_antialias ? "true" : "false"))
        return rd_fail(err, RD_EINVAL, "embed.interpolation: cannot set it");
    return RD_OK;
}

/* enc = the run's configuration with the student.* keys describing c (released weights), so
 * the file's model_config describes the encoder in rdino's keys. */
static rd_status describe_weights(const rd_config *cfg, const rd_vit_config *c, rd_config *enc,
                                  rd_error *err) {
    rd_status st = rd_config_copy(enc, cfg, err);
    if (st) return st;
    int bad =
        set_key(enc, "student.arch", "vit_custom") ||
        set_key(enc, "student.embed_dim", "%d", c->embed_dim) ||
        set_key(enc, "student.depth", "%d", c->depth) ||
        set_key(enc, "student.num_heads", "%d", c->num_heads) ||
        set_key(enc, "student.mlp_ratio", "%.9g", (double)c->mlp_ratio) ||
        set_key(enc, "student.patch_size", "%d", c->patch_size) ||
        set_key(enc, "student.in_chans", "%d", c->in_chans) ||
        set_key(enc, "student.num_register_tokens", "%d", c->num_register_tokens) ||
        set_key(enc, "student.img_size", "%d", c->img_size) ||
        set_key(enc, "student.layerscale", "%.9g", (double)c->layerscale) ||
        set_key(enc, "student.drop_path_rate", "%.17g", c->drop_path_rate) ||
        set_key(enc, "student.qkv_bias", "%s", c->qkv_bias ? "true" : "false") ||
        set_key(enc, "student.proj_bias", "%s", c->proj_bias ? "true" : "false") ||
        set_key(enc, "student.ffn_bias", "%s", c->ffn_bias ? "true" : "false") ||
        set_key(enc, "student.ffn_layer", "%s", c->ffn == RD_VIT_FFN_SWIGLU ? "swiglu" : "mlp") ||
        set_key(enc, "student.interpolate_offset", "%.17g", c->interpolate_offset) ||
        set_key(enc, "student.interpolate_antialias", "%s",
                c->interpolate_antialias ? "true" : "false");
    return bad ? rd_fail(err, RD_EINVAL, "%s: the weights' shape has no rdino configuration",
                         "embed.weights")
               : RD_OK;
}

/* Collective: released weights, opened and loaded by rank 0, declared and broadcast everywhere;
 * interpolation (>= 0) replaces the weights' own. */
static rd_status load_weights(const char *path, int interpolation, MPI_Comm comm, rd_vit *vit,
                              rd_param_set *set, rd_error *err) {
    int rank;
    MPI_Comm_rank(comm, &rank);
    rd_pretrained pre;
    rd_vit_config vc;
    rd_status st = RD_OK;
    rd_params_init(set);
    if (rank == 0 && !(st = rd_pretrained_open(&pre, path, err))) vc = pre.cfg;
    int opened = rank == 0 && !st;
    if (!(st = rd_agree(comm, st, err))) {
        MPI_Bcast(&vc, (int)sizeof vc, MPI_BYTE, 0, comm);
        if (interpolation >= 0) rd_pos_interp_apply(&vc, (rd_pos_interp)interpolation);
        st = rd_vit_declare(vit, &vc, set, err);
        if (!st) st = rd_params_alloc(set, 0, err);
        if (!st && opened) st = rd_pretrained_load_backbone(&pre, vit, set, err);
        st = rd_agree(comm, st, err);
    }
    if (opened) rd_pretrained_close(&pre);
    if (!st) st = rd_bcast_floats(set->data, set->numel, 0, comm, err);
    if (st) rd_params_free(set);
    return st ? rd_wrap(err, "embed.weights") : RD_OK;
}

/* The encoder and the configuration describing it (enc, initialised here). */
static rd_status load_encoder(const rd_config *cfg, stage_plan *s, rd_config *enc, MPI_Comm comm,
                              rd_vit *vit, rd_param_set *set, rd_error *err) {
    rd_status st;
    switch (s->kind) {
    case ENCODER_RANDOM:
        st = rd_config_copy(enc, cfg, err);
        if (!st) st = apply_interpolation(enc, s->interpolation, err);
        return st ? st
                  : rd_embed_random_backbone(enc, (uint64_t)rd_cfg_int(cfg, "embed.seed"), vit, set,
                                             err);
    case ENCODER_CHECKPOINT:
        st = checkpoint_path(cfg, s->checkpoint, err);
        if (!st) st = rd_embed_checkpoint_config(s->checkpoint, cfg, enc, err);
        if (!st) st = apply_interpolation(enc, s->interpolation, err);
        return st ? st
                  : rd_embed_checkpoint_backbone(s->checkpoint, rd_cfg_str(cfg, "embed.model"), enc,
                                                 comm, vit, set, err);
    case ENCODER_WEIGHTS:
        st = load_weights(s->weights, s->interpolation, comm, vit, set, err);
        if (!st && (st = describe_weights(cfg, &vit->cfg, enc, err))) rd_params_free(set);
        return st;
    }
    return rd_fail(err, RD_EINVAL, "embed: unknown encoder");
}

/* ---- the run ------------------------------------------------------------------------------- */

/* embed.precision: bf16 copies of the block linears into *w (packed once, here) when the path
 * computes in bf16; *use = w then, else NULL (fp32, with one warning when bf16 was asked for
 * and this CPU, or RDINO_BF16=off, gives fp32). */
static rd_status plan_precision(const rd_config *cfg, const rd_vit *vit, const rd_param_set *set,
                                int rank, rd_vit_bf16 *w, const rd_vit_bf16 **use, rd_error *err) {
    *use = NULL;
    memset(w, 0, sizeof *w);
    if (strcmp(rd_cfg_str(cfg, "embed.precision"), "bf16") != 0) return RD_OK;
    rd_status st = rd_vit_bf16_init(w, vit, set, 0, err);
    if (st) return rd_wrap(err, "embed.precision: bf16");
    if (w->path == RD_BF16_PATH_FP32) {
        if (rank == 0)
            rd_warn("embed.precision: bf16 computes in fp32 here: %s (RDINO_BF16=force runs the "
                    "emulated bf16 path, slowly)",
                    rd_bf16_cpu_has() ? "RDINO_BF16=off"
                                      : "this CPU has no AVX512-BF16 instructions");
        rd_vit_bf16_free(w);
        return RD_OK;
    }
    if (rank == 0)
        rd_info("embed.precision: bf16 block linears on the %s path (weights packed once: %.1f "
                "MiB); patch embedding, LayerNorm, attention, GELU and residuals in fp32",
                rd_bf16_path_name(w->path), (double)w->bytes / (1024.0 * 1024.0));
    *use = w;
    return RD_OK;
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

/* Collective: PNG files (embed.images) into the output. */
static rd_status run_images(const rd_config *cfg, const stage_plan *s, const rd_embed_params *p,
                            const rd_vit *vit, const rd_param_set *set, MPI_Comm comm,
                            rd_embed_stats *stats, rd_error *err) {
    rd_embed_images_params ip = {.source = s->images,
                                 .prep = s->prep,
                                 .hf_path = s->processor,
                                 .skip_corrupt = p->skip_corrupt};
    rd_status st = rd_prep_options_from_config(cfg, &ip.rdino, err);
    if (!st && s->prep == RD_EMBED_PREP_HF) st = rd_hf_processor_load(s->processor, &ip.hf, err);
    if ((st = rd_agree(comm, st, err))) return st;
    rd_embed_image_list list;
    st = rd_embed_list_images(cfg, s->images, comm, &list, err);
    if (!st) st = rd_embed_images_run(p, &ip, &list, vit, set, comm, stats, err);
    rd_embed_image_list_free(&list);
    return st;
}

rd_status rd_embed_stage(const rd_config *cfg, MPI_Comm comm, rd_error *err) {
    stage_plan s;
    rd_status st = rd_agree(comm, plan_stage(cfg, &s, err), err);
    if (st) return st;

    rd_vit vit;
    rd_vit_bf16 bf16;
    rd_param_set set;
    rd_config enc = {0};
    rd_params_init(&set);
    st = rd_agree(comm, load_encoder(cfg, &s, &enc, comm, &vit, &set, err), err);
    char *model_yaml = st ? NULL : rd_embed_model_yaml(&enc), *config_yaml = rd_config_dump(cfg);
    if (!st && (!model_yaml || !config_yaml))
        st = rd_fail(err, RD_ENOMEM, "out of memory for the configuration text");
    if (!st) {
        static const char *const INIT[] = {"checkpoint", "random", "weights"};
        const char *what = s.kind == ENCODER_RANDOM    ? "random initialisation"
                           : s.kind == ENCODER_WEIGHTS ? s.weights
                                                       : s.checkpoint;
        rd_info("rdino-embed: encoder '%s' = %s%s%s, ViT D=%d depth=%d heads=%d p=%d "
                "registers=%d native %d px, interpolation %s, %zu parameters",
                s.name, s.kind == ENCODER_CHECKPOINT ? rd_cfg_str(cfg, "embed.model") : "",
                s.kind == ENCODER_CHECKPOINT ? " of " : "", what, vit.cfg.embed_dim, vit.cfg.depth,
                vit.cfg.num_heads, vit.cfg.patch_size, vit.cfg.num_register_tokens,
                vit.cfg.img_size, rd_pos_interp_name((rd_pos_interp)rd_pos_interp_of(&vit.cfg)),
                rd_vit_param_count(&vit, &set));
        rd_embed_params p = {
            .shards_dir = s.shards,
            .output = s.output,
            .encoder = s.name,
            .init = INIT[s.kind],
            .checkpoint = s.checkpoint,
            .weights = s.kind == ENCODER_WEIGHTS ? s.weights : NULL,
            .seed = rd_cfg_int(cfg, "embed.seed"),
            .model_config = model_yaml,
            .config = config_yaml,
            .creator = "rdino-embed 0.1",
            .resolution = (int)rd_cfg_int(cfg, "embed.resolution"),
            .kernel = (rd_kernel)rd_kernel_parse(rd_cfg_str(cfg, "embed.resample")),
            .mean = rd_cfg_float(&enc, "pretrain.augment.mean"),
            .std = rd_cfg_float(&enc, "pretrain.augment.std"),
            .splits = s.splits,
            .batch = (int)rd_cfg_int(cfg, "embed.batch"),
            .skip_corrupt = strcmp(rd_cfg_str(cfg, "embed.on_corrupt"), "skip") == 0};
        rd_embed_stats stats;
        int rank;
        MPI_Comm_rank(comm, &rank);
        st = rd_agree(comm, plan_precision(cfg, &vit, &set, rank, &bf16, &p.bf16, err), err);
        if (!st)
            st = *s.images ? run_images(cfg, &s, &p, &vit, &set, comm, &stats, err)
                           : rd_embed_run(&p, &vit, &set, comm, &stats, err);
        if (!st) print_summary(&stats, s.output, comm);
        rd_vit_bf16_free(&bf16);
    }
    free(model_yaml);
    free(config_yaml);
    rd_config_free(&enc);
    rd_params_free(&set);
    return st;
}
