/* Teacher targets: Sinkhorn-Knopp and softmax centring (sinkhorn_knopp_teacher,
 * softmax_center_teacher in dinov2/loss/dino_clstoken_loss.py), against the PyTorch
 * oracle (sinkhorn_koleo.h5, fp64 oracle, rtol 1e-5) and with W ranks simulated by threads that
 * hold disjoint rows and reduce through the rd_reducer hook (in rank order), which must give
 * the one-process result (rtol 1e-6: the sums are doubles). */
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "harness.h"
#include "rdino/rng.h"
#include "rdino/targets.h"
#include "sim_ranks.h"

static void fill_logits(float *x, size_t n, uint64_t index, double scale) {
    rd_rng r;
    rd_rng_init(&r, 11, RD_RNG_TEST, 0, index, 0);
    for (size_t i = 0; i < n; i++) x[i] = (float)(scale * rd_rng_normal(&r));
}

static void sinkhorn_matches_oracle(rd_test *t) {
    hid_t f = rd_fixture_open("sinkhorn_koleo.h5");
    if (f < 0) SKIP("fixture sinkhorn_koleo.h5 not found (set RDINO_FIXTURES)");
    int64_t dims[2] = {0, 0};
    rd_fixture_shape(f, "sinkhorn/logits", dims, 2);
    int rows = (int)dims[0], K = (int)dims[1];
    float *logits = rd_fixture_floats(f, "sinkhorn/logits", NULL);
    float *shifted = rd_fixture_floats(f, "sinkhorn/logits_shifted", NULL);
    float *want = rd_fixture_floats(f, "sinkhorn/targets", NULL);
    CHECK(logits && shifted && want && rows > 0);
    if (!t->failures) {
        rd_error err = {0};
        float *q = malloc((size_t)rows * K * sizeof(float));
        float *q2 = malloc((size_t)rows * K * sizeof(float));
        double *work = malloc((size_t)K * sizeof(double));
        double temp = rd_fixture_attr(f, "sinkhorn_temperature");
        int iters = (int)rd_fixture_attr(f, "sinkhorn_iterations");
        CHECK((int)rd_fixture_attr(f, "sinkhorn_B_tot") == rows);
        CHECK_OK(rd_sinkhorn_targets(q, logits, rows, K, temp, iters, NULL, work, &err), &err);
        CHECK_CLOSE("sinkhorn targets", q, want, (size_t)rows * K, 1e-5, 1e-9);
        /* A global constant (20, i.e. 400 after /temp) cancels: no overflow, same targets. */
        CHECK_OK(rd_sinkhorn_targets(q2, shifted, rows, K, temp, iters, NULL, work, &err), &err);
        CHECK_CLOSE("shifted logits", q2, q, (size_t)rows * K, 1e-6, 1e-10);
        free(q);
        free(q2);
        free(work);
    }
    free(logits);
    free(shifted);
    free(want);
    rd_fixture_close(f);
}

/* Non-negative, rows sum to 1, uniform logits give 1/K, prototype mass ~ B_tot/K. */
static void sinkhorn_invariants(rd_test *t) {
    enum { ROWS = 24, K = 40 };
    rd_error err = {0};
    float logits[ROWS * K], q[ROWS * K];
    double work[K];
    fill_logits(logits, ROWS * K, 1, 0.1);
    CHECK_OK(rd_sinkhorn_targets(q, logits, ROWS, K, 0.07, 3, NULL, work, &err), &err);
    for (int r = 0; r < ROWS; r++) {
        double s = 0;
        for (int k = 0; k < K; k++) {
            CHECK(q[r * K + k] >= 0.0f);
            s += q[r * K + k];
        }
        CHECK_NEAR(s, 1.0, 1e-6);
    }
    for (int k = 0; k < K; k++) {
        double mass = 0;
        for (int r = 0; r < ROWS; r++) mass += q[r * K + k];
        /* only near B_tot/K after 3 iterations, not exact */
        CHECK(mass > 0.7 * ROWS / K && mass < 1.3 * ROWS / K);
    }
    for (int i = 0; i < ROWS * K; i++) logits[i] = 0.25f;
    CHECK_OK(rd_sinkhorn_targets(q, logits, ROWS, K, 0.07, 3, NULL, work, &err), &err);
    for (int i = 0; i < ROWS * K; i++) CHECK_NEAR(q[i], 1.0 / K, 1e-8);
}

typedef struct rank_job {
    sim_rank *self;
    const float *logits;
    float *out;
    int rows, K;
    rd_center *center; /* centring job if not NULL */
    rd_status st;
} rank_job;

static void *sinkhorn_rank(void *arg) {
    rank_job *j = arg;
    rd_reducer red = {sim_reduce, j->self};
    rd_error err;
    double *work = malloc((size_t)j->K * sizeof(double));
    j->st = rd_sinkhorn_targets(j->out, j->logits, j->rows, j->K, 0.05, 3, &red, work, &err);
    free(work);
    return NULL;
}

static void *center_rank(void *arg) {
    rank_job *j = arg;
    rd_reducer red = {sim_reduce, j->self};
    rd_error err;
    j->st = rd_center_accumulate(j->center, j->logits, j->rows, &red, &err);
    return NULL;
}

/* Runs fn on W threads, rank r holding rows [split[r], split[r+1]). */
static void run_ranks(int W, const int *split, rank_job *jobs, void *(*fn)(void *)) {
    sim_rank ranks[SIM_MAX_RANKS];
    void *args[SIM_MAX_RANKS];
    for (int r = 0; r < W; r++) {
        jobs[r].rows = split[r + 1] - split[r];
        jobs[r].self = &ranks[r];
        args[r] = &jobs[r];
    }
    sim_run(W, ranks, args, fn);
}

/* W-rank result = 1-rank result on the concatenated rows (uneven splits, one rank
 * empty). */
static void sinkhorn_ranks_equal_one_process(rd_test *t) {
    enum { ROWS = 30, K = 50 };
    rd_error err = {0};
    float logits[ROWS * K], one[ROWS * K], many[ROWS * K];
    double work[K];
    fill_logits(logits, ROWS * K, 2, 0.2);
    CHECK_OK(rd_sinkhorn_targets(one, logits, ROWS, K, 0.05, 3, NULL, work, &err), &err);
    static const int splits[][SIM_MAX_RANKS + 1] = {{0, 15, 30}, {0, 7, 7, 19, 30}, {0, 1, 2, 30}};
    static const int ranks[] = {2, 4, 3};
    for (int s = 0; s < 3; s++) {
        rank_job jobs[SIM_MAX_RANKS];
        memset(many, 0, sizeof many);
        for (int r = 0; r < ranks[s]; r++)
            jobs[r] = (rank_job){
                .logits = logits + splits[s][r] * K, .out = many + splits[s][r] * K, .K = K};
        run_ranks(ranks[s], splits[s], jobs, sinkhorn_rank);
        for (int r = 0; r < ranks[s]; r++) CHECK(jobs[r].st == RD_OK);
        CHECK_CLOSE("W ranks vs one", many, one, ROWS * K, 1e-6, 1e-12);
    }
}

/* Rows sum to 1; the first step uses c = 0; after one update from 0, c = 0.1 mean(t);
 * the update is deferred to the next apply. */
static void centering_update(rd_test *t) {
    enum { ROWS = 6, K = 16 };
    rd_error err = {0};
    rd_arena arena;
    CHECK_OK(rd_arena_init(&arena, "centre", 4096, &err), &err);
    rd_center c;
    CHECK_OK(rd_center_init(&c, K, 0.9, RD_CENTER_GLOBAL_MEAN, &arena, &err), &err);
    float logits[ROWS * K], q[ROWS * K];
    fill_logits(logits, ROWS * K, 3, 1.0);
    rd_center_apply_pending(&c);
    for (int k = 0; k < K; k++) CHECK(c.value[k] == 0.0f);
    rd_centering_targets(q, logits, c.value, ROWS, K, 0.04);
    for (int r = 0; r < ROWS; r++) {
        double s = 0, mx = -INFINITY, z = 0;
        for (int k = 0; k < K; k++) {
            s += q[r * K + k];
            mx = fmax(mx, logits[r * K + k] / 0.04);
        }
        CHECK_NEAR(s, 1.0, 1e-6);
        for (int k = 0; k < K; k++) z += exp(logits[r * K + k] / 0.04 - mx);
        CHECK_NEAR(q[r * K], exp(logits[r * K] / 0.04 - mx) / z, 1e-6);
    }
    CHECK_OK(rd_center_accumulate(&c, logits, ROWS, NULL, &err), &err);
    for (int k = 0; k < K; k++) CHECK(c.value[k] == 0.0f); /* deferred */
    rd_center_apply_pending(&c);
    for (int k = 0; k < K; k++) {
        double mean = 0;
        for (int r = 0; r < ROWS; r++) mean += logits[r * K + k] / ROWS;
        CHECK_NEAR(c.value[k], 0.1 * mean, 1e-7);
    }
    float before[K];
    memcpy(before, c.value, sizeof before);
    rd_center_apply_pending(&c); /* applied once only */
    CHECK(memcmp(before, c.value, sizeof before) == 0);
    rd_arena_free(&arena);
}

/* DINO centre = global mean over all ranks' rows; iBOT centre = mean of per-rank means. */
static void centering_over_ranks(rd_test *t) {
    enum { ROWS = 9, K = 8, W = 3 };
    rd_error err = {0};
    float logits[ROWS * K];
    fill_logits(logits, ROWS * K, 4, 1.0);
    static const int split[W + 1] = {0, 2, 6, 9};
    for (int mode = 0; mode < 2; mode++) {
        rd_arena arena;
        CHECK_OK(rd_arena_init(&arena, "centres", 8192, &err), &err);
        rd_center cs[W];
        rank_job jobs[W];
        for (int r = 0; r < W; r++) {
            CHECK_OK(rd_center_init(&cs[r], K, 0.9, (rd_center_mode)mode, &arena, &err), &err);
            jobs[r] = (rank_job){.logits = logits + split[r] * K, .K = K, .center = &cs[r]};
        }
        run_ranks(W, split, jobs, center_rank);
        for (int r = 0; r < W; r++) {
            CHECK(jobs[r].st == RD_OK);
            rd_center_apply_pending(&cs[r]);
        }
        for (int k = 0; k < K; k++) {
            double want = 0;
            for (int r = 0; r < W; r++) {
                double rank_sum = 0;
                for (int i = split[r]; i < split[r + 1]; i++) rank_sum += logits[i * K + k];
                want += mode == RD_CENTER_GLOBAL_MEAN ? rank_sum / ROWS
                                                      : rank_sum / (split[r + 1] - split[r]) / W;
            }
            for (int r = 0; r < W; r++) CHECK_NEAR(cs[r].value[k], 0.1 * want, 1e-7);
        }
        rd_arena_free(&arena);
    }
}

static const rd_test_case cases[] = {
    {"sinkhorn_matches_oracle", sinkhorn_matches_oracle},
    {"sinkhorn_invariants", sinkhorn_invariants},
    {"sinkhorn_ranks_equal_one_process", sinkhorn_ranks_equal_one_process},
    {"centering_update", centering_update},
    {"centering_over_ranks", centering_over_ranks},
};
RD_TEST_MAIN("train/targets", cases)
