/* DINO, iBOT and KoLeo losses: finite-difference checks of the gradients (losses accumulated in
 * double, eps 1e-3 on logits of scale 1, rtol 2e-3, atol 2e-5), closed-form values of each loss,
 * and KoLeo against the PyTorch oracle (sinkhorn_koleo.h5; fp64 oracle, rtol 1e-5). */
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "harness.h"
#include "train/loss.h"
#include "rdino/rng.h"

#define FD_EPS  1e-3
#define FD_RTOL 2e-3
#define FD_ATOL 2e-5

static void fill_normal(float *x, size_t n, uint64_t index, double scale) {
    rd_rng r;
    rd_rng_init(&r, 5, RD_RNG_TEST, 0, index, 0);
    for (size_t i = 0; i < n; i++) x[i] = (float)(scale * rd_rng_normal(&r));
}

/* Random target distributions (softmax of random logits) [rows, K]. */
static void fill_targets(float *q, int rows, int K, uint64_t index) {
    fill_normal(q, (size_t)rows * K, index, 2.0);
    for (int r = 0; r < rows; r++) {
        double s = 0;
        for (int k = 0; k < K; k++) s += exp(q[r * K + k]);
        for (int k = 0; k < K; k++) q[r * K + k] = (float)(exp(q[r * K + k]) / s);
    }
}

enum { B = 3, NL = 2, K = 11, D = 9 };
#define TEMP 0.1

typedef struct dino_case {
    float t[2 * B * K], s_local[NL * B * K], s_global[2 * B * K];
    float ds_local[NL * B * K], ds_global[2 * B * K];
    int n_local;
} dino_case;

static double dino_total(void *ctx) {
    dino_case *c = ctx;
    double l, g;
    rd_dino_loss(c->t, c->s_local, c->s_global, B, c->n_local, K, TEMP, 1.0, &l, &g, c->ds_local,
                 c->ds_global);
    return l + g;
}

/* Random targets and student logits of scale `scale`, streams first..first+2. */
static void dino_fill(dino_case *c, uint64_t first, double scale) {
    c->n_local = NL;
    fill_targets(c->t, 2 * B, K, first);
    fill_normal(c->s_local, NL * B * K, first + 1, scale);
    fill_normal(c->s_global, 2 * B * K, first + 2, scale);
}

static void dino_gradients(rd_test *t) {
    dino_case c;
    dino_fill(&c, 1, 0.5);
    double l, g;
    float dl[NL * B * K], dg[2 * B * K];
    rd_dino_loss(c.t, c.s_local, c.s_global, B, NL, K, TEMP, 1.0, &l, &g, dl, dg);
    CHECK_GRAD("ds_local", c.s_local, dl, NL * B * K, dino_total, &c, FD_EPS, FD_RTOL, FD_ATOL);
    CHECK_GRAD("ds_global", c.s_global, dg, 2 * B * K, dino_total, &c, FD_EPS, FD_RTOL, FD_ATOL);
    /* The weight scales the gradient only; in-place (ds = s) gives the same gradient. */
    float copy[2 * B * K];
    memcpy(copy, c.s_global, sizeof copy);
    double l2, g2;
    rd_dino_loss(c.t, c.s_local, copy, B, NL, K, TEMP, 2.0, &l2, &g2, c.ds_local, copy);
    for (int i = 0; i < 2 * B * K; i++) dg[i] *= 2.0f;
    CHECK_CLOSE("in-place, weight 2", copy, dg, 2 * B * K, 1e-6, 1e-9);
    CHECK_NEAR(l2, l, 1e-12);
    CHECK_NEAR(g2, g, 1e-12);
}

/* DINOLoss.forward's sum over (teacher view, student view) pairs written out, in double. */
static void dino_matches_formula(rd_test *t) {
    dino_case c;
    dino_fill(&c, 4, 1.0);
    double l, g;
    rd_dino_loss(c.t, c.s_local, c.s_global, B, NL, K, TEMP, 1.0, &l, &g, c.ds_local, c.ds_global);
    double want_l = 0, want_g = 0, Z = 2 + 2 * NL;
    for (int r = 0; r < NL * B + 2 * B; r++) {
        const float *s = r < NL * B ? c.s_local + r * K : c.s_global + (r - NL * B) * K;
        double mx = -INFINITY, sum = 0;
        for (int k = 0; k < K; k++) mx = fmax(mx, s[k] / TEMP);
        for (int k = 0; k < K; k++) sum += exp(s[k] / TEMP - mx);
        double lse = mx + log(sum);
        for (int view = 0; view < 2; view++) {
            const float *q;
            if (r < NL * B)
                q = c.t + (view * B + r % B) * K; /* both teacher views */
            else if (view == 0)
                q = c.t + (r - NL * B) * K; /* the swapped row only */
            else
                continue;
            double ce = 0;
            for (int k = 0; k < K; k++) ce -= q[k] * (s[k] / TEMP - lse);
            if (r < NL * B)
                want_l += ce / B / Z;
            else
                want_g += ce / B / Z;
        }
    }
    CHECK_NEAR(l, want_l, 1e-6 * want_l);
    CHECK_NEAR(g, want_g, 1e-6 * want_g);
    /* n_local = 0: Z = 3, the global term is (2/3) mean CE. */
    CHECK(rd_dino_loss_terms(0) == 3 && rd_dino_loss_terms(8) == 18);
    double l0, g0;
    rd_dino_loss(c.t, NULL, c.s_global, B, 0, K, TEMP, 1.0, &l0, &g0, NULL, c.ds_global);
    CHECK(l0 == 0.0);
    CHECK_NEAR(g0, want_g * Z / 3.0, 1e-6 * g0);
}

/* Uniform teacher and constant student => every pair is ln K; loss >= target entropy. */
static void dino_uniform_is_log_k(rd_test *t) {
    dino_case c = {.n_local = NL};
    for (int i = 0; i < 2 * B * K; i++) c.t[i] = 1.0f / K;
    for (int i = 0; i < NL * B * K; i++) c.s_local[i] = 0.3f;
    for (int i = 0; i < 2 * B * K; i++) c.s_global[i] = -1.7f;
    double l, g;
    rd_dino_loss(c.t, c.s_local, c.s_global, B, NL, K, TEMP, 1.0, &l, &g, c.ds_local, c.ds_global);
    CHECK_NEAR(l + g, log(K), 1e-6);
    CHECK_NEAR(g, log(K) * 2.0 / (2 + 2 * NL), 1e-6);
    for (int i = 0; i < 2 * B * K; i++) CHECK_NEAR(c.ds_global[i], 0.0, 1e-6);
    dino_fill(&c, 7, 1.0);
    rd_dino_loss(c.t, c.s_local, c.s_global, B, NL, K, TEMP, 1.0, &l, &g, c.ds_local, c.ds_global);
    double entropy = 0;
    for (int i = 0; i < 2 * B * K; i++) entropy -= c.t[i] * log(c.t[i]);
    CHECK(l + g >= entropy / (2 * B));
}

enum { M = 7, IMAGES = 4 };
typedef struct ibot_case {
    float q[M * K], s[M * K], w[M], ds[M * K];
} ibot_case;

static double ibot_total(void *ctx) {
    ibot_case *c = ctx;
    return rd_ibot_loss(c->q, c->s, c->w, M, IMAGES, K, TEMP, 1.0, c->ds);
}

static void ibot_gradients_and_uniform(rd_test *t) {
    ibot_case c;
    fill_targets(c.q, M, K, 10);
    fill_normal(c.s, M * K, 11, 0.5);
    /* Two masked images of 3 and 4 patches (weights 1/3, 1/4), two unmasked. */
    for (int p = 0; p < M; p++) c.w[p] = p < 3 ? 1.0f / 3 : 0.25f;
    float ds[M * K];
    rd_ibot_loss(c.q, c.s, c.w, M, IMAGES, K, TEMP, 1.0, ds);
    CHECK_GRAD("ds_masked", c.s, ds, M * K, ibot_total, &c, FD_EPS, FD_RTOL, FD_ATOL);
    /* Uniform targets, constant student => ln K x masked images / n_images. */
    for (int i = 0; i < M * K; i++) {
        c.q[i] = 1.0f / K;
        c.s[i] = 0.7f;
    }
    double l = rd_ibot_loss(c.q, c.s, c.w, M, IMAGES, K, TEMP, 1.0, ds);
    CHECK_NEAR(l, log(K) * 2 / IMAGES, 1e-6);
}

typedef struct koleo_case {
    float x[6 * D], dx[6 * D];
    int n;
    double work[2 * 6 * D + 6];
} koleo_case;

static double koleo_value(void *ctx) {
    koleo_case *c = ctx;
    return rd_koleo_loss(c->x, c->n, D, 1.0, NULL, NULL, c->work);
}

static void koleo_gradients(rd_test *t) {
    koleo_case c = {.n = 6};
    fill_normal(c.x, 6 * D, 12, 1.0);
    /* Row 4 near row 1 (a shared neighbour) so one row receives gradient from two others. */
    for (int d = 0; d < D; d++) c.x[4 * D + d] = 1.5f * c.x[1 * D + d] + 0.2f * c.x[0 * D + d];
    memset(c.dx, 0, sizeof c.dx);
    int nn[6];
    rd_koleo_loss(c.x, 6, D, 1.0, c.dx, nn, c.work);
    CHECK(nn[4] == 1 && nn[1] == 4);
    CHECK_GRAD("dx", c.x, c.dx, 6 * D, koleo_value, &c, FD_EPS, FD_RTOL, FD_ATOL);
    /* dx accumulates, scaled by the weight. */
    float twice[6 * D];
    for (int i = 0; i < 6 * D; i++) twice[i] = 1.1f * c.dx[i];
    rd_koleo_loss(c.x, 6, D, 0.1, c.dx, NULL, c.work);
    CHECK_CLOSE("accumulated", c.dx, twice, 6 * D, 1e-6, 1e-9);
}

/* Orthonormal rows => -ln(sqrt 2); two unit vectors at distance delta => -ln(delta);
 * invariant to positive rescaling of the rows. */
static void koleo_invariants(rd_test *t) {
    koleo_case c = {.n = 4};
    memset(c.x, 0, sizeof c.x);
    for (int i = 0; i < 4; i++) c.x[i * D + 2 * i] = (float)(1 + i); /* orthogonal, any length */
    double l = rd_koleo_loss(c.x, 4, D, 1.0, NULL, NULL, c.work);
    CHECK_NEAR(l, -log(sqrt(2.0)), 1e-7);
    memset(c.x, 0, sizeof c.x);
    double angle = 0.3;
    c.x[0] = 1.0f;
    c.x[D] = (float)cos(angle);
    c.x[D + 1] = (float)sin(angle);
    l = rd_koleo_loss(c.x, 2, D, 1.0, NULL, NULL, c.work);
    CHECK_NEAR(l, -log(2 * sin(angle / 2)), 1e-6);
    fill_normal(c.x, 4 * D, 13, 1.0);
    l = rd_koleo_loss(c.x, 4, D, 1.0, NULL, NULL, c.work);
    for (int i = 0; i < 4 * D; i++) c.x[i] *= (i / D + 1) * 3.0f;
    CHECK_NEAR(rd_koleo_loss(c.x, 4, D, 1.0, NULL, NULL, c.work), l, 1e-6);
}

static void koleo_matches_oracle(rd_test *t) {
    hid_t f = rd_fixture_open("sinkhorn_koleo.h5");
    if (f < 0) SKIP("fixture sinkhorn_koleo.h5 not found (set RDINO_FIXTURES)");
    int64_t dims[2] = {0, 0};
    rd_fixture_shape(f, "koleo/x", dims, 2);
    int n = (int)dims[0], dim = (int)dims[1];
    float *x = rd_fixture_floats(f, "koleo/x", NULL);
    float *want_grad = rd_fixture_floats(f, "koleo/grad", NULL);
    float *want_loss = rd_fixture_floats(f, "koleo/loss", NULL);
    int64_t *want_nn = rd_fixture_ints(f, "koleo/nn_index", NULL);
    CHECK(x && want_grad && want_loss && want_nn && n > 0);
    if (!t->failures) {
        float *dx = calloc((size_t)n * dim, sizeof(float));
        double *work = malloc(rd_koleo_work(n, dim) * sizeof(double));
        int *nn = malloc((size_t)n * sizeof(int));
        double l = rd_koleo_loss(x, n, dim, rd_fixture_attr(f, "koleo_weight"), dx, nn, work);
        CHECK_NEAR(l, want_loss[0], 1e-5 * fabs(want_loss[0]));
        for (int i = 0; i < n; i++)
            CHECK_MSG(nn[i] == want_nn[i], "nn[%d] = %d, want %lld", i, nn[i],
                      (long long)want_nn[i]);
        double mx = 0;
        for (int i = 0; i < n * dim; i++) mx = fmax(mx, fabs(want_grad[i]));
        CHECK_CLOSE("koleo grad", dx, want_grad, (size_t)n * dim, 1e-5, 1e-6 * mx);
        free(dx);
        free(work);
        free(nn);
    }
    free(x);
    free(want_grad);
    free(want_loss);
    free(want_nn);
    rd_fixture_close(f);
}

static const rd_test_case cases[] = {
    {"dino_gradients", dino_gradients},
    {"dino_matches_formula", dino_matches_formula},
    {"dino_uniform_is_log_k", dino_uniform_is_log_k},
    {"ibot_gradients_and_uniform", ibot_gradients_and_uniform},
    {"koleo_gradients", koleo_gradients},
    {"koleo_invariants", koleo_invariants},
    {"koleo_matches_oracle", koleo_matches_oracle},
};
RD_TEST_MAIN("train/loss", cases)
