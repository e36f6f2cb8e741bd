/* Weights in and out of pretraining; see pretrain_weights.h. */
#include "pretrain_weights.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "rdino/agree.h"
#include "rdino/checkpoint.h"
#include "rdino/hf_processor.h"
#include "rdino/log.h"
#include "rdino/safetensors.h"
#include "rdino/weights.h"

int rd_is_released_weights(const char *path) {
    struct stat sb;
    size_t n = strlen(path), ext = strlen(".safetensors");
    return (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) ||
           (n > ext && strcmp(path + n - ext, ".safetensors") == 0);
}

/* ---- the configuration the weights complete ---------------------------------------------- */

/* What the weights say about the model beyond their tensors. */
typedef struct weights_record {
    int img_size, antialias;
    double offset;
} weights_record;

static rd_status read_record(const char *path, weights_record *rec, rd_error *err) {
    rd_pretrained pre;
    rd_status st = rd_pretrained_open(&pre, path, err);
    if (st) return rd_wrap(err, "student.pretrained_weights");
    *rec = (weights_record){pre.cfg.img_size, pre.cfg.interpolate_antialias,
                            pre.cfg.interpolate_offset};
    rd_pretrained_close(&pre);
    return RD_OK;
}

static rd_status set_key(rd_config *cfg, const char *key, const char *value, rd_error *err) {
    char assignment[256];
    snprintf(assignment, sizeof assignment, "%s=%s", key, value);
    return rd_config_override(cfg, assignment, err);
}

rd_status rd_pretrain_resolve_config(const rd_config *cfg, MPI_Comm comm, rd_config *out,
                                     rd_error *err) {
    rd_status st = rd_config_copy(out, cfg, err);
    const char *path = rd_cfg_str(cfg, "student.pretrained_weights");
    if (st || !*path || !rd_is_released_weights(path)) return st;
    int rank;
    MPI_Comm_rank(comm, &rank);
    weights_record rec = {0};
    if (rank == 0) st = read_record(path, &rec, err);
    if ((st = rd_agree(comm, st, err))) return st;
    MPI_Bcast(&rec, (int)sizeof rec, MPI_BYTE, 0, comm);

    char value[64];
    int64_t crops = rd_cfg_int(cfg, "crops.global_crops_size");
    if (rd_cfg_int(cfg, "student.img_size") == 0 && rec.img_size != crops) {
        snprintf(value, sizeof value, "%d", rec.img_size);
        st = set_key(out, "student.img_size", value, err);
        if (!st && rank == 0)
            rd_info("pretrain: the position embedding keeps the weights' native %d px grid "
                    "(student.img_size) and is interpolated to the %lld px global crops",
                    rec.img_size, (long long)crops);
    }
    rd_vit_config file = {.interpolate_offset = rec.offset, .interpolate_antialias = rec.antialias};
    rd_vit_config run = {.interpolate_offset = rd_cfg_float(cfg, "student.interpolate_offset"),
                         .interpolate_antialias =
                             rd_cfg_bool(cfg, "student.interpolate_antialias")};
    const char *file_mode = rd_pos_interp_name((rd_pos_interp)rd_pos_interp_of(&file));
    if (!st && rd_cfg_origin_of(cfg, "student.interpolate_offset") == RD_CFG_FROM_DEFAULT &&
        rd_cfg_origin_of(cfg, "student.interpolate_antialias") == RD_CFG_FROM_DEFAULT) {
        snprintf(value, sizeof value, "%.17g", rec.offset);
        st = set_key(out, "student.interpolate_offset", value, err);
        if (!st)
            st = set_key(out, "student.interpolate_antialias", rec.antialias ? "true" : "false",
                         err);
        if (!st && rank == 0)
            rd_info("pretrain: position-embedding interpolation '%s', as the weights record",
                    file_mode);
    } else if (!st && rank == 0 && rd_pos_interp_of(&file) != rd_pos_interp_of(&run)) {
        rd_warn("pretrain: student.interpolate_offset %g / interpolate_antialias %d differ from "
                "the weights' interpolation '%s': at grids other than %d px the model starts "
                "from another function than the released one",
                run.interpolate_offset, run.interpolate_antialias, file_mode, rec.img_size);
    }
    return st;
}

/* ---- loading ------------------------------------------------------------------------------ */

static rd_status load_backbone(rd_trainer *tr, const char *path, const char *head_weights,
                               rd_error *err) {
    if (!rd_is_released_weights(path)) { /* an rdino checkpoint */
        const unsigned backbone = 1u << RD_MODULE_BACKBONE;
        rd_error first = {0};
        if (!rd_checkpoint_load_params(path, "teacher", &tr->student, backbone, &first) ||
            !rd_checkpoint_load_params(path, "student", &tr->student, backbone, err))
            return RD_OK;
        return rd_wrap(err, "student.pretrained_weights (teacher/backbone: %s; student/backbone)",
                       first.msg);
    }
    rd_pretrained pre;
    rd_status st = rd_pretrained_open(&pre, path, err);
    if (st) return rd_wrap(err, "student.pretrained_weights");
    if (pre.cfg_from_json && pre.cfg.num_heads != tr->vit.cfg.num_heads)
        st = rd_fail(err, RD_EINVAL,
                     "%s/%s has %d attention heads, the student %d "
                     "(student.arch / student.num_heads): the same tensors would compute "
                     "another network",
                     path, RD_WEIGHTS_CONFIG, pre.cfg.num_heads, tr->vit.cfg.num_heads);
    if (!st) st = rd_pretrained_load_backbone(&pre, &tr->vit, &tr->student, err);
    if (st) rd_wrap(err, "student.pretrained_weights");
    if (!st && pre.head_path[0] && !*head_weights)
        rd_info("%s is there too: dino.head_weights=%s would start the DINO head from it",
                pre.head_path, pre.head_path);
    rd_pretrained_close(&pre);
    return st;
}

static rd_status load_head(rd_trainer *tr, const char *path, rd_error *err) {
    rd_safetensors file;
    rd_status st = rd_safetensors_open(&file, path, err);
    if (!st) {
        st = rd_weights_load_head(&file, NULL, &tr->dino_head, &tr->student, err);
        rd_safetensors_close(&file);
    }
    if (st) return rd_wrap(err, "dino.head_weights");
    if (tr->separate_ibot)
        rd_info("dino.head_weights: the separate iBOT head (ibot.separate_head) starts from "
                "DINOv2's random initialisation");
    return RD_OK;
}

rd_status rd_pretrain_load_weights(rd_trainer *tr, const rd_config *cfg, rd_error *err) {
    const char *backbone = rd_cfg_str(cfg, "student.pretrained_weights");
    const char *head = rd_cfg_str(cfg, "dino.head_weights");
    rd_status st = RD_OK;
    if (*backbone && (st = load_backbone(tr, backbone, head, err))) return st;
    if (*head && (st = load_head(tr, head, err))) return st;
    memcpy(tr->teacher.data, tr->student.data, tr->student.numel * sizeof(float));
    rd_info("student and teacher initialised from %s%s%s", *backbone ? backbone : "",
            *backbone && *head ? " and " : "", head);
    return RD_OK;
}

/* ---- export ------------------------------------------------------------------------------- */

/* The keys that fix the pixels a model of this run saw, for "rdino_preprocessing". */
static const char *const PIXEL_KEYS[] = {"preprocess.size",        "preprocess.crop",
                                         "preprocess.resample",    "preprocess.normalize",
                                         "preprocess.percentiles", "preprocess.bit_depth",
                                         "pretrain.augment.mean",  "pretrain.augment.std",
                                         "embed.resolution",       "embed.resample"};

static json_t *key_value(const rd_config *cfg, const char *name) {
    for (int i = 0; i < cfg->nkeys; i++) {
        if (strcmp(cfg->keys[i].name, name) != 0) continue;
        const rd_cfg_value *v = &cfg->values[i];
        switch (cfg->keys[i].type) {
        case RD_CFG_INT:
            return json_integer(v->integer);
        case RD_CFG_FLOAT:
            return json_real(v->num);
        case RD_CFG_BOOL:
            return json_boolean(v->boolean);
        case RD_CFG_STRING:
            return json_string(v->text);
        case RD_CFG_FLOAT_LIST:
        case RD_CFG_INT_LIST: {
            json_t *list = json_array();
            for (int k = 0; list && k < v->list_len; k++)
                json_array_append_new(list, cfg->keys[i].type == RD_CFG_INT_LIST
                                                ? json_integer((json_int_t)v->list[k])
                                                : json_real(v->list[k]));
            return list;
        }
        }
    }
    return NULL;
}

static rd_status write_processor(const rd_config *cfg, const char *dir, rd_error *err) {
    char path[RD_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/%s", dir, RD_HF_PROCESSOR_FILE);
    /* transformers' closest processor: rdino's shards are preprocess.size square images,
     * embedded at that size with pretrain.augment's normalisation of v / 255 */
    rd_hf_processor p = rd_hf_bit_defaults();
    int size = (int)rd_cfg_int(cfg, "preprocess.size");
    p.shortest_edge = p.crop_height = p.crop_width = size;
    p.do_center_crop = strcmp(rd_cfg_str(cfg, "preprocess.crop"), "center") == 0;
    for (int c = 0; c < 3; c++) {
        p.image_mean[c] = rd_cfg_float(cfg, "pretrain.augment.mean");
        p.image_std[c] = rd_cfg_float(cfg, "pretrain.augment.std");
    }
    json_t *record = json_object();
    for (size_t i = 0; record && i < sizeof PIXEL_KEYS / sizeof *PIXEL_KEYS; i++)
        if (json_object_set_new(record, PIXEL_KEYS[i], key_value(cfg, PIXEL_KEYS[i])) != 0) {
            json_decref(record);
            record = NULL;
        }
    rd_status st = record ? rd_hf_processor_save(path, &p, record, err)
                          : rd_fail(err, RD_ENOMEM, "%s: out of memory", path);
    json_decref(record);
    return st;
}

rd_status rd_pretrain_export(const rd_trainer *tr, const rd_config *cfg, const char *dir,
                             rd_error *err) {
    int original = rd_cfg_bool(cfg, "pretrain.export_original_names");
    int head = rd_cfg_bool(cfg, "pretrain.export_head");
    rd_status st = rd_weights_export(dir, &tr->vit, &tr->teacher, head ? &tr->dino_head : NULL,
                                     original ? RD_EXPORT_ORIGINAL_NAMES : 0, err);
    if (!st) st = write_processor(cfg, dir, err);
    if (st) return rd_wrap(err, "pretrain.export_dir");
    rd_info("exported the teacher to %s: %s, %s, %s%s%s", dir, RD_WEIGHTS_CONFIG,
            RD_WEIGHTS_HF_FILE, RD_HF_PROCESSOR_FILE, original ? ", " RD_WEIGHTS_ORIGINAL_FILE : "",
            head ? ", " RD_WEIGHTS_HEAD_FILE : "");
    return RD_OK;
}
