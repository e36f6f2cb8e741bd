/* The k-NN probe: DINOv2's weighted vote against a NumPy reference
 * (tests/reference/fixtures/knn_numpy.h5, made by tests/probe/make_knn_fixture.py), its outer
 * folds against the same function on the task's patient-grouped splits, no patient crossing a
 * split, and a planted signal found. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "probe_test_util.h"
#include "rdino/probe.h"

/* Everything is float64 from the same float32 features; the only differences are summation
 * orders of d-term dot products and k-term sums: 1e-12 relative. */
static void knn_matches_numpy(rd_test *t) {
    hid_t f = rd_fixture_open("knn_numpy.h5");
    if (f < 0) SKIP("tests/reference/fixtures/knn_numpy.h5 missing");
    static const char *const groups[] = {"cls", "small_k", "k_above_train"};
    for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++) {
        char path[64];
        int64_t dims[8];
        snprintf(path, sizeof path, "%s/x", groups[g]);
        int ndim = rd_fixture_shape(f, path, dims, 8);
        float *x = rd_fixture_floats(f, path, NULL);
        size_t ntrain = 0, ntest = 0;
        snprintf(path, sizeof path, "%s/train", groups[g]);
        int64_t *train64 = rd_fixture_ints(f, path, &ntrain);
        snprintf(path, sizeof path, "%s/test", groups[g]);
        int64_t *test64 = rd_fixture_ints(f, path, &ntest);
        snprintf(path, sizeof path, "%s/k", groups[g]);
        int64_t *k = rd_fixture_ints(f, path, NULL);
        snprintf(path, sizeof path, "%s/temperature", groups[g]);
        double *temp = rd_fixture_doubles(f, path, NULL);
        CHECK(ndim == 2 && x && train64 && test64 && k && temp);
        if (ndim != 2 || !x || !train64 || !test64 || !k || !temp) break;
        int d = (int)dims[1];
        int *train = malloc(ntrain * sizeof *train), *test = malloc(ntest * sizeof *test);
        for (size_t i = 0; i < ntrain; i++) train[i] = (int)train64[i];
        for (size_t i = 0; i < ntest; i++) test[i] = (int)test64[i];
        static const char *const kinds[2][2] = {{"label", "pred_label"}, {"value", "pred_value"}};
        for (int kind = 0; kind < 2; kind++) {
            snprintf(path, sizeof path, "%s/%s", groups[g], kinds[kind][0]);
            double *y = rd_fixture_doubles(f, path, NULL);
            snprintf(path, sizeof path, "%s/%s", groups[g], kinds[kind][1]);
            double *want = rd_fixture_doubles(f, path, NULL);
            double *ytrain = malloc(ntrain * sizeof *ytrain), *got = malloc(ntest * sizeof *got);
            for (size_t i = 0; y && i < ntrain; i++) ytrain[i] = y[train[i]];
            rd_error err = {0};
            CHECK_OK(rd_probe_knn_predict(x, d, train, (int)ntrain, ytrain, test, (int)ntest,
                                          (int)k[0], temp[0], got, &err),
                     &err);
            for (size_t v = 0; want && v < ntest; v++)
                CHECK_MSG(fabs(got[v] - want[v]) <= 1e-12 * (1 + fabs(want[v])),
                          "%s %s row %zu: %.15g, numpy %.15g", groups[g], kinds[kind][0], v, got[v],
                          want[v]);
            free(y);
            free(want);
            free(ytrain);
            free(got);
        }
        free(x);
        free(train64);
        free(test64);
        free(k);
        free(temp);
        free(train);
        free(test);
    }
    rd_fixture_close(f);
}

static rd_probe_config knn_config(void) {
    rd_probe_config cfg;
    rd_probe_config_default(&cfg);
    cfg.knn_k = 20;
    cfg.seed = 4;
    return cfg;
}

/* Each outer fold predicts its rows from exactly the other folds' rows (patient-grouped), as
 * rd_probe_knn_predict does on those rows; logistic scores are the vote share minus 1/2. */
static void folds_are_knn_on_grouped_splits(rd_test *t) {
    synth_study s;
    synth_study_make(&s, 60, 6, 1.0, 21);
    rd_probe_config cfg = knn_config();
    rd_probe_task task;
    rd_error err = {0};
    CHECK_OK(
        rd_probe_task_init(&task, RD_PROBE_LOGISTIC, s.x, s.n, s.d, s.sex, s.group, &cfg, &err),
        &err);
    double *pred = malloc((size_t)task.nrows * sizeof *pred), lambda[RD_PROBE_MAX_FOLDS];
    CHECK_OK(rd_probe_cv(&task, NULL, pred, lambda, &err), &err);
    int *train = malloc((size_t)task.nrows * sizeof *train);
    int *test = malloc((size_t)task.nrows * sizeof *test);
    double *ytrain = malloc((size_t)task.nrows * sizeof *ytrain);
    double *want = malloc((size_t)task.nrows * sizeof *want);
    for (int o = 0; o < cfg.outer_folds; o++) {
        int ntrain = 0, ntest = 0;
        for (int k = 0; k < task.nrows; k++) {
            if (task.outer_fold[task.patient[k]] == o) {
                test[ntest++] = k;
            } else {
                train[ntrain] = task.row[k];
                ytrain[ntrain++] = task.y[k];
            }
        }
        int *xtest = malloc((size_t)ntest * sizeof *xtest);
        for (int v = 0; v < ntest; v++) xtest[v] = task.row[test[v]];
        CHECK_OK(rd_probe_knn_predict(s.x, s.d, train, ntrain, ytrain, xtest, ntest, 20, 0.07, want,
                                      &err),
                 &err);
        for (int v = 0; v < ntest; v++)
            CHECK_MSG(pred[test[v]] == want[v] - 0.5, "fold %d row %d: %.17g vs %.17g", o, test[v],
                      pred[test[v]], want[v] - 0.5);
        CHECK(isnan(lambda[o]));
        free(xtest);
    }
    free(train);
    free(test);
    free(ytrain);
    free(want);
    free(pred);
    rd_probe_task_free(&task);
    synth_study_free(&s);
}

/* One-hot patient features: a split by image would find every image's twin (R2 near 1), the
 * patient-grouped split finds only other patients (R2 <= 0). */
static void no_patient_crosses_a_knn_split(rd_test *t) {
    enum { NP = 40 };
    int group[4 * NP], own[4 * NP], n = 0;
    double y[4 * NP];
    float *x = calloc((size_t)4 * NP * NP, sizeof *x);
    rd_rng r;
    rd_rng_init(&r, 8, RD_RNG_TEST, 0, 0, 0);
    for (int p = 0; p < NP; p++) {
        double target = rd_rng_normal(&r);
        for (int k = 0; k < 2 + p % 3; k++, n++) {
            group[n] = p;
            own[n] = n;
            y[n] = target;
            x[(size_t)n * NP + p] = 1.0f;
        }
    }
    rd_probe_config cfg = knn_config();
    cfg.knn_k = 1;
    rd_probe_task task, leaky;
    rd_error err = {0};
    double pred[4 * NP], lambda[RD_PROBE_MAX_FOLDS], m[RD_PROBE_NMETRICS];
    CHECK_OK(rd_probe_task_init(&task, RD_PROBE_RIDGE, x, n, NP, y, group, &cfg, &err), &err);
    CHECK_OK(rd_probe_cv(&task, NULL, pred, lambda, &err), &err);
    CHECK_OK(rd_probe_oof_metrics(&task, NULL, pred, NULL, m, &err), &err);
    CHECK_MSG(m[RD_PROBE_R2] < 0.05, "grouped k-NN R2 %.3f: a patient's target leaked",
              m[RD_PROBE_R2]);
    CHECK_OK(rd_probe_task_init(&leaky, RD_PROBE_RIDGE, x, n, NP, y, own, &cfg, &err), &err);
    CHECK_OK(rd_probe_cv(&leaky, NULL, pred, lambda, &err), &err);
    CHECK_OK(rd_probe_oof_metrics(&leaky, NULL, pred, NULL, m, &err), &err);
    CHECK_MSG(m[RD_PROBE_R2] > 0.5, "row-level k-NN R2 %.3f: the leak detector is blind",
              m[RD_PROBE_R2]);
    rd_probe_task_free(&task);
    rd_probe_task_free(&leaky);
    free(x);
}

/* A planted sex signal is found (AUROC well above 1/2), noise features are not. */
static void knn_finds_planted_signal_not_noise(rd_test *t) {
    for (int signal = 0; signal < 2; signal++) {
        synth_study s;
        synth_study_make(&s, 150, 8, signal ? 1.0 : 0.0, 31);
        rd_probe_config cfg = knn_config();
        cfg.bootstrap = 0;
        cfg.permutations = 0;
        rd_probe_task task;
        rd_probe_result res;
        rd_error err = {0};
        CHECK_OK(
            rd_probe_task_init(&task, RD_PROBE_LOGISTIC, s.x, s.n, s.d, s.sex, s.group, &cfg, &err),
            &err);
        CHECK_OK(rd_probe_run(MPI_COMM_NULL, &task, 1, &res, &err), &err);
        double auroc = res.metric[RD_PROBE_AUROC].estimate;
        if (signal)
            CHECK_MSG(auroc > 0.75, "planted signal: k-NN AUROC %.3f", auroc);
        else
            CHECK_MSG(fabs(auroc - 0.5) < 0.1, "noise: k-NN AUROC %.3f", auroc);
        rd_probe_result_free(&res);
        rd_probe_task_free(&task);
        synth_study_free(&s);
    }
}

static const rd_test_case cases[] = {
    {"knn_matches_numpy", knn_matches_numpy},
    {"folds_are_knn_on_grouped_splits", folds_are_knn_on_grouped_splits},
    {"no_patient_crosses_a_knn_split", no_patient_crosses_a_knn_split},
    {"knn_finds_planted_signal_not_noise", knn_finds_planted_signal_not_noise},
};

RD_TEST_MAIN("probe_knn", cases)
