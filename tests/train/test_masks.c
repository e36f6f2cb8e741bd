/* iBOT masks (collate_data_and_cast, MaskingGenerator): block-generator bounds, the collate
 * invariants over many groups, the float32 upperbound as torch computes it, determinism of the
 * counter-based keys (seed, epoch, first image of the group), and the distributions of what the
 * masks look like against DINOv2's algorithm run in Python (tests/reference/mask_stats.py). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "harness.h"
#include "rdino/masks.h"

static void config_defaults(rd_test *t) {
    rd_mask_config c;
    rd_mask_config_default(&c, 224, 16, 0.5, 0.1, 0.5);
    CHECK(c.grid_h == 14 && c.grid_w == 14 && c.max_patches == 98.0 && c.min_patches == 4);
    CHECK(c.min_aspect == 0.3); /* MaskingGenerator's default; max_aspect = 1 / min_aspect */
    rd_mask_config_default(&c, 224, 14, 0.5, 0.1, 0.5);
    CHECK(c.grid_h == 16 && c.max_patches == 128.0);
    /* sum floor(N probs[i+1]) with torch.linspace in float32 (values from torch 1.13). */
    rd_mask_config_default(&c, 224, 16, 0.5, 0.1, 0.5);
    CHECK(rd_ibot_masks_upperbound(&c, 16) == 507);
    CHECK(rd_ibot_masks_upperbound(&c, 64) == 1906);
    rd_mask_config_default(&c, 224, 14, 0.5, 0.1, 0.5);
    CHECK(rd_ibot_masks_upperbound(&c, 128) == 4941);
    rd_mask_config_default(&c, 32, 8, 0.5, 0.1, 0.5);
    CHECK(rd_ibot_masks_upperbound(&c, 6) == 16);
}

static void block_mask_bounds(rd_test *t) {
    rd_mask_config c;
    rd_mask_config_default(&c, 224, 16, 0.5, 0.1, 0.5);
    uint8_t mask[196];
    int exact = 0;
    for (int target = 0; target <= 98; target++) {
        rd_rng r;
        rd_rng_init(&r, 3, RD_RNG_MASK, 0, (uint64_t)target, 0);
        memset(mask, 0, sizeof mask);
        int n = rd_block_mask(&c, mask, target, &r), set = 0;
        for (int i = 0; i < 196; i++) set += mask[i];
        CHECK_MSG(n == set && n <= target, "target %d: returned %d, set %d", target, n, set);
        if (target == 0) CHECK(set == 0);
        if (target >= 4) CHECK(set > 0);
        exact += n == target;
    }
    CHECK(exact > 50); /* usually reaches the target exactly */
}

static void collate_invariants(rd_test *t) {
    enum { IMAGES = 16, N = 196, GROUPS = 200 };
    rd_mask_config c;
    rd_mask_config_default(&c, 224, 16, 0.5, 0.1, 0.5);
    rd_error err = {0};
    rd_arena arena;
    rd_arena_init_measure(&arena, "measure");
    rd_ibot_masks m;
    rd_ibot_masks_alloc(&m, IMAGES, N, &arena, &err);
    size_t bytes = arena.peak;
    CHECK_OK(rd_arena_init(&arena, "masks", bytes, &err), &err);
    CHECK_OK(rd_ibot_masks_alloc(&m, IMAGES, N, &arena, &err), &err);
    long masked_per_slot[IMAGES] = {0};
    for (int g = 0; g < GROUPS; g++) {
        CHECK_OK(rd_ibot_masks_generate(&m, &c, IMAGES, 42, 1, (uint64_t)g * 8, &err), &err);
        CHECK(m.masked_images == 8 && m.upperbound == 507 && m.count <= m.upperbound);
        int masked = 0;
        double wsum = 0;
        for (int i = 0; i < IMAGES; i++) {
            int cnt = 0;
            for (int p = 0; p < N; p++) cnt += m.mask[i * N + p];
            masked += cnt > 0;
            masked_per_slot[i] += cnt > 0;
            CHECK(cnt <= 98);             /* at most N x 0.5 */
            CHECK(cnt == 0 || cnt >= 19); /* at least floor(N x 0.1) */
        }
        CHECK(masked == 8);
        for (int p = 0; p < m.count; p++) {
            if (p > 0) CHECK(m.indices[p] > m.indices[p - 1]);
            int img = m.indices[p] / N, cnt = 0;
            for (int q = 0; q < N; q++) cnt += m.mask[img * N + q];
            CHECK(m.mask[m.indices[p]] == 1 && m.weight[p] == 1.0f / (float)cnt);
            wsum += m.weight[p];
        }
        CHECK_NEAR(wsum, 8.0, 1e-5);
    }
    /* The shuffle spreads the masks over both crops of all images. */
    for (int i = 0; i < IMAGES; i++)
        CHECK_MSG(masked_per_slot[i] > GROUPS / 4 && masked_per_slot[i] < 3 * GROUPS / 4,
                  "image %d masked in %ld of %d groups", i, masked_per_slot[i], GROUPS);
    rd_arena_free(&arena);
}

static void deterministic_keys(rd_test *t) {
    enum { IMAGES = 8, N = 196 };
    rd_mask_config c;
    rd_mask_config_default(&c, 224, 16, 0.5, 0.1, 0.5);
    rd_error err = {0};
    rd_arena arena;
    CHECK_OK(rd_arena_init(&arena, "masks", 1 << 16, &err), &err);
    rd_ibot_masks a, b;
    CHECK_OK(rd_ibot_masks_alloc(&a, IMAGES, N, &arena, &err), &err);
    CHECK_OK(rd_ibot_masks_alloc(&b, IMAGES, N, &arena, &err), &err);
    CHECK_OK(rd_ibot_masks_generate(&a, &c, IMAGES, 7, 3, 100, &err), &err);
    CHECK_OK(rd_ibot_masks_generate(&b, &c, IMAGES, 7, 3, 100, &err), &err);
    CHECK(a.count == b.count && memcmp(a.mask, b.mask, IMAGES * N) == 0);
    CHECK_OK(rd_ibot_masks_generate(&b, &c, IMAGES, 7, 4, 100, &err), &err);
    CHECK(memcmp(a.mask, b.mask, IMAGES * N) != 0);
    CHECK_OK(rd_ibot_masks_generate(&b, &c, IMAGES, 7, 3, 104, &err), &err);
    CHECK(memcmp(a.mask, b.mask, IMAGES * N) != 0);
    CHECK(rd_ibot_masks_generate(&b, &c, IMAGES + 1, 7, 3, 100, &err) == RD_ERANGE);
    /* Injected masks: index rebuilds count, indices and weights. */
    memset(b.mask, 0, IMAGES * N);
    b.n_images = IMAGES;
    b.mask[5] = b.mask[N + 1] = b.mask[N + 2] = 1;
    rd_ibot_masks_index(&b);
    CHECK(b.count == 3 && b.indices[0] == 5 && b.indices[2] == N + 2);
    CHECK(b.weight[0] == 1.0f && b.weight[1] == 0.5f);
    rd_arena_free(&arena);
}

/* Histograms of mask features, as tests/reference/mask_stats.py defines them. */
enum { CMAX = 12, N_HISTS = 6 };
typedef struct mask_stats {
    int H, N;
    long samples;
    int64_t *h[N_HISTS]; /* count [N+1], bbox_h, bbox_w [H+1], components [CMAX+1], rect
                         [(H+1)^2], cell [N] */
    int *stack;
    uint8_t *seen;
} mask_stats;
static const char *const hist_name[N_HISTS] = {"count",      "bbox_h", "bbox_w",
                                               "components", "rect",   "cell"};

static size_t hist_bins(const mask_stats *s, int k) {
    const size_t H1 = (size_t)s->H + 1;
    const size_t bins[N_HISTS] = {(size_t)s->N + 1, H1, H1, CMAX + 1, H1 * H1, (size_t)s->N};
    return bins[k];
}

static void stats_init(mask_stats *s, int H) {
    memset(s, 0, sizeof *s);
    s->H = H;
    s->N = H * H;
    for (int k = 0; k < N_HISTS; k++) s->h[k] = calloc(hist_bins(s, k), sizeof(int64_t));
    s->stack = malloc((size_t)s->N * sizeof(int));
    s->seen = malloc((size_t)s->N);
}

static void stats_free(mask_stats *s) {
    for (int k = 0; k < N_HISTS; k++) free(s->h[k]);
    free(s->stack);
    free(s->seen);
}

/* 4-connected components of mask [H, H], by flood fill. */
static int components(mask_stats *s, const uint8_t *mask) {
    const int H = s->H;
    int n = 0;
    memset(s->seen, 0, (size_t)s->N);
    for (int start = 0; start < s->N; start++) {
        if (!mask[start] || s->seen[start]) continue;
        n++;
        int top = 0;
        s->stack[top++] = start;
        s->seen[start] = 1;
        while (top > 0) {
            int p = s->stack[--top], i = p / H, j = p % H;
            const int nb[4] = {i > 0 ? p - H : -1, i < H - 1 ? p + H : -1, j > 0 ? p - 1 : -1,
                               j < H - 1 ? p + 1 : -1};
            for (int k = 0; k < 4; k++)
                if (nb[k] >= 0 && mask[nb[k]] && !s->seen[nb[k]]) {
                    s->seen[nb[k]] = 1;
                    s->stack[top++] = nb[k];
                }
        }
    }
    return n;
}

static void stats_add(mask_stats *s, const uint8_t *mask) {
    const int H = s->H;
    int n = 0, r0 = H, r1 = -1, c0 = H, c1 = -1;
    for (int p = 0; p < s->N; p++) {
        if (!mask[p]) continue;
        n++;
        s->h[5][p]++;
        int i = p / H, j = p % H;
        r0 = i < r0 ? i : r0, r1 = i > r1 ? i : r1;
        c0 = j < c0 ? j : c0, c1 = j > c1 ? j : c1;
    }
    s->samples++;
    s->h[0][n]++;
    int bh = n ? r1 - r0 + 1 : 0, bw = n ? c1 - c0 + 1 : 0, comps = n ? components(s, mask) : 0;
    s->h[1][bh]++;
    s->h[2][bw]++;
    s->h[3][comps < CMAX ? comps : CMAX]++;
    if (comps == 1 && n == bh * bw) s->h[4][(size_t)bh * (H + 1) + bw]++;
}

/* Per bin, the two-sample test of equal proportions: |p1 - p2| minus the continuity correction
 * 0.5 (1/n1 + 1/n2), over the pooled standard error sqrt(p (1 - p) (1/n1 + 1/n2)). Z_MAX 5.5
 * has a two-sided tail of 3.8e-8 per bin; over the ~21000 bins of all settings a correct generator
 * fails with probability ~1e-3 for a given seed (and the seeds are fixed). */
#define Z_MAX 5.5

typedef struct bin_test {
    int bad;       /* bins beyond Z_MAX */
    double worst;  /* largest z */
    size_t at;     /* its bin */
    double p1, p2; /* its proportions (DINOv2, rdino) */
} bin_test;

static bin_test compare_bins(const int64_t *a, double n1, const int64_t *b, double n2,
                             size_t bins) {
    bin_test r = {0, 0, 0, 0, 0};
    for (size_t i = 0; i < bins; i++) {
        double p1 = (double)a[i] / n1, p2 = (double)b[i] / n2, p = (a[i] + b[i]) / (n1 + n2);
        if (p <= 0 || p >= 1) continue;
        double inv = 1 / n1 + 1 / n2;
        double z = fmax(0.0, fabs(p1 - p2) - 0.5 * inv) / sqrt(p * (1 - p) * inv);
        if (z > Z_MAX) r.bad++;
        if (z > r.worst) r = (bin_test){r.bad, z, i, p1, p2};
    }
    return r;
}

/* Mean and variance of a histogram of n samples over the values 0, 1, ... */
static void hist_moments(const int64_t *h, size_t bins, double n, double *mean, double *var) {
    double m = 0, q = 0;
    for (size_t i = 0; i < bins; i++) m += (double)i * (double)h[i] / n;
    for (size_t i = 0; i < bins; i++) q += ((double)i - m) * ((double)i - m) * (double)h[i] / n;
    *mean = m;
    *var = q;
}

/* rdino's masks of one fixture setting (grid<H>/target_<T> or grid<H>/collate), 2x its samples. */
static void rdino_stats(rd_test *t, mask_stats *s, const rd_mask_config *c, int target,
                        long samples) {
    const int N = c->grid_h * c->grid_w;
    uint8_t *mask = malloc((size_t)N);
    if (target >= 0) {
        for (long i = 0; i < 2 * samples; i++) {
            rd_rng r;
            rd_rng_init(&r, 17, RD_RNG_MASK, (uint32_t)target, (uint64_t)i, 0);
            memset(mask, 0, (size_t)N);
            rd_block_mask(c, mask, target, &r);
            stats_add(s, mask);
        }
    } else {
        enum { IMAGES = 16 };
        rd_error err = {0};
        rd_arena arena;
        CHECK_OK(rd_arena_init(&arena, "masks", (size_t)IMAGES * N * 16 + 4096, &err), &err);
        rd_ibot_masks m;
        CHECK_OK(rd_ibot_masks_alloc(&m, IMAGES, N, &arena, &err), &err);
        for (long g = 0; g < 2 * samples / IMAGES && !t->failures; g++) {
            CHECK_OK(rd_ibot_masks_generate(&m, c, IMAGES, 17, 1, (uint64_t)g * IMAGES / 2, &err),
                     &err);
            for (int i = 0; i < IMAGES; i++) stats_add(s, m.mask + (size_t)i * N);
        }
        rd_arena_free(&arena);
    }
    free(mask);
}

/* Compares rdino's histograms with the fixture's under `setting`; returns the bins beyond Z_MAX
 * (reported through CHECK only when expect_equal). */
static int compare_setting(rd_test *t, hid_t f, const char *setting, const rd_mask_config *c,
                           int expect_equal) {
    hid_t g = H5Gopen2(f, setting, H5P_DEFAULT);
    const int H = (int)rd_fixture_attr(g, "grid"), target = (int)rd_fixture_attr(g, "target");
    const long n1 = (long)rd_fixture_attr(g, "samples");
    CHECK_MSG(c->grid_h == H && c->max_patches == rd_fixture_attr(g, "max_patches"),
              "%s: grid %d / max_patches %g, DINOv2 %d / %g", setting, c->grid_h, c->max_patches, H,
              rd_fixture_attr(g, "max_patches"));
    H5Gclose(g);
    mask_stats s;
    stats_init(&s, H);
    rdino_stats(t, &s, c, target, n1);
    int bad = 0;
    for (int k = 0; k < N_HISTS; k++) {
        char path[96];
        snprintf(path, sizeof path, "%s/%s", setting, hist_name[k]);
        size_t n = 0;
        int64_t *a = rd_fixture_ints(f, path, &n);
        CHECK_MSG(a && n == hist_bins(&s, k), "%s: missing or %zu bins", path, n);
        if (!a || n != hist_bins(&s, k)) {
            free(a);
            bad++;
            continue;
        }
        bin_test r = compare_bins(a, (double)n1, s.h[k], (double)s.samples, n);
        if (expect_equal)
            CHECK_MSG(r.bad == 0,
                      "%s: %d bins differ; worst bin %zu: DINOv2 %.5f, rdino %.5f (z %.1f > %.1f)",
                      path, r.bad, r.at, r.p1, r.p2, r.worst, Z_MAX);
        bad += r.bad;
        if (k == 0) { /* mean masked patches per mask */
            double m1, v1, m2, v2;
            hist_moments(a, n, (double)n1, &m1, &v1);
            hist_moments(s.h[0], n, (double)s.samples, &m2, &v2);
            double z = fabs(m1 - m2) / sqrt(v1 / (double)n1 + v2 / (double)s.samples + 1e-300);
            if (expect_equal)
                CHECK_MSG(z <= Z_MAX, "%s: mean masked %.4f, DINOv2 %.4f (z %.1f)", setting, m2, m1,
                          z);
            bad += z > Z_MAX;
        }
        free(a);
    }
    stats_free(&s);
    return bad;
}

static void match_dinov2(rd_test *t, int img, int patch, const char *const *settings, int n) {
    hid_t f = rd_fixture_open("mask_stats.h5");
    if (f < 0) SKIP("fixture mask_stats.h5 not found (set RDINO_FIXTURES)");
    rd_mask_config c;
    rd_mask_config_default(&c, img, patch, rd_fixture_attr(f, "mask_probability"),
                           rd_fixture_attr(f, "ratio_min"), rd_fixture_attr(f, "ratio_max"));
    CHECK(c.min_patches == (int)rd_fixture_attr(f, "min_patches") &&
          c.min_aspect == rd_fixture_attr(f, "min_aspect"));
    for (int i = 0; i < n; i++) compare_setting(t, f, settings[i], &c, 1);
    rd_fixture_close(f);
}

static void block_statistics_match_dinov2_224(rd_test *t) {
    static const char *const s[] = {"grid14/target_4",  "grid14/target_10", "grid14/target_25",
                                    "grid14/target_50", "grid14/target_98", "grid14/collate"};
    match_dinov2(t, 224, 16, s, 6);
}

static void block_statistics_match_dinov2_518(rd_test *t) {
    static const char *const s[] = {"grid37/target_68", "grid37/target_342", "grid37/target_684",
                                    "grid37/collate"};
    match_dinov2(t, 518, 14, s, 4);
}

/* The comparison has the power to see a generator that is not DINOv2's: aspect ratios in
 * [0.5, 2] instead of [0.3, 1/0.3], blocks of at least 8 patches instead of 4. */
static void block_statistics_detect_other_generators(rd_test *t) {
    hid_t f = rd_fixture_open("mask_stats.h5");
    if (f < 0) SKIP("fixture mask_stats.h5 not found (set RDINO_FIXTURES)");
    rd_mask_config c;
    rd_mask_config_default(&c, 224, 16, 0.5, 0.1, 0.5);
    c.min_aspect = 0.5;
    int aspect = compare_setting(t, f, "grid14/target_25", &c, 0);
    rd_mask_config_default(&c, 224, 16, 0.5, 0.1, 0.5);
    c.min_patches = 8;
    int area = compare_setting(t, f, "grid14/target_25", &c, 0);
    CHECK_MSG(aspect > 0 && area > 0, "bins beyond z %.1f: aspect [0.5, 2] %d, min area 8 %d",
              Z_MAX, aspect, area);
    rd_fixture_close(f);
}

static const rd_test_case cases[] = {
    {"config_defaults", config_defaults},
    {"block_mask_bounds", block_mask_bounds},
    {"collate_invariants", collate_invariants},
    {"deterministic_keys", deterministic_keys},
    {"block_statistics_match_dinov2_224", block_statistics_match_dinov2_224},
    {"block_statistics_match_dinov2_518", block_statistics_match_dinov2_518},
    {"block_statistics_detect_other_generators", block_statistics_detect_other_generators},
};
RD_TEST_MAIN("train/masks", cases)
