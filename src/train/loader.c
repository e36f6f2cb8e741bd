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
#include "rdino/shard.h"
#include "rdino/shard_reader.h"

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
    p->skip_corrupt = strcmp(rd_cfg_str(config, "pretrain.on_corrupt"), "skip") == 0;
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

/* One batch buffer: the plan (which images) and everything produced from it. */
typedef struct slot {
    int64_t step; /* -1: nothing planned */
    int done;     /* produced, or failed (st) */
    rd_status st;
    rd_error err;
    int64_t *row, *position;        /* [B] rows of the shard set, global positions */
    int substituted;                /* samples whose corrupt image another one replaced */
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

    rd_shard_set set;
    int set_open;
    int32_t *train; /* [T] rows of the set with /meta/split == 0, ascending */
    int64_t n_train;
    int size, bit_depth;
    uint8_t *corrupt; /* [N] 1: the image failed its CRC32C on this rank (skip_corrupt) */

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

static int64_t image_at(rd_loader *l, int64_t q) {
    return l->train[permutation(l, q / l->n_train)[q % l->n_train]];
}

/* The row sample q reads: its own image, or with skip_corrupt, when that image is known to be
 * corrupt, the image of the next position of the same pass (cyclically) whose image is not. Which
 * images are corrupt depends only on the files, so this is the same on any number of ranks. */
static rd_status sample_row(rd_loader *l, int64_t q, int64_t *row, rd_error *err) {
    const int64_t T = l->n_train, pass0 = q / T * T;
    for (int64_t j = 0; j < T; j++) {
        *row = image_at(l, pass0 + (q - pass0 + j) % T);
        if (!l->corrupt || !l->corrupt[*row]) return RD_OK;
    }
    return rd_fail(err, RD_ECORRUPT, "%s: every one of the %lld training images is corrupt",
                   l->p.shards_dir, (long long)T);
}

rd_status rd_loader_image_at(rd_loader *l, int64_t position, int *shard, int64_t *row,
                             rd_error *err) {
    if (position < 0) return rd_fail(err, RD_EINVAL, "loader: position %lld", (long long)position);
    rd_shard_set_locate(&l->set, image_at(l, position), shard, row);
    return RD_OK;
}

/* Which images step needs, with their shards held open (calling thread). */
static rd_status plan(rd_loader *l, slot *s, int64_t step, rd_error *err) {
    s->step = step;
    s->done = 0;
    s->substituted = 0;
    rd_shard_set_begin_holds(&l->set);
    const int64_t first = step * l->p.global_batch + (int64_t)l->p.rank * l->B;
    for (int b = 0; b < l->B; b++) {
        rd_status st = sample_row(l, first + b, &s->row[b], err);
        if (!st) {
            rd_hdf5_lock(); /* may open and close files: other threads may be in HDF5 */
            st = rd_shard_set_hold(&l->set, s->row[b], err);
            rd_hdf5_unlock();
        }
        if (st) return st;
        s->substituted += s->row[b] != image_at(l, first + b);
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
        rd_hdf5_lock(); /* the rows are held: this reads open files only */
        st = rd_shard_set_read_images(&l->set, s->row[b], 1, l->raw, &s->err);
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
    if (!st) {
        /* each rank checks the shards itself (the loader has no communicator) */
        rd_hdf5_lock();
        st = rd_shard_set_open(&l->set, p->shards_dir,
                               p->max_open_shards > B ? p->max_open_shards : B, MPI_COMM_SELF, err);
        rd_hdf5_unlock();
        l->set_open = st == RD_OK;
    }
    if (!st) {
        l->size = l->set.image_size;
        l->bit_depth = l->set.bit_depth;
        l->train = malloc((size_t)l->set.n * sizeof *l->train);
        l->corrupt = p->skip_corrupt ? calloc((size_t)l->set.n, 1) : NULL;
        if (!l->train || (p->skip_corrupt && !l->corrupt))
            st = rd_fail(err, RD_ENOMEM, "loader: out of memory for %lld images",
                         (long long)l->set.n);
        for (int64_t i = 0; !st && i < l->set.n; i++)
            if (l->set.split[i] == RD_SPLIT_TRAIN) l->train[l->n_train++] = (int32_t)i;
    }
    if (!st && l->n_train == 0)
        st = rd_fail(err, RD_ENOTFOUND, "%s: no training images (/meta/split == 0) in %d shards",
                     p->shards_dir, l->set.count);

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
            (long long)l->n_train, l->set.count, l->size, l->size, l->bit_depth, B, p->global_batch,
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
    if (l->set_open) {
        rd_hdf5_lock();
        rd_shard_set_close(&l->set);
        rd_hdf5_unlock();
    }
    free(l->train);
    free(l->corrupt);
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
    /* skip_corrupt: a corrupt image found while producing is marked, and the batch planned and
     * produced again (here, with the prefetch thread idle) until every sample reads intact. */
    while (s->st == RD_ECORRUPT && l->corrupt && l->set.corrupt_row >= 0) {
        rd_warn("skipping a corrupt image (pretrain.on_corrupt: skip): %s", s->err.msg);
        l->corrupt[l->set.corrupt_row] = 1;
        l->set.corrupt_row = -1;
        l->stats.corrupt_images++;
        s->st = plan(l, s, step, &s->err);
        if (!s->st) produce(l, s);
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
    l->stats.corrupt_skipped += s->substituted;
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
    stats->shard_opens = l->set.opens;
}
