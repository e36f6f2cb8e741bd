/* The pretraining data path: sampler, shard reads, augmentation, group-level masks and drop-path
 * subsets, prefetch thread. See include/rdino/loader.h. */
#include "rdino/loader.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdino/arena.h"
#include "rdino/file.h"
#include "rdino/h5store.h"
#include "rdino/log.h"
#include "rdino/paths.h"

/* ---- parameters ---- */

rd_status rd_loader_check(const rd_loader_params *p, int *batch, int *group, rd_error *err) {
    if (p->ranks < 1 || p->rank < 0 || p->rank >= p->ranks)
        return rd_fail(err, RD_EINVAL, "loader: rank %d of %d", p->rank, p->ranks);
    if (p->global_batch < 1 || p->global_batch % p->ranks != 0)
        return rd_fail(err, RD_EINVAL,
                       "loader: the global batch %d (pretrain.global_batch) cannot be split "
                       "over %d ranks: it must be a positive multiple of the number of ranks",
                       p->global_batch, p->ranks);
    const int B = p->global_batch / p->ranks, g = p->group_size > 0 ? p->group_size : B;
    if (B % g != 0)
        return rd_fail(err, RD_EINVAL,
                       "loader: pretrain.group_size %d does not divide the per-rank batch %d "
                       "(global batch %d over %d ranks, train.batch_size_per_gpu); choose a group "
                       "size that divides the per-rank batch of every rank count you run",
                       g, B, p->global_batch, p->ranks);
    if (batch) *batch = B;
    if (group) *group = g;
    return RD_OK;
}

int rd_loader_max_masked(const rd_loader_params *p) {
    int B, g;
    if (rd_loader_check(p, &B, &g, NULL)) return 0;
    return B / g * rd_ibot_masks_upperbound(&p->masks, 2 * g);
}

rd_status rd_loader_params_from_config(const rd_config *config, const rd_vit_config *vit,
                                       int channels, int global_batch, int ranks, int rank,
                                       rd_loader_params *p, rd_error *err) {
    memset(p, 0, sizeof *p);
    if (rd_pipeline_input(config, "pretrain.data.shards_dir", RD_DIR_SHARDS, p->shards_dir, err))
        return err->code;
    p->seed = (uint64_t)rd_cfg_int(config, "train.seed");
    p->global_batch = global_batch > 0
                          ? global_batch
                          : (int)rd_cfg_int(config, "train.batch_size_per_gpu") * ranks;
    p->ranks = ranks;
    p->rank = rank;
    p->group_size = (int)rd_cfg_int(config, "pretrain.group_size");
    p->prefetch = rd_cfg_bool(config, "pretrain.data.prefetch");
    p->max_open_shards = (int)rd_cfg_int(config, "pretrain.data.max_open_shards");
    p->vit = *vit;
    rd_status st = rd_augment_config_from(config, channels, &p->augment, err);
    if (st) return st;
    double ratios[2];
    rd_cfg_list(config, "ibot.mask_ratio_min_max", ratios, 2);
    rd_mask_config_default(&p->masks, p->augment.global_size, vit->patch_size,
                           rd_cfg_float(config, "ibot.mask_sample_probability"), ratios[0],
                           ratios[1]);
    return rd_loader_check(p, NULL, NULL, err);
}

/* ---- the loader ---- */

typedef struct shard_info {
    char *path;
    int64_t images;
    int handle; /* entry of the open-file table, -1 when closed */
} shard_info;

typedef struct open_shard {
    int shard; /* -1: free entry */
    rd_h5file file;
    uint64_t used; /* plan stamp of the last use */
} open_shard;

typedef struct image_ref {
    int32_t shard, row;
} image_ref;

/* One batch buffer: the plan (which images) and everything produced from it. */
typedef struct slot {
    int64_t step; /* -1: nothing planned */
    int done;     /* produced, or failed (st) */
    rd_status st;
    rd_error err;
    int *handle;                    /* [B] open-file entries */
    int64_t *row, *position;        /* [B] shard rows, global positions */
    float *global, *local;          /* crops */
    rd_ibot_masks masks;            /* [2B, N] */
    int *dp_count[2], *dp_index[2]; /* global, local subsets */
    rd_vit_drop_path drop[2];
    double read_seconds, augment_seconds;
} slot;

struct rd_loader {
    rd_loader_params p;
    int B, g, n_patches, has_drop;
    size_t global_elems, local_elems; /* floats per crop */

    shard_info *shards;
    int n_shards;
    image_ref *train;
    int64_t n_train;
    int size, bit_depth;
    rd_h5_type type;

    open_shard *open;
    int max_open;
    uint64_t stamp;

    int *perm[2];
    int64_t perm_pass[2];
    int perm_last;

    /* producer workspace (one thread at a time) */
    rd_augmenter aug;
    void *raw;
    float **local_out;
    rd_ibot_masks group_masks;
    int *group_count, *group_index;

    slot slots[2];
    int inflight; /* a slot index being produced by the thread, or -1 */

    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int thread_started, job, quit;

    rd_arena arena;
    rd_loader_stats stats;
};

/* ---- index.json and shard headers ---- */

/* The "file" names of index.json's "shards" list (docs/FORMATS.md); checks "num_shards". */
static rd_status read_index(rd_loader *l, rd_error *err) {
    char path[RD_PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/index.json", l->p.shards_dir);
    char *text;
    if (rd_read_file(path, &text, NULL, err))
        return rd_wrap(err, "shards (rdino-shard writes index.json last, after every shard)");
    rd_status st = RD_OK;
    const char *count_key = strstr(text, "\"num_shards\""), *list = strstr(text, "\"shards\"");
    const char *colon = count_key ? strchr(count_key, ':') : NULL;
    long count = colon ? strtol(colon + 1, NULL, 10) : -1;
    if (!list || count < 1)
        st = rd_fail(err, RD_EFORMAT, "%s: no \"num_shards\" / \"shards\"", path);
    if (!st) l->shards = calloc((size_t)count, sizeof *l->shards);
    if (!st && !l->shards) st = rd_fail(err, RD_ENOMEM, "%s: %ld shards", path, count);
    const char *at = list;
    while (!st && (at = strstr(at, "\"file\"")) != NULL) {
        colon = strchr(at, ':');
        const char *open_quote = colon ? strchr(colon, '"') : NULL;
        const char *close_quote = open_quote ? strchr(open_quote + 1, '"') : NULL;
        if (!close_quote || close_quote == open_quote + 1 || l->n_shards == count) {
            st = rd_fail(err, RD_EFORMAT, "%s: malformed shard list", path);
            break;
        }
        int len = (int)(close_quote - open_quote - 1);
        size_t bytes = strlen(l->p.shards_dir) + (size_t)len + 2;
        shard_info *s = &l->shards[l->n_shards++];
        s->handle = -1;
        s->path = malloc(bytes);
        if (!s->path)
            st = rd_fail(err, RD_ENOMEM, "%s", path);
        else
            snprintf(s->path, bytes, "%s/%.*s", l->p.shards_dir, len, open_quote + 1);
        at = close_quote;
    }
    if (!st && l->n_shards != count)
        st = rd_fail(err, RD_EFORMAT, "%s: lists %d shard files, num_shards says %ld", path,
                     l->n_shards, count);
    free(text);
    return st;
}

/* Checks one open shard against the first one and appends its training rows. */
static rd_status scan_shard(rd_loader *l, int k, const rd_h5file *f, rd_error *err) {
    const char *path = l->shards[k].path;
    int64_t size = 0, depth = 0, dims[RD_H5_MAX_DIMS], split_dims[RD_H5_MAX_DIMS];
    int ndim = 0, split_ndim = 0;
    rd_h5_type type;
    rd_status st = rd_h5_get_attr_int(f, "/", "image_size", &size, err);
    if (!st) st = rd_h5_get_attr_int(f, "/", "bit_depth", &depth, err);
    if (!st) st = rd_h5_shape(f, "/images", dims, &ndim, NULL, err);
    if (!st) st = rd_h5_dataset_type(f, "/images", &type, err);
    if (!st) st = rd_h5_shape(f, "/meta/split", split_dims, &split_ndim, NULL, err);
    if (st) return st;
    if (ndim != 3 || dims[1] != size || dims[2] != size)
        return rd_fail(err, RD_EFORMAT,
                       "%s: /images is not [n, %lld, %lld] as its image_size attribute says", path,
                       (long long)size, (long long)size);
    if (!((depth == 8 && type == RD_H5_U8) || (depth == 16 && type == RD_H5_U16)))
        return rd_fail(err, RD_EFORMAT, "%s: /images is not %lld-bit unsigned as bit_depth says",
                       path, (long long)depth);
    if (split_ndim != 1 || split_dims[0] != dims[0])
        return rd_fail(err, RD_EFORMAT, "%s: /meta/split has not one entry per image", path);
    if (k == 0) {
        l->size = (int)size;
        l->bit_depth = (int)depth;
        l->type = type;
    } else if (size != l->size || depth != l->bit_depth) {
        return rd_fail(err, RD_EFORMAT,
                       "%s: %lldx%lld %lld-bit images, but %s has %dx%d %d-bit images", path,
                       (long long)size, (long long)size, (long long)depth, l->shards[0].path,
                       l->size, l->size, l->bit_depth);
    }
    if (dims[0] > INT32_MAX) return rd_fail(err, RD_ERANGE, "%s: too many images", path);
    l->shards[k].images = dims[0];
    uint8_t *split = malloc((size_t)dims[0] + 1);
    image_ref *grown = realloc(l->train, (size_t)(l->n_train + dims[0] + 1) * sizeof *l->train);
    if (grown) l->train = grown;
    if (!split || !grown)
        st = rd_fail(err, RD_ENOMEM, "%s: split of %lld images", path, (long long)dims[0]);
    if (!st) st = rd_h5_read_rows(f, "/meta/split", RD_H5_U8, 0, dims[0], split, err);
    for (int64_t i = 0; !st && i < dims[0]; i++)
        if (split[i] == 0) l->train[l->n_train++] = (image_ref){k, (int32_t)i};
    free(split);
    return st;
}

/* ---- open shard files (calling thread only, with the prefetch thread idle) ---- */

static void close_entry(rd_loader *l, open_shard *e) {
    if (e->shard < 0) return;
    rd_hdf5_lock();
    rd_h5_close(&e->file);
    rd_hdf5_unlock();
    l->shards[e->shard].handle = -1;
    e->shard = -1;
}

/* The open-file entry of shard k, opening it (and closing the least recently used file that the
 * current plan does not use) when needed. */
static rd_status ensure_open(rd_loader *l, int k, int *entry, rd_error *err) {
    shard_info *s = &l->shards[k];
    if (s->handle < 0) {
        int e = -1;
        for (int i = 0; i < l->max_open && e < 0; i++)
            if (l->open[i].shard < 0) e = i;
        for (int i = 0; i < l->max_open && e < 0; i++)
            if (l->open[i].used != l->stamp && (e < 0 || l->open[i].used < l->open[e].used)) e = i;
        if (e < 0) return rd_fail(err, RD_ERANGE, "loader: open-file table full");
        close_entry(l, &l->open[e]);
        rd_hdf5_lock();
        rd_status st = rd_h5_open(&l->open[e].file, s->path, MPI_COMM_SELF, err);
        rd_hdf5_unlock();
        if (st) return st;
        l->open[e].shard = k;
        s->handle = e;
        l->stats.shard_opens++;
    }
    l->open[s->handle].used = l->stamp;
    *entry = s->handle;
    return RD_OK;
}

/* ---- sampler ---- */

static const int *permutation(rd_loader *l, int64_t pass) {
    for (int i = 0; i < 2; i++)
        if (l->perm_pass[i] == pass) {
            l->perm_last = i;
            return l->perm[i];
        }
    int k = l->perm_last ^ 1;
    rd_rng rng;
    rd_rng_init(&rng, l->p.seed, RD_RNG_SAMPLER, (uint32_t)pass, 0, 0);
    rd_rng_permutation(&rng, l->perm[k], (int)l->n_train);
    l->perm_pass[k] = pass;
    l->perm_last = k;
    return l->perm[k];
}

static image_ref image_at(rd_loader *l, int64_t q) {
    return l->train[permutation(l, q / l->n_train)[q % l->n_train]];
}

rd_status rd_loader_image_at(rd_loader *l, int64_t position, int *shard, int64_t *row,
                             rd_error *err) {
    if (position < 0) return rd_fail(err, RD_EINVAL, "loader: position %lld", (long long)position);
    image_ref ref = image_at(l, position);
    *shard = ref.shard;
    *row = ref.row;
    return RD_OK;
}

/* Which images step needs, with their shards opened. */
static rd_status plan(rd_loader *l, slot *s, int64_t step, rd_error *err) {
    s->step = step;
    s->done = 0;
    l->stamp++;
    const int64_t first = step * l->p.global_batch + (int64_t)l->p.rank * l->B;
    for (int b = 0; b < l->B; b++) {
        image_ref ref = image_at(l, first + b);
        rd_status st = ensure_open(l, ref.shard, &s->handle[b], err);
        if (st) return st;
        s->row[b] = ref.row;
        s->position[b] = first + b;
    }
    return RD_OK;
}

/* ---- producing a batch (prefetch thread, or the caller when it is idle) ---- */

static int compare_int(const void *a, const void *b) {
    return (*(const int *)a > *(const int *)b) - (*(const int *)a < *(const int *)b);
}

/* Masks and drop-path subsets of every group, merged into the rank's rows: group row c g + j
 * (crop c of the group's image j) is rank row c B + k g + j for group k. */
static rd_status group_draws(rd_loader *l, slot *s, rd_error *err) {
    const int B = l->B, g = l->g, N = l->n_patches, depth = l->p.vit.depth;
    const int tensors = l->p.augment.n_local > 0 ? 2 : 1;
    const int crops[2] = {2, l->p.augment.n_local};
    for (int t = 0; l->has_drop && t < tensors; t++)
        memset(s->dp_count[t], 0, (size_t)2 * depth * sizeof(int));
    for (int k = 0; k < B / g; k++) {
        const int64_t first = s->position[k * g];
        const uint32_t epoch = (uint32_t)(first / l->n_train);
        rd_status st = rd_ibot_masks_generate(&l->group_masks, &l->p.masks, 2 * g, l->p.seed, epoch,
                                              (uint64_t)first, err);
        if (st) return st;
        for (int c = 0; c < 2; c++)
            memcpy(s->masks.mask + ((size_t)c * B + (size_t)k * g) * N,
                   l->group_masks.mask + (size_t)c * g * N, (size_t)g * N);
        for (int t = 0; l->has_drop && t < tensors; t++) {
            const int rows = crops[t] * g, rank_rows = crops[t] * B;
            rd_rng rng;
            rd_rng_init(&rng, l->p.seed, RD_RNG_DROP_PATH, epoch, (uint64_t)first, (uint32_t)t);
            rd_vit_drop_path_draw(&l->p.vit, rows, &rng, l->group_count, l->group_index);
            for (int kb = 0; kb < 2 * depth; kb++) {
                int *dst = s->dp_index[t] + (size_t)kb * rank_rows;
                for (int i = 0; i < l->group_count[kb]; i++) {
                    int r = l->group_index[(size_t)kb * rows + i];
                    dst[s->dp_count[t][kb]++] = r / g * B + k * g + r % g;
                }
            }
        }
    }
    for (int t = 0; l->has_drop && t < tensors; t++)
        for (int kb = 0; kb < 2 * depth; kb++)
            qsort(s->dp_index[t] + (size_t)kb * crops[t] * B, (size_t)s->dp_count[t][kb],
                  sizeof(int), compare_int);
    s->masks.n_images = 2 * B;
    rd_ibot_masks_index(&s->masks);
    return RD_OK;
}

static void produce(rd_loader *l, slot *s) {
    const double start = rd_now();
    double read = 0.0;
    rd_status st = RD_OK;
    for (int b = 0; b < l->B && !st; b++) {
        const double t0 = rd_now();
        rd_hdf5_lock();
        st = rd_h5_read_rows(&l->open[s->handle[b]].file, "/images", l->type, s->row[b], 1, l->raw,
                             &s->err);
        rd_hdf5_unlock();
        read += rd_now() - t0;
        if (st) break;
        rd_grey_image img = {l->size, l->size, l->bit_depth, l->raw};
        float *global[2] = {s->global + (size_t)b * l->global_elems,
                            s->global + (size_t)(l->B + b) * l->global_elems};
        for (int j = 0; j < l->p.augment.n_local; j++)
            l->local_out[j] = s->local + ((size_t)j * l->B + b) * l->local_elems;
        const int64_t q = s->position[b];
        st = rd_augment_sample(&l->aug, &img, l->p.seed, (uint32_t)(q / l->n_train), (uint64_t)q,
                               global, l->local_out, NULL, &s->err);
    }
    if (!st) st = group_draws(l, s, &s->err);
    s->st = st;
    s->read_seconds = read;
    s->augment_seconds = rd_now() - start - read;
}

static void *prefetch_main(void *arg) {
    rd_loader *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (l->job < 0 && !l->quit) pthread_cond_wait(&l->cv, &l->mu);
        if (l->quit) break;
        slot *s = &l->slots[l->job];
        pthread_mutex_unlock(&l->mu);
        produce(l, s);
        pthread_mutex_lock(&l->mu);
        s->done = 1;
        l->job = -1;
        pthread_cond_broadcast(&l->cv);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

static void wait_idle(rd_loader *l) {
    if (l->inflight < 0) return;
    pthread_mutex_lock(&l->mu);
    while (l->job >= 0) pthread_cond_wait(&l->cv, &l->mu);
    pthread_mutex_unlock(&l->mu);
    l->inflight = -1;
}

/* ---- buffers ---- */

/* Carves every buffer out of the arena (a measuring arena first, to size it). */
static rd_status layout(rd_loader *l, rd_arena *a, rd_error *err) {
    const int B = l->B, g = l->g, N = l->n_patches, nl = l->p.augment.n_local;
    const int depth = l->p.vit.depth, most_crops = nl > 2 ? nl : 2;
    l->raw = rd_arena_alloc(a, (size_t)l->size * l->size * 2);
    l->local_out = rd_arena_alloc(a, (size_t)(nl + 1) * sizeof(float *));
    l->group_count = rd_arena_alloc(a, (size_t)2 * depth * sizeof(int));
    l->group_index = rd_arena_alloc(a, (size_t)2 * depth * most_crops * g * sizeof(int));
    rd_status st = rd_ibot_masks_alloc(&l->group_masks, 2 * g, N, a, err);
    for (int i = 0; i < 2; i++) {
        l->perm[i] = rd_arena_alloc(a, (size_t)l->n_train * sizeof(int));
        l->perm_pass[i] = -1;
    }
    for (int i = 0; i < 2 && !st; i++) {
        slot *s = &l->slots[i];
        s->step = -1;
        s->handle = rd_arena_alloc(a, (size_t)B * sizeof(int));
        s->row = rd_arena_alloc(a, (size_t)B * sizeof(int64_t));
        s->position = rd_arena_alloc(a, (size_t)B * sizeof(int64_t));
        s->global = rd_arena_floats(a, (size_t)2 * B * l->global_elems);
        s->local = rd_arena_floats(a, (size_t)nl * B * l->local_elems);
        st = rd_ibot_masks_alloc(&s->masks, 2 * B, N, a, err);
        const int crops[2] = {2, nl};
        for (int t = 0; t < 2; t++) {
            s->dp_count[t] = rd_arena_alloc(a, (size_t)2 * depth * sizeof(int));
            s->dp_index[t] = rd_arena_alloc(a, (size_t)2 * depth * crops[t] * B * sizeof(int));
            s->drop[t] = (rd_vit_drop_path){s->dp_count[t], s->dp_index[t]};
        }
    }
    if (!st && a->base && a->used > a->capacity)
        st = rd_fail(err, RD_ENOMEM, "loader: arena too small");
    return st;
}

static rd_status start_thread(rd_loader *l, rd_error *err) {
    if (pthread_mutex_init(&l->mu, NULL) || pthread_cond_init(&l->cv, NULL))
        return rd_fail(err, RD_ENOMEM, "loader: cannot create the prefetch thread's lock");
    l->job = -1;
    /* Signals (Slurm's SIGTERM, SIGUSR1) go to the training thread, not to the prefetcher. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&l->thread, NULL, prefetch_main, l);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc)
        return rd_fail(err, RD_ENOMEM, "loader: cannot start the prefetch thread: %s",
                       strerror(rc));
    l->thread_started = 1;
    return RD_OK;
}

rd_status rd_loader_open(rd_loader **out, const rd_loader_params *p, rd_error *err) {
    *out = NULL;
    int B, g;
    rd_status st = rd_loader_check(p, &B, &g, err);
    if (st) return st;
    rd_loader *l = calloc(1, sizeof *l);
    if (!l) return rd_fail(err, RD_ENOMEM, "loader");
    l->p = *p;
    l->B = B;
    l->g = g;
    l->inflight = -1;
    l->n_patches = p->masks.grid_h * p->masks.grid_w;
    l->has_drop = p->vit.drop_path_rate > 0 && p->vit.depth > 0;
    const rd_augment_config *ac = &p->augment;
    l->global_elems = (size_t)ac->channels * ac->global_size * ac->global_size;
    l->local_elems = (size_t)ac->channels * ac->local_size * ac->local_size;
    st = rd_augment_config_check(ac, err);
    if (!st) st = read_index(l, err);

    l->max_open = p->max_open_shards > B ? p->max_open_shards : B;
    l->open = calloc((size_t)l->max_open, sizeof *l->open);
    if (!st && !l->open) st = rd_fail(err, RD_ENOMEM, "loader: open-file table");
    for (int i = 0; l->open && i < l->max_open; i++) l->open[i].shard = -1;
    for (int k = 0; !st && k < l->n_shards; k++) {
        int e;
        l->stamp++;
        st = ensure_open(l, k, &e, err);
        if (!st) {
            rd_hdf5_lock();
            st = scan_shard(l, k, &l->open[e].file, err);
            rd_hdf5_unlock();
        }
    }
    if (!st && l->n_train == 0)
        st = rd_fail(err, RD_ENOTFOUND, "%s: no training images (/meta/split == 0) in %d shards",
                     p->shards_dir, l->n_shards);
    if (!st && l->n_train > INT32_MAX)
        st = rd_fail(err, RD_ERANGE, "%s: %lld training images (max %d)", p->shards_dir,
                     (long long)l->n_train, INT32_MAX);

    if (!st) {
        rd_arena measure;
        rd_arena_init_measure(&measure, "loader");
        st = layout(l, &measure, err);
        if (!st) st = rd_arena_init(&l->arena, "loader", measure.used, err);
        if (!st) st = layout(l, &l->arena, err);
    }
    if (!st) st = rd_augmenter_init(&l->aug, ac, l->size, l->size, err);
    if (!st && p->prefetch) st = start_thread(l, err);
    if (st) {
        rd_loader_close(l);
        return st;
    }
    rd_info("loader: %lld training images in %d shards (%dx%d, %d-bit), %d per rank of a global "
            "batch of %d, groups of %d, %.1f MiB of batch buffers%s",
            (long long)l->n_train, l->n_shards, l->size, l->size, l->bit_depth, B, p->global_batch,
            g, (double)l->arena.capacity / (1 << 20), p->prefetch ? ", prefetching" : "");
    *out = l;
    return RD_OK;
}

void rd_loader_close(rd_loader *l) {
    if (!l) return;
    if (l->thread_started) {
        pthread_mutex_lock(&l->mu);
        l->quit = 1;
        pthread_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->thread, NULL);
        pthread_mutex_destroy(&l->mu);
        pthread_cond_destroy(&l->cv);
    }
    for (int i = 0; l->open && i < l->max_open; i++) close_entry(l, &l->open[i]);
    for (int k = 0; k < l->n_shards; k++) free(l->shards[k].path);
    free(l->shards);
    free(l->open);
    free(l->train);
    rd_augmenter_free(&l->aug);
    rd_arena_free(&l->arena);
    free(l);
}

/* ---- the step interface ---- */

static void post(rd_loader *l, int i) {
    pthread_mutex_lock(&l->mu);
    l->job = i;
    l->inflight = i;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

rd_status rd_loader_next(rd_loader *l, int64_t step, rd_step_batch *batch, rd_error *err) {
    const double start = rd_now();
    if (step < 0) return rd_fail(err, RD_EINVAL, "loader: step %lld", (long long)step);
    wait_idle(l);
    slot *s = NULL;
    for (int i = 0; i < 2 && !s; i++)
        if (l->slots[i].step == step && l->slots[i].done) s = &l->slots[i];
    if (!s) { /* not prefetched: produce it here */
        s = &l->slots[0];
        s->st = plan(l, s, step, &s->err);
        if (!s->st) produce(l, s);
        s->done = 1;
    }
    rd_status st = s->st;
    l->stats.read_seconds += s->read_seconds;
    l->stats.augment_seconds += s->augment_seconds;
    s->read_seconds = s->augment_seconds = 0.0;
    if (st) {
        if (err) *err = s->err;
        s->step = -1; /* a later call tries again */
        return st;
    }
    const int front = (int)(s - l->slots);
    *batch =
        (rd_step_batch){.global_crops = s->global,
                        .local_crops = s->local,
                        .masks = s->masks.mask,
                        .mask_indices = s->masks.indices,
                        .masks_weight = s->masks.weight,
                        .n_masked = s->masks.count,
                        .drop_global = l->has_drop ? &s->drop[0] : NULL,
                        .drop_local = l->has_drop && l->p.augment.n_local ? &s->drop[1] : NULL};
    if (l->thread_started) {
        slot *next = &l->slots[front ^ 1];
        next->st = plan(l, next, step + 1, &next->err);
        if (next->st)
            next->done = 1; /* reported when step + 1 is asked for */
        else
            post(l, front ^ 1);
    }
    l->stats.batches++;
    l->stats.last_wait_seconds = rd_now() - start;
    l->stats.wait_seconds += l->stats.last_wait_seconds;
    return RD_OK;
}

int64_t rd_loader_train_images(const rd_loader *l) {
    return l->n_train;
}

int rd_loader_batch(const rd_loader *l) {
    return l->B;
}

int rd_loader_image_size(const rd_loader *l) {
    return l->size;
}

int rd_loader_bit_depth(const rd_loader *l) {
    return l->bit_depth;
}

int64_t rd_loader_pass_of(const rd_loader *l, int64_t step) {
    return step * l->p.global_batch / l->n_train;
}

void rd_loader_get_stats(const rd_loader *l, rd_loader_stats *stats) {
    *stats = l->stats;
}
