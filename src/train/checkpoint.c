/* Training checkpoints in HDF5 under DINOv2's state-dict names: see include/rdino/checkpoint.h
 * and docs/FORMATS.md ("Checkpoints"). */
#include "rdino/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdino/h5store.h"
#include "rdino/step.h"

enum { NAME_MAX_LEN = 256, CHUNK_BYTES = 1 << 20 };

static const char *const MOMENT_PREFIX[2] = {"optimizer/exp_avg/student",
                                             "optimizer/exp_avg_sq/student"};

void rd_checkpoint_path(char *buf, size_t n, const char *dir, int64_t steps) {
    snprintf(buf, n, "%s/step-%07lld.h5", dir, (long long)steps);
}

/* step-<digits>.h5 -> steps; -1 for any other name. */
static int64_t steps_of_name(const char *name) {
    if (strncmp(name, "step-", 5) != 0) return -1;
    const char *p = name + 5, *q = p;
    int64_t v = 0;
    while (*q >= '0' && *q <= '9' && q - p < 18) v = v * 10 + (*q++ - '0');
    return q > p && strcmp(q, ".h5") == 0 ? v : -1;
}

static int compare_desc(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x < y) - (x > y);
}

int rd_checkpoint_list(const char *dir, int64_t *steps, int max, rd_error *err) {
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) return 0;
        rd_fail(err, RD_EIO, "cannot list checkpoints in %s: %s", dir, strerror(errno));
        return -1;
    }
    /* Collect all, sort, keep the newest max. */
    int n = 0, cap = 0;
    int64_t *all = NULL;
    for (struct dirent *e; (e = readdir(d));) {
        int64_t s = steps_of_name(e->d_name);
        if (s < 0) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            int64_t *grown = realloc(all, (size_t)cap * sizeof *all);
            if (!grown) {
                free(all);
                closedir(d);
                rd_fail(err, RD_ENOMEM, "listing checkpoints in %s: out of memory", dir);
                return -1;
            }
            all = grown;
        }
        all[n++] = s;
    }
    closedir(d);
    if (n) qsort(all, (size_t)n, sizeof *all, compare_desc);
    if (n > max) n = max;
    if (n) memcpy(steps, all, (size_t)n * sizeof *steps);
    free(all);
    return n;
}

/* "<model>/<module>/<name>" of tensor idx, under an optional prefix directory. */
static void tensor_name(char *buf, const char *model, const rd_param_set *set, int idx) {
    const rd_param *p = &set->params[idx];
    snprintf(buf, NAME_MAX_LEN, "%s/%s/%s", model, rd_module_name(p->module), p->name);
}

/* ---- writing ---- */

static rd_status write_tensor(rd_h5file *f, const char *name, const rd_param *p, const float *data,
                              rd_error *err) {
    int64_t chunk[RD_PARAM_MAX_DIMS];
    size_t row_bytes = sizeof(float);
    for (int d = 1; d < p->ndim; d++) row_bytes *= (size_t)p->shape[d];
    int64_t rows = (int64_t)(CHUNK_BYTES / row_bytes);
    chunk[0] = rows < 1 ? 1 : rows > p->shape[0] ? p->shape[0] : rows;
    for (int d = 1; d < p->ndim; d++) chunk[d] = p->shape[d];
    rd_status st = rd_h5_create_dataset(f, name, RD_H5_F32, p->ndim, p->shape, chunk, 0, err);
    if (!st) st = rd_h5_write_rows(f, name, RD_H5_F32, 0, p->shape[0], data, err);
    return st;
}

/* Every tensor of set from base (data, a moment buffer) under "<model>/<module>/<name>". */
static rd_status write_set(rd_h5file *f, const char *model, const rd_param_set *set,
                           const float *base, rd_error *err) {
    char name[NAME_MAX_LEN];
    for (int i = 0; i < set->count; i++) {
        tensor_name(name, model, set, i);
        rd_status st = write_tensor(f, name, &set->params[i], base + set->params[i].offset, err);
        if (st) return st;
    }
    return RD_OK;
}

static rd_status write_optimizer_steps(rd_h5file *f, const rd_trainer *tr, rd_error *err) {
    const rd_param_set *set = &tr->student;
    char(*names)[NAME_MAX_LEN] = calloc((size_t)set->count, sizeof *names);
    const char **ptrs = calloc((size_t)set->count, sizeof *ptrs);
    rd_status st = RD_OK;
    if (!names || !ptrs) st = rd_fail(err, RD_ENOMEM, "%s: out of memory", f->path);
    size_t width = 1;
    for (int i = 0; !st && i < set->count; i++) {
        tensor_name(names[i], "student", set, i);
        ptrs[i] = names[i];
        size_t len = strlen(names[i]);
        if (len > width) width = len;
    }
    if (!st) st = rd_h5_create_strings(f, "optimizer/param_names", set->count, width, 0, 0, err);
    if (!st) st = rd_h5_write_strings(f, "optimizer/param_names", 0, set->count, ptrs, err);
    if (!st) {
        int64_t dims[1] = {set->count};
        st = rd_h5_create_dataset(f, "optimizer/step", RD_H5_I64, 1, dims, dims, 0, err);
    }
    if (!st)
        st = rd_h5_write_rows(f, "optimizer/step", RD_H5_I64, 0, set->count, tr->opt.step, err);
    free(names);
    free(ptrs);
    return st;
}

/* DINOv2 buffer names and shapes: dino_loss.center [1, K], ibot_patch_loss.center [1, 1, K];
 * "pending" holds the reduced sums of the last batch and their count [K + 1] (count 0: none). */
static const char *const CENTER_GROUP[2] = {"dino_loss", "ibot_patch_loss"};

/* The shape DINOv2 gives centre k (0: DINO, 1: iBOT) of K prototypes. */
static rd_param center_shape(int k, int K) {
    rd_param p = {.ndim = k == 0 ? 2 : 3, .shape = {1, 1, 1}};
    p.shape[p.ndim - 1] = K;
    return p;
}

static rd_status write_centers(rd_h5file *f, const rd_trainer *tr, rd_error *err) {
    const rd_center *c[2] = {&tr->center_dino, &tr->center_ibot};
    char name[NAME_MAX_LEN];
    for (int k = 0; k < 2; k++) {
        const int K = c[k]->K;
        rd_param shape = center_shape(k, K);
        snprintf(name, sizeof name, "%s/center", CENTER_GROUP[k]);
        rd_status st = write_tensor(f, name, &shape, c[k]->value, err);
        if (st) return st;
        /* sums already folded into the centre are stored with count 0 (none pending) */
        double *pending = malloc((size_t)(K + 1) * sizeof *pending);
        if (!pending) return rd_fail(err, RD_ENOMEM, "%s: out of memory", f->path);
        memcpy(pending, c[k]->pending, (size_t)(K + 1) * sizeof *pending);
        if (!c[k]->has_pending) pending[K] = 0.0;
        int64_t dims[1] = {(int64_t)K + 1};
        snprintf(name, sizeof name, "%s/pending", CENTER_GROUP[k]);
        st = rd_h5_create_dataset(f, name, RD_H5_F64, 1, dims, dims, 0, err);
        if (!st) st = rd_h5_write_rows(f, name, RD_H5_F64, 0, dims[0], pending, err);
        free(pending);
        if (st) return st;
    }
    return RD_OK;
}

static rd_status write_meta(rd_h5file *f, const rd_trainer *tr, const rd_checkpoint_meta *meta,
                            rd_error *err) {
    rd_status st = rd_h5_set_attr_int(f, "/", "format_version", RD_CHECKPOINT_FORMAT_VERSION, err);
    if (!st) st = rd_h5_set_attr_str(f, "/", "creator", "rdino-pretrain 0.1", err);
    if (!st) st = rd_h5_set_attr_int(f, "/", "steps_completed", meta->steps, err);
    if (!st) st = rd_h5_set_attr_int(f, "/", "iteration", meta->steps - 1, err);
    if (!st) st = rd_h5_set_attr_int(f, "/", "global_batch", meta->global_batch, err);
    if (!st) st = rd_h5_set_attr_int(f, "/", "seed", meta->seed, err);
    if (!st) st = rd_h5_set_attr_int(f, "/", "nranks", meta->nranks, err);
    if (!st)
        st = rd_h5_set_attr_str(
            f, "/", "centering",
            tr->cfg.targets == RD_TARGETS_CENTERING ? "centering" : "sinkhorn_knopp", err);
    if (!st)
        st = rd_h5_set_attr_str(f, "/", "rng",
                                "Philox4x32-10, counter-based: every draw is keyed by (seed, "
                                "purpose, iteration, image index), so steps_completed is the "
                                "whole generator state",
                                err);
    if (!st) st = rd_h5_set_attr_str(f, "/", "config", meta->config ? meta->config : "", err);
    return st;
}

/* What a checkpoint takes on disk, generously: student, its two Adam moments and the teacher in
 * fp32, names and steps, centres, the config text and 256 KiB for HDF5's own metadata. */
static int64_t checkpoint_bytes(const rd_trainer *tr, const rd_checkpoint_meta *meta) {
    int64_t floats = 3 * (int64_t)tr->student.numel + (int64_t)tr->teacher.numel;
    int64_t centers = 2 * ((int64_t)tr->center_dino.K + tr->center_ibot.K) * 12;
    return floats * (int64_t)sizeof(float) + (int64_t)tr->student.count * (NAME_MAX_LEN + 8) +
           centers + (meta->config ? (int64_t)strlen(meta->config) : 0) + (256 << 10);
}

rd_status rd_checkpoint_write(const char *path, const rd_trainer *tr,
                              const rd_checkpoint_meta *meta, rd_error *err) {
    rd_h5file f;
    rd_status st = rd_h5_create(&f, path, MPI_COMM_SELF, err);
    if (st) return st;
    /* room for all of it, or a clean error before HDF5 writes (see rd_h5_check_room) */
    st = rd_h5_check_room(&f, checkpoint_bytes(tr, meta), err);
    if (!st) st = write_meta(&f, tr, meta, err);
    if (!st) st = write_set(&f, "student", &tr->student, tr->student.data, err);
    if (!st) st = write_set(&f, "teacher", &tr->teacher, tr->teacher.data, err);
    if (!st) st = write_set(&f, MOMENT_PREFIX[0], &tr->student, tr->opt.exp_avg, err);
    if (!st) st = write_set(&f, MOMENT_PREFIX[1], &tr->student, tr->opt.exp_avg_sq, err);
    if (!st) st = write_optimizer_steps(&f, tr, err);
    if (!st && tr->cfg.targets == RD_TARGETS_CENTERING) st = write_centers(&f, tr, err);
    if (st) {
        rd_h5_discard(&f);
        return rd_wrap(err, "writing checkpoint %s", path);
    }
    return rd_h5_publish(&f, err);
}

/* ---- reading ---- */

/* Reads dataset name, which must have exactly the shape of p, into data. */
static rd_status read_tensor(const rd_h5file *f, const char *name, const rd_param *p, float *data,
                             rd_error *err) {
    if (!rd_h5_exists(f, name))
        return rd_fail(err, RD_ENOTFOUND, "%s: no dataset %s", f->path, name);
    int64_t dims[RD_H5_MAX_DIMS];
    int ndim;
    rd_status st = rd_h5_shape(f, name, dims, &ndim, NULL, err);
    if (st) return st;
    int same = ndim == p->ndim;
    for (int d = 0; same && d < ndim; d++) same = dims[d] == p->shape[d];
    if (!same) {
        char want[96] = "", got[96] = "";
        for (int d = 0; d < p->ndim; d++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", d ? "," : "",
                     (long long)p->shape[d]);
        for (int d = 0; d < ndim; d++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? "," : "",
                     (long long)dims[d]);
        return rd_fail(err, RD_EFORMAT, "%s: dataset %s has shape [%s], the model needs [%s]",
                       f->path, name, got, want);
    }
    return rd_h5_read_rows(f, name, RD_H5_F32, 0, p->shape[0], data, err);
}

static rd_status read_set(const rd_h5file *f, const char *model, rd_param_set *set, float *base,
                          unsigned modules, rd_error *err) {
    char name[NAME_MAX_LEN];
    for (int i = 0; i < set->count; i++) {
        if (!(modules & (1u << set->params[i].module))) continue;
        tensor_name(name, model, set, i);
        rd_status st = read_tensor(f, name, &set->params[i], base + set->params[i].offset, err);
        if (st) return st;
    }
    return RD_OK;
}

static rd_status read_optimizer_steps(const rd_h5file *f, rd_trainer *tr, rd_error *err) {
    const rd_param_set *set = &tr->student;
    int64_t dims[RD_H5_MAX_DIMS];
    int ndim;
    size_t width = 0;
    rd_status st = rd_h5_shape(f, "optimizer/param_names", dims, &ndim, &width, err);
    if (st) return st;
    const int64_t n = dims[0];
    const size_t stride = width + 1;
    char *names = calloc((size_t)(n > 0 ? n : 1), stride);
    int64_t *steps = calloc((size_t)(n > 0 ? n : 1), sizeof *steps);
    if (!names || !steps) st = rd_fail(err, RD_ENOMEM, "%s: out of memory", f->path);
    if (!st) st = rd_h5_read_strings(f, "optimizer/param_names", 0, n, names, stride, err);
    if (!st) st = rd_h5_shape(f, "optimizer/step", dims, &ndim, NULL, err);
    if (!st && (ndim != 1 || dims[0] != n))
        st = rd_fail(err, RD_EFORMAT, "%s: optimizer/step has %lld entries for %lld names", f->path,
                     (long long)dims[0], (long long)n);
    if (!st) st = rd_h5_read_rows(f, "optimizer/step", RD_H5_I64, 0, n, steps, err);
    char want[NAME_MAX_LEN];
    for (int i = 0; !st && i < set->count; i++) {
        tensor_name(want, "student", set, i);
        int64_t j = 0;
        while (j < n && strcmp(names + (size_t)j * stride, want) != 0) j++;
        if (j == n)
            st = rd_fail(err, RD_ENOTFOUND, "%s: optimizer/param_names lacks %s", f->path, want);
        else
            tr->opt.step[i] = steps[j];
    }
    free(names);
    free(steps);
    return st;
}

static rd_status read_centers(const rd_h5file *f, rd_trainer *tr, rd_error *err) {
    rd_center *c[2] = {&tr->center_dino, &tr->center_ibot};
    char name[NAME_MAX_LEN];
    for (int k = 0; k < 2; k++) {
        rd_param shape = center_shape(k, c[k]->K);
        snprintf(name, sizeof name, "%s/center", CENTER_GROUP[k]);
        rd_status st = read_tensor(f, name, &shape, c[k]->value, err);
        if (st) return st;
        snprintf(name, sizeof name, "%s/pending", CENTER_GROUP[k]);
        int64_t dims[RD_H5_MAX_DIMS];
        int ndim;
        if (!rd_h5_exists(f, name))
            return rd_fail(err, RD_ENOTFOUND, "%s: no dataset %s", f->path, name);
        if ((st = rd_h5_shape(f, name, dims, &ndim, NULL, err))) return st;
        if (ndim != 1 || dims[0] != c[k]->K + 1)
            return rd_fail(err, RD_EFORMAT, "%s: %s should hold %d values", f->path, name,
                           c[k]->K + 1);
        if ((st = rd_h5_read_rows(f, name, RD_H5_F64, 0, dims[0], c[k]->pending, err))) return st;
        c[k]->has_pending = c[k]->pending[c[k]->K] > 0;
    }
    return RD_OK;
}

static rd_status read_meta(const rd_h5file *f, rd_checkpoint_meta *meta, rd_error *err) {
    int64_t version = 0;
    char *config = NULL;
    rd_status st = rd_h5_get_attr_int(f, "/", "format_version", &version, err);
    if (!st && version != RD_CHECKPOINT_FORMAT_VERSION)
        st = rd_fail(err, RD_EFORMAT, "%s: checkpoint format_version %lld, this rdino reads %d",
                     f->path, (long long)version, RD_CHECKPOINT_FORMAT_VERSION);
    if (!st) st = rd_h5_get_attr_int(f, "/", "steps_completed", &meta->steps, err);
    if (!st) st = rd_h5_get_attr_int(f, "/", "global_batch", &meta->global_batch, err);
    if (!st) st = rd_h5_get_attr_int(f, "/", "seed", &meta->seed, err);
    if (!st) st = rd_h5_get_attr_int(f, "/", "nranks", &meta->nranks, err);
    if (!st) st = rd_h5_get_attr_str(f, "/", "config", &config, err);
    meta->config = config;
    return st;
}

rd_status rd_checkpoint_read(const char *path, rd_trainer *tr, rd_checkpoint_meta *meta,
                             rd_error *err) {
    rd_h5file f;
    memset(meta, 0, sizeof *meta);
    rd_status st = rd_h5_open(&f, path, MPI_COMM_SELF, err);
    if (st) return st;
    const unsigned all = (1u << RD_MODULE_COUNT) - 1;
    st = read_meta(&f, meta, err);
    if (!st) st = read_set(&f, "student", &tr->student, tr->student.data, all, err);
    if (!st) st = read_set(&f, "teacher", &tr->teacher, tr->teacher.data, all, err);
    if (!st) st = read_set(&f, MOMENT_PREFIX[0], &tr->student, tr->opt.exp_avg, all, err);
    if (!st) st = read_set(&f, MOMENT_PREFIX[1], &tr->student, tr->opt.exp_avg_sq, all, err);
    if (!st) st = read_optimizer_steps(&f, tr, err);
    if (!st && tr->cfg.targets == RD_TARGETS_CENTERING) st = read_centers(&f, tr, err);
    rd_h5_close(&f);
    if (st) {
        free((char *)meta->config);
        meta->config = NULL;
    }
    return st;
}

rd_status rd_checkpoint_load_params(const char *path, const char *model, rd_param_set *set,
                                    unsigned modules, rd_error *err) {
    rd_h5file f;
    rd_status st = rd_h5_open(&f, path, MPI_COMM_SELF, err);
    if (st) return st;
    st = read_set(&f, model, set, set->data, modules, err);
    rd_h5_close(&f);
    return st;
}

rd_status rd_checkpoint_load_config(const char *path, rd_config *cfg, rd_error *err) {
    rd_h5file f;
    rd_status st = rd_h5_open(&f, path, MPI_COMM_SELF, err);
    if (st) return st;
    char *yaml = NULL;
    st = rd_h5_get_attr_str(&f, "/", "config", &yaml, err);
    rd_h5_close(&f);
    if (!st) {
        char origin[RD_PATH_MAX + 16];
        snprintf(origin, sizeof origin, "%s (config)", path);
        st = rd_config_load_string(cfg, yaml, origin, err);
    }
    free(yaml);
    return st;
}

rd_status rd_checkpoint_find_latest(const char *dir, char *path, size_t n, rd_error *err) {
    int64_t steps[64];
    int count = rd_checkpoint_list(dir, steps, 64, err);
    if (count < 0) return err ? err->code : RD_EIO;
    for (int i = 0; i < count; i++) {
        rd_checkpoint_path(path, n, dir, steps[i]);
        rd_h5file f;
        int64_t version = 0;
        rd_error local = {0};
        if (rd_h5_open(&f, path, MPI_COMM_SELF, &local)) continue;
        rd_status st = rd_h5_get_attr_int(&f, "/", "format_version", &version, &local);
        rd_h5_close(&f);
        if (!st && version == RD_CHECKPOINT_FORMAT_VERSION) return RD_OK;
    }
    return rd_fail(err, RD_ENOTFOUND, "no readable checkpoint (step-NNNNNNN.h5) in %s", dir);
}
