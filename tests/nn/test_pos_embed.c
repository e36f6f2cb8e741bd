/* Positional-embedding resampling (DINOv2's interpolate_pos_encoding): bicubic rows sum to 1, the
 * size form at the native grid is the identity, a hand-computed scale-factor row, the separable
 * resampling against a direct double sum (rtol 1e-5, atol 1e-6), and backward as the exact adjoint:
 * <R x, y> = <x, R^T y> (relative 1e-5). The PyTorch comparison of the plain bicubic is in
 * tests/model/test_vit_fixtures.c; the antialiased one is compared here with torch 1.13's
 * interpolate(antialias=True) (tests/reference/pos_embed_aa.py -> fixtures/pos_embed_aa.h5). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
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

/* The fixture holds torch's portable kernel (ATEN_CPU_CAPABILITY=default): rdino's float
 * weights agree with it to 1.2e-7 (1 ulp at 1). torch's own AVX2 kernel differs from it by up
 * to 6e-7 (FMA contraction). */
#define AA_WEIGHT_ATOL 1.5e-7

static void aa_weights_match_torch(rd_test *t) {
    hid_t f = rd_fixture_open("pos_embed_aa.h5");
    if (f < 0)
        SKIP("tests/reference/fixtures/pos_embed_aa.h5 missing (run "
             "tests/reference/pos_embed_aa.py)");
    const char *names[] = {"37_to_16", "37_to_7",  "37_to_23",    "37_to_40",
                           "5_to_9",   "16_to_37", "37_to_16_sf", "37_to_7_sf"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        char path[64];
        snprintf(path, sizeof path, "w/%s", names[k]);
        int64_t dims[2];
        size_t n;
        float *want = rd_fixture_floats(f, path, &n);
        CHECK_MSG(want && rd_fixture_shape(f, path, dims, 2) == 2, "%s missing", path);
        if (!want) continue;
        int g = (int)dims[0], Msrc = (int)dims[1];
        hid_t ds = H5Dopen2(f, path, H5P_DEFAULT);
        double sf = 0;
        hid_t a = H5Aopen(ds, "scale_factor", H5P_DEFAULT);
        H5Aread(a, H5T_NATIVE_DOUBLE, &sf);
        H5Aclose(a);
        H5Dclose(ds);
        float *got = malloc(n * sizeof *got);
        rd_bicubic_aa_weights(got, Msrc, g, sf);
        CHECK_CLOSE(path, got, want, n, 0, AA_WEIGHT_ATOL);
        /* negative control: the plain (a = -0.75, clamped) kernel is far from it */
        rd_bicubic_weights(got, Msrc, g, sf);
        double far = 0;
        for (size_t i = 0; i < n; i++) far = fmax(far, fabs(got[i] - want[i]));
        CHECK_MSG(far > 1e-2, "%s: the plain bicubic is within %g of the antialiased one", path,
                  far);
        free(got);
        free(want);
    }
    rd_fixture_close(f);
}

static void aa_resampled_grid_matches_torch(rd_test *t) {
    hid_t f = rd_fixture_open("pos_embed_aa.h5");
    if (f < 0)
        SKIP("tests/reference/fixtures/pos_embed_aa.h5 missing (run "
             "tests/reference/pos_embed_aa.py)");
    int64_t gdims[2];
    float *grid = rd_fixture_floats(f, "grid", NULL);
    CHECK(grid && rd_fixture_shape(f, "grid", gdims, 2) == 2);
    int Mg = 37, Cg = (int)gdims[1];
    const struct {
        const char *name;
        int g0, g1;
        double sf;
    } outs[] = {{"out/16x16", 16, 16, 0},
                {"out/7x7", 7, 7, 0},
                {"out/16x23", 16, 23, 0},
                {"out/40x40", 40, 40, 0},
                {"out/16x16_sf", 16, 16, 16.1 / 37}};
    for (size_t k = 0; grid && k < sizeof outs / sizeof outs[0]; k++) {
        int g0 = outs[k].g0, g1 = outs[k].g1;
        size_t n;
        float *want = rd_fixture_floats(f, outs[k].name, &n);
        CHECK_MSG(want && n == (size_t)g0 * g1 * Cg, "%s missing", outs[k].name);
        if (!want) continue;
        float *wrow = malloc((size_t)g0 * Mg * sizeof(float)),
              *wcol = malloc((size_t)g1 * Mg * sizeof(float));
        float *tmp = malloc((size_t)g0 * Mg * Cg * sizeof(float)), *got = malloc(n * sizeof(float));
        rd_bicubic_aa_weights(wrow, Mg, g0, outs[k].sf);
        rd_bicubic_aa_weights(wcol, Mg, g1, outs[k].sf);
        rd_resample_forward(got, tmp, grid, wrow, wcol, Mg, g0, g1, Cg);
        /* values ~N(0, 1), measured worst 9.5e-7: weight differences summed over up to 21 taps per
         * axis, plus fp32 rounding in a different order (rows first here, columns first in
         * torch) */
        CHECK_CLOSE(outs[k].name, got, want, n, 0, 2e-6);
        free(wrow);
        free(wcol);
        free(tmp);
        free(got);
        free(want);
    }
    free(grid);
    rd_fixture_close(f);
}

static void aa_weights_sum_to_one_and_native_is_identity(rd_test *t) {
    float w[40 * 37];
    const int sizes[] = {1, 3, 7, 16, 23, 37, 40};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        int g = sizes[k];
        rd_bicubic_aa_weights(w, 37, g, 0.0);
        for (int o = 0; o < g; o++) {
            double s = 0;
            for (int a = 0; a < 37; a++) s += w[o * 37 + a];
            CHECK_NEAR(s, 1.0, 1e-6);
        }
    }
    rd_bicubic_aa_weights(w, 37, 37, 0.0);
    for (int o = 0; o < 37; o++)
        for (int a = 0; a < 37; a++) CHECK(w[o * 37 + a] == (o == a ? 1.0f : 0.0f));
}

static const rd_test_case cases[] = {
    {"weights_sum_to_one_and_native_is_identity", weights_sum_to_one_and_native_is_identity},
    {"scale_factor_row_by_hand", scale_factor_row_by_hand},
    {"resample_matches_direct_sum_and_adjoint", resample_matches_direct_sum_and_adjoint},
    {"aa_weights_sum_to_one_and_native_is_identity", aa_weights_sum_to_one_and_native_is_identity},
    {"aa_weights_match_torch", aa_weights_match_torch},
    {"aa_resampled_grid_matches_torch", aa_resampled_grid_matches_torch},
};
RD_TEST_MAIN("nn/pos_embed", cases)
