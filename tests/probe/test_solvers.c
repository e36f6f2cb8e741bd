/* Ridge and logistic solvers: closed forms computed here, optimality conditions, and
 * scikit-learn's solutions (tests/reference/fixtures/probe_sklearn.h5, made by
 * tests/probe/make_probe_fixtures.py). Everything is float64, so tolerances are tight. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "probe_test_util.h"
#include "rdino/probe.h"

/* Solves a x = b in place (a [n, n] row-major, b [n]) by Gaussian elimination with partial
 * pivoting: an independent route to the ridge normal equations. */
static void gauss_solve(double *a, double *b, int n) {
    for (int c = 0; c < n; c++) {
        int piv = c;
        for (int r = c + 1; r < n; r++)
            if (fabs(a[r * n + c]) > fabs(a[piv * n + c])) piv = r;
        for (int k = 0; k < n; k++) {
            double tmp = a[c * n + k];
            a[c * n + k] = a[piv * n + k];
            a[piv * n + k] = tmp;
        }
        double tmp = b[c];
        b[c] = b[piv];
        b[piv] = tmp;
        for (int r = c + 1; r < n; r++) {
            double f = a[r * n + c] / a[c * n + c];
            for (int k = c; k < n; k++) a[r * n + k] -= f * a[c * n + k];
            b[r] -= f * b[c];
        }
    }
    for (int c = n - 1; c >= 0; c--) {
        for (int k = c + 1; k < n; k++) b[c] -= a[c * n + k] * b[k];
        b[c] /= a[c * n + c];
    }
}

/* Ridge by the normal equations (Xc^T Xc + lambda I) w = Xc^T yc, b = mean y - mean x . w. */
static void ridge_reference(const double *x, const double *y, int n, int d, double lambda,
                            double *w, double *b) {
    double *mx = calloc((size_t)d, sizeof *mx), my = 0;
    double *a = calloc((size_t)d * d, sizeof *a);
    for (int i = 0; i < n; i++) {
        my += y[i] / n;
        for (int j = 0; j < d; j++) mx[j] += x[i * d + j] / n;
    }
    for (int j = 0; j < d; j++) w[j] = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < d; j++) {
            w[j] += (x[i * d + j] - mx[j]) * (y[i] - my);
            for (int k = 0; k < d; k++)
                a[j * d + k] += (x[i * d + j] - mx[j]) * (x[i * d + k] - mx[k]);
        }
    for (int j = 0; j < d; j++) a[j * d + j] += lambda;
    gauss_solve(a, w, d);
    *b = my;
    for (int j = 0; j < d; j++) *b -= mx[j] * w[j];
    free(mx);
    free(a);
}

static void ridge_shape_case(rd_test *t, int n, int d, uint64_t seed) {
    double *x = malloc(sizeof(double) * n * d), *y = malloc(sizeof(double) * n);
    fill_normal_d(x, (size_t)n * d, seed, 2.0);
    fill_normal_d(y, (size_t)n, seed + 1, 3.0);
    for (int i = 0; i < n; i++) y[i] += 10.0; /* a mean the intercept must absorb */
    const double lambda[3] = {0.05, 1.0, 40.0};
    double w[3 * 64], b[3], wr[64], br;
    rd_error err;
    CHECK_OK(rd_probe_ridge_fit(x, y, n, d, lambda, 3, w, b, &err), &err);
    for (int l = 0; l < 3; l++) {
        ridge_reference(x, y, n, d, lambda[l], wr, &br);
        for (int j = 0; j < d; j++)
            CHECK_MSG(fabs(w[l * d + j] - wr[j]) <= 1e-10 * (1 + fabs(wr[j])),
                      "n %d d %d lambda %g: w[%d] %.15g want %.15g", n, d, lambda[l], j,
                      w[l * d + j], wr[j]);
        CHECK_NEAR(b[l], br, 1e-10 * (1 + fabs(br)));
    }
    free(x);
    free(y);
}

static void ridge_matches_normal_equations(rd_test *t) {
    ridge_shape_case(t, 25, 6, 10); /* Gram (primal) route */
    ridge_shape_case(t, 6, 20, 20); /* kernel (dual) route: fewer rows than features */
    ridge_shape_case(t, 7, 7, 30);  /* square */
}

/* Compares w [nlambda, d] and b with a fixture group's solutions. */
static void check_against_group(rd_test *t, hid_t f, const char *group, int logistic) {
    char path[128];
    size_t nx = 0, ny = 1, nl = 0, nw = 0;
    snprintf(path, sizeof path, "/%s/x", group);
    double *x = fixture_doubles(f, path, &nx);
    snprintf(path, sizeof path, "/%s/y", group);
    double *y = fixture_doubles(f, path, &ny);
    snprintf(path, sizeof path, "/%s/lambda", group);
    double *lambda = fixture_doubles(f, path, &nl);
    snprintf(path, sizeof path, "/%s/w", group);
    double *want_w = fixture_doubles(f, path, &nw);
    snprintf(path, sizeof path, "/%s/b", group);
    double *want_b = fixture_doubles(f, path, NULL);
    CHECK_MSG(x && y && lambda && want_w && want_b, "fixture group %s incomplete", group);
    if (!(x && y && lambda && want_w && want_b)) return;
    int n = (int)ny, d = (int)(nx / ny);
    double *w = calloc(nw, sizeof *w), *b = calloc(nl, sizeof *b);
    rd_error err;
    for (size_t l = 0; l < nl; l++) {
        if (logistic)
            CHECK_OK(rd_probe_logistic_fit(x, y, n, d, lambda[l], 0, w + l * d, &b[l], NULL, &err),
                     &err);
        else if (l == 0)
            CHECK_OK(rd_probe_ridge_fit(x, y, n, d, lambda, (int)nl, w, b, &err), &err);
        /* Logistic: sklearn converged to max |gradient| <= 1e-9 n, which bounds the agreement. */
        double tol = logistic ? 1e-9 : 1e-12;
        for (int j = 0; j < d; j++)
            CHECK_MSG(fabs(w[l * d + j] - want_w[l * d + j]) <= tol * (1 + fabs(want_w[l * d + j])),
                      "%s lambda %g: w[%d] %.12g, sklearn %.12g", group, lambda[l], j, w[l * d + j],
                      want_w[l * d + j]);
        CHECK_MSG(fabs(b[l] - want_b[l]) <= tol * (1 + fabs(want_b[l])),
                  "%s lambda %g: b %.12g, sklearn %.12g", group, lambda[l], b[l], want_b[l]);
    }
    free(x);
    free(y);
    free(lambda);
    free(want_w);
    free(want_b);
    free(w);
    free(b);
}

static void solvers_match_sklearn(rd_test *t) {
    hid_t f = rd_fixture_open("probe_sklearn.h5");
    if (f < 0) SKIP("tests/reference/fixtures/probe_sklearn.h5 missing");
    check_against_group(t, f, "ridge_primal", 0);
    check_against_group(t, f, "ridge_dual", 0);
    check_against_group(t, f, "logistic_primal", 1);
    check_against_group(t, f, "logistic_dual", 1);
    check_against_group(t, f, "logistic_separable", 1);
    rd_fixture_close(f);
}

/* Gradient of sum log(1 + exp(-s m)) + lambda/2 |w|^2 in the original coordinates. */
static double logistic_grad_max(const double *x, const double *y, int n, int d, double lambda,
                                const double *w, double b) {
    double gmax = 0, gb = 0;
    double *g = calloc((size_t)d, sizeof *g);
    for (int i = 0; i < n; i++) {
        double m = b;
        for (int j = 0; j < d; j++) m += x[i * d + j] * w[j];
        double r = 1.0 / (1.0 + exp(-m)) - y[i];
        gb += r;
        for (int j = 0; j < d; j++) g[j] += x[i * d + j] * r;
    }
    for (int j = 0; j < d; j++) gmax = fmax(gmax, fabs(g[j] + lambda * w[j]));
    free(g);
    return fmax(gmax, fabs(gb));
}

static void logistic_case(rd_test *t, int n, int d, uint64_t seed, double lambda) {
    double *x = malloc(sizeof(double) * n * d), *y = malloc(sizeof(double) * n);
    double *w = malloc(sizeof(double) * d), *dir = malloc(sizeof(double) * d), b = 0;
    fill_normal_d(x, (size_t)n * d, seed, 1.5);
    fill_normal_d(dir, (size_t)d, seed + 1, 1.0);
    rd_rng r;
    rd_rng_init(&r, 5, RD_RNG_TEST, 0, seed, 0);
    for (int i = 0; i < n; i++) {
        double m = 0.7;
        for (int j = 0; j < d; j++) m += x[i * d + j] * dir[j];
        y[i] = rd_rng_uniform(&r) < 1.0 / (1.0 + exp(-m)) ? 1.0 : 0.0;
    }
    y[0] = 0.0, y[1] = 1.0;
    rd_error err;
    int iters = -1;
    CHECK_OK(rd_probe_logistic_fit(x, y, n, d, lambda, 0, w, &b, &iters, &err), &err);
    double g = logistic_grad_max(x, y, n, d, lambda, w, b);
    CHECK_MSG(g <= 1e-8 * n, "n %d d %d lambda %g: max |gradient| %.3g at the solution", n, d,
              lambda, g);
    CHECK_MSG(iters > 0 && iters < 60, "Newton took %d steps", iters);
    free(x);
    free(y);
    free(w);
    free(dir);
}

static void logistic_gradient_zero_at_solution(rd_test *t) {
    for (double lambda = 0.01; lambda < 2e3; lambda *= 10) {
        logistic_case(t, 80, 5, 40, lambda);  /* primal */
        logistic_case(t, 12, 30, 50, lambda); /* kernel basis (n < d) */
    }
}

/* Linearly separable data: the unpenalised optimum is at infinity; with lambda > 0 the
 * solution is finite, separates the classes, and grows as lambda shrinks. */
static void logistic_separable_data(rd_test *t) {
    enum { N = 24, D = 3 };
    double x[N * D], y[N], w[D], w_warm[D], b, b_warm;
    fill_normal_d(x, N * D, 60, 0.5);
    for (int i = 0; i < N; i++) {
        y[i] = i % 2;
        x[i * D] += y[i] ? 2.0 : -2.0; /* margin along the first feature */
    }
    double prev_norm = 0;
    rd_error err;
    for (double lambda = 10.0; lambda >= 1e-3; lambda /= 10) {
        CHECK_OK(rd_probe_logistic_fit(x, y, N, D, lambda, 0, w, &b, NULL, &err), &err);
        double norm = 0;
        for (int j = 0; j < D; j++) norm += w[j] * w[j];
        norm = sqrt(norm);
        CHECK_MSG(isfinite(norm) && norm > prev_norm, "lambda %g: |w| %g after %g", lambda, norm,
                  prev_norm);
        prev_norm = norm;
        double logit[N];
        for (int i = 0; i < N; i++) {
            logit[i] = b;
            for (int j = 0; j < D; j++) logit[i] += x[i * D + j] * w[j];
        }
        CHECK_NEAR(rd_probe_auroc(logit, y, NULL, N), 1.0, 0);
        CHECK_NEAR(rd_probe_accuracy(logit, y, NULL, N), 1.0, 0);
        CHECK(logistic_grad_max(x, y, N, D, lambda, w, b) <= 1e-8 * N);
        /* A warm start from a nearby solution reaches the same optimum. */
        for (int j = 0; j < D; j++) w_warm[j] = 0.5 * w[j];
        b_warm = b + 1.0;
        CHECK_OK(rd_probe_logistic_fit(x, y, N, D, lambda, 1, w_warm, &b_warm, NULL, &err), &err);
        for (int j = 0; j < D; j++) CHECK_NEAR(w_warm[j], w[j], 1e-8 * (1 + fabs(w[j])));
        CHECK_NEAR(b_warm, b, 1e-8 * (1 + fabs(b)));
    }
}

static void solvers_reject_bad_input(rd_test *t) {
    double x[4] = {1, 2, 3, 4}, y[4] = {1, 1, 1, 1}, w[1], b;
    double lambda = 1.0, zero = 0.0;
    rd_error err;
    CHECK(rd_probe_logistic_fit(x, y, 4, 1, 1.0, 0, w, &b, NULL, &err) == RD_EINVAL);
    y[0] = 0.5;
    CHECK(rd_probe_logistic_fit(x, y, 4, 1, 1.0, 0, w, &b, NULL, &err) == RD_EINVAL);
    y[0] = 0;
    CHECK(rd_probe_logistic_fit(x, y, 4, 1, 0.0, 0, w, &b, NULL, &err) == RD_EINVAL);
    CHECK(rd_probe_ridge_fit(x, y, 4, 1, &zero, 1, w, &b, &err) == RD_EINVAL);
    x[2] = NAN;
    CHECK(rd_probe_ridge_fit(x, y, 4, 1, &lambda, 1, w, &b, &err) == RD_ENUMERIC);
    CHECK_MSG(strstr(err.msg, "feature 2") != NULL, "message: %s", err.msg);
}

static void standardize_matches_sklearn_and_uses_training_rows(rd_test *t) {
    hid_t f = rd_fixture_open("probe_sklearn.h5");
    if (f < 0) SKIP("tests/reference/fixtures/probe_sklearn.h5 missing");
    size_t nx = 0, nm = 1;
    double *xd = fixture_doubles(f, "/standardize/x", &nx);
    double *mean = fixture_doubles(f, "/standardize/mean", &nm);
    double *scale = fixture_doubles(f, "/standardize/scale", NULL);
    rd_fixture_close(f);
    CHECK(xd && mean && scale);
    if (!(xd && mean && scale)) return;
    int d = (int)nm, n = (int)(nx / nm);
    float *x = malloc(nx * sizeof *x);
    for (size_t i = 0; i < nx; i++) x[i] = (float)xd[i];
    double m[16], inv[16];
    rd_probe_standardize_fit(x, d, NULL, n, m, inv);
    for (int j = 0; j < d; j++) {
        CHECK_NEAR(m[j], mean[j], 1e-12 * (1 + fabs(mean[j])));
        /* sklearn keeps scale 1 for a constant column; we zero it (it carries nothing). */
        if (j == 3)
            CHECK(inv[j] == 0.0);
        else
            CHECK_NEAR(1.0 / inv[j], scale[j], 1e-12 * scale[j]);
    }
    /* Fitting on a subset of rows equals fitting on those rows alone. */
    int rows[5] = {3, 7, 8, 15, 21};
    float sub[5 * 16];
    for (int k = 0; k < 5; k++) memcpy(sub + k * d, x + rows[k] * d, sizeof(float) * d);
    double m2[16], inv2[16], z[5 * 16], z2[5 * 16];
    rd_probe_standardize_fit(x, d, rows, 5, m, inv);
    rd_probe_standardize_fit(sub, d, NULL, 5, m2, inv2);
    rd_probe_standardize_apply(x, d, rows, 5, m, inv, z);
    rd_probe_standardize_apply(sub, d, NULL, 5, m2, inv2, z2);
    for (int i = 0; i < 5 * d; i++) CHECK(z[i] == z2[i]);
    for (int j = 0; j < d; j++) {
        double s = 0, ss = 0;
        for (int k = 0; k < 5; k++) s += z[k * d + j], ss += z[k * d + j] * z[k * d + j];
        CHECK_NEAR(s / 5, 0.0, 1e-12);
        CHECK_NEAR(ss / 5, j == 3 ? 0.0 : 1.0, 1e-12);
    }
    free(x);
    free(xd);
    free(mean);
    free(scale);
}

static const rd_test_case cases[] = {
    {"ridge_matches_normal_equations", ridge_matches_normal_equations},
    {"solvers_match_sklearn", solvers_match_sklearn},
    {"logistic_gradient_zero_at_solution", logistic_gradient_zero_at_solution},
    {"logistic_separable_data", logistic_separable_data},
    {"solvers_reject_bad_input", solvers_reject_bad_input},
    {"standardize_matches_sklearn_and_uses_training_rows",
     standardize_matches_sklearn_and_uses_training_rows},
};
RD_TEST_MAIN("probe/solvers", cases)
