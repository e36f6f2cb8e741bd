/* Embedding PNG files (a folder or a metadata CSV); see embed_images.h. */
#include "embed_images.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "embed_output.h"
#include "rdino/agree.h"
#include "rdino/file.h"
#include "rdino/h5store.h"
#include "rdino/hf_preprocess.h"
#include "rdino/image_tree.h"
#include "rdino/log.h"
#include "rdino/preprocess_plan.h"

/* ---- the list --------------------------------------------------------------------------- */

enum { LIST_STRINGS = 4 }; /* per image: path, image_id, patient_id, view */

/* The list as rank 0 builds it: strings appended to one blob, numbers in arrays. */
typedef struct list_builder {
    char *blob;
    size_t len, cap;
    float *age;
    int8_t *sex;
    int64_t *row;
    int8_t *findings; /* [n, list->nfindings] */
    int64_t n, cap_n;
    rd_embed_image_list *list; /* names the finding columns */
} list_builder;

static int builder_add(list_builder *b, const char *const strings[LIST_STRINGS], float age,
                       int8_t sex, int64_t row, const int8_t *findings) {
    size_t nf = (size_t)b->list->nfindings;
    size_t need = 0;
    for (int k = 0; k < LIST_STRINGS; k++) need += strlen(strings[k]) + 1;
    if (b->len + need > b->cap) {
        size_t cap = b->cap ? b->cap : 1 << 16;
        while (cap < b->len + need) cap *= 2;
        char *bigger = realloc(b->blob, cap);
        if (!bigger) return 0;
        b->blob = bigger, b->cap = cap;
    }
    if (b->n == b->cap_n) {
        int64_t cap = b->cap_n ? 2 * b->cap_n : 1024;
        float *age_ = realloc(b->age, (size_t)cap * sizeof *age_);
        if (age_) b->age = age_;
        int8_t *sex_ = realloc(b->sex, (size_t)cap);
        if (sex_) b->sex = sex_;
        int64_t *row_ = realloc(b->row, (size_t)cap * sizeof *row_);
        if (row_) b->row = row_;
        int8_t *findings_ = realloc(b->findings, (size_t)cap * nf + 1);
        if (findings_) b->findings = findings_;
        if (!age_ || !sex_ || !row_ || !findings_) return 0;
        b->cap_n = cap;
    }
    if (nf) memcpy(b->findings + (size_t)b->n * nf, findings, nf);
    for (int k = 0; k < LIST_STRINGS; k++) {
        size_t len = strlen(strings[k]) + 1;
        memcpy(b->blob + b->len, strings[k], len);
        b->len += len;
    }
    b->age[b->n] = age, b->sex[b->n] = sex, b->row[b->n] = row;
    b->n++;
    return 1;
}

static void builder_free(list_builder *b) {
    free(b->blob), free(b->age), free(b->sex), free(b->row), free(b->findings);
}

/* Every *.png under dir, by relative path. */
static rd_status list_folder(const char *dir, list_builder *b, rd_error *err) {
    rd_image_tree tree;
    rd_status st = rd_image_tree_list(dir, NULL, &tree, err);
    if (st) return rd_wrap(err, "embed.images");
    char path[2 * RD_PATH_MAX];
    for (size_t i = 0; i < tree.nfiles && !st; i++) {
        const char *rel = tree.files[i].path;
        if (!rd_path_is_png(rel)) continue;
        snprintf(path, sizeof path, "%s/%s", dir, rel);
        const char *strings[LIST_STRINGS] = {path, rel, "", ""};
        if (!builder_add(b, strings, NAN, -1, 0, NULL))
            st = rd_fail(err, RD_ENOMEM, "embed.images: out of memory listing %s", dir);
    }
    rd_image_tree_free(&tree);
    if (!st && b->n == 0)
        st = rd_fail(err, RD_ENOTFOUND, "embed.images: no *.png file under %s", dir);
    return st;
}

/* Logs the rows of a CSV that name no usable image: how many, and the first few. */
static void log_unused_rows(const rd_report *report) {
    size_t unused = 0;
    for (size_t i = 0; i < report->n; i++) unused += report->lines[i].outcome != RD_OUTCOME_WARNING;
    if (unused == 0) return;
    rd_warn("embed.images: %zu rows or files of the CSV are not embedded, as rdino-preprocess "
            "would leave them out; the first:",
            unused);
    for (size_t i = 0, shown = 0; i < report->n && shown < 5; i++) {
        const rd_report_line *l = &report->lines[i];
        if (l->outcome == RD_OUTCOME_WARNING) continue;
        rd_warn("  row %lld %s: %s (%s)", (long long)l->row, l->file, l->reason, l->detail);
        shown++;
    }
}

/* The rows of a metadata CSV, reconciled with the image folder as rdino-preprocess does. */
static rd_status list_csv(const rd_config *cfg, const char *csv, list_builder *b, rd_error *err) {
    rd_config copy;
    char assignment[RD_PATH_MAX + 32], root[RD_PATH_MAX];
    rd_status st = rd_config_copy(&copy, cfg, err);
    snprintf(assignment, sizeof assignment, "data.metadata_csv=%s", csv);
    if (!st) st = rd_config_override(&copy, assignment, err);
    if (!st && !*rd_cfg_str(cfg, "data.image_root")) { /* default: the CSV's folder */
        snprintf(root, sizeof root, "%s", csv);
        char *slash = strrchr(root, '/');
        if (!slash)
            snprintf(root, sizeof root, ".");
        else
            slash[slash == root] = '\0'; /* "/x.csv" -> "/" */
        snprintf(assignment, sizeof assignment, "data.image_root=%s", root);
        st = rd_config_override(&copy, assignment, err);
    }
    rd_preprocess_plan plan;
    if (!st) st = rd_preprocess_plan_build(&copy, NULL, &plan, err);
    if (st) {
        rd_config_free(&copy);
        return rd_wrap(err, "embed.images");
    }
    const char *image_root = rd_cfg_str(&copy, "data.image_root");
    char path[2 * RD_PATH_MAX];
    b->list->nfindings = plan.md.nfindings;
    memcpy(b->list->finding, plan.md.finding, sizeof plan.md.finding);
    for (size_t i = 0; i < plan.nitems && !st; i++) {
        const rd_meta_record *r = plan.items[i].record;
        snprintf(path, sizeof path, "%s/%s", image_root, plan.items[i].input->path);
        const char *strings[LIST_STRINGS] = {path, r->image_id, r->patient_id, r->view};
        if (!builder_add(b, strings, r->age, (int8_t)r->sex, r->row, r->findings))
            st = rd_fail(err, RD_ENOMEM, "embed.images: out of memory listing %s", csv);
    }
    log_unused_rows(&plan.report);
    rd_preprocess_plan_free(&plan);
    rd_config_free(&copy);
    if (!st && b->n == 0)
        st = rd_fail(err, RD_ENOTFOUND, "embed.images: no row of %s names a usable image", csv);
    return st;
}

/* Rank 0's list to every rank: sizes, then the blob, the numbers and the finding labels. */
static rd_status share_list(list_builder *b, int *has_row, MPI_Comm comm, rd_error *err) {
    int rank;
    MPI_Comm_rank(comm, &rank);
    rd_embed_image_list *l = b->list;
    int64_t sizes[4] = {b->n, (int64_t)b->len, *has_row, l->nfindings};
    MPI_Bcast(sizes, 4, MPI_INT64_T, 0, comm);
    MPI_Bcast(l->finding, (int)sizeof l->finding, MPI_CHAR, 0, comm);
    if (sizes[1] > INT_MAX || sizes[0] > INT_MAX / 8)
        return rd_fail(err, RD_ERANGE,
                       "embed.images: %lld images (%lld bytes of names) are too "
                       "many for one broadcast",
                       (long long)sizes[0], (long long)sizes[1]);
    if (rank != 0) {
        b->n = b->cap_n = sizes[0];
        b->len = b->cap = (size_t)sizes[1];
        *has_row = (int)sizes[2];
        l->nfindings = (int)sizes[3];
        b->blob = malloc(b->len + 1);
        b->age = malloc((size_t)b->n * sizeof *b->age + 1);
        b->sex = malloc((size_t)b->n + 1);
        b->row = malloc((size_t)b->n * sizeof *b->row + 1);
        b->findings = malloc((size_t)b->n * (size_t)l->nfindings + 1);
    }
    int ok = b->blob && b->age && b->sex && b->row && b->findings, all = 0;
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_LAND, comm);
    if (!all) return rd_fail(err, RD_ENOMEM, "embed.images: out of memory for the image list");
    MPI_Bcast(b->blob, (int)b->len, MPI_CHAR, 0, comm);
    MPI_Bcast(b->age, (int)b->n, MPI_FLOAT, 0, comm);
    MPI_Bcast(b->sex, (int)b->n, MPI_INT8_T, 0, comm);
    MPI_Bcast(b->row, (int)b->n, MPI_INT64_T, 0, comm);
    MPI_Bcast(b->findings, (int)b->n * l->nfindings, MPI_INT8_T, 0, comm);
    return RD_OK;
}

rd_status rd_embed_list_images(const rd_config *cfg, const char *source, MPI_Comm comm,
                               rd_embed_image_list *list, rd_error *err) {
    memset(list, 0, sizeof *list);
    int rank;
    MPI_Comm_rank(comm, &rank);
    list_builder b = {.list = list};
    rd_status st = RD_OK;
    if (rank == 0) {
        struct stat sb;
        if (stat(source, &sb) != 0) {
            st = rd_fail(err, errno == ENOENT ? RD_ENOTFOUND : RD_EIO,
                         "embed.images: cannot open %s: %s", source, strerror(errno));
        } else if (S_ISDIR(sb.st_mode)) {
            st = list_folder(source, &b, err);
        } else {
            list->has_source_row = 1;
            st = list_csv(cfg, source, &b, err);
        }
    }
    st = rd_agree(comm, st, err);
    if (!st) st = rd_agree(comm, share_list(&b, &list->has_source_row, comm, err), err);
    list->n = b.n;
    char ***columns[LIST_STRINGS] = {&list->path, &list->image_id, &list->patient_id, &list->view};
    for (int k = 0; k < LIST_STRINGS && !st; k++)
        if (!(*columns[k] = malloc((size_t)(b.n > 0 ? b.n : 1) * sizeof(char *))))
            st = rd_fail(err, RD_ENOMEM, "embed.images: out of memory for the image list");
    st = rd_agree(comm, st, err);
    if (st) {
        builder_free(&b);
        for (int k = 0; k < LIST_STRINGS; k++) free(*columns[k]), *columns[k] = NULL;
        return st;
    }
    char *s = b.blob;
    for (int64_t i = 0; i < b.n; i++)
        for (int k = 0; k < LIST_STRINGS; k++) {
            (*columns[k])[i] = s;
            s += strlen(s) + 1;
        }
    list->blob = b.blob, list->age = b.age, list->sex = b.sex, list->source_row = b.row;
    list->findings = b.findings;
    return RD_OK;
}

void rd_embed_image_list_free(rd_embed_image_list *list) {
    free(list->path), free(list->image_id), free(list->patient_id), free(list->view);
    free(list->age), free(list->sex), free(list->source_row), free(list->blob);
    free(list->findings);
    memset(list, 0, sizeof *list);
}

/* ---- the run ---------------------------------------------------------------------------- */

typedef struct images_run {
    const rd_embed_params *p;
    const rd_embed_images_params *ip;
    const rd_embed_image_list *list;
    const rd_vit *vit;
    const rd_param_set *params;
    MPI_Comm comm;
    int rank, nranks;
    int64_t *rows;      /* [n] list indices of the output rows (all, or those that read) */
    int64_t n;          /* output rows */
    int64_t skipped;    /* images left out (skip_corrupt) */
    rd_embed_grid grid; /* of the n rows */
    int H, W, D;        /* model input height and width, embedding width */
    size_t slot;        /* floats per image in input: 3 H W (hf) or H W (rdino) */
    float *input;       /* [batch, slot] */
    float *pmean;       /* [batch, D] */
    int *channels;      /* [batch] of each prepared image: 1 or 3 */
    rd_png_reader png;
    rd_hf_workspace hf;
    rd_hf_tally tally;
    rd_prep_workspace *prep;
    void *pixels; /* rdino: one preprocessed image */
    size_t pixel_bytes;
    rd_resampler rs;
    rd_vit_context ctx;
    int ctx_ready;
    rd_h5file out;
    double read_s, forward_s, write_s;
} images_run;

/* List image idx -> model input out (slot floats), *channels written. */
static rd_status prepare_image(images_run *e, int64_t idx, float *out, int *channels,
                               rd_error *err) {
    const rd_embed_images_params *ip = e->ip;
    const char *path = e->list->path[idx];
    rd_status st;
    if (ip->prep == RD_EMBED_PREP_HF) {
        rd_png_image png;
        rd_reject reason;
        rd_hf_result res;
        st = rd_png_read_stored(&e->png, path, ip->rdino.max_pixels, &png, &reason, err);
        if (!st) st = rd_hf_preprocess_png(&e->hf, &png, path, &ip->hf, 1, out, e->slot, &res, err);
        if (st) return st;
        rd_hf_tally_add(&e->tally, &res);
        *channels = res.channels;
        return RD_OK;
    }
    rd_prep_result res;
    st = rd_prep_image(e->prep, path, &ip->rdino, e->pixels, e->pixel_bytes, &res, err);
    if (st) return st;
    rd_grey_image img = {res.out_width, res.out_height, ip->rdino.bit_depth, e->pixels};
    *channels = 1;
    return rd_embed_input(&e->rs, &img, e->H, e->p->kernel, (float)e->p->mean, (float)e->p->std,
                          out, err);
}

/* skip_corrupt: every rank tries its share of the list once; the rows are the images that
 * read, in list order, the same on every rank. */
static rd_status find_readable(images_run *e, rd_error *err) {
    int64_t n = e->list->n, lo = n * e->rank / e->nranks, hi = n * (e->rank + 1) / e->nranks;
    int64_t *bad = malloc((size_t)(hi - lo + 1) * sizeof *bad), nbad = 0;
    int *counts = malloc((size_t)e->nranks * sizeof *counts);
    int *offsets = malloc((size_t)e->nranks * sizeof *offsets);
    int64_t *all_bad = NULL;
    rd_status st =
        bad && counts && offsets ? RD_OK : rd_fail(err, RD_ENOMEM, "embed: out of memory");
    for (int64_t i = lo; i < hi && !st; i++) {
        int channels;
        rd_error why = {0};
        if (prepare_image(e, i, e->input, &channels, &why) == RD_OK) continue;
        if (nbad < 3) rd_warn("embed.on_corrupt: skip: %s", why.msg);
        bad[nbad++] = i;
    }
    memset(&e->tally, 0, sizeof e->tally); /* the run counts each image once */
    if ((st = rd_agree(e->comm, st, err))) goto done;
    int mine = (int)nbad, total = 0;
    MPI_Allgather(&mine, 1, MPI_INT, counts, 1, MPI_INT, e->comm);
    for (int k = 0; k < e->nranks; k++) offsets[k] = total, total += counts[k];
    all_bad = malloc((size_t)(total + 1) * sizeof *all_bad);
    int ok = all_bad != NULL, all_ok;
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_LAND, e->comm);
    if (!all_ok) {
        st = rd_fail(err, RD_ENOMEM, "embed: out of memory");
        goto done;
    }
    MPI_Allgatherv(bad, mine, MPI_INT64_T, all_bad, counts, offsets, MPI_INT64_T, e->comm);
    /* ranks hold ascending, disjoint ranges: all_bad is sorted */
    e->n = 0;
    for (int64_t i = 0, j = 0; i < n; i++) {
        if (j < total && all_bad[j] == i) {
            j++;
            continue;
        }
        e->rows[e->n++] = i;
    }
    e->skipped = total;
    if (total > 0 && e->rank == 0)
        rd_warn("embed.on_corrupt: skip: %d of %lld images could not be read or preprocessed "
                "and are left out (the first of them are named above)",
                total, (long long)n);
    if (e->n == 0)
        st = rd_fail(err, RD_EFORMAT, "embed.images: none of the %lld images could be read",
                     (long long)n);
done:
    free(bad), free(counts), free(offsets), free(all_bad);
    return st;
}

/* The model input size every image comes out at. */
static rd_status input_size(images_run *e, rd_error *err) {
    const rd_embed_images_params *ip = e->ip;
    if (ip->prep == RD_EMBED_PREP_HF) {
        const rd_hf_processor *h = &ip->hf;
        if (!h->do_center_crop && !(h->do_resize && h->shortest_edge <= 0))
            return rd_fail(err, RD_EINVAL,
                           "%s: without do_center_crop (or a size {\"height\", \"width\"}) every "
                           "image comes out at its own size; rdino-embed batches images of one "
                           "size",
                           ip->hf_path);
        rd_hf_output_size(h, 1, 1, &e->W, &e->H);
        e->slot = 3 * (size_t)e->H * (size_t)e->W;
        return RD_OK;
    }
    if (!ip->rdino.center_crop)
        return rd_fail(err, RD_EINVAL,
                       "embed.images with rdino preprocessing needs preprocess.crop: center "
                       "(rdino-embed batches images of one size)");
    e->H = e->W = e->p->resolution > 0 ? e->p->resolution : ip->rdino.size;
    e->slot = (size_t)e->H * (size_t)e->W;
    e->pixel_bytes = rd_prep_output_bytes(&ip->rdino);
    return RD_OK;
}

static rd_status allocate(images_run *e, rd_error *err) {
    const rd_vit_config *c = &e->vit->cfg;
    size_t B = (size_t)(e->p->batch < e->list->n ? e->p->batch : e->list->n);
    e->D = c->embed_dim;
    if (e->H < c->patch_size || e->W < c->patch_size)
        return rd_fail(err, RD_EINVAL, "embed: input %dx%d is smaller than the patch size %d", e->W,
                       e->H, c->patch_size);
    if ((e->H % c->patch_size || e->W % c->patch_size) && e->rank == 0)
        rd_warn("embed: input %dx%d is not a multiple of the patch size %d: the last pixel rows "
                "and columns are not seen (as in PyTorch's strided patch embedding)",
                e->W, e->H, c->patch_size);
    e->rows = malloc((size_t)e->list->n * sizeof *e->rows);
    e->input = malloc(B * e->slot * sizeof(float));
    e->pmean = malloc(B * (size_t)e->D * sizeof(float));
    e->channels = malloc(B * sizeof *e->channels);
    if (e->ip->prep == RD_EMBED_PREP_RDINO) {
        e->prep = rd_prep_workspace_new();
        e->pixels = malloc(e->pixel_bytes);
        if (!e->prep || !e->pixels) return rd_fail(err, RD_ENOMEM, "embed: out of memory");
    }
    if (!e->rows || !e->input || !e->pmean || !e->channels)
        return rd_fail(err, RD_ENOMEM, "embed: out of memory for a batch of %zu images", B);
    rd_status st = rd_vit_context_init(&e->ctx, e->vit, (int)B, e->H, e->W, RD_VIT_INFER, err);
    e->ctx_ready = st == RD_OK;
    return st ? st : rd_vit_context_bf16(&e->ctx, e->p->bf16, err);
}

/* ---- output -------------------------------------------------------------------------------- */

static size_t widest(char *const *strings, const int64_t *rows, int64_t n) {
    size_t width = 1; /* HDF5 has no zero-width strings */
    for (int64_t i = 0; i < n; i++) {
        size_t len = strlen(strings[rows[i]]);
        width = len > width ? len : width;
    }
    return width;
}

static rd_status create_layout(images_run *e, rd_error *err) {
    const rd_embed_images_params *ip = e->ip;
    const rd_embed_image_list *l = e->list;
    rd_h5file *f = &e->out;
    rd_embed_layout layout = {.rows = e->n,
                              .dim = e->D,
                              .batch = e->p->batch,
                              .width_image_id = widest(l->image_id, e->rows, e->n),
                              .width_patient_id = widest(l->patient_id, e->rows, e->n),
                              .width_view = widest(l->view, e->rows, e->n),
                              .has_source_row = l->has_source_row,
                              .has_shard_row = 0,
                              .split_meaning = "no split: images embedded without shards are "
                                               "all 0 (train)",
                              .nfindings = l->nfindings,
                              .finding = l->finding};
    rd_status st = rd_embed_create_datasets(f, &layout, err);
    if (!st) st = rd_embed_write_encoder_attrs(f, e->p, e->vit, e->n, err);
    if (!st) st = rd_h5_set_attr_str(f, "/", "images", ip->source, err);
    if (!st)
        st = rd_h5_set_attr_str(f, "/", "preprocess", ip->prep == RD_EMBED_PREP_HF ? "hf" : "rdino",
                                err);
    if (!st) st = rd_h5_set_attr_int(f, "/", "resolution", e->H == e->W ? e->H : 0, err);
    if (!st) st = rd_h5_set_attr_int(f, "/", "input_height", e->H, err);
    if (!st) st = rd_h5_set_attr_int(f, "/", "input_width", e->W, err);
    if (!st) st = rd_h5_set_attr_int(f, "/", "skipped_images", e->skipped, err);
    if (!st && ip->prep == RD_EMBED_PREP_HF)
        st = rd_h5_set_attr_str(f, "/", "preprocessor_config", ip->hf_path, err);
    if (!st && ip->prep == RD_EMBED_PREP_RDINO) {
        int S = ip->rdino.size;
        st = rd_h5_set_attr_int(f, "/", "image_size", S, err);
        if (!st)
            st = rd_h5_set_attr_str(f, "/", "resample",
                                    e->H == S ? "none" : rd_kernel_name(e->p->kernel), err);
        if (!st) st = rd_h5_set_attr_float(f, "/", "mean", e->p->mean, err);
        if (!st) st = rd_h5_set_attr_float(f, "/", "std", e->p->std, err);
    }
    return st;
}

static rd_status write_metadata(images_run *e, rd_error *err) {
    int64_t first, end;
    rd_embed_grid_rows(&e->grid, &first, &end);
    int64_t n = end - first;
    const rd_embed_image_list *l = e->list;
    size_t m = (size_t)(n > 0 ? n : 1);
    const char **ptrs = malloc(m * sizeof *ptrs);
    float *age = malloc(m * sizeof *age);
    int8_t *sex = malloc(m);
    uint8_t *split = calloc(m, 1);
    int64_t *source_row = malloc(m * sizeof *source_row);
    int8_t *column = malloc(m); /* one finding label column at a time */
    rd_status st = RD_OK;
    if (!ptrs || !age || !sex || !split || !source_row || !column)
        st = rd_fail(err, RD_ENOMEM, "out of memory for the metadata of %lld images", (long long)n);
    for (int64_t i = 0; i < n && !st; i++) {
        int64_t k = e->rows[first + i];
        age[i] = l->age[k], sex[i] = l->sex[k], source_row[i] = l->source_row[k];
    }
    st = rd_agree(e->comm, st, err);
    char *const *columns[3] = {l->image_id, l->patient_id, l->view};
    const char *names[3] = {"/meta/image_id", "/meta/patient_id", "/meta/view"};
    for (int c = 0; c < 3 && !st; c++) {
        for (int64_t i = 0; i < n; i++) ptrs[i] = columns[c][e->rows[first + i]];
        st = rd_h5_write_strings(&e->out, names[c], first, n, ptrs, err);
    }
    if (!st) st = rd_h5_write_rows(&e->out, "/meta/age", RD_H5_F32, first, n, age, err);
    if (!st) st = rd_h5_write_rows(&e->out, "/meta/sex", RD_H5_I8, first, n, sex, err);
    if (!st) st = rd_h5_write_rows(&e->out, "/meta/split", RD_H5_U8, first, n, split, err);
    if (!st && l->has_source_row)
        st = rd_h5_write_rows(&e->out, "/meta/source_row", RD_H5_I64, first, n, source_row, err);
    for (int k = 0; k < l->nfindings && !st; k++) {
        char name[RD_FINDING_NAME_MAX + 8];
        snprintf(name, sizeof name, "/meta/%s", l->finding[k]);
        for (int64_t i = 0; i < n; i++)
            column[i] = l->findings[(size_t)e->rows[first + i] * (size_t)l->nfindings + (size_t)k];
        st = rd_h5_write_rows(&e->out, name, RD_H5_I8, first, n, column, err);
    }
    free(ptrs), free(age), free(sex), free(split), free(source_row), free(column);
    return st;
}

/* ---- the batches --------------------------------------------------------------------------- */

/* Output rows [first, first + b): preprocessed into input, then the backbone. */
static rd_status embed_batch(void *run, int64_t first, int b, rd_vit_output *out, rd_error *err) {
    images_run *e = run;
    double t0 = rd_now();
    rd_status st = RD_OK;
    int c = 1;
    for (int i = 0; i < b && !st; i++) {
        st = prepare_image(e, e->rows[first + i], e->input + (size_t)i * e->slot, &e->channels[i],
                           err);
        if (!st && e->channels[i] == 3) c = 3;
    }
    size_t hw = (size_t)e->H * (size_t)e->W;
    for (int i = 0; i < b && !st && e->ip->prep == RD_EMBED_PREP_HF; i++) {
        float *image = e->input + (size_t)i * e->slot;
        if (c == 1) { /* [b, 1, H, W]: each image's plane moves down to its place */
            memmove(e->input + (size_t)i * hw, image, hw * sizeof(float));
        } else if (e->channels[i] == 1) { /* a grey image in a colour batch: three planes */
            memcpy(image + hw, image, hw * sizeof(float));
            memcpy(image + 2 * hw, image, hw * sizeof(float));
        }
    }
    if (!st && c == 3 && e->vit->cfg.in_chans != 3)
        st = rd_fail(err, RD_EINVAL, "embed: a colour image for a %d-channel model",
                     e->vit->cfg.in_chans);
    double t1 = rd_now();
    e->read_s += t1 - t0;
    if (!st)
        st = rd_vit_forward(&e->ctx, e->params, e->input, b, c, e->H, e->W, NULL, NULL, out, err);
    if (!st) rd_embed_patch_mean(out->patch, b, out->n_patches, e->D, e->pmean);
    e->forward_s += rd_now() - t1;
    return st;
}

/* The 16-bit losses of hf preprocessing, summed over ranks, warned about once. */
static void warn_losses(const images_run *e) {
    unsigned long long mine[3] = {e->tally.images, e->tally.clipped_images,
                                  e->tally.high_byte_images},
                       all[3];
    MPI_Reduce(mine, all, 3, MPI_UNSIGNED_LONG_LONG, MPI_SUM, 0, e->comm);
    if (e->rank != 0) return;
    rd_hf_tally total = {(size_t)all[0], (size_t)all[1], (size_t)all[2]};
    rd_hf_tally_warn(&total);
}

static void release(images_run *e) {
    if (e->ctx_ready) rd_vit_context_free(&e->ctx);
    rd_png_reader_free(&e->png);
    rd_hf_workspace_free(&e->hf);
    if (e->prep) rd_prep_workspace_free(e->prep);
    rd_resampler_free(&e->rs);
    free(e->rows), free(e->input), free(e->pmean), free(e->channels), free(e->pixels);
}

rd_status rd_embed_images_run(const rd_embed_params *p, const rd_embed_images_params *ip,
                              const rd_embed_image_list *list, const rd_vit *vit,
                              const rd_param_set *params, MPI_Comm comm, rd_embed_stats *stats,
                              rd_error *err) {
    double start = rd_now();
    images_run e;
    memset(&e, 0, sizeof e);
    e.p = p, e.ip = ip, e.list = list, e.vit = vit, e.params = params, e.comm = comm;
    e.out.id = H5I_INVALID_HID;
    MPI_Comm_rank(comm, &e.rank);
    MPI_Comm_size(comm, &e.nranks);
    memset(stats, 0, sizeof *stats);
    rd_error local = {0};
    rd_status st = RD_OK;
    if (p->batch < 1 || (ip->prep == RD_EMBED_PREP_RDINO && !(p->std > 0)) || list->n < 1)
        st = rd_fail(&local, RD_EINVAL, "embed: batch %d, std %g and %lld images must be positive",
                     p->batch, p->std, (long long)list->n);
    if (!st) st = input_size(&e, &local);
    if (!st) st = rd_agree(comm, allocate(&e, &local), &local);
    if (!st && ip->skip_corrupt) {
        st = find_readable(&e, &local);
    } else if (!st) {
        for (int64_t i = 0; i < list->n; i++) e.rows[i] = i;
        e.n = list->n;
    }
    if (!st) {
        rd_embed_grid_make(&e.grid, e.n, p->batch, e.rank, e.nranks);
        rd_info("embed: %lld images of %s (%s preprocessing, input %dx%d), %lld batches of %d "
                "over %d rank%s",
                (long long)e.n, ip->source, ip->prep == RD_EMBED_PREP_HF ? "hf" : "rdino", e.W, e.H,
                (long long)e.grid.nbatches, p->batch, e.nranks, e.nranks > 1 ? "s" : "");
        st = rd_agree(comm, rd_embed_make_parent(p->output, e.rank, &local), &local);
    }
    double t0 = rd_now();
    if (!st) st = rd_h5_create(&e.out, p->output, comm, &local);
    if (!st) st = create_layout(&e, &local);
    if (!st) st = write_metadata(&e, &local);
    e.write_s += rd_now() - t0;
    if (!st)
        st = rd_embed_rounds(&e.grid, &e.out, comm, e.pmean, embed_batch, &e, &e.write_s, &local);
    st = rd_embed_finish(&e.out, st, comm, &e.write_s, &local, err);
    if (!st) warn_losses(&e);
    double seconds[3] = {e.read_s, e.forward_s, e.write_s};
    rd_embed_fill_stats(stats, comm, st, e.n, e.H, vit->cfg.embed_dim, seconds, start);
    release(&e);
    return st;
}
