/* The pretraining loader on tiny shards written by the test (rd_shard_write_all from memory):
 * the sampler visits every training image once per pass; global batch s is the same on 1, 2 and
 * 4 ranks (ranks simulated by loaders with rank/size parameters: crops, masks, mask weights and
 * drop-path subsets, concatenated rank by rank); the crops are the keyed augmentations of the
 * images the sampler names; masks and subsets follow the group rules (docs/PRETRAIN.md,
 * "Groups": drop-path keep counts and iBOT mask counts per group); prefetching gives the
 * synchronous batches, in and out of order; 16-bit shards give the 8-bit batches; errors name the
 * shard. With "--dump DIR FILE" it runs on MPI_COMM_WORLD with prefetch and rank 0 writes the
 * assembled global batches, which test_loader.sh compares across 1, 2 and 4 real ranks. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "damage.h"
#include "harness.h"
#include "mpi_once.h"
#include "rdino/h5store.h"
#include "rdino/loader.h"
#include "rdino/shard.h"

enum {
    N_IMAGES = 40,
    S = 20,
    SHARDS = 3,
    GB = 8,         /* global batch */
    GROUP = 2,      /* images per group */
    NL = 2,         /* local crops */
    GS = 16,        /* global crop side */
    LS = 8,         /* local crop side */
    PATCH = 4,      /* 4 x 4 grid */
    NP = 16,        /* patches per global crop */
    DEPTH = 2,      /* blocks with drop path */
    STEPS = 8,      /* more than two passes over the ~24 training images */
    ROWS = NL * GB, /* most rows of one tensor (NL >= 2) */
};

/* ---- tiny shards ---- */

typedef struct dataset {
    rd_shard_image images[N_IMAGES];
    char ids[N_IMAGES][16], patients[N_IMAGES][16];
    int depth, size;
} dataset;

static unsigned pixel(int64_t index, int p) {
    return (unsigned)(index * 37 + p * 11 + (p / S) * (index % 7)) & 0xff;
}

static rd_status load_pixels(void *ctx, const rd_shard_image *img, int64_t index, void *dst,
                             rd_error *err) {
    (void)img;
    (void)err;
    const dataset *d = ctx;
    for (int p = 0; p < d->size * d->size; p++) {
        if (d->depth == 16)
            ((uint16_t *)dst)[p] = (uint16_t)(pixel(index, p) * 257);
        else
            ((uint8_t *)dst)[p] = (uint8_t)pixel(index, p);
    }
    return RD_OK;
}

static const char *d_patient(int i) {
    static char id[16];
    snprintf(id, sizeof id, "p%d", i / 2);
    return id;
}

static rd_status write_shards(const char *dir, int depth, int size, rd_error *err) {
    static dataset d;
    d.depth = depth;
    d.size = size;
    for (int i = 0; i < N_IMAGES; i++) {
        snprintf(d.ids[i], sizeof d.ids[i], "img%02d", i);
        snprintf(d.patients[i], sizeof d.patients[i], "%s", d_patient(i));
        d.images[i] = (rd_shard_image){.image_id = d.ids[i],
                                       .patient_id = d.patients[i],
                                       .view = "PA",
                                       .file = d.ids[i],
                                       .age = 50.0f,
                                       .sex = 1,
                                       .source_row = i};
    }
    rd_shard_params p = {.output_dir = dir,
                         .num_shards = SHARDS,
                         .val_fraction = 0.2,
                         .test_fraction = 0.2,
                         .split_seed = 5,
                         .size = size,
                         .bit_depth = depth,
                         .batch = 8,
                         .config_yaml = "",
                         .manifest_sha256 = "00",
                         .manifest_path = "manifest.csv",
                         .preprocess_yaml = "",
                         .tool_version = "test_loader"};
    rd_shard_stats stats;
    return rd_shard_write_all(&p, d.images, N_IMAGES, load_pixels, &d, MPI_COMM_WORLD, &stats, err);
}

/* A fresh shard folder under the test's temporary directory. */
static const char *shards_in(rd_test *t, const char *name, int depth, int size) {
    static char dir[1024];
    rd_test_need_mpi();
    snprintf(dir, sizeof dir, "%s/%s", rd_test_tmpdir(t), name);
    rd_error err = {0};
    CHECK_OK(write_shards(dir, depth, size, &err), &err);
    return dir;
}

static rd_loader_params params(const char *dir, int ranks, int rank, int prefetch) {
    rd_loader_params p;
    memset(&p, 0, sizeof p);
    snprintf(p.shards_dir, sizeof p.shards_dir, "%s", dir);
    p.seed = 42;
    p.global_batch = GB;
    p.ranks = ranks;
    p.rank = rank;
    p.group_size = GROUP;
    rd_augment_config_default(&p.augment, 1);
    p.augment.global_size = GS;
    p.augment.local_size = LS;
    p.augment.n_local = NL;
    rd_mask_config_default(&p.masks, GS, PATCH, 0.5, 0.1, 0.5);
    p.masks.min_patches = 1; /* so that every mask of the 4 x 4 grid gets a block */
    rd_error err;
    rd_vit_config_default(&p.vit, "vit_small", PATCH, GS, &err);
    p.vit.depth = DEPTH;
    p.vit.drop_path_rate = 0.3;
    p.prefetch = prefetch;
    p.max_open_shards = 1; /* at least B stay open: fewer than 3 on 4 ranks, so files rotate */
    return p;
}

/* ---- one global batch, assembled from the ranks' parts ---- */

typedef struct view {
    float global[2 * GB * GS * GS], local[NL * GB * LS * LS];
    uint8_t masks[2 * GB * NP];
    int n_masked;
    double weight_sum;
    int count[2][2 * DEPTH];
    uint8_t kept[2][2 * DEPTH][ROWS]; /* global rows each branch keeps */
} view;

/* Places rank r's part (of W) into v: rank row c B + b is global row c GB + r B + b. */
static void assemble(view *v, int W, int r, const rd_step_batch *b) {
    const int B = GB / W;
    for (int c = 0; c < 2; c++)
        for (int i = 0; i < B; i++) {
            int from = c * B + i, to = c * GB + r * B + i;
            memcpy(v->global + (size_t)to * GS * GS, b->global_crops + (size_t)from * GS * GS,
                   GS * GS * sizeof(float));
            memcpy(v->masks + (size_t)to * NP, b->masks + (size_t)from * NP, NP);
        }
    for (int c = 0; c < NL; c++)
        for (int i = 0; i < B; i++)
            memcpy(v->local + ((size_t)c * GB + r * B + i) * LS * LS,
                   b->local_crops + ((size_t)c * B + i) * LS * LS, LS * LS * sizeof(float));
    v->n_masked += b->n_masked;
    for (int m = 0; m < b->n_masked; m++) v->weight_sum += b->masks_weight[m];
    const rd_vit_drop_path *dp[2] = {b->drop_global, b->drop_local};
    const int crops[2] = {2, NL};
    for (int t = 0; t < 2; t++)
        for (int k = 0; dp[t] && k < 2 * DEPTH; k++) {
            v->count[t][k] += dp[t]->count[k];
            for (int i = 0; i < dp[t]->count[k]; i++) {
                int row = dp[t]->index[(size_t)k * crops[t] * B + i];
                v->kept[t][k][row / B * GB + r * B + row % B] = 1;
            }
        }
}

/* The rank's part of a batch on its own: indices ascending over its 2B x N masks, weights
 * 1 / (masked patches of the crop), counts within the capacity. */
static void check_part(rd_test *t, const rd_step_batch *b, int B, int capacity) {
    CHECK(b->n_masked >= 0 && b->n_masked <= capacity);
    int m = 0;
    for (int row = 0; row < 2 * B; row++) {
        int c = 0;
        for (int p = 0; p < NP; p++) c += b->masks[row * NP + p];
        for (int p = 0; p < NP; p++) {
            if (!b->masks[row * NP + p]) continue;
            CHECK(m < b->n_masked && b->mask_indices[m] == row * NP + p);
            CHECK(m < b->n_masked && b->masks_weight[m] == 1.0f / (float)c);
            m++;
        }
    }
    CHECK(m == b->n_masked);
}

/* Group rules on the whole batch: each group masks exactly GROUP of its 2 GROUP global crops,
 * and each branch keeps floor(rows (1 - 0.3)) of the group's rows of each tensor. */
static void check_groups(rd_test *t, const view *v) {
    int masked_images = 0;
    for (int k = 0; k < GB / GROUP; k++) {
        int masked = 0;
        for (int c = 0; c < 2; c++)
            for (int j = 0; j < GROUP; j++) {
                int any = 0;
                for (int p = 0; p < NP; p++) any |= v->masks[(c * GB + k * GROUP + j) * NP + p];
                masked += any;
            }
        CHECK_MSG(masked == GROUP, "group %d: %d masked crops", k, masked);
        masked_images += masked;
        const int crops[2] = {2, NL};
        for (int tns = 0; tns < 2; tns++)
            for (int b = 0; b < 2 * DEPTH; b++) {
                int kept = 0;
                for (int c = 0; c < crops[tns]; c++)
                    for (int j = 0; j < GROUP; j++) kept += v->kept[tns][b][c * GB + k * GROUP + j];
                CHECK_MSG(kept == rd_vit_drop_path_keep(0.3, crops[tns] * GROUP),
                          "group %d tensor %d branch %d keeps %d", k, tns, b, kept);
            }
    }
    CHECK_NEAR(v->weight_sum, masked_images, 1e-4); /* masks_weight sums to 1 per masked image */
}

/* Global batch `step` through W loaders (rank order), assembled into v. */
static void batch_on(rd_test *t, rd_loader **loaders, int W, int64_t step, view *v) {
    memset(v, 0, sizeof *v);
    for (int r = 0; r < W; r++) {
        rd_step_batch b;
        rd_error err = {0};
        CHECK_OK(rd_loader_next(loaders[r], step, &b, &err), &err);
        if (t->failures) return;
        rd_loader_params p = params("", W, r, 0);
        check_part(t, &b, GB / W, rd_loader_max_masked(&p));
        assemble(v, W, r, &b);
    }
}

static int open_ranks(rd_test *t, const char *dir, int W, int prefetch, rd_loader **loaders) {
    for (int r = 0; r < W; r++) {
        rd_loader_params p = params(dir, W, r, prefetch);
        rd_error err = {0};
        CHECK_OK(rd_loader_open(&loaders[r], &p, &err), &err);
    }
    return t->failures == 0;
}

static void close_ranks(rd_loader **loaders, int W) {
    for (int r = 0; r < W; r++) rd_loader_close(loaders[r]);
}

/* ---- cases ---- */

static void batches_identical_on_1_2_4_ranks(rd_test *t) {
    const char *dir = shards_in(t, "shards", 8, S);
    static view one, many;
    rd_loader *single[1], *ranks[4];
    if (!open_ranks(t, dir, 1, 0, single)) return;
    for (int W = 2; W <= 4; W += 2) {
        if (!open_ranks(t, dir, W, 0, ranks)) break;
        for (int64_t step = 0; step < STEPS && !t->failures; step++) {
            batch_on(t, single, 1, step, &one);
            batch_on(t, ranks, W, step, &many);
            if (W == 2) check_groups(t, &one);
            CHECK_NEAR(many.weight_sum, one.weight_sum, 1e-4); /* summed in another order */
            many.weight_sum = one.weight_sum;
            CHECK_MSG(memcmp(&one, &many, sizeof one) == 0, "step %lld differs on %d ranks",
                      (long long)step, W);
        }
        close_ranks(ranks, W);
    }
    view *later = malloc(sizeof *later);
    batch_on(t, single, 1, 3, &one);
    batch_on(t, single, 1, 4, later);
    CHECK(memcmp(one.global, later->global, sizeof one.global) != 0);
    CHECK(memcmp(one.masks, later->masks, sizeof one.masks) != 0);
    free(later);
    close_ranks(single, 1);
}

static void sampler_covers_each_pass(rd_test *t) {
    const char *dir = shards_in(t, "shards", 8, S);
    rd_loader *l;
    rd_loader_params p = params(dir, 1, 0, 0);
    rd_error err = {0};
    CHECK_OK(rd_loader_open(&l, &p, &err), &err);
    if (t->failures) return;
    const int64_t T = rd_loader_train_images(l);
    int train = 0;
    for (int i = 0; i < N_IMAGES; i++) train += rd_split_of_patient(d_patient(i), 5, 0.2, 0.2) == 0;
    CHECK_MSG(T == train && T > GB, "%lld training images, %d expected", (long long)T, train);
    int order[3][N_IMAGES];
    for (int pass = 0; pass < 3; pass++) {
        int seen[N_IMAGES] = {0};
        for (int64_t q = pass * T; q < (pass + 1) * T; q++) {
            int shard;
            int64_t row;
            CHECK_OK(rd_loader_image_at(l, q, &shard, &row, &err), &err);
            int index = (int)(shard * N_IMAGES / SHARDS + row); /* manifest row */
            CHECK(index >= 0 && index < N_IMAGES);
            if (index < 0 || index >= N_IMAGES) return;
            CHECK_MSG(rd_split_of_patient(d_patient(index), 5, 0.2, 0.2) == RD_SPLIT_TRAIN,
                      "image %d is not in the training split", index);
            seen[index]++;
            order[pass][q - pass * T] = index;
        }
        for (int i = 0; i < N_IMAGES; i++) CHECK(seen[i] == (seen[i] ? 1 : 0));
    }
    CHECK(memcmp(order[0], order[1], (size_t)T * sizeof(int)) != 0);
    CHECK(rd_loader_pass_of(l, 0) == 0 && rd_loader_pass_of(l, (T + GB - 1) / GB) == 1);
    rd_loader_close(l);
}

/* Crops of batch `step`, rank 1 of 2, against rd_augment_sample of the images the sampler names
 * (read back through the pixel pattern), keyed by (epoch, position). */
static void crops_are_the_keyed_augmentations(rd_test *t) {
    const char *dir = shards_in(t, "shards", 8, S);
    rd_loader *l;
    rd_loader_params p = params(dir, 2, 1, 1);
    rd_error err = {0};
    CHECK_OK(rd_loader_open(&l, &p, &err), &err);
    if (t->failures) return;
    rd_augmenter aug;
    CHECK_OK(rd_augmenter_init(&aug, &p.augment, S, S, &err), &err);
    const int B = GB / 2;
    const int64_t T = rd_loader_train_images(l);
    static float g[2][GS * GS], lc[NL][LS * LS];
    float *gp[2] = {g[0], g[1]}, *lp[NL] = {lc[0], lc[1]};
    for (int64_t step = 0; step < STEPS && !t->failures; step++) {
        rd_step_batch b;
        CHECK_OK(rd_loader_next(l, step, &b, &err), &err);
        if (t->failures) break;
        for (int i = 0; i < B; i++) {
            const int64_t q = step * GB + B + i;
            int shard;
            int64_t row;
            CHECK_OK(rd_loader_image_at(l, q, &shard, &row, &err), &err);
            int64_t index = shard * N_IMAGES / SHARDS + row;
            uint8_t img[S * S];
            for (int px = 0; px < S * S; px++) img[px] = (uint8_t)pixel(index, px);
            rd_grey_image src = {S, S, 8, img};
            CHECK_OK(rd_augment_sample(&aug, &src, 42, (uint32_t)(q / T), (uint64_t)q, gp, lp, NULL,
                                       &err),
                     &err);
            for (int c = 0; c < 2; c++)
                CHECK_MSG(
                    memcmp(g[c], b.global_crops + (size_t)(c * B + i) * GS * GS, sizeof g[c]) == 0,
                    "step %lld image %d global crop %d", (long long)step, i, c);
            for (int c = 0; c < NL; c++)
                CHECK_MSG(
                    memcmp(lc[c], b.local_crops + (size_t)(c * B + i) * LS * LS, sizeof lc[c]) == 0,
                    "step %lld image %d local crop %d", (long long)step, i, c);
        }
    }
    rd_augmenter_free(&aug);
    rd_loader_close(l);
}

/* Everything a batch holds, as bytes, for comparing two loaders. */
static int same_batch(const rd_step_batch *a, const rd_step_batch *b, int B) {
    size_t gbytes = (size_t)2 * B * GS * GS * sizeof(float);
    size_t lbytes = (size_t)NL * B * LS * LS * sizeof(float);
    int same = memcmp(a->global_crops, b->global_crops, gbytes) == 0 &&
               memcmp(a->local_crops, b->local_crops, lbytes) == 0 &&
               memcmp(a->masks, b->masks, (size_t)2 * B * NP) == 0 && a->n_masked == b->n_masked &&
               memcmp(a->masks_weight, b->masks_weight, (size_t)a->n_masked * sizeof(float)) == 0;
    const rd_vit_drop_path *x[2] = {a->drop_global, a->drop_local};
    const rd_vit_drop_path *y[2] = {b->drop_global, b->drop_local};
    for (int t = 0; t < 2 && same; t++) {
        same = memcmp(x[t]->count, y[t]->count, 2 * DEPTH * sizeof(int)) == 0;
        for (int k = 0; k < 2 * DEPTH && same; k++)
            same = memcmp(x[t]->index + (size_t)k * (t ? NL : 2) * B,
                          y[t]->index + (size_t)k * (t ? NL : 2) * B,
                          (size_t)x[t]->count[k] * sizeof(int)) == 0;
    }
    return same;
}

static void prefetch_matches_synchronous(rd_test *t) {
    const char *dir = shards_in(t, "shards", 8, S);
    rd_loader *sync, *ahead;
    rd_loader_params ps = params(dir, 2, 0, 0), pa = params(dir, 2, 0, 1);
    rd_error err = {0};
    CHECK_OK(rd_loader_open(&sync, &ps, &err), &err);
    CHECK_OK(rd_loader_open(&ahead, &pa, &err), &err);
    if (t->failures) return;
    const int64_t steps[] = {0, 1, 2, 3, 7, 8, 2, 9, 9, 10};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        rd_step_batch a, b;
        CHECK_OK(rd_loader_next(sync, steps[i], &a, &err), &err);
        CHECK_OK(rd_loader_next(ahead, steps[i], &b, &err), &err);
        if (t->failures) break;
        CHECK_MSG(same_batch(&a, &b, GB / 2), "step %lld differs with prefetch",
                  (long long)steps[i]);
    }
    rd_loader_stats st;
    rd_loader_get_stats(ahead, &st);
    CHECK(st.batches == 10 && st.wait_seconds >= 0 && st.augment_seconds > 0);
    rd_loader_close(sync);
    rd_loader_close(ahead);
}

static void sixteen_bit_shards_give_the_same_batches(rd_test *t) {
    char dir8[1024];
    snprintf(dir8, sizeof dir8, "%s", shards_in(t, "shards8", 8, S));
    const char *dir16 = shards_in(t, "shards16", 16, S);
    rd_loader *a, *b;
    rd_loader_params p8 = params(dir8, 1, 0, 1), p16 = params(dir16, 1, 0, 1);
    rd_error err = {0};
    CHECK_OK(rd_loader_open(&a, &p8, &err), &err);
    CHECK_OK(rd_loader_open(&b, &p16, &err), &err);
    if (t->failures) return;
    CHECK(rd_loader_bit_depth(a) == 8 && rd_loader_bit_depth(b) == 16);
    CHECK(rd_loader_image_size(b) == S && rd_loader_batch(b) == GB);
    for (int64_t step = 0; step < 3; step++) {
        rd_step_batch x, y;
        CHECK_OK(rd_loader_next(a, step, &x, &err), &err);
        CHECK_OK(rd_loader_next(b, step, &y, &err), &err);
        if (t->failures) break;
        CHECK_MSG(same_batch(&x, &y, GB), "step %lld: 16-bit shards differ", (long long)step);
    }
    rd_loader_close(a);
    rd_loader_close(b);
}

/* Flips a byte inside every image of shard k. */
static void damage_images(const char *dir, int k) {
    char path[1200];
    rd_shard_path(path, sizeof path, dir, k);
    for (int64_t row = 0; rd_test_damage_image(path, row, 0x10) == 0; row++) continue;
}

static void errors_name_the_shard(rd_test *t) {
    char dir[1024], path[1200], other[1200];
    snprintf(dir, sizeof dir, "%s", shards_in(t, "shards", 8, S));
    rd_loader *l = NULL;
    rd_loader_params p = params(dir, 1, 0, 1);
    rd_error err = {0};

    /* a damaged image chunk: the step that reads it fails (from the prefetch thread too) */
    damage_images(dir, 0);
    CHECK_OK(rd_loader_open(&l, &p, &err), &err);
    rd_status st = RD_OK;
    rd_step_batch b;
    for (int64_t step = 0; l && step < STEPS && !st; step++) st = rd_loader_next(l, step, &b, &err);
    rd_shard_path(path, sizeof path, dir, 0);
    CHECK(st == RD_ECORRUPT);
    CHECK_MSG(strstr(err.msg, path) && strstr(err.msg, "CRC32C") &&
                  strstr(err.msg, "image id 'img"),
              "message: %s", err.msg);
    rd_loader_close(l);

    /* another image size in one shard */
    const char *small = shards_in(t, "small", 8, 12);
    rd_shard_path(other, sizeof other, small, 1);
    rd_shard_path(path, sizeof path, dir, 1);
    CHECK(rename(other, path) == 0);
    CHECK(rd_loader_open(&l, &p, &err) == RD_EFORMAT && l == NULL);
    CHECK_MSG(strstr(err.msg, path) && strstr(err.msg, "12x12"), "message: %s", err.msg);

    /* a missing shard, then a missing index */
    CHECK(unlink(path) == 0);
    CHECK(rd_loader_open(&l, &p, &err) == RD_ENOTFOUND && l == NULL);
    CHECK_MSG(strstr(err.msg, path) != NULL, "message: %s", err.msg);
    snprintf(path, sizeof path, "%s/index.json", dir);
    CHECK(unlink(path) == 0);
    CHECK(rd_loader_open(&l, &p, &err) == RD_ENOTFOUND && l == NULL);
    CHECK_MSG(strstr(err.msg, path) != NULL, "message: %s", err.msg);
}

/* One corrupt training image: on_corrupt error stops naming it; skip replaces it by the next
 * intact image of the pass, giving the same batches and counts on 1 and 2 ranks (with and
 * without prefetch), and the counts add up to the visits of the image. */
static void corrupt_image_skipped_alike_on_1_2_ranks(rd_test *t) {
    char dir[1024], path[1200];
    snprintf(dir, sizeof dir, "%s", shards_in(t, "corrupt", 8, S));
    rd_loader *l = NULL;
    rd_loader_params p = params(dir, 1, 0, 1);
    rd_error err = {0};
    CHECK_OK(rd_loader_open(&l, &p, &err), &err);
    if (!l) return;
    /* the image of position 3 (in shard k, row r) becomes corrupt */
    int k = -1;
    int64_t row = -1, T = rd_loader_train_images(l);
    CHECK_OK(rd_loader_image_at(l, 3, &k, &row, &err), &err);
    rd_loader_close(l);
    rd_shard_path(path, sizeof path, dir, k);
    CHECK_MSG(rd_test_poke_pixel(path, row) == 0, "could not change a pixel of %s", path);
    char where[1300];
    snprintf(where, sizeof where, "%s: row %lld ", path, (long long)row);

    rd_status st = RD_OK;
    rd_step_batch b;
    CHECK_OK(rd_loader_open(&l, &p, &err), &err);
    for (int64_t step = 0; l && step < STEPS && !st; step++) st = rd_loader_next(l, step, &b, &err);
    CHECK(st == RD_ECORRUPT);
    CHECK_MSG(strstr(err.msg, where) && strstr(err.msg, "image id 'img"), "message: %s", err.msg);
    rd_loader_close(l);

    /* the samples that read this image: once per pass */
    int64_t visits = 0;
    CHECK_OK(rd_loader_open(&l, &p, &err), &err);
    for (int64_t q = 0; l && q < (int64_t)STEPS * GB; q++) {
        int kq;
        int64_t rq;
        CHECK_OK(rd_loader_image_at(l, q, &kq, &rq, &err), &err);
        visits += kq == k && rq == row;
    }
    rd_loader_close(l);
    CHECK(visits >= 2 && T > 0);

    /* skip: one rank synchronously, two ranks prefetching */
    rd_loader *alone = NULL, *pair[2] = {NULL, NULL};
    p.skip_corrupt = 1;
    p.prefetch = 0;
    CHECK_OK(rd_loader_open(&alone, &p, &err), &err);
    for (int r = 0; r < 2; r++) {
        rd_loader_params pr = params(dir, 2, r, 1);
        pr.skip_corrupt = 1;
        CHECK_OK(rd_loader_open(&pair[r], &pr, &err), &err);
    }
    static view one, two;
    for (int64_t step = 0; alone && pair[0] && pair[1] && step < STEPS && !t->failures; step++) {
        batch_on(t, &alone, 1, step, &one);
        batch_on(t, pair, 2, step, &two);
        CHECK_MSG(memcmp(&one, &two, sizeof one) == 0, "step %lld differs on 1 and 2 ranks",
                  (long long)step);
    }
    rd_loader_stats s1, s2[2];
    if (alone && pair[0] && pair[1]) {
        rd_loader_get_stats(alone, &s1);
        rd_loader_get_stats(pair[0], &s2[0]);
        rd_loader_get_stats(pair[1], &s2[1]);
        CHECK_MSG(s1.corrupt_skipped == visits, "1 rank skipped %lld samples, %lld read the image",
                  (long long)s1.corrupt_skipped, (long long)visits);
        CHECK(s2[0].corrupt_skipped + s2[1].corrupt_skipped == visits);
        CHECK(s1.corrupt_images == 1 && s2[0].corrupt_images + s2[1].corrupt_images >= 1);
    }
    rd_loader_close(alone);
    rd_loader_close(pair[0]);
    rd_loader_close(pair[1]);
}

static void batch_and_group_checks(rd_test *t) {
    rd_loader_params p = params("nowhere", 4, 0, 0);
    rd_error err = {0};
    int B, g;
    CHECK_OK(rd_loader_check(&p, &B, &g, &err), &err);
    CHECK(B == 2 && g == 2);
    p.group_size = 4;
    CHECK(rd_loader_check(&p, &B, &g, &err) == RD_EINVAL);
    CHECK_MSG(strstr(err.msg, "pretrain.group_size") != NULL, "message: %s", err.msg);
    p.group_size = 0; /* the per-rank batch */
    CHECK_OK(rd_loader_check(&p, &B, &g, &err), &err);
    CHECK(g == 2);
    p.global_batch = 6;
    CHECK(rd_loader_check(&p, &B, &g, &err) == RD_EINVAL);
    CHECK_MSG(strstr(err.msg, "global batch 6") && strstr(err.msg, "4 ranks"), "message: %s",
              err.msg);
    /* capacity: B / g groups of the bound over 2g crops */
    p = params("nowhere", 1, 0, 0);
    CHECK(rd_loader_max_masked(&p) == GB / GROUP * rd_ibot_masks_upperbound(&p.masks, 2 * GROUP));
}

static void params_from_config(rd_test *t) {
    rd_error err = {0};
    rd_config cfg;
    CHECK_OK(rd_config_init(&cfg, &err), &err);
    rd_vit_config vc;
    CHECK_OK(rd_vit_config_from(&cfg, &vc, &err), &err);
    rd_loader_params p;
    CHECK_OK(rd_loader_params_from_config(&cfg, &vc, 1, 0, 2, 1, &p, &err), &err);
    CHECK(strcmp(p.shards_dir, "rdino-out/shards") == 0);
    CHECK(p.global_batch == 128 && p.ranks == 2 && p.rank == 1 && p.group_size == 8);
    CHECK(p.prefetch == 1 && p.seed == 0 && p.augment.channels == 1 && p.augment.n_local == 8);
    CHECK(p.masks.grid_h == 14 && p.vit.drop_path_rate == 0.3 && p.vit.depth == 24);
    CHECK_OK(rd_config_override(&cfg, "shard.output_dir=/data/shards", &err), &err);
    CHECK_OK(rd_loader_params_from_config(&cfg, &vc, 3, 96, 4, 0, &p, &err), &err);
    CHECK(strcmp(p.shards_dir, "/data/shards") == 0 && p.global_batch == 96);
    CHECK(p.augment.channels == 3);
    CHECK_OK(rd_config_override(&cfg, "pretrain.data.shards_dir=elsewhere", &err), &err);
    CHECK_OK(rd_config_override(&cfg, "pretrain.group_size=5", &err), &err);
    CHECK(rd_loader_params_from_config(&cfg, &vc, 1, 0, 2, 0, &p, &err) == RD_EINVAL);
    CHECK_MSG(strstr(err.msg, "pretrain.group_size 5") != NULL, "message: %s", err.msg);
    CHECK(strcmp(p.shards_dir, "elsewhere") == 0);
    CHECK_OK(rd_config_override(&cfg, "pretrain.group_size=8", &err), &err);
    CHECK(rd_loader_params_from_config(&cfg, &vc, 1, 10, 4, 0, &p, &err) == RD_EINVAL);
    CHECK_MSG(strstr(err.msg, "pretrain.global_batch") != NULL, "message: %s", err.msg);
    rd_config_free(&cfg);
}

static const rd_test_case cases[] = {
    {"batches_identical_on_1_2_4_ranks", batches_identical_on_1_2_4_ranks},
    {"sampler_covers_each_pass", sampler_covers_each_pass},
    {"crops_are_the_keyed_augmentations", crops_are_the_keyed_augmentations},
    {"prefetch_matches_synchronous", prefetch_matches_synchronous},
    {"sixteen_bit_shards_give_the_same_batches", sixteen_bit_shards_give_the_same_batches},
    {"errors_name_the_shard", errors_name_the_shard},
    {"corrupt_image_skipped_alike_on_1_2_ranks", corrupt_image_skipped_alike_on_1_2_ranks},
    {"batch_and_group_checks", batch_and_group_checks},
    {"params_from_config", params_from_config},
};

/* ---- --dump: real MPI ranks ---- */

/* Rank 0 gathers every rank's part of each step (packed as a view of its own) and writes the
 * assembled views. */
static int dump(const char *dir, const char *out) {
    rd_test_need_mpi();
    int rank, W;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &W);
    rd_error err = {0};
    rd_loader *l = NULL;
    rd_status st = write_shards(dir, 8, S, &err);
    rd_loader_params p = params(dir, W, rank, 1);
    if (!st) st = rd_loader_open(&l, &p, &err);
    FILE *f = rank == 0 ? fopen(out, "wb") : NULL;
    view *mine = calloc(1, sizeof *mine), *all = calloc((size_t)W, sizeof *all);
    view *whole = calloc(1, sizeof *whole);
    for (int64_t step = 0; !st && step < STEPS; step++) {
        rd_step_batch b;
        st = rd_loader_next(l, step, &b, &err);
        if (st) break;
        /* pack: this rank's rows as if it were rank 0 of W, then unpack on rank 0 */
        memset(mine, 0, sizeof *mine);
        assemble(mine, W, 0, &b);
        MPI_Gather(mine, (int)sizeof *mine, MPI_BYTE, all, (int)sizeof *mine, MPI_BYTE, 0,
                   MPI_COMM_WORLD);
        if (rank != 0) continue;
        memset(whole, 0, sizeof *whole);
        const int B = GB / W;
        for (int r = 0; r < W; r++) {
            /* rank r's rows sit at global rows c GB + 0 .. B-1 of its packed view */
            view *v = &all[r];
            for (int c = 0; c < 2; c++) {
                memcpy(whole->global + ((size_t)c * GB + r * B) * GS * GS,
                       v->global + (size_t)c * GB * GS * GS, (size_t)B * GS * GS * sizeof(float));
                memcpy(whole->masks + ((size_t)c * GB + r * B) * NP, v->masks + (size_t)c * GB * NP,
                       (size_t)B * NP);
            }
            for (int c = 0; c < NL; c++)
                memcpy(whole->local + ((size_t)c * GB + r * B) * LS * LS,
                       v->local + (size_t)c * GB * LS * LS, (size_t)B * LS * LS * sizeof(float));
            whole->n_masked += v->n_masked;
            for (int tns = 0; tns < 2; tns++)
                for (int k = 0; k < 2 * DEPTH; k++) {
                    whole->count[tns][k] += v->count[tns][k];
                    for (int c = 0; c < (tns ? NL : 2); c++)
                        for (int i = 0; i < B; i++)
                            whole->kept[tns][k][c * GB + r * B + i] = v->kept[tns][k][c * GB + i];
                }
        }
        whole->weight_sum = 0; /* summed in another order on other rank counts */
        if (f) fwrite(whole, sizeof *whole, 1, f);
    }
    if (f) fclose(f);
    if (st) fprintf(stderr, "rank %d: %s\n", rank, err.msg);
    rd_loader_close(l);
    free(mine);
    free(all);
    free(whole);
    int local = st != RD_OK, any = 0;
    MPI_Allreduce(&local, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    return any;
}

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "--dump") == 0) return dump(argv[2], argv[3]);
    return rd_test_main(argc, argv, "loader", cases, (int)(sizeof cases / sizeof cases[0]));
}
