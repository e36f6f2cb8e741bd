/* Positional-embedding resampling (DINOv2's interpolate_pos_encoding): bicubic rows sum to 1, the
 * size form at the native grid is the identity, a hand-computed scale-factor row, the separable
 * resampling against a direct double sum (rtol 1e-5, atol 1e-6), and backward as the exact adjoint:
 * <R x, y> = <x, R^T y> (relative 1e-5). The PyTorch comparison is in
 * tests/model/test_vit_fixtures.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "rdino/nn.h"
#include "rdino/rng.h"

enum { M = 5, C = 6 };

static void fill(float *x, size_t n, uint64_t index) {
    rd_rng r;
    rd_rng_init(&r, 19, RD_RNG_TEST, 0, index, 0);
    for (size_t i = 0; i < n; i++) x[i] = (float)rd_rng_normal(&r);
}

static void weights_sum_to_one_and_native_is_identity(rd_test *t) {
    float w[9 * M];
    for (int g = 1; g <= 9; g++)
        for (int form = 0; form < 2; form++) {
            rd_bicubic_weights(w, M, g, form ? (g + 0.1) / M : 0.0);
            for (int o = 0; o < g; o++) {
                double s = 0;
                for (int a = 0; a < M; a++) s += w[o * M + a];
                CHECK_NEAR(s, 1.0, 1e-6);
            }
        }
    rd_bicubic_weights(w, M, M, 0.0);
    for (int o = 0; o < M; o++)
        for (int a = 0; a < M; a++) CHECK(w[o * M + a] == (o == a ? 1.0f : 0.0f));
}

static void scale_factor_row_by_hand(rd_test *t) {
    /* M = 5 -> g = 3 with offset 0.1: s = 3.1/5, output 1 reads (1.5)/0.62 - 0.5 = 1.919355 */
    float w[3 * M];
    rd_bicubic_weights(w, M, 3, 3.1 / 5);
    double src = 1.5 / 0.62 - 0.5, tt = src - 1.0, A = -0.75;
    double x1 = tt + 1, x2 = 1 - tt, x3 = 2 - tt;
    double want[4] = {
        ((A * x1 - 5 * A) * x1 + 8 * A) * x1 - 4 * A, ((A + 2) * tt - (A + 3)) * tt * tt + 1,
        ((A + 2) * x2 - (A + 3)) * x2 * x2 + 1, ((A * x3 - 5 * A) * x3 + 8 * A) * x3 - 4 * A};
    for (int k = 0; k < 4; k++) CHECK_NEAR(w[M + k], want[k], 1e-7);
    CHECK_NEAR(w[M + 4], 0.0, 0);
    /* output 0 reads 0.5/0.62 - 0.5 = 0.3065: tap -1 clamps onto source 0 */
    double t0 = 0.5 / 0.62 - 0.5, y1 = t0 + 1, y2 = 1 - t0, y3 = 2 - t0;
    double c2_1 = ((A * y1 - 5 * A) * y1 + 8 * A) * y1 - 4 * A;
    double c1_0 = ((A + 2) * t0 - (A + 3)) * t0 * t0 + 1;
    CHECK_NEAR(w[0], c2_1 + c1_0, 1e-7);
    CHECK_NEAR(w[1], ((A + 2) * y2 - (A + 3)) * y2 * y2 + 1, 1e-7);
    CHECK_NEAR(w[2], ((A * y3 - 5 * A) * y3 + 8 * A) * y3 - 4 * A, 1e-7);
}

static void resample_matches_direct_sum_and_adjoint(rd_test *t) {
    int g0 = 4, g1 = 7;
    float grid[M * M * C], wrow[4 * M], wcol[7 * M], out[4 * 7 * C], tmp[4 * M * C];
    fill(grid, M * M * C, 1);
    rd_bicubic_weights(wrow, M, g0, (g0 + 0.1) / M);
    rd_bicubic_weights(wcol, M, g1, (g1 + 0.1) / M);
    rd_resample_forward(out, tmp, grid, wrow, wcol, M, g0, g1, C);
    float want[4 * 7 * C];
    for (int i = 0; i < g0; i++)
        for (int j = 0; j < g1; j++)
            for (int c = 0; c < C; c++) {
                double s = 0;
                for (int a = 0; a < M; a++)
                    for (int b = 0; b < M; b++)
                        s += (double)wrow[i * M + a] * wcol[j * M + b] * grid[(a * M + b) * C + c];
                want[(i * g1 + j) * C + c] = (float)s;
            }
    CHECK_CLOSE("resampled grid", out, want, 4 * 7 * C, 1e-5, 1e-6);
    float y[4 * 7 * C], dgrid[M * M * C] = {0};
    fill(y, 4 * 7 * C, 2);
    rd_resample_backward(dgrid, tmp, y, wrow, wcol, M, g0, g1, C);
    double lhs = 0, rhs = 0;
    for (int i = 0; i < 4 * 7 * C; i++) lhs += (double)out[i] * y[i];
    for (int i = 0; i < M * M * C; i++) rhs += (double)grid[i] * dgrid[i];
    CHECK_NEAR(lhs, rhs, 1e-5 * fabs(lhs));
}

static const rd_test_case cases[] = {
    {"weights_sum_to_one_and_native_is_identity", weights_sum_to_one_and_native_is_identity},
    {"scale_factor_row_by_hand", scale_factor_row_by_hand},
    {"resample_matches_direct_sum_and_adjoint", resample_matches_direct_sum_and_adjoint},
};
RD_TEST_MAIN("nn/pos_embed", cases)
