/* The analyze module's parts: area downsampling, PCA, the configuration section, the
 * metrics.jsonl reader, the mean ROC, comparison sentences, and loading an embedding file
 * written with h5store (as rdino-embed writes it). The whole stage: test_analyze.sh. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"
#include "mpi_once.h"
#include "rdino/analyze.h"
#include "rdino/h5store.h"
#include "rdino/rng.h"

static void fill_uniform(float *x, int n, uint64_t index) {
    rd_rng r;
    rd_rng_init(&r, 5, RD_RNG_TEST, 0, index, 0);
    for (int i = 0; i < n; i++) x[i] = (float)rd_rng_uniform(&r);
}

/* ---- area downsampling ---- */

static void area_downsample_block_means(rd_test *t) {
    float src[6 * 6], dst[9];
    fill_uniform(src, 36, 1);
    rd_area_downsample(src, 6, 6, 3, dst);
    for (int y = 0; y < 3; y++)
        for (int x = 0; x < 3; x++) {
            double mean = (src[(2 * y) * 6 + 2 * x] + src[(2 * y) * 6 + 2 * x + 1] +
                           src[(2 * y + 1) * 6 + 2 * x] + src[(2 * y + 1) * 6 + 2 * x + 1]) /
                          4;
            CHECK_NEAR(dst[y * 3 + x], mean, 1e-6); /* fp32 output */
        }
}

static void area_downsample_fractional_pixels(rd_test *t) {
    /* 5 -> 2: output pixel 0 covers input [0, 2.5): pixels 0, 1 whole and half of pixel 2. */
    float src[5 * 5], dst[4];
    for (int i = 0; i < 25; i++) src[i] = (float)(i % 5) + 10.0f * (float)(i / 5);
    rd_area_downsample(src, 5, 5, 2, dst);
    double col0 = (0 + 1 + 0.5 * 2) / 2.5, col1 = (0.5 * 2 + 3 + 4) / 2.5;
    double row0 = 10 * (0 + 1 + 0.5 * 2) / 2.5, row1 = 10 * (0.5 * 2 + 3 + 4) / 2.5;
    CHECK_NEAR(dst[0], col0 + row0, 1e-5);
    CHECK_NEAR(dst[1], col1 + row0, 1e-5);
    CHECK_NEAR(dst[2], col0 + row1, 1e-5);
    CHECK_NEAR(dst[3], col1 + row1, 1e-5);
}

static void area_downsample_keeps_the_mean(rd_test *t) {
    /* Every output pixel averages an equal share of the image, so the means agree (37 x 29 to
     * 16 x 16: no output pixel aligns with input pixels). Also a constant stays constant and
     * growing replicates. */
    enum { W = 37, H = 29, S = 16 };
    float src[W * H], dst[S * S];
    fill_uniform(src, W * H, 2);
    rd_area_downsample(src, W, H, S, dst);
    double a = 0, b = 0;
    for (int i = 0; i < W * H; i++) a += src[i];
    for (int i = 0; i < S * S; i++) b += dst[i];
    CHECK_NEAR(a / (W * H), b / (S * S), 1e-6);
    for (int i = 0; i < W * H; i++) src[i] = 0.375f;
    rd_area_downsample(src, W, H, S, dst);
    for (int i = 0; i < S * S; i++) CHECK_NEAR(dst[i], 0.375, 1e-6);
    float two[4] = {1, 2, 3, 4}, four[16];
    rd_area_downsample(two, 2, 2, 4, four);
    CHECK_NEAR(four[0], 1, 1e-6);
    CHECK_NEAR(four[3], 2, 1e-6);
    CHECK_NEAR(four[15], 4, 1e-6);
}

/* ---- PCA ---- */

static void pca_finds_the_covariance_eigenvectors(rd_test *t) {
    enum { N = 300, P = 6, K = 3 };
    float x[N * P];
    rd_rng r;
    rd_rng_init(&r, 3, RD_RNG_TEST, 0, 0, 0);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < P; j++) /* variances 36, 25, 16, ... along mixed axes */
            x[i * P + j] = (float)((P - j) * rd_rng_normal(&r) + 0.5 * j);
    for (int i = 0; i < N; i++) { /* rotate axes 0 and 1 by 30 degrees */
        float a = x[i * P], b = x[i * P + 1];
        x[i * P] = 0.866025f * a - 0.5f * b;
        x[i * P + 1] = 0.5f * a + 0.866025f * b;
    }
    rd_pca pca;
    rd_error err = {0};
    CHECK_OK(rd_pca_fit(x, N, P, K, &pca, &err), &err);
    double cov[P * P] = {0}, total = 0;
    for (int a = 0; a < P; a++)
        for (int b = 0; b < P; b++) {
            for (int i = 0; i < N; i++)
                cov[a * P + b] += (x[i * P + a] - pca.mean[a]) * (x[i * P + b] - pca.mean[b]);
            cov[a * P + b] /= N - 1;
        }
    for (int a = 0; a < P; a++) total += cov[a * P + a];
    CHECK_NEAR(pca.total_variance, total, 1e-9 * total);
    for (int c = 0; c < K; c++) {
        const double *v = pca.components + c * P;
        double worst = 0, biggest = 0;
        for (int a = 0; a < P; a++) {
            double cv = 0;
            for (int b = 0; b < P; b++) cv += cov[a * P + b] * v[b];
            worst = fmax(worst, fabs(cv - pca.variance[c] * v[a]));
            if (fabs(v[a]) > fabs(biggest)) biggest = v[a];
        }
        CHECK_NEAR(worst, 0, 1e-9 * pca.variance[0]); /* C v = lambda v */
        CHECK(biggest > 0);                           /* the sign rule */
        for (int d = 0; d < K; d++) {
            double dot = 0;
            for (int a = 0; a < P; a++) dot += v[a] * pca.components[d * P + a];
            CHECK_NEAR(dot, c == d, 1e-12);
        }
        if (c > 0) CHECK(pca.variance[c] <= pca.variance[c - 1]);
    }
    CHECK(pca.variance[0] > 30 && pca.variance[0] < 45); /* the largest is about 36 */
    /* The mean row projects to 0; scores have the components' variances. */
    float mean_row[P], scores[N * K], zero[K];
    for (int a = 0; a < P; a++) mean_row[a] = (float)pca.mean[a];
    rd_pca_transform(&pca, mean_row, 1, zero);
    for (int c = 0; c < K; c++) CHECK_NEAR(zero[c], 0, 1e-5);
    rd_pca_transform(&pca, x, N, scores);
    double var0 = 0;
    for (int i = 0; i < N; i++) var0 += (double)scores[i * K] * scores[i * K] / (N - 1);
    CHECK_NEAR(var0, pca.variance[0], 1e-4 * pca.variance[0]);
    rd_pca_free(&pca);
    CHECK(rd_pca_fit(x, 3, P, 3, &pca, &err) == RD_EINVAL); /* k > n - 1 */
}

/* ---- configuration ---- */

static void split_list_trims_and_drops_empty_items(rd_test *t) {
    char **items;
    int n;
    rd_error err = {0};
    CHECK_OK(rd_analyze_split_list(" a.h5, b c.h5,,\tc ,", &items, &n, &err), &err);
    CHECK(n == 3);
    if (n == 3) {
        CHECK(strcmp(items[0], "a.h5") == 0);
        CHECK(strcmp(items[1], "b c.h5") == 0);
        CHECK(strcmp(items[2], "c") == 0);
    }
    for (int i = 0; i < n; i++) free(items[i]);
    free(items);
    CHECK_OK(rd_analyze_split_list("", &items, &n, &err), &err);
    CHECK(n == 0);
    free(items);
}

static void touch(const char *dir, const char *name) {
    char path[800];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (f) fclose(f);
}

static void params_defaults_and_lists(rd_test *t) {
    const char *dir = rd_test_tmpdir(t);
    char emb[700], yaml[2048];
    snprintf(emb, sizeof emb, "%s/embeddings", dir);
    mkdir(emb, 0777);
    touch(emb, "trained.h5");
    touch(emb, "random-init.h5");
    touch(emb, ".trained.h5.tmp");
    touch(emb, "notes.txt");
    rd_config cfg;
    rd_error err = {0};
    CHECK_OK(rd_config_init(&cfg, &err), &err);
    snprintf(yaml, sizeof yaml, "data:\n  output_dir: %s\n", dir);
    CHECK_OK(rd_config_load_string(&cfg, yaml, "test", &err), &err);
    rd_analyze_params p;
    CHECK_OK(rd_analyze_params_from_config(&cfg, &p, &err), &err);
    CHECK(p.nembeddings == 2); /* the folder's .h5 files in name order, hidden ones not */
    if (p.nembeddings == 2) {
        CHECK(strstr(p.embeddings[0], "embeddings/random-init.h5") != NULL);
        CHECK(strstr(p.embeddings[1], "embeddings/trained.h5") != NULL);
    }
    char want[900];
    snprintf(want, sizeof want, "%s/shards", dir);
    CHECK(strcmp(p.shards_dir, want) == 0);
    snprintf(want, sizeof want, "%s/report", dir);
    CHECK(strcmp(p.output_dir, want) == 0);
    snprintf(want, sizeof want, "%s/pretrain/metrics.jsonl", dir);
    CHECK(strcmp(p.metrics_jsonl, want) == 0);
    CHECK(p.use_cls && !p.use_patch_mean && p.splits == 7 && p.ntargets == 0);
    CHECK(p.pixel_size == 16 && p.pixel_components == 64 && p.top_dims == 10);
    /* The default grid is the probe library's. */
    rd_probe_config def;
    rd_probe_config_default(&def);
    CHECK(p.probe.nlambda == def.nlambda && p.probe.bootstrap == def.bootstrap &&
          p.probe.permutations == def.permutations && p.probe.outer_folds == def.outer_folds &&
          p.probe.inner_folds == def.inner_folds && p.probe.ci_level == def.ci_level);
    for (int l = 0; l < def.nlambda && l < p.probe.nlambda; l++)
        CHECK_NEAR(p.probe.lambda[l], def.lambda[l], 1e-12 * def.lambda[l]);
    rd_analyze_params_free(&p);

    CHECK_OK(rd_config_load_string(&cfg,
                                   "analyze:\n  embeddings: a.h5, b.h5\n  splits: test,train\n"
                                   "  targets: sex, weight\n  features: both\n"
                                   "  lambda_range: [1, 1000]\n  lambdas_per_decade: 3\n"
                                   "  pixels:\n    enabled: false\nshard:\n  output_dir: /s\n",
                                   "test", &err),
             &err);
    CHECK_OK(rd_analyze_params_from_config(&cfg, &p, &err), &err);
    CHECK(p.nembeddings == 2 && strcmp(p.embeddings[1], "b.h5") == 0);
    CHECK(p.splits == 5 && p.use_cls && p.use_patch_mean && p.pixel_size == 0);
    CHECK(p.ntargets == 2 && strcmp(p.targets[1], "weight") == 0);
    CHECK(strcmp(p.shards_dir, "/s") == 0); /* shard.output_dir when analyze.shards_dir is empty */
    CHECK(p.probe.nlambda == 10);
    CHECK_NEAR(p.probe.lambda[9], 1000, 1e-9);
    rd_analyze_params_free(&p);

    CHECK_OK(rd_config_override(&cfg, "analyze.splits=train,tset", &err), &err);
    CHECK(rd_analyze_params_from_config(&cfg, &p, &err) == RD_EINVAL);
    CHECK(strstr(err.msg, "analyze.splits") && strstr(err.msg, "'tset'"));
    CHECK_OK(rd_config_override(&cfg, "analyze.splits=train", &err), &err);
    CHECK_OK(rd_config_override(&cfg, "analyze.lambda_range=[1e-12,1e12]", &err), &err);
    CHECK(rd_analyze_params_from_config(&cfg, &p, &err) == RD_EINVAL);
    CHECK(strstr(err.msg, "analyze.lambda_range") && strstr(err.msg, "73 penalties"));
    rd_config_free(&cfg);

    /* The default folder missing: say so, not "cannot open". */
    CHECK_OK(rd_config_init(&cfg, &err), &err);
    snprintf(yaml, sizeof yaml, "data:\n  output_dir: %s/elsewhere\n", dir);
    CHECK_OK(rd_config_load_string(&cfg, yaml, "test", &err), &err);
    CHECK(rd_analyze_params_from_config(&cfg, &p, &err) == RD_ENOTFOUND);
    CHECK(strstr(err.msg, "no embeddings") && strstr(err.msg, "elsewhere/embeddings"));
    rd_config_free(&cfg);
}

/* ---- study files ---- */

/* The run's paths, which a study file leaves to the pipeline configuration (analyze.compare
 * names reports to compare instead of running a study). */
static int is_run_path(const char *key) {
    static const char *const paths[] = {"analyze.study",         "analyze.embeddings",
                                        "analyze.shards_dir",    "analyze.output_dir",
                                        "analyze.metrics_jsonl", "analyze.compare"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
        if (strcmp(key, paths[i]) == 0) return 1;
    return 0;
}

/* analysis/age_sex.yaml is today's study: it sets every analyze.* key but the run's paths, each
 * to its built-in default, so running without --study and with it are the same study. */
static void default_study_file_is_the_builtin_defaults(rd_test *t) {
    const char *path = "analysis/age_sex.yaml";
    struct stat sb;
    if (stat(path, &sb) != 0) SKIP("%s not found (run from the repository root)", path);
    rd_config defaults, cfg;
    rd_error err = {0};
    CHECK_OK(rd_config_init(&defaults, &err), &err);
    CHECK_OK(rd_config_init(&cfg, &err), &err);
    CHECK_OK(rd_config_load_layer(&cfg, path, "analyze", &err), &err);
    for (int i = 0; i < cfg.nkeys; i++) {
        const char *key = cfg.keys[i].name;
        if (strncmp(key, "analyze.", 8) != 0) continue;
        int set = cfg.values[i].origin == RD_CFG_FROM_FILE;
        CHECK_MSG(set != is_run_path(key), "%s: %s", key,
                  set ? "a run path set by the study file" : "missing from the study file");
        CHECK_MSG(strcmp(cfg.values[i].text, defaults.values[i].text) == 0,
                  "%s is '%s' in %s but '%s' built in", key, cfg.values[i].text, path,
                  defaults.values[i].text);
    }
    rd_config_free(&cfg);
    rd_config_free(&defaults);
}

/* A study layer goes over the configuration file and under the command line, may set analyze.*
 * keys only, and a refused file changes nothing. */
static void study_layer_sits_between_file_and_command_line(rd_test *t) {
    const char *dir = rd_test_tmpdir(t);
    char study[700], bad[700];
    snprintf(study, sizeof study, "%s/study.yaml", dir);
    snprintf(bad, sizeof bad, "%s/bad.yaml", dir);
    FILE *f = fopen(study, "w");
    if (f) {
        fputs("analyze:\n  targets: age, view\n  bootstrap: 50\n  permutations: 9\n", f);
        fclose(f);
    }
    f = fopen(bad, "w");
    if (f) {
        fputs("analyze:\n  bootstrap: 7\noptim:\n  epochs: 3\n", f);
        fclose(f);
    }
    rd_config cfg;
    rd_error err = {0};
    CHECK_OK(rd_config_init(&cfg, &err), &err);
    CHECK_OK(
        rd_config_load_string(&cfg, "analyze:\n  bootstrap: 300\n  ci_level: 0.99\n", "test", &err),
        &err);
    CHECK_OK(rd_config_override(&cfg, "analyze.permutations=19", &err), &err);
    CHECK(rd_config_load_layer(&cfg, bad, "analyze", &err) == RD_EINVAL);
    CHECK(strstr(err.msg, "optim.epochs") && strstr(err.msg, "analyze.* keys only"));
    CHECK(rd_cfg_int(&cfg, "analyze.bootstrap") == 300); /* unchanged by the refused file */
    CHECK_OK(rd_config_load_layer(&cfg, study, "analyze", &err), &err);
    CHECK(strcmp(rd_cfg_str(&cfg, "analyze.targets"), "age, view") == 0);
    CHECK(rd_cfg_int(&cfg, "analyze.bootstrap") == 50);    /* the study over the file */
    CHECK(rd_cfg_int(&cfg, "analyze.permutations") == 19); /* the command line over the study */
    CHECK(rd_cfg_float(&cfg, "analyze.ci_level") == 0.99); /* what the study leaves alone */
    rd_config_free(&cfg);
}

/* ---- confounders ---- */

static void adjust_formulas_parse_and_refuse(rd_test *t) {
    rd_analyze_formula *f;
    int n;
    rd_error err = {0};
    CHECK_OK(rd_analyze_parse_adjust("age ~ sex + view, sex~age+view", &f, &n, &err), &err);
    CHECK(n == 2);
    if (n == 2) {
        CHECK(strcmp(f[0].target, "age") == 0 && f[0].ncov == 2);
        CHECK(strcmp(f[0].cov[0], "sex") == 0 && strcmp(f[0].cov[1], "view") == 0);
        CHECK(strcmp(f[0].name, "age_given_sex_view") == 0);
        CHECK(strcmp(f[1].name, "sex_given_age_view") == 0);
    }
    free(f);
    CHECK_OK(rd_analyze_parse_adjust("", &f, &n, &err), &err);
    CHECK(n == 0);
    free(f);
    static const char *const bad[][2] = {{"age", "one ~"},
                                         {" ~ sex", "names no target"},
                                         {"age ~ sex +", "empty covariate"},
                                         {"age ~ age", "for itself"},
                                         {"age ~ sex + sex", "twice"},
                                         {"age ~ sex, age ~ sex", "twice"}};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        CHECK_MSG(rd_analyze_parse_adjust(bad[k][0], &f, &n, &err) == RD_EINVAL && f == NULL,
                  "'%s' accepted", bad[k][0]);
        CHECK_MSG(strstr(err.msg, bad[k][1]) != NULL, "'%s': %s", bad[k][0], err.msg);
    }
}

/* Residuals against closed forms: one 0/1 covariate leaves y minus its group mean; a numeric
 * covariate (value and square) leaves residuals orthogonal to 1, x and x^2 (the normal
 * equations); a duplicated column changes nothing; incomplete rows are NaN. */
static void residualize_matches_closed_forms(rd_test *t) {
    enum { N = 40 };
    double y[N], cov[N * 3], resid[N], again[N];
    rd_rng r;
    rd_rng_init(&r, 11, RD_RNG_TEST, 0, 0, 0);
    double sum[2] = {0, 0}, count[2] = {0, 0};
    for (int i = 0; i < N; i++) {
        int g = i % 3 == 0;
        y[i] = 30 + 10 * g + 5 * rd_rng_normal(&r);
        cov[i * 3] = cov[i * 3 + 2] = g;
        cov[i * 3 + 1] = 20 + 40 * rd_rng_uniform(&r);
        if (i == 7) y[i] = NAN;
        if (i != 7) {
            sum[g] += y[i];
            count[g] += 1;
        }
    }
    rd_error err = {0};
    CHECK_OK(rd_analyze_residualize(y, cov, N, 1, 3, resid, &err), &err);
    for (int i = 0; i < N; i++) {
        if (i == 7) {
            CHECK(isnan(resid[i]));
            continue;
        }
        int g = i % 3 == 0;
        CHECK_NEAR(resid[i], y[i] - sum[g] / count[g], 1e-12 * 50);
    }
    /* Columns 0 and 2 are the same covariate twice: the rank cut-off keeps one. */
    double pair_cov[N * 2];
    for (int i = 0; i < N; i++) pair_cov[2 * i] = pair_cov[2 * i + 1] = cov[i * 3];
    CHECK_OK(rd_analyze_residualize(y, pair_cov, N, 2, 2, again, &err), &err);
    for (int i = 0; i < N; i++)
        if (i != 7) CHECK_NEAR(again[i], resid[i], 1e-9);
    /* Value and square of a numeric covariate. */
    double quad[N * 2];
    for (int i = 0; i < N; i++) {
        quad[2 * i] = cov[i * 3 + 1];
        quad[2 * i + 1] = quad[2 * i] * quad[2 * i];
    }
    quad[2 * 3] = NAN; /* row 3 lacks the covariate */
    CHECK_OK(rd_analyze_residualize(y, quad, N, 2, 2, resid, &err), &err);
    double dot[3] = {0, 0, 0}, scale[3] = {0, 0, 0};
    for (int i = 0; i < N; i++) {
        if (i == 3 || i == 7) {
            CHECK(isnan(resid[i]));
            continue;
        }
        double x = quad[2 * i], basis[3] = {1, x, x * x};
        for (int j = 0; j < 3; j++) {
            dot[j] += resid[i] * basis[j];
            scale[j] += fabs(y[i] * basis[j]);
        }
    }
    for (int j = 0; j < 3; j++) CHECK_NEAR(dot[j] / scale[j], 0.0, 1e-11);
}

/* Out-of-sample R2 of a ridge probe of y on x [n, d] (one image per patient). */
static double probe_r2(rd_test *t, const float *x, int n, int d, const double *y) {
    int *group = malloc((size_t)n * sizeof *group);
    for (int i = 0; i < n; i++) group[i] = i;
    rd_probe_config cfg;
    rd_probe_config_default(&cfg);
    cfg.bootstrap = 0;
    cfg.permutations = 0;
    cfg.nlambda = 3;
    cfg.lambda[0] = 0.1;
    cfg.lambda[1] = 10;
    cfg.lambda[2] = 1000;
    rd_probe_task task;
    rd_probe_result res;
    rd_error err = {0};
    double r2 = NAN;
    CHECK_OK(rd_probe_task_init(&task, RD_PROBE_RIDGE, x, n, d, y, group, &cfg, &err), &err);
    CHECK_OK(rd_probe_run(MPI_COMM_NULL, &task, 1, &res, &err), &err);
    r2 = res.metric[RD_PROBE_R2].estimate;
    rd_probe_result_free(&res);
    rd_probe_task_free(&task);
    free(group);
    return r2;
}

/* Planted confounding, age = 50 + 20 view + 10 e (view ~ Bernoulli(1/2), e ~ N(0, 1)), probed
 * raw and adjusted for view (the residual is 10 e up to sampling):
 *   an encoder that sees only the view, x = view + 0.1 u: raw R2 = corr(x, age)^2
 *   = 25 / (0.26 * 200) = 0.4808, adjusted R2 = 0;
 *   the converse, x = e - 2 (view - 1/2), uncorrelated with age: raw R2 = 0, adjusted
 *   R2 = corr(x, e)^2 = 1 / (1 + 4/4) = 0.5.
 * With 6000 patients the sampling spread of these R2 is about 0.01; tolerance 0.02. */
static void adjusted_effects_on_planted_confounding(rd_test *t) {
    enum { N = 6000 };
    double *age = malloc(N * sizeof *age), *view = malloc(N * sizeof *view);
    double *adj = malloc(N * sizeof *adj);
    float *xa = malloc(N * sizeof *xa), *xb = malloc(N * sizeof *xb);
    rd_rng r;
    rd_rng_init(&r, 12, RD_RNG_TEST, 0, 0, 0);
    for (int i = 0; i < N; i++) {
        view[i] = rd_rng_uniform(&r) < 0.5;
        double e = rd_rng_normal(&r);
        age[i] = 50 + 20 * view[i] + 10 * e;
        xa[i] = (float)(view[i] + 0.1 * rd_rng_normal(&r));
        xb[i] = (float)(e - 2 * (view[i] - 0.5));
    }
    rd_error err = {0};
    CHECK_OK(rd_analyze_residualize(age, view, N, 1, 1, adj, &err), &err);
    CHECK_NEAR(probe_r2(t, xa, N, 1, age), 0.4808, 0.02);
    CHECK_NEAR(probe_r2(t, xa, N, 1, adj), 0.0, 0.02);
    CHECK_NEAR(probe_r2(t, xb, N, 1, age), 0.0, 0.02);
    CHECK_NEAR(probe_r2(t, xb, N, 1, adj), 0.5, 0.02);
    free(age);
    free(view);
    free(adj);
    free(xa);
    free(xb);
}

/* ---- metrics.jsonl ---- */

static void loss_curve_reads_dinov2_lines(rd_test *t) {
    char path[700];
    snprintf(path, sizeof path, "%s/metrics.jsonl", rd_test_tmpdir(t));
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    fputs("{\"iteration\": 0, \"lr\": 0.001, \"total_loss\": 10.5, \"dino_loss\": 8, "
          "\"name\": \"a, \\\"b\\\" {c}\", \"nested\": {\"x_loss\": [1, {\"y\": 2}]}}\n",
          f);
    fputs("\n{\"step\": 10, \"dino_loss\": 7.25, \"ibot_loss\": -1e-3, \"flag\": true}\n", f);
    fputs("{\"total_loss\": 3}\n", f);                      /* no step: not a point */
    fputs("{\"step\": 20, \"total_loss\": NaN}\n", f);      /* Python's NaN: the term is missing */
    fputs("{\"step\": 30, \"total_loss\": 9, \"dino_l", f); /* torn */
    fclose(f);
    rd_loss_curve c;
    rd_error err = {0};
    CHECK_OK(rd_loss_curve_read(path, &c, &err), &err);
    CHECK(c.npoints == 3 && c.bad_lines == 2 && c.nterms == 3);
    if (c.npoints == 3 && c.nterms == 3) {
        CHECK(strcmp(c.term[0], "total_loss") == 0 && strcmp(c.term[1], "dino_loss") == 0 &&
              strcmp(c.term[2], "ibot_loss") == 0);
        CHECK(c.step[0] == 0 && c.step[1] == 10 && c.step[2] == 20);
        CHECK(c.value[0] == 10.5 && c.value[1] == 8 && isnan(c.value[2]));
        const double *row1 = c.value + RD_LOSS_MAX_TERMS;
        CHECK(isnan(row1[0]) && row1[1] == 7.25 && row1[2] == -1e-3);
        CHECK(isnan(c.value[2 * RD_LOSS_MAX_TERMS]));
    }
    rd_loss_curve_free(&c);
    snprintf(path, sizeof path, "%s/none.jsonl", rd_test_tmpdir(t));
    CHECK(rd_loss_curve_read(path, &c, &err) == RD_ENOTFOUND);
    CHECK(strstr(err.msg, "none.jsonl") != NULL);
}

/* ---- mean ROC ---- */

/* A logistic probe task on n rows with scores pred = label * shift + noise (ties when
 * rounded to `round` decimals); fills pred [nrows]. */
static void roc_task(rd_test *t, rd_probe_task *task, int n, double shift, double *pred, float *x,
                     double *y, int *group) {
    rd_rng r;
    rd_rng_init(&r, 9, RD_RNG_TEST, 0, 0, 0);
    for (int i = 0; i < n; i++) {
        y[i] = i % 3 == 0;
        group[i] = i / 2;
        x[i] = (float)rd_rng_normal(&r);
    }
    rd_probe_config cfg;
    rd_probe_config_default(&cfg);
    rd_error err = {0};
    CHECK_OK(rd_probe_task_init(task, RD_PROBE_LOGISTIC, x, n, 1, y, group, &cfg, &err), &err);
    for (int k = 0; k < task->nrows; k++)
        pred[k] = round(10 * (task->y[k] * shift + rd_rng_normal(&r))) / 10;
}

static double area(const double *tpr, int npts) {
    double a = 0;
    for (int g = 1; g < npts; g++) a += 0.5 * (tpr[g] + tpr[g - 1]) / (npts - 1);
    return a;
}

static void mean_roc_area_is_the_mean_fold_auroc(rd_test *t) {
    enum { N = 240, NPTS = 20001 };
    static double tpr[NPTS];
    double pred[N], y[N], metrics[RD_PROBE_NMETRICS];
    float x[N];
    int group[N];
    rd_probe_task task;
    roc_task(t, &task, N, 1.0, pred, x, y, group);
    rd_error err = {0};
    CHECK_OK(rd_probe_oof_metrics(&task, NULL, pred, NULL, metrics, &err), &err);
    rd_analyze_mean_roc(&task, pred, NPTS, tpr);
    /* Exact up to the grid: jumps fall between grid points (error <= 1 / (NPTS - 1)). */
    CHECK_NEAR(area(tpr, NPTS), metrics[RD_PROBE_AUROC], 1.0 / (NPTS - 1));
    CHECK(metrics[RD_PROBE_AUROC] > 0.7);
    CHECK(tpr[0] >= 0 && tpr[NPTS - 1] == 1);
    for (int g = 1; g < NPTS; g++) CHECK(tpr[g] >= tpr[g - 1] - 1e-12);
    /* Constant scores: the diagonal. Perfect scores: 1 from the first step on. */
    for (int k = 0; k < task.nrows; k++) pred[k] = 0.5;
    rd_analyze_mean_roc(&task, pred, 11, tpr);
    for (int g = 0; g < 11; g++) CHECK_NEAR(tpr[g], g / 10.0, 1e-12);
    for (int k = 0; k < task.nrows; k++) pred[k] = task.y[k];
    rd_analyze_mean_roc(&task, pred, 11, tpr);
    for (int g = 0; g < 11; g++) CHECK_NEAR(tpr[g], 1.0, 1e-12);
    rd_probe_task_free(&task);
}

/* ---- comparison sentences ---- */

static void pair_sentences_say_who_wins(rd_test *t) {
    rd_analyze_rep reps[2];
    rd_analyze_target target;
    memset(reps, 0, sizeof reps);
    memset(&target, 0, sizeof target);
    snprintf(reps[0].encoder, sizeof reps[0].encoder, "trained");
    snprintf(reps[1].encoder, sizeof reps[1].encoder, "random-init");
    snprintf(reps[0].features, sizeof reps[0].features, "cls");
    snprintf(reps[1].features, sizeof reps[1].features, "cls");
    snprintf(target.name, sizeof target.name, "sex");
    target.kind = RD_PROBE_LOGISTIC;
    rd_analyze_data data = {.nreps = 2, .reps = reps, .ntargets = 1, .targets = &target};
    rd_analyze_pair pair = {.target = 0, .a = 0, .b = 1};
    pair.diff[RD_PROBE_AUROC] = (rd_probe_interval){0.12, 0.08, 0.16, 1000};
    char buf[512];
    int significant, winner;
    rd_analyze_pair_sentence(&data, &pair, buf, sizeof buf, &significant, &winner);
    CHECK(strcmp(buf,
                 "trained predicts sex better than random-init: ΔAUROC 0.120 [0.080, 0.160]") == 0);
    CHECK(significant && winner == 0);
    pair.diff[RD_PROBE_AUROC] = (rd_probe_interval){-0.12, -0.16, -0.08, 1000};
    rd_analyze_pair_sentence(&data, &pair, buf, sizeof buf, &significant, &winner);
    CHECK(strcmp(buf,
                 "random-init predicts sex better than trained: ΔAUROC 0.120 [0.080, 0.160]") == 0);
    CHECK(significant && winner == 1);
    pair.diff[RD_PROBE_AUROC] = (rd_probe_interval){0.01, -0.03, 0.05, 1000};
    rd_analyze_pair_sentence(&data, &pair, buf, sizeof buf, &significant, &winner);
    CHECK(strstr(buf, "trained and random-init: no significant difference for sex "
                      "(ΔAUROC 0.010 [-0.030, 0.050]") == buf);
    CHECK(!significant && winner == -1);
    /* Excludes 0, but only by rounding (two constant predictions): no claim. */
    pair.diff[RD_PROBE_AUROC] = (rd_probe_interval){2e-6, 1e-7, 3e-6, 1000};
    rd_analyze_pair_sentence(&data, &pair, buf, sizeof buf, &significant, &winner);
    CHECK(!significant && winner == -1);
    CHECK_MSG(strstr(buf, "the interval clears 0 by less than 0.001") != NULL, "%s", buf);
    pair.diff[RD_PROBE_AUROC] = (rd_probe_interval){0.003, 0.001, 0.005, 1000};
    rd_analyze_pair_sentence(&data, &pair, buf, sizeof buf, &significant, &winner);
    CHECK(significant && winner == 0);
    target.kind = RD_PROBE_RIDGE;
    snprintf(target.name, sizeof target.name, "age");
    pair.diff[RD_PROBE_R2] = (rd_probe_interval){-0.25, -0.31, -0.18, 1000};
    pair.diff[RD_PROBE_MAE] = (rd_probe_interval){3.1, 2.2, 4.0, 1000};
    rd_analyze_pair_sentence(&data, &pair, buf, sizeof buf, &significant, &winner);
    CHECK(strcmp(buf, "random-init predicts age better than trained: ΔR² 0.250 [0.180, 0.310]; "
                      "ΔMAE -3.10 [-4.00, -2.20]") == 0);
    CHECK_MSG(winner == 1, "%s", buf);
}

/* ---- loading a file written with h5store ---- */

/* Finding labels: /meta/finding_b (-1 on every third row, else 0/1) and /meta/finding_thin (one
 * positive), and /meta/grade, an int8 column of 0..3 (a numeric target), when findings is set. */
static void write_embeddings(rd_test *t, const char *path, int n, int d, int poison_row,
                             int findings) {
    rd_error err = {0};
    rd_h5file f;
    CHECK_OK(rd_h5_create(&f, path, MPI_COMM_WORLD, &err), &err);
    int64_t dims[2] = {n, d}, rows = n;
    float *x = malloc(sizeof(float) * n * d), *age = malloc(sizeof(float) * n);
    float *weight = malloc(sizeof(float) * n);
    int8_t *sex = malloc((size_t)n), *finding_b = malloc((size_t)n);
    int8_t *finding_thin = malloc((size_t)n), *grade = malloc((size_t)n);
    uint8_t *split = malloc((size_t)n);
    int64_t *row = malloc(sizeof(int64_t) * n); /* bookkeeping columns rdino-embed writes */
    const char **ids = malloc(sizeof(char *) * n), **patients = malloc(sizeof(char *) * n);
    const char **views = malloc(sizeof(char *) * n);
    static const char *const view_cycle[4] = {"PA", "AP", "LL", ""};
    char(*idbuf)[16] = malloc(16 * (size_t)n), (*pbuf)[16] = malloc(16 * (size_t)n);
    fill_uniform(x, n * d, 4);
    for (int i = 0; i < n; i++) {
        age[i] = i % 7 == 0 ? NAN : 20.0f + (float)i;
        weight[i] = 50.0f + (float)(i % 11);
        sex[i] = (int8_t)(i % 5 == 0 ? -1 : i % 2);
        finding_b[i] = (int8_t)(i % 3 == 0 ? -1 : i % 2);
        finding_thin[i] = (int8_t)(i == 3);
        grade[i] = (int8_t)(i % 4);
        split[i] = (uint8_t)(i % 10 == 0 ? 2 : i % 10 == 1 ? 1 : 0);
        row[i] = i;
        snprintf(idbuf[i], 16, "img%03d", i);
        snprintf(pbuf[i], 16, "p%02d", i / 2);
        ids[i] = idbuf[i];
        patients[i] = pbuf[i];
        views[i] = view_cycle[i % 4];
    }
    if (poison_row >= 0) x[poison_row * d + 1] = NAN;
    CHECK_OK(rd_h5_create_dataset(&f, "/cls", RD_H5_F32, 2, dims, NULL, 0, &err), &err);
    CHECK_OK(rd_h5_write_rows(&f, "/cls", RD_H5_F32, 0, n, x, &err), &err);
    CHECK_OK(rd_h5_create_strings(&f, "/meta/image_id", n, 8, 0, 0, &err), &err);
    CHECK_OK(rd_h5_write_strings(&f, "/meta/image_id", 0, n, ids, &err), &err);
    CHECK_OK(rd_h5_create_strings(&f, "/meta/patient_id", n, 4, 0, 0, &err), &err);
    CHECK_OK(rd_h5_write_strings(&f, "/meta/patient_id", 0, n, patients, &err), &err);
    CHECK_OK(rd_h5_create_strings(&f, "/meta/view", n, 4, 0, 0, &err), &err);
    CHECK_OK(rd_h5_write_strings(&f, "/meta/view", 0, n, views, &err), &err);
    const struct {
        const char *name;
        rd_h5_type type;
        const void *data;
    } cols[] = {{"/meta/age", RD_H5_F32, age},
                {"/meta/weight", RD_H5_F32, weight},
                {"/meta/sex", RD_H5_I8, sex},
                {"/meta/split", RD_H5_U8, split},
                {"/meta/source_row", RD_H5_I64, row},
                {"/meta/shard_row", RD_H5_I64, row},
                {"/meta/finding_b", RD_H5_I8, finding_b},
                {"/meta/finding_thin", RD_H5_I8, finding_thin},
                {"/meta/grade", RD_H5_I8, grade}};
    for (int k = 0; k < (findings ? 9 : 6); k++) {
        CHECK_OK(rd_h5_create_dataset(&f, cols[k].name, cols[k].type, 1, &rows, NULL, 0, &err),
                 &err);
        CHECK_OK(rd_h5_write_rows(&f, cols[k].name, cols[k].type, 0, n, cols[k].data, &err), &err);
    }
    CHECK_OK(rd_h5_set_attr_int(&f, "/", "format_version", 1, &err), &err);
    CHECK_OK(rd_h5_set_attr_str(&f, "/", "encoder", "trained", &err), &err);
    CHECK_OK(rd_h5_set_attr_int(&f, "/", "resolution", 518, &err), &err);
    CHECK_OK(rd_h5_publish(&f, &err), &err);
    free(x);
    free(age);
    free(weight);
    free(sex);
    free(finding_b);
    free(finding_thin);
    free(grade);
    free(split);
    free(row);
    free(ids);
    free(patients);
    free(views);
    free(idbuf);
    free(pbuf);
}

static void load_h5store_file_with_split_filter(rd_test *t) {
    rd_test_need_mpi();
    char path[700];
    snprintf(path, sizeof path, "%s/emb.h5", rd_test_tmpdir(t));
    enum { N = 40, D = 3 };
    write_embeddings(t, path, N, D, -1, 1);
    char *files[1] = {path};
    rd_analyze_params p;
    memset(&p, 0, sizeof p);
    p.embeddings = files;
    p.nembeddings = 1;
    p.use_cls = 1;
    p.splits = 1u << 0 | 1u << 2; /* train and test */
    rd_analyze_data data;
    rd_error err = {0};
    CHECK_OK(rd_analyze_load(&p, &data, &err), &err);
    CHECK(data.n == 36 && data.file_rows == N && data.nreps == 1); /* 4 val rows left out */
    if (data.n == 36 && data.nreps == 1) {
        CHECK(data.file_row[1] == 2 && strcmp(data.image_id + data.id_stride, "img002") == 0);
        CHECK(strcmp(data.patient_id + data.patient_stride, "p01") == 0);
        float x[N * D];
        fill_uniform(x, N * D, 4);
        CHECK(memcmp(data.reps[0].x + D, x + 2 * D, sizeof(float) * D) == 0);
        CHECK(data.reps[0].d == D && strcmp(data.reps[0].encoder, "trained") == 0);
        CHECK(data.reps[0].resolution == 518 && strcmp(data.reps[0].checkpoint, "") == 0);
        /* auto targets: sex, then the numeric columns but split, source_row, shard_row and the
         * finding labels; an int8 column of 0..3 is numeric. */
        CHECK(data.ntargets == 4);
        if (data.ntargets == 4) {
            CHECK(strcmp(data.targets[0].name, "sex") == 0 &&
                  data.targets[0].kind == RD_PROBE_LOGISTIC);
            CHECK(strcmp(data.targets[1].name, "age") == 0 &&
                  strcmp(data.targets[2].name, "grade") == 0 &&
                  data.targets[2].kind == RD_PROBE_RIDGE &&
                  strcmp(data.targets[3].name, "weight") == 0);
            CHECK(isnan(data.targets[0].y[0]) && data.targets[0].y[1] == 0); /* rows 0, 2 */
            CHECK(isnan(data.targets[1].y[0]) && data.targets[1].y[1] == 22);
        }
    }
    rd_analyze_data_free(&data);
    /* A target the file lacks is an error naming the file and the column. */
    char *targets[2] = {"sex", "bmi"};
    p.targets = targets;
    p.ntargets = 2;
    CHECK(rd_analyze_load(&p, &data, &err) == RD_ENOTFOUND);
    CHECK(strstr(err.msg, "emb.h5") && strstr(err.msg, "/meta/bmi"));
    /* A non-finite feature in a study row: error naming the file and the image. */
    p.ntargets = 0;
    write_embeddings(t, path, N, D, 12, 1);
    CHECK(rd_analyze_load(&p, &data, &err) == RD_ENUMERIC);
    CHECK_MSG(strstr(err.msg, "emb.h5") && strstr(err.msg, "img012"), "%s", err.msg);
}

enum { LOAD_N = 40, LOAD_D = 3 };

/* Writes the test's emb.h5 (LOAD_N rows of LOAD_D dims, finding labels included) and returns
 * parameters that load its cls features, every split, with the given targets; files[0] is set
 * to the file's path (path, 700 bytes). */
static rd_analyze_params load_file(rd_test *t, char *path, char **files, char **targets,
                                   int ntargets) {
    rd_test_need_mpi();
    snprintf(path, 700, "%s/emb.h5", rd_test_tmpdir(t));
    write_embeddings(t, path, LOAD_N, LOAD_D, -1, 1);
    files[0] = path;
    rd_analyze_params p;
    memset(&p, 0, sizeof p);
    p.embeddings = files;
    p.nembeddings = 1;
    p.use_cls = 1;
    p.splits = 7;
    p.targets = targets;
    p.ntargets = ntargets;
    return p;
}

/* The view as a target (AP 1, PA 0, other views unknown) and adjusted targets read through
 * rd_analyze_load: age ~ view is age minus its mean within the view, on rows where both are
 * known; an adjusted target whose raw target is not in the study has raw = -1. */
static void load_view_and_adjusted_targets(rd_test *t) {
    enum { N = LOAD_N };
    char path[700], *files[1], *targets[2] = {"view", "age"};
    rd_analyze_params p = load_file(t, path, files, targets, 2);
    rd_error err = {0};
    CHECK_OK(rd_analyze_parse_adjust("age ~ view, weight ~ sex", &p.adjust, &p.nadjust, &err),
             &err);
    rd_analyze_data data;
    CHECK_OK(rd_analyze_load(&p, &data, &err), &err);
    CHECK(data.ntargets == 4);
    if (data.ntargets == 4) {
        const rd_analyze_target *view = &data.targets[0], *adj = &data.targets[2];
        CHECK(view->kind == RD_PROBE_LOGISTIC && view->raw == -1 && !*view->adjusted_for);
        for (int i = 0; i < N; i++) {
            double want = i % 4 == 0 ? 0.0 : i % 4 == 1 ? 1.0 : NAN;
            CHECK_MSG(isnan(want) ? isnan(view->y[i]) : view->y[i] == want, "view row %d: %g", i,
                      view->y[i]);
        }
        CHECK(strcmp(adj->name, "age_given_view") == 0 && adj->kind == RD_PROBE_RIDGE);
        CHECK(adj->raw == 1 && strcmp(adj->adjusted_for, "view") == 0);
        double sum[2] = {0, 0}, count[2] = {0, 0};
        for (int i = 0; i < N; i++)
            if (i % 4 < 2 && i % 7 != 0) {
                sum[i % 4] += 20.0 + i;
                count[i % 4] += 1;
            }
        for (int i = 0; i < N; i++) {
            if (i % 4 >= 2 || i % 7 == 0)
                CHECK_MSG(isnan(adj->y[i]), "row %d: residual %g of an unknown", i, adj->y[i]);
            else
                CHECK_NEAR(adj->y[i], 20.0 + i - sum[i % 4] / count[i % 4], 1e-9);
        }
        CHECK(strcmp(data.targets[3].name, "weight_given_sex") == 0 && data.targets[3].raw == -1);
    }
    rd_analyze_data_free(&data);
    free(p.adjust);
}

/* "findings" in analyze.targets: every /meta/finding_* column, in name order, each a 0/1
 * target with -1 unknown; one with a single positive is left out as not estimable, with why;
 * a file without finding labels is an error naming it. */
static void load_finding_labels(rd_test *t) {
    enum { N = LOAD_N };
    char path[700], *files[1], *targets[2] = {"findings", "sex"};
    rd_analyze_params p = load_file(t, path, files, targets, 2);
    p.min_per_class = 2;
    rd_probe_config_default(&p.probe);
    p.probe.outer_folds = 2;
    rd_analyze_data data;
    rd_error err = {0};
    CHECK_OK(rd_analyze_load(&p, &data, &err), &err);
    CHECK(data.ntargets == 2 && data.nskipped == 1);
    if (data.ntargets == 2 && data.nskipped == 1) {
        const rd_analyze_target *b = &data.targets[0];
        CHECK(strcmp(b->name, "finding_b") == 0 && b->kind == RD_PROBE_LOGISTIC);
        CHECK(rd_analyze_is_finding(b) && !rd_analyze_is_finding(&data.targets[1]));
        for (int i = 0; i < N; i++)
            CHECK_MSG(i % 3 == 0 ? isnan(b->y[i]) : b->y[i] == i % 2, "row %d: %g", i, b->y[i]);
        CHECK(strcmp(data.skipped[0].target, "finding_thin") == 0);
        CHECK_MSG(strstr(data.skipped[0].reason, "not estimable: 1 positive and 39 negative") &&
                      strstr(data.skipped[0].reason, "at least 2"),
                  "%s", data.skipped[0].reason);
    }
    rd_analyze_data_free(&data);
    write_embeddings(t, path, N, LOAD_D, -1, 0);
    CHECK(rd_analyze_load(&p, &data, &err) == RD_EINVAL);
    CHECK_MSG(strstr(err.msg, "emb.h5 has no /meta/finding_* column"), "%s", err.msg);
}

static const rd_test_case cases[] = {
    {"area_downsample_block_means", area_downsample_block_means},
    {"area_downsample_fractional_pixels", area_downsample_fractional_pixels},
    {"area_downsample_keeps_the_mean", area_downsample_keeps_the_mean},
    {"pca_finds_the_covariance_eigenvectors", pca_finds_the_covariance_eigenvectors},
    {"split_list_trims_and_drops_empty_items", split_list_trims_and_drops_empty_items},
    {"params_defaults_and_lists", params_defaults_and_lists},
    {"default_study_file_is_the_builtin_defaults", default_study_file_is_the_builtin_defaults},
    {"study_layer_sits_between_file_and_command_line",
     study_layer_sits_between_file_and_command_line},
    {"adjust_formulas_parse_and_refuse", adjust_formulas_parse_and_refuse},
    {"residualize_matches_closed_forms", residualize_matches_closed_forms},
    {"adjusted_effects_on_planted_confounding", adjusted_effects_on_planted_confounding},
    {"loss_curve_reads_dinov2_lines", loss_curve_reads_dinov2_lines},
    {"mean_roc_area_is_the_mean_fold_auroc", mean_roc_area_is_the_mean_fold_auroc},
    {"pair_sentences_say_who_wins", pair_sentences_say_who_wins},
    {"load_h5store_file_with_split_filter", load_h5store_file_with_split_filter},
    {"load_view_and_adjusted_targets", load_view_and_adjusted_targets},
    {"load_finding_labels", load_finding_labels},
};

RD_TEST_MAIN("analyze", cases)
