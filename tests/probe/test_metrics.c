/* Metrics: AUROC against a brute-force pair count with ties, all metrics against
 * scikit-learn/scipy values, weights against replicated rows, per-dimension correlations. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "probe_test_util.h"
#include "rdino/probe.h"

/* Every positive-negative pair: 1 if the positive scores higher, 1/2 if tied. */
static double auroc_brute(const double *s, const double *y, const double *w, int n) {
    double num = 0, pos = 0, neg = 0;
    for (int i = 0; i < n; i++) {
        double wi = w ? w[i] : 1;
        if (y[i] > 0.5)
            pos += wi;
        else
            neg += wi;
        if (y[i] < 0.5) continue;
        for (int j = 0; j < n; j++) {
            if (y[j] > 0.5) continue;
            double wj = w ? w[j] : 1;
            num += wi * wj * (s[i] > s[j] ? 1.0 : s[i] == s[j] ? 0.5 : 0.0);
        }
    }
    return pos > 0 && neg > 0 ? num / (pos * neg) : NAN;
}

static void auroc_matches_brute_force_with_ties(rd_test *t) {
    rd_rng r;
    rd_rng_init(&r, 3, RD_RNG_TEST, 0, 0, 0);
    double s[80], y[80], w[80];
    for (int trial = 0; trial < 300; trial++) {
        int n = 1 + (int)rd_rng_randint(&r, 0, 79);
        int levels = 1 + (int)rd_rng_randint(&r, 0, 6); /* few levels: many ties */
        for (int i = 0; i < n; i++) {
            y[i] = rd_rng_uniform(&r) < 0.4;
            s[i] = (double)rd_rng_randint(&r, 0, levels) + 0.5 * y[i] * (trial % 2);
            w[i] = (double)rd_rng_randint(&r, 0, 3);
        }
        double got = rd_probe_auroc(s, y, NULL, n), want = auroc_brute(s, y, NULL, n);
        CHECK_MSG(isnan(want) ? isnan(got) : fabs(got - want) <= 1e-12,
                  "trial %d n %d: auroc %.15g, pair count %.15g", trial, n, got, want);
        got = rd_probe_auroc(s, y, w, n), want = auroc_brute(s, y, w, n);
        CHECK_MSG(isnan(want) ? isnan(got) : fabs(got - want) <= 1e-12,
                  "trial %d n %d weighted: auroc %.15g, pair count %.15g", trial, n, got, want);
    }
    double all_tied[4] = {1, 1, 1, 1}, labels[4] = {0, 1, 0, 1};
    CHECK_NEAR(rd_probe_auroc(all_tied, labels, NULL, 4), 0.5, 0);
    double nan_score[2] = {NAN, 1};
    CHECK(isnan(rd_probe_auroc(nan_score, labels, NULL, 2)));
}

static double scalar(rd_test *t, hid_t f, const char *path) {
    double *v = fixture_doubles(f, path, NULL);
    CHECK_MSG(v != NULL, "fixture %s missing", path);
    double out = v ? *v : NAN;
    free(v);
    return out;
}

static void metrics_match_sklearn(rd_test *t) {
    hid_t f = rd_fixture_open("probe_sklearn.h5");
    if (f < 0) SKIP("tests/reference/fixtures/probe_sklearn.h5 missing");
    size_t n = 0, m = 0;
    double *score = fixture_doubles(f, "/classification/score", &n);
    double *label = fixture_doubles(f, "/classification/label", NULL);
    double *w = fixture_doubles(f, "/classification/weight", NULL);
    double *y = fixture_doubles(f, "/regression/y", &m);
    double *pred = fixture_doubles(f, "/regression/pred", NULL);
    double *wr = fixture_doubles(f, "/regression/weight", NULL);
    CHECK(score && label && w && y && pred && wr);
    if (score && label && w && y && pred && wr) {
        const double tol = 1e-12;
        CHECK_NEAR(rd_probe_auroc(score, label, NULL, (int)n),
                   scalar(t, f, "/classification/auroc"), tol);
        CHECK_NEAR(rd_probe_auroc(score, label, w, (int)n),
                   scalar(t, f, "/classification/auroc_weighted"), tol);
        CHECK_NEAR(rd_probe_accuracy(score, label, NULL, (int)n),
                   scalar(t, f, "/classification/accuracy"), tol);
        CHECK_NEAR(rd_probe_accuracy(score, label, w, (int)n),
                   scalar(t, f, "/classification/accuracy_weighted"), tol);
        CHECK_NEAR(rd_probe_mae(pred, y, NULL, (int)m), scalar(t, f, "/regression/mae"), tol);
        CHECK_NEAR(rd_probe_mae(pred, y, wr, (int)m), scalar(t, f, "/regression/mae_weighted"),
                   tol);
        CHECK_NEAR(rd_probe_r2(pred, y, NULL, (int)m), scalar(t, f, "/regression/r2"), tol);
        CHECK_NEAR(rd_probe_r2(pred, y, wr, (int)m), scalar(t, f, "/regression/r2_weighted"), tol);
        CHECK_NEAR(rd_probe_pearson(pred, y, NULL, (int)m), scalar(t, f, "/regression/pearson"),
                   tol);
        /* The combined call with a precomputed order gives the same numbers. */
        int *order = malloc(n * sizeof *order);
        double out[RD_PROBE_NMETRICS];
        rd_error err;
        CHECK_OK(rd_probe_sort_order(score, (int)n, order, &err), &err);
        rd_probe_metrics(RD_PROBE_LOGISTIC, label, score, w, order, (int)n, out);
        CHECK_NEAR(out[RD_PROBE_AUROC], scalar(t, f, "/classification/auroc_weighted"), tol);
        CHECK(isnan(out[RD_PROBE_R2]) && isnan(out[RD_PROBE_MAE]));
        rd_probe_metrics(RD_PROBE_RIDGE, y, pred, NULL, NULL, (int)m, out);
        CHECK_NEAR(out[RD_PROBE_PEARSON], scalar(t, f, "/regression/pearson"), tol);
        CHECK(isnan(out[RD_PROBE_AUROC]));
        free(order);
    }
    free(score), free(label), free(w), free(y), free(pred), free(wr);
    rd_fixture_close(f);
}

/* A bootstrap replicate weights rows by multiplicity: that must equal repeating the rows. */
static void weights_equal_repeated_rows(rd_test *t) {
    enum { N = 40 };
    double s[N], y[N], w[N], rs[4 * N], ry[4 * N];
    rd_rng r;
    rd_rng_init(&r, 4, RD_RNG_TEST, 0, 0, 0);
    int m = 0;
    for (int i = 0; i < N; i++) {
        y[i] = rd_rng_uniform(&r) < 0.5;
        s[i] = rd_rng_normal(&r) + y[i];
        w[i] = (double)rd_rng_randint(&r, 0, 3);
        for (int k = 0; k < (int)w[i]; k++) rs[m] = s[i], ry[m++] = y[i];
    }
    for (int kind = 0; kind < 2; kind++) {
        double a[RD_PROBE_NMETRICS], b[RD_PROBE_NMETRICS];
        rd_probe_metrics((rd_probe_kind)kind, y, s, w, NULL, N, a);
        rd_probe_metrics((rd_probe_kind)kind, ry, rs, NULL, NULL, m, b);
        for (int k = 0; k < RD_PROBE_NMETRICS; k++)
            CHECK_MSG(isnan(a[k]) ? isnan(b[k]) : fabs(a[k] - b[k]) <= 1e-12,
                      "kind %d %s: weighted %.15g, repeated %.15g", kind,
                      rd_probe_metric_name((rd_probe_metric)k), a[k], b[k]);
    }
}

static void dim_correlations_and_top_dims(rd_test *t) {
    enum { N = 50, D = 6 };
    float x[N * D];
    double y[N], col[N], yk[N];
    rd_rng r;
    rd_rng_init(&r, 6, RD_RNG_TEST, 0, 0, 0);
    for (int i = 0; i < N; i++) {
        y[i] = i % 7 == 3 ? NAN : rd_rng_normal(&r);
        double yy = isnan(y[i]) ? 0 : y[i];
        x[i * D + 0] = (float)rd_rng_normal(&r);
        x[i * D + 1] = (float)(0.9 * yy + 0.3 * rd_rng_normal(&r));   /* strong + */
        x[i * D + 2] = (float)(-0.5 * yy + 0.8 * rd_rng_normal(&r));  /* moderate - */
        x[i * D + 3] = 2.5f;                                          /* constant */
        x[i * D + 4] = (float)(-0.95 * yy + 0.1 * rd_rng_normal(&r)); /* strongest - */
        x[i * D + 5] = (float)(0.2 * yy + rd_rng_normal(&r));
    }
    double rr[D];
    rd_probe_dim_correlations(x, N, D, y, rr);
    for (int j = 0; j < D; j++) {
        int m = 0;
        for (int i = 0; i < N; i++)
            if (!isnan(y[i])) col[m] = x[i * D + j], yk[m++] = y[i];
        double want = rd_probe_pearson(col, yk, NULL, m);
        CHECK_MSG(isnan(want) ? isnan(rr[j]) : fabs(rr[j] - want) <= 1e-12, "dim %d: %g vs %g", j,
                  rr[j], want);
    }
    CHECK(isnan(rr[3]));
    int top[D + 1];
    rd_probe_top_dims(rr, D, D + 1, top);
    CHECK(top[0] == 4 && top[1] == 1 && top[2] == 2);
    CHECK(top[D - 1] == 3 && top[D] == -1); /* NaN last, then past the end */
}

static void quantile_is_numpy_linear(rd_test *t) {
    double v[5] = {5, 1, 4, 2, 3};
    CHECK_NEAR(rd_probe_quantile(v, 5, 0.25), 2.0, 1e-15);
    CHECK_NEAR(rd_probe_quantile(v, 5, 0.1), 1.4, 1e-15);
    CHECK_NEAR(rd_probe_quantile(v, 5, 0.975), 4.9, 1e-15);
    CHECK_NEAR(rd_probe_quantile(v, 5, 1.0), 5.0, 0);
    CHECK_NEAR(rd_probe_quantile(v, 5, 0.0), 1.0, 0);
    CHECK(isnan(rd_probe_quantile(v, 0, 0.5)));
}

static void group_ids_from_strings(rd_test *t) {
    const char *ids[6] = {"00042", "7", "00042", "abc", "7", "00001"};
    int g[6], ng = 0;
    rd_error err;
    CHECK_OK(rd_probe_group_ids(ids, 6, g, &ng, &err), &err);
    CHECK(ng == 4);
    CHECK(g[5] == 0 && g[0] == 1 && g[2] == 1 && g[1] == 2 && g[4] == 2 && g[3] == 3);
    ids[3] = "";
    CHECK(rd_probe_group_ids(ids, 6, g, &ng, &err) == RD_EINVAL);
    CHECK_MSG(strstr(err.msg, "row 3") != NULL, "message: %s", err.msg);
    int8_t sex[4] = {0, 1, -1, 1};
    double ys[4];
    rd_probe_sex_target(sex, 4, ys);
    CHECK(ys[0] == 0 && ys[1] == 1 && isnan(ys[2]) && ys[3] == 1);
}

/* Holm by hand: sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04, then
 * the running maximum (0.04 -> 0.06); the untested NaN is not in the family. */
static void holm_adjustment_by_hand(rd_test *t) {
    rd_error err;
    double p[5] = {0.01, 0.04, 0.03, 0.005, NAN}, adj[5];
    CHECK_OK(rd_probe_holm(p, 5, adj, &err), &err);
    const double want[4] = {0.03, 0.06, 0.06, 0.02};
    for (int i = 0; i < 4; i++) CHECK_NEAR(adj[i], want[i], 1e-15);
    CHECK(isnan(adj[4]));
    double q[3] = {0.5, 0.6, 0.5}, qa[3]; /* ties by index; capped at 1 */
    CHECK_OK(rd_probe_holm(q, 3, qa, &err), &err);
    CHECK(qa[0] == 1.0 && qa[1] == 1.0 && qa[2] == 1.0);
    double one = 0.02, one_adj; /* a family of one is not adjusted */
    CHECK_OK(rd_probe_holm(&one, 1, &one_adj, &err), &err);
    CHECK(one_adj == 0.02);
}

static const rd_test_case cases[] = {
    {"holm_adjustment_by_hand", holm_adjustment_by_hand},
    {"auroc_matches_brute_force_with_ties", auroc_matches_brute_force_with_ties},
    {"metrics_match_sklearn", metrics_match_sklearn},
    {"weights_equal_repeated_rows", weights_equal_repeated_rows},
    {"dim_correlations_and_top_dims", dim_correlations_and_top_dims},
    {"quantile_is_numpy_linear", quantile_is_numpy_linear},
    {"group_ids_from_strings", group_ids_from_strings},
};
RD_TEST_MAIN("probe/metrics", cases)
