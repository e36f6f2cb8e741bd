/* The "analyze" configuration section as rd_analyze_params: defaults resolved against
 * data.output_dir, comma-separated lists split (the config loader has no lists of strings),
 * folders of embedding files expanded. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rdino/analyze.h"
#include "rdino/file.h"
#include "rdino/paths.h"

rd_status rd_analyze_split_list(const char *text, char ***items, int *n, rd_error *err) {
    *items = NULL;
    *n = 0;
    int cap = 1;
    for (const char *c = text; *c; c++) cap += *c == ',';
    char **out = calloc((size_t)cap, sizeof *out);
    if (!out) return rd_fail(err, RD_ENOMEM, "out of memory splitting '%s'", text);
    const char *start = text;
    for (;;) {
        const char *end = strchr(start, ',');
        if (!end) end = start + strlen(start);
        const char *a = start, *b = end;
        while (a < b && (*a == ' ' || *a == '\t')) a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t')) b--;
        if (b > a) {
            out[*n] = strndup(a, (size_t)(b - a));
            if (!out[*n]) {
                for (int i = 0; i < *n; i++) free(out[i]);
                free(out);
                *n = 0;
                return rd_fail(err, RD_ENOMEM, "out of memory splitting '%s'", text);
            }
            (*n)++;
        }
        if (!*end) break;
        start = end + 1;
    }
    *items = out;
    return RD_OK;
}

static void free_list(char **items, int n) {
    for (int i = 0; i < n; i++) free(items[i]);
    free(items);
}

static int by_string(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Appends path to the list; a folder contributes its *.h5 files in name order (hidden ones,
 * such as the atomic writers' temporaries, excluded). */
static rd_status add_embedding(rd_analyze_params *p, int *cap, const char *path, rd_error *err) {
    struct stat sb;
    char **found = NULL;
    int nfound = 0, fcap = 0;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        DIR *d = opendir(path);
        if (!d) return rd_fail(err, RD_EIO, "analyze.embeddings: cannot list folder %s", path);
        const struct dirent *e;
        int out_of_memory = 0;
        while (!out_of_memory && (e = readdir(d)) != NULL) {
            size_t len = strlen(e->d_name);
            if (e->d_name[0] == '.' || len < 4 || strcmp(e->d_name + len - 3, ".h5") != 0) continue;
            if (nfound == fcap) {
                fcap = fcap ? 2 * fcap : 8;
                char **grown = realloc(found, (size_t)fcap * sizeof *grown);
                out_of_memory = !grown;
                if (grown) found = grown;
            }
            char *full = out_of_memory ? NULL : malloc(strlen(path) + len + 2);
            out_of_memory = !full;
            if (full) {
                sprintf(full, "%s/%s", path, e->d_name);
                found[nfound++] = full;
            }
        }
        closedir(d);
        if (out_of_memory) {
            free_list(found, nfound);
            return rd_fail(err, RD_ENOMEM, "analyze.embeddings: out of memory listing %s", path);
        }
        if (nfound == 0) {
            free(found);
            return rd_fail(err, RD_ENOTFOUND,
                           "analyze.embeddings: folder %s holds no .h5 embedding files (run "
                           "rdino-embed first, or name the files)",
                           path);
        }
        qsort(found, (size_t)nfound, sizeof *found, by_string);
    } else {
        found = malloc(sizeof *found);
        if (found) found[0] = strdup(path);
        nfound = found && found[0] ? 1 : 0;
        if (!nfound) {
            free(found);
            return rd_fail(err, RD_ENOMEM, "out of memory for the embedding list");
        }
    }
    if (p->nembeddings + nfound > *cap) {
        *cap = 2 * (p->nembeddings + nfound);
        char **grown = realloc(p->embeddings, (size_t)*cap * sizeof *grown);
        if (!grown) {
            free_list(found, nfound);
            return rd_fail(err, RD_ENOMEM, "out of memory for the embedding list");
        }
        p->embeddings = grown;
    }
    for (int i = 0; i < nfound; i++) p->embeddings[p->nembeddings++] = found[i];
    free(found);
    return RD_OK;
}

static rd_status read_splits(const rd_config *cfg, unsigned *mask, rd_error *err) {
    static const char *names[3] = {"train", "val", "test"};
    char **items;
    int n;
    rd_status st = rd_analyze_split_list(rd_cfg_str(cfg, "analyze.splits"), &items, &n, err);
    if (st) return st;
    *mask = 0;
    for (int i = 0; i < n && !st; i++) {
        int s = 0;
        while (s < 3 && strcmp(items[i], names[s]) != 0) s++;
        if (s == 3)
            st = rd_fail(err, RD_EINVAL,
                         "analyze.splits: unknown split '%s' (use train, val, test, "
                         "comma-separated)",
                         items[i]);
        else
            *mask |= 1u << s;
    }
    if (!st && *mask == 0)
        st = rd_fail(err, RD_EINVAL, "analyze.splits is empty: name at least one split");
    free_list(items, n);
    return st;
}

static rd_status read_probe(const rd_config *cfg, rd_probe_config *c, rd_error *err) {
    rd_probe_config_default(c);
    c->seed = (uint64_t)rd_cfg_int(cfg, "analyze.seed");
    c->outer_folds = (int)rd_cfg_int(cfg, "analyze.outer_folds");
    c->inner_folds = (int)rd_cfg_int(cfg, "analyze.inner_folds");
    c->bootstrap = (int)rd_cfg_int(cfg, "analyze.bootstrap");
    c->permutations = (int)rd_cfg_int(cfg, "analyze.permutations");
    c->ci_level = rd_cfg_float(cfg, "analyze.ci_level");
    double range[2];
    rd_cfg_list(cfg, "analyze.lambda_range", range, 2);
    int per_decade = (int)rd_cfg_int(cfg, "analyze.lambdas_per_decade");
    if (!(range[0] <= range[1]))
        return rd_fail(err, RD_EINVAL,
                       "analyze.lambda_range [%g, %g]: the first must not exceed "
                       "the second",
                       range[0], range[1]);
    /* Steps of 1/per_decade decades from the smallest; the largest is included when it lies
     * on the grid (within rounding). */
    double decades = log10(range[1] / range[0]);
    int n = 1 + (int)floor(decades * per_decade + 1e-9);
    if (n > RD_PROBE_MAX_LAMBDAS)
        return rd_fail(err, RD_EINVAL,
                       "analyze.lambda_range [%g, %g] at %d per decade gives %d penalties; at "
                       "most %d",
                       range[0], range[1], per_decade, n, RD_PROBE_MAX_LAMBDAS);
    c->nlambda = n;
    for (int l = 0; l < n; l++) c->lambda[l] = range[0] * pow(10.0, (double)l / per_decade);
    return RD_OK;
}

/* analyze.plots_dir, or analysis/plots two folders above the program (build/bin/rdino-analyze
 * in the source tree). */
static rd_status plots_dir(const rd_config *cfg, char *dir, rd_error *err) {
    const char *given = rd_cfg_str(cfg, "analyze.plots_dir");
    if (*given) {
        if (strlen(given) >= RD_PATH_MAX)
            return rd_fail(err, RD_EINVAL, "analyze.plots_dir is too long");
        snprintf(dir, RD_PATH_MAX, "%s", given);
        return RD_OK;
    }
    char exe[RD_PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0)
        return rd_fail(err, RD_EIO, "cannot find the program's folder: set analyze.plots_dir");
    exe[len] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash) *slash = '\0';
    if (snprintf(dir, RD_PATH_MAX, "%s/../../analysis/plots", exe) >= RD_PATH_MAX)
        return rd_fail(err, RD_EINVAL, "the program's path is too long: set analyze.plots_dir");
    return RD_OK;
}

rd_status rd_analyze_params_from_config(const rd_config *cfg, rd_analyze_params *p, rd_error *err) {
    memset(p, 0, sizeof *p);
    const char *features = rd_cfg_str(cfg, "analyze.features");
    p->use_cls = strcmp(features, "patch_mean") != 0;
    p->use_patch_mean = strcmp(features, "cls") != 0;
    snprintf(p->main_encoder, sizeof p->main_encoder, "%s",
             rd_cfg_str(cfg, "analyze.main_encoder"));
    rd_status st = rd_pipeline_input(cfg, "analyze.shards_dir", RD_DIR_SHARDS, p->shards_dir, err);
    if (!st) st = rd_pipeline_path(cfg, RD_DIR_REPORT, p->output_dir, err);
    if (!st)
        st = rd_pipeline_input(cfg, "analyze.metrics_jsonl", RD_DIR_METRICS, p->metrics_jsonl, err);
    if (!st) st = plots_dir(cfg, p->plots_dir, err);
    if (st) return st;
    p->top_dims = (int)rd_cfg_int(cfg, "analyze.top_dims");
    p->min_per_class = (int)rd_cfg_int(cfg, "analyze.min_per_class");
    p->knn_k = rd_cfg_bool(cfg, "analyze.knn.enabled") ? (int)rd_cfg_int(cfg, "analyze.knn.k") : 0;
    p->knn_temperature = rd_cfg_float(cfg, "analyze.knn.temperature");
    p->pixel_size = rd_cfg_bool(cfg, "analyze.pixels.enabled")
                        ? (int)rd_cfg_int(cfg, "analyze.pixels.size")
                        : 0;
    p->pixel_components = (int)rd_cfg_int(cfg, "analyze.pixels.components");

    st = read_splits(cfg, &p->splits, err);
    if (!st) st = read_probe(cfg, &p->probe, err);
    if (!st && strcmp(rd_cfg_str(cfg, "analyze.targets"), "auto") != 0) {
        st = rd_analyze_split_list(rd_cfg_str(cfg, "analyze.targets"), &p->targets, &p->ntargets,
                                   err);
        for (int i = 0; !st && i < p->ntargets; i++)
            if (strlen(p->targets[i]) >= RD_ANALYZE_NAME_MAX || strchr(p->targets[i], '/'))
                st = rd_fail(err, RD_EINVAL, "analyze.targets: '%s' is not a /meta column name",
                             p->targets[i]);
        if (!st && p->ntargets == 0)
            st = rd_fail(err, RD_EINVAL,
                         "analyze.targets is empty: name sex and/or /meta columns, 'findings' "
                         "or 'auto'");
    }
    if (!st)
        st = rd_analyze_parse_adjust(rd_cfg_str(cfg, "analyze.adjust"), &p->adjust, &p->nadjust,
                                     err);
    if (!st)
        st = rd_analyze_split_list(rd_cfg_str(cfg, "analyze.compare"), &p->compare, &p->ncompare,
                                   err);
    if (!st && p->ncompare == 0) { /* a comparison reads reports, not embeddings */
        char **items = NULL;
        int n = 0, cap = 0;
        char fallback[RD_PATH_MAX];
        const char *text = rd_cfg_str(cfg, "analyze.embeddings");
        struct stat sb;
        if (!*text) {
            st = rd_pipeline_path(cfg, RD_DIR_EMBEDDINGS, fallback, err);
            text = fallback;
            if (!st && stat(fallback, &sb) != 0)
                st = rd_fail(err, RD_ENOTFOUND,
                             "no embeddings: %s does not exist (run rdino-embed, or name the "
                             "files in analyze.embeddings)",
                             fallback);
        }
        if (!st) st = rd_analyze_split_list(text, &items, &n, err);
        for (int i = 0; !st && i < n; i++) st = add_embedding(p, &cap, items[i], err);
        if (!st && p->nembeddings == 0)
            st = rd_fail(err, RD_EINVAL, "analyze.embeddings names no file");
        free_list(items, n);
    }
    if (st) rd_analyze_params_free(p);
    return st;
}

void rd_analyze_params_free(rd_analyze_params *p) {
    free_list(p->embeddings, p->nembeddings);
    free_list(p->targets, p->ntargets);
    free_list(p->compare, p->ncompare);
    p->compare = NULL;
    p->ncompare = 0;
    free(p->adjust);
    p->embeddings = p->targets = NULL;
    p->adjust = NULL;
    p->nembeddings = p->ntargets = p->nadjust = 0;
}
