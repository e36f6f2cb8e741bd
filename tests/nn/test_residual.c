/* LayerScale residual with exact-count drop-path subsets (drop_add_residual_stochastic_depth,
 * dinov2/layers/block.py): only the kept samples change, by (b/keep) gamma * y; averaged over all
 * subsets of a size the update equals the undropped one (rtol 1e-6); gather/scatter; backward of
 * y and gamma against central finite differences (step 1e-2, |fd - g| <= 1e-5 + 1e-4 |fd|: the
 * map is linear in each). */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "rdino/nn.h"
#include "rdino/rng.h"

enum { B = 4, T = 3, D = 5, S = B * T * D };

static void fill(float *x, size_t n, uint64_t index) {
    rd_rng r;
    rd_rng_init(&r, 23, RD_RNG_TEST, 0, index, 0);
    for (size_t i = 0; i < n; i++) x[i] = (float)rd_rng_normal(&r);
}

static void only_kept_samples_change(rd_test *t) {
    float x0[S], x[S], y[2 * T * D], gamma[D];
    fill(x0, S, 1);
    fill(y, 2 * T * D, 2);
    fill(gamma, D, 3);
    int keep_set[2] = {3, 1};
    memcpy(x, x0, sizeof x);
    rd_residual_forward(x, y, gamma, keep_set, 2, T, D, 2.0f);
    for (int b = 0; b < B; b++)
        for (int k = 0; k < T * D; k++) {
            int j = b == 3 ? 0 : b == 1 ? 1 : -1;
            float want = j < 0 ? x0[b * T * D + k]
                               : x0[b * T * D + k] + 2.0f * (gamma[k % D] * y[j * T * D + k]);
            CHECK(x[b * T * D + k] == want);
        }
}

static void mean_over_subsets_is_the_full_update(rd_test *t) {
    /* each sample's branch output yb[b]; a subset S applies (B/keep) gamma yb[S[j]] */
    float x0[S], yb[S], gamma[D], full[S], mean[S] = {0};
    fill(x0, S, 4);
    fill(yb, S, 5);
    fill(gamma, D, 6);
    memcpy(full, x0, sizeof full);
    rd_residual_forward(full, yb, gamma, NULL, B, T, D, 1.0f);
    int subsets = 0;
    for (int a = 0; a < B; a++)
        for (int c = a + 1; c < B; c++) { /* all 6 subsets of size 2 */
            int idx[2] = {a, c};
            float x[S], y[2 * T * D];
            memcpy(x, x0, sizeof x);
            rd_gather_samples(y, yb, idx, 2, (size_t)T * D);
            rd_residual_forward(x, y, gamma, idx, 2, T, D, (float)B / 2);
            for (int i = 0; i < S; i++) mean[i] += x[i];
            subsets++;
        }
    for (int i = 0; i < S; i++) mean[i] /= (float)subsets;
    CHECK_CLOSE("mean over subsets", mean, full, S, 1e-6, 1e-6);
}

typedef struct res_case {
    float x[S], y[2 * T * D], gamma[D], probe[S];
    int idx[2];
} res_case;

static double res_loss(void *p) {
    res_case *c = p;
    float x[S];
    memcpy(x, c->x, sizeof x);
    rd_residual_forward(x, c->y, c->gamma, c->idx, 2, T, D, 2.0f);
    double s = 0;
    for (int i = 0; i < S; i++) s += (double)x[i] * c->probe[i];
    return s;
}

static void backward_matches_finite_differences(rd_test *t) {
    res_case c = {.idx = {2, 0}};
    fill(c.x, S, 7);
    fill(c.y, 2 * T * D, 8);
    fill(c.gamma, D, 9);
    fill(c.probe, S, 10);
    float dy[2 * T * D] = {0}, dgamma[D] = {0};
    rd_residual_backward(dy, dgamma, c.probe, c.y, c.gamma, c.idx, 2, T, D, 2.0f);
    CHECK_GRAD("dy", c.y, dy, 2 * T * D, res_loss, &c, 1e-2, 1e-4, 1e-5);
    CHECK_GRAD("dgamma", c.gamma, dgamma, D, res_loss, &c, 1e-2, 1e-4, 1e-5);
    /* scatter-add is the adjoint of gather */
    float rows[2 * T * D], back[S] = {0};
    rd_gather_samples(rows, c.probe, c.idx, 2, (size_t)T * D);
    rd_scatter_add_samples(back, rows, c.idx, 2, (size_t)T * D);
    for (int b = 0; b < B; b++)
        for (int k = 0; k < T * D; k++)
            CHECK(back[b * T * D + k] == (b == 2 || b == 0 ? c.probe[b * T * D + k] : 0.0f));
}

static const rd_test_case cases[] = {
    {"only_kept_samples_change", only_kept_samples_change},
    {"mean_over_subsets_is_the_full_update", mean_over_subsets_is_the_full_update},
    {"backward_matches_finite_differences", backward_matches_finite_differences},
};
RD_TEST_MAIN("nn/residual", cases)
