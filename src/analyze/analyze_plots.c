/* The report's plots, drawn by gnuplot (pngcairo terminal, as Debian's gnuplot-nox has it)
 * from a generated script and data files in a temporary folder. Each PNG is drawn under a
 * temporary name, checked (PNG signature), fsync'd and renamed, so a plot either appears whole
 * or not at all. Problems (gnuplot missing or failing) are recorded, not returned. */
#include "analyze_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rdino/file.h"
#include "rdino/log.h"

extern char **environ;

enum { ROC_POINTS = 201 };

/* ---- mean ROC over outer folds ---- */

/* TPR of one fold's ROC at each grid FPR, interpolated linearly between the curve's vertices
 * (tied scores make a diagonal segment, as ties count 1/2 in the AUROC); at an FPR where the
 * curve rises vertically, the upper end. 0 if the fold lacks a class. */
static int fold_roc(const double *score, const double *label, int n, const int *order, int npts,
                    double *tpr) {
    double pos = 0.0;
    for (int i = 0; i < n; i++) pos += label[i];
    double neg = n - pos;
    if (pos == 0 || neg == 0) return 0;
    /* Vertices, walking from the highest score down, one per group of tied scores. */
    double *vx = malloc((size_t)(n + 1) * sizeof *vx), *vy = malloc((size_t)(n + 1) * sizeof *vy);
    if (!vx || !vy) {
        free(vx);
        free(vy);
        return 0;
    }
    int nv = 1;
    vx[0] = vy[0] = 0.0;
    double tp = 0.0, fp = 0.0;
    for (int k = n - 1; k >= 0;) {
        double s = score[order[k]];
        while (k >= 0 && score[order[k]] == s) {
            tp += label[order[k]];
            fp += 1.0 - label[order[k]];
            k--;
        }
        vx[nv] = fp / neg;
        vy[nv] = tp / pos;
        nv++;
    }
    int v = 0;
    for (int g = 0; g < npts; g++) {
        double x = (double)g / (npts - 1);
        while (v + 1 < nv && vx[v + 1] <= x) v++;
        if (v + 1 < nv && vx[v + 1] > vx[v])
            tpr[g] = vy[v] + (vy[v + 1] - vy[v]) * (x - vx[v]) / (vx[v + 1] - vx[v]);
        else
            tpr[g] = vy[v];
    }
    free(vx);
    free(vy);
    return 1;
}

void rd_analyze_mean_roc(const rd_probe_task *t, const double *pred, int npts, double *tpr) {
    int n = t->nrows;
    double *score = malloc((size_t)(n > 0 ? n : 1) * sizeof *score);
    double *label = malloc((size_t)(n > 0 ? n : 1) * sizeof *label);
    double *fold = malloc((size_t)npts * sizeof *fold);
    int *order = malloc((size_t)(n > 0 ? n : 1) * sizeof *order);
    for (int g = 0; g < npts; g++) tpr[g] = NAN;
    if (!score || !label || !fold || !order) goto out;
    double total = 0.0;
    for (int g = 0; g < npts; g++) tpr[g] = 0.0;
    for (int o = 0; o < t->cfg.outer_folds; o++) {
        int m = 0;
        for (int k = 0; k < n; k++)
            if (t->outer_fold[t->patient[k]] == o) {
                score[m] = pred[k];
                label[m++] = t->y[k];
            }
        if (rd_probe_sort_order(score, m, order, NULL) != RD_OK) continue;
        if (!fold_roc(score, label, m, order, npts, fold)) continue;
        for (int g = 0; g < npts; g++) tpr[g] += m * fold[g];
        total += m;
    }
    for (int g = 0; g < npts; g++) tpr[g] = total > 0 ? tpr[g] / total : NAN;
out:
    free(score);
    free(label);
    free(fold);
    free(order);
}

rd_status analyze_scatter_scores(const rd_analyze_data *data, int rep, float *scores,
                                 double share[2], rd_error *err) {
    const rd_analyze_rep *r = &data->reps[rep];
    rd_pca pca;
    rd_status st = rd_pca_fit(r->x, data->n, r->d, 2, &pca, err);
    if (st) return st;
    rd_pca_transform(&pca, r->x, data->n, scores);
    for (int c = 0; c < 2; c++)
        share[c] = pca.total_variance > 0 ? pca.variance[c] / pca.total_variance : NAN;
    rd_pca_free(&pca);
    return RD_OK;
}

/* ---- the script ---- */

/* The generated script sets, for each plot, the variables that one of the editable scripts in
 * p->plots_dir (the .gp files of analysis/plots) reads, and loads that script: the data and the
 * wording come from here, the drawing from there. */
typedef struct plotter {
    const rd_analyze_params *p;
    const rd_analyze_data *data;
    const rd_analyze_study *s;
    char tmp[RD_PATH_MAX + 64]; /* folder of data files and the script */
    FILE *script;
    int ndata;
    rd_analyze_outputs *out;
    char pending[RD_ANALYZE_MAX_PLOTS][RD_PATH_MAX + 128]; /* temporary PNG of each plot */
} plotter;

/* A gnuplot single-quoted string: '' stands for '. */
static void gp_path(FILE *f, const char *path) {
    fputc('\'', f);
    for (const char *c = path; *c; c++) {
        if (*c == '\'') fputc('\'', f);
        fputc(*c, f);
    }
    fputc('\'', f);
}

/* A gnuplot double-quoted string (titles). */
static void gp_text(FILE *f, const char *text) {
    fputc('"', f);
    for (const char *c = text; *c; c++) {
        if (*c == '"' || *c == '\\') fputc('\\', f);
        fputc(*c, f);
    }
    fputc('"', f);
}

/* name = "formatted text" (name[index] = ... when index > 0, for arrays). */
static void gp_var(FILE *f, const char *name, int index, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void gp_var(FILE *f, const char *name, int index, const char *fmt, ...) {
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (index > 0)
        fprintf(f, "%s[%d] = ", name, index);
    else
        fprintf(f, "%s = ", name);
    gp_text(f, text);
    fputc('\n', f);
}

static void gp_path_var(FILE *f, const char *name, const char *path) {
    fprintf(f, "%s = ", name);
    gp_path(f, path);
    fputc('\n', f);
}

/* Opens a new data file; its path goes to path. */
static FILE *data_file(plotter *pl, char *path, size_t size) {
    snprintf(path, size, "%s/data%03d.txt", pl->tmp, pl->ndata++);
    return fopen(path, "w");
}

/* Starts a plot into a temporary PNG: a fresh session with plots_dir, outfile and datafile
 * set; 0 if there is no room for another plot. */
static int begin_plot(plotter *pl, const char *name, const char *datafile) {
    rd_analyze_outputs *out = pl->out;
    if (out->nplots == (int)(sizeof out->plot / sizeof out->plot[0])) return 0;
    snprintf(out->plot[out->nplots], sizeof out->plot[0], "%s", name);
    char final_path[sizeof pl->pending[0]];
    snprintf(final_path, sizeof final_path, "%s/%s", pl->p->output_dir, name);
    if (rd_temp_path(pl->pending[out->nplots], sizeof pl->pending[0], final_path, NULL)) return 0;
    fputs("reset session\n", pl->script);
    gp_path_var(pl->script, "plots_dir", pl->p->plots_dir);
    gp_path_var(pl->script, "outfile", pl->pending[out->nplots]);
    gp_path_var(pl->script, "datafile", datafile);
    out->nplots++;
    return 1;
}

/* Loads plots_dir/<script>, which draws the plot begun last. */
static void end_plot(plotter *pl, const char *script) {
    char path[RD_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", pl->p->plots_dir, script);
    fputs("load ", pl->script);
    gp_path(pl->script, path);
    fputs("\n\n", pl->script);
}

static int in_family(const rd_analyze_data *data, int rep, const char *features) {
    return strcmp(data->reps[rep].features, features) == 0 ||
           strcmp(data->reps[rep].features, "pixels") == 0;
}

/* Representations of a feature set, and so the series of its plots. */
static int family_size(const rd_analyze_data *data, const char *features) {
    int n = 0;
    for (int r = 0; r < data->nreps; r++) n += in_family(data, r, features);
    return n;
}

static void roc_plot(plotter *pl, int t, const char *features, const char *suffix) {
    const rd_analyze_study *s = pl->s;
    const rd_analyze_data *data = pl->data;
    char name[2 * RD_ANALYZE_NAME_MAX + 16], path[RD_PATH_MAX + 128];
    snprintf(name, sizeof name, "roc_%s%s.png", data->targets[t].name, suffix);
    FILE *f = data_file(pl, path, sizeof path);
    if (!f) return;
    double *tpr = malloc((size_t)s->nreps * ROC_POINTS * sizeof *tpr);
    if (!tpr) {
        fclose(f);
        return;
    }
    for (int r = 0; r < s->nreps; r++) {
        int i = analyze_index(s, t, r);
        rd_analyze_mean_roc(&s->tasks[i], s->results[i].pred, ROC_POINTS,
                            tpr + (size_t)r * ROC_POINTS);
    }
    for (int g = 0; g < ROC_POINTS; g++) {
        fprintf(f, "%.5f", (double)g / (ROC_POINTS - 1));
        for (int r = 0; r < s->nreps; r++) fprintf(f, " %.6f", tpr[(size_t)r * ROC_POINTS + g]);
        fputc('\n', f);
    }
    fclose(f);
    free(tpr);
    if (!begin_plot(pl, name, path)) return;
    FILE *g = pl->script;
    gp_var(g, "plot_title", 0, "Predicting %s from frozen %s features: ROC, mean of %d outer folds",
           data->targets[t].name, features, pl->p->probe.outer_folds);
    int n = family_size(data, features);
    fprintf(g, "array labels[%d]\narray cols[%d]\n", n, n);
    for (int r = 0, k = 1; r < s->nreps; r++) {
        if (!in_family(data, r, features)) continue;
        char rep[2 * RD_ANALYZE_NAME_MAX + 4];
        rd_analyze_rep_name(data, r, rep, sizeof rep);
        gp_var(g, "labels", k, "%s (AUROC %.3f)", rep,
               s->results[analyze_index(s, t, r)].metric[RD_PROBE_AUROC].estimate);
        fprintf(g, "cols[%d] = %d\n", k++, r + 2);
    }
    end_plot(pl, "roc.gp");
}

static void scatter_plot(plotter *pl, int t, const char *features, const char *suffix) {
    const rd_analyze_study *s = pl->s;
    const rd_analyze_data *data = pl->data;
    const rd_analyze_target *target = &data->targets[t];
    char name[2 * RD_ANALYZE_NAME_MAX + 16], path[RD_PATH_MAX + 128];
    snprintf(name, sizeof name, "scatter_%s%s.png", target->name, suffix);
    const rd_probe_task *task = &s->tasks[analyze_index(s, t, 0)];
    int panels = family_size(data, features);
    double lo = INFINITY, hi = -INFINITY;
    for (int r = 0; r < s->nreps; r++) {
        if (!in_family(data, r, features)) continue;
        const double *pred = s->results[analyze_index(s, t, r)].pred;
        for (int k = 0; k < task->nrows; k++) {
            lo = fmin(lo, fmin(task->y[k], pred[k]));
            hi = fmax(hi, fmax(task->y[k], pred[k]));
        }
    }
    if (panels == 0 || !(hi > lo)) return;
    double pad = 0.04 * (hi - lo);
    FILE *f = data_file(pl, path, sizeof path);
    if (!f) return;
    for (int k = 0; k < task->nrows; k++) {
        fprintf(f, "%.6g", task->y[k]);
        for (int r = 0; r < s->nreps; r++)
            fprintf(f, " %.6g", s->results[analyze_index(s, t, r)].pred[k]);
        fputc('\n', f);
    }
    fclose(f);
    int cols = panels < 3 ? panels : 3, rows = (panels + cols - 1) / cols;
    if (!begin_plot(pl, name, path)) return;
    FILE *g = pl->script;
    gp_var(g, "plot_title", 0,
           "Predicting %s from frozen %s features: out-of-fold prediction vs truth", target->name,
           features);
    gp_var(g, "target_name", 0, "%s", target->name);
    fprintf(g, "lo = %.9g\nhi = %.9g\npanel_rows = %d\npanel_cols = %d\n", lo - pad, hi + pad, rows,
            cols);
    fprintf(g, "array titles[%d]\narray cols[%d]\n", panels, panels);
    for (int r = 0, k = 1; r < s->nreps; r++) {
        if (!in_family(data, r, features)) continue;
        const rd_probe_result *res = &s->results[analyze_index(s, t, r)];
        char rep[2 * RD_ANALYZE_NAME_MAX + 4];
        rd_analyze_rep_name(data, r, rep, sizeof rep);
        gp_var(g, "titles", k, "%s: MAE %.2f, R² %.3f, r %.3f", rep,
               res->metric[RD_PROBE_MAE].estimate, res->metric[RD_PROBE_R2].estimate,
               res->metric[RD_PROBE_PEARSON].estimate);
        fprintf(g, "cols[%d] = %d\n", k++, r + 2);
    }
    end_plot(pl, "scatter.gp");
}

/* PCA scatter of the main representation coloured by sex and by age. */
static void embedding_plots(plotter *pl) {
    const rd_analyze_data *data = pl->data;
    int n = data->n;
    float *scores = malloc((size_t)(n > 0 ? n : 1) * 2 * sizeof *scores);
    rd_error err;
    double share[2];
    if (!scores || n < 3 || analyze_scatter_scores(data, 0, scores, share, &err) != RD_OK) {
        free(scores);
        return;
    }
    char rep[2 * RD_ANALYZE_NAME_MAX + 4], path[RD_PATH_MAX + 128];
    rd_analyze_rep_name(data, 0, rep, sizeof rep);
    FILE *f = data_file(pl, path, sizeof path);
    if (!f) {
        free(scores);
        return;
    }
    int known_age = 0;
    for (int i = 0; i < n; i++) {
        fprintf(f, "%.6g %.6g %d %.6g\n", scores[2 * i], scores[2 * i + 1], data->sex[i],
                isnan(data->age[i]) ? -1.0 : data->age[i]);
        known_age += !isnan(data->age[i]);
    }
    fclose(f);
    free(scores);
    FILE *g = pl->script;
    static const char *const by[2] = {"sex", "age"};
    for (int k = 0; k < 2; k++) {
        char name[32], script[32];
        snprintf(name, sizeof name, "embedding_%s.png", by[k]);
        snprintf(script, sizeof script, "embedding_%s.gp", by[k]);
        if ((k == 1 && known_age == 0) || !begin_plot(pl, name, path)) continue;
        gp_var(g, "plot_title", 0, "%s embeddings: first two principal components, by %s", rep,
               by[k]);
        gp_var(g, "xlabel_text", 0, "PC 1 (%.1f%% of variance)", 100 * share[0]);
        gp_var(g, "ylabel_text", 0, "PC 2 (%.1f%% of variance)", 100 * share[1]);
        end_plot(pl, script);
    }
}

static void loss_plot(plotter *pl, const rd_loss_curve *loss) {
    char path[RD_PATH_MAX + 128];
    FILE *f = data_file(pl, path, sizeof path);
    if (!f) return;
    for (int i = 0; i < loss->npoints; i++) {
        fprintf(f, "%.9g", loss->step[i]);
        for (int t = 0; t < loss->nterms; t++) {
            double v = loss->value[(size_t)i * RD_LOSS_MAX_TERMS + t];
            if (isfinite(v))
                fprintf(f, " %.9g", v);
            else
                fputs(" NaN", f);
        }
        fputc('\n', f);
    }
    fclose(f);
    if (!begin_plot(pl, "loss.png", path)) return;
    FILE *g = pl->script;
    fprintf(g, "array labels[%d]\n", loss->nterms);
    for (int t = 0; t < loss->nterms; t++) gp_var(g, "labels", t + 1, "%s", loss->term[t]);
    end_plot(pl, "loss.gp");
}

/* ---- running gnuplot and publishing the PNGs ---- */

static int run_gnuplot(const char *script, const char *log, char *problem, size_t size) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    char *argv[] = {"gnuplot", (char *)script, NULL};
    pid_t pid;
    int rc = posix_spawnp(&pid, "gnuplot", &actions, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
        snprintf(problem, size, "cannot run gnuplot (%s); install gnuplot-nox", strerror(rc));
        return 0;
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 1;
    char first[300] = "";
    FILE *f = fopen(log, "r");
    if (f) {
        /* gnuplot's message is the last non-empty line of its output. */
        char line[300];
        while (fgets(line, sizeof line, f))
            if (line[0] != '\n') snprintf(first, sizeof first, "%s", line);
        fclose(f);
    }
    first[strcspn(first, "\n")] = '\0';
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
        snprintf(problem, size, "gnuplot is not installed (install gnuplot-nox)");
    else
        snprintf(problem, size, "gnuplot failed (%s)", *first ? first : "no message");
    return 0;
}

/* A drawn PNG: signature checked, then published (file.h). */
static int publish_png(const char *tmp, const char *final_path) {
    static const unsigned char signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    unsigned char head[8];
    int fd = open(tmp, O_RDONLY);
    if (fd < 0) return 0;
    int ok = read(fd, head, 8) == 8 && memcmp(head, signature, 8) == 0;
    close(fd);
    return ok && rd_publish_file(tmp, final_path, NULL) == RD_OK;
}

static void remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    const struct dirent *e;
    char path[RD_PATH_MAX + 512];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

/* A plotter writing into p->output_dir, or NULL with the problem recorded in out. */
static plotter *plotter_open(const rd_analyze_params *p, rd_analyze_outputs *out) {
    plotter *pl = calloc(1, sizeof *pl);
    if (!pl) {
        snprintf(out->plot_problem, sizeof out->plot_problem, "out of memory");
        return NULL;
    }
    pl->p = p;
    pl->out = out;
    char probe[RD_PATH_MAX + 16];
    snprintf(probe, sizeof probe, "%s/style.gp", p->plots_dir);
    if (access(probe, R_OK) != 0) {
        snprintf(out->plot_problem, sizeof out->plot_problem,
                 "no plot scripts in %.900s (set analyze.plots_dir to a copy of analysis/plots)",
                 p->plots_dir);
        free(pl);
        return NULL;
    }
    snprintf(pl->tmp, sizeof pl->tmp, "%s/.plots-tmp-%ld", p->output_dir, (long)getpid());
    remove_tree(pl->tmp);
    char script[RD_PATH_MAX + 128];
    snprintf(script, sizeof script, "%s/plots.gp", pl->tmp);
    if (mkdir(pl->tmp, 0777) != 0 || !(pl->script = fopen(script, "w"))) {
        snprintf(out->plot_problem, sizeof out->plot_problem, "cannot create %.700s: %s", pl->tmp,
                 strerror(errno));
        remove_tree(pl->tmp);
        free(pl);
        return NULL;
    }
    return pl;
}

/* Runs the script, publishes the plots drawn (the others are named in out->plot_problem) and
 * frees the plotter. */
static void plotter_finish(plotter *pl) {
    rd_analyze_outputs *out = pl->out;
    char script[RD_PATH_MAX + 128], log[RD_PATH_MAX + 128];
    snprintf(script, sizeof script, "%s/plots.gp", pl->tmp);
    snprintf(log, sizeof log, "%s/gnuplot.log", pl->tmp);
    int failed_write = fclose(pl->script) != 0;
    int drawn =
        !failed_write && run_gnuplot(script, log, out->plot_problem, sizeof out->plot_problem);
    if (failed_write)
        snprintf(out->plot_problem, sizeof out->plot_problem, "cannot write %.900s", script);
    /* Keep the plots that were drawn; name the others. */
    int kept = 0;
    for (int k = 0; k < out->nplots; k++) {
        char final_path[RD_PATH_MAX + 128];
        snprintf(final_path, sizeof final_path, "%s/%s", pl->p->output_dir, out->plot[k]);
        if (drawn && publish_png(pl->pending[k], final_path)) {
            if (kept != k) memcpy(out->plot[kept], out->plot[k], sizeof out->plot[0]);
            kept++;
        } else {
            unlink(pl->pending[k]);
            if (drawn)
                snprintf(out->plot_problem, sizeof out->plot_problem,
                         "gnuplot did not produce a valid %s", out->plot[k]);
        }
    }
    out->nplots = kept;
    remove_tree(pl->tmp);
    free(pl);
}

void analyze_plots(const rd_analyze_params *p, const rd_analyze_data *data,
                   const rd_analyze_study *study, const rd_loss_curve *loss,
                   rd_analyze_outputs *out) {
    plotter *pl = plotter_open(p, out);
    if (!pl) return;
    pl->data = data;
    pl->s = study;
    /* One plot per feature set when several are probed ("roc_sex_cls.png"), else "roc_sex.png". */
    const char *sets[2] = {"cls", "patch_mean"};
    int use[2] = {p->use_cls, p->use_patch_mean}, several = p->use_cls && p->use_patch_mean;
    for (int t = 0; t < study->ntargets; t++)
        for (int k = 0; k < 2; k++) {
            if (!use[k]) continue;
            char suffix[RD_ANALYZE_NAME_MAX];
            snprintf(suffix, sizeof suffix, several ? "_%s" : "", sets[k]);
            if (data->targets[t].kind == RD_PROBE_LOGISTIC)
                roc_plot(pl, t, sets[k], suffix);
            else
                scatter_plot(pl, t, sets[k], suffix);
        }
    embedding_plots(pl);
    if (out->have_loss) loss_plot(pl, loss);
    plotter_finish(pl);
    int loss_drawn = 0;
    for (int k = 0; k < out->nplots; k++) loss_drawn |= strcmp(out->plot[k], "loss.png") == 0;
    if (out->have_loss && !loss_drawn) {
        out->have_loss = 0;
        snprintf(out->loss_note, sizeof out->loss_note,
                 "The training-loss plot could not be drawn: %.900s.", out->plot_problem);
    }
}

/* ---- runs side by side ---- */

static void compare_metric(plotter *pl, const rd_compare_row *row) {
    gp_var(pl->script, "metric_name", 0, "%s", row->logistic ? "AUROC" : "R² (out of sample)");
    fprintf(pl->script, "chance = %g\n", row->logistic ? 0.5 : 0.0);
}

/* Every run and representation of target rows[first].target, with its interval. */
static void forest_plot(plotter *pl, const rd_compare_row *rows, int n, int first) {
    const char *target = rows[first].target;
    char name[RD_ANALYZE_NAME_MAX + 16], path[RD_PATH_MAX + 128];
    snprintf(name, sizeof name, "forest_%s.png", target);
    FILE *f = data_file(pl, path, sizeof path);
    if (!f) return;
    int count = 0;
    for (int i = first; i < n; i++)
        if (strcmp(rows[i].target, target) == 0)
            fprintf(f, "%d %.9g %.9g %.9g\n", ++count, rows[i].estimate, rows[i].lo, rows[i].hi);
    fclose(f);
    if (!begin_plot(pl, name, path)) return;
    FILE *g = pl->script;
    gp_var(g, "plot_title", 0, "%s: effect per run and representation, with intervals", target);
    compare_metric(pl, &rows[first]);
    fprintf(g, "array labels[%d]\n", count);
    for (int i = first, k = 1; i < n; i++)
        if (strcmp(rows[i].target, target) == 0)
            gp_var(g, "labels", k++, "%s: %s", rows[i].run, rows[i].rep);
    end_plot(pl, "forest.gp");
}

/* Target rows[first].target against the training step, a line per representation; drawn when
 * at least two reports carry a step. */
static void trajectory_plot(plotter *pl, const rd_compare_row *rows, int n, int first) {
    const char *target = rows[first].target;
    int steps = 0, nreps = 0;
    for (int i = first; i < n; i++) {
        if (strcmp(rows[i].target, target) != 0 || !isfinite(rows[i].step)) continue;
        int seen_step = 0, seen_rep = 0;
        for (int j = first; j < i; j++) {
            if (strcmp(rows[j].target, target) != 0 || !isfinite(rows[j].step)) continue;
            seen_step |= rows[j].step == rows[i].step;
            seen_rep |= strcmp(rows[j].rep, rows[i].rep) == 0;
        }
        steps += !seen_step;
        nreps += !seen_rep;
    }
    if (steps < 2) return;
    char name[RD_ANALYZE_NAME_MAX + 16], path[RD_PATH_MAX + 128];
    snprintf(name, sizeof name, "trajectory_%s.png", target);
    FILE *f = data_file(pl, path, sizeof path);
    if (!f) return;
    /* One block per representation (first seen order), its rows in the reports' order. */
    const char **reps = malloc((size_t)nreps * sizeof *reps);
    if (!reps) {
        fclose(f);
        return;
    }
    int k = 0;
    for (int i = first; i < n; i++) {
        if (strcmp(rows[i].target, target) != 0 || !isfinite(rows[i].step)) continue;
        int seen = 0;
        for (int r = 0; r < k; r++) seen |= strcmp(reps[r], rows[i].rep) == 0;
        if (seen) continue;
        reps[k++] = rows[i].rep;
        fprintf(f, "%s", k > 1 ? "\n\n" : "");
        for (int j = i; j < n; j++)
            if (strcmp(rows[j].target, target) == 0 && isfinite(rows[j].step) &&
                strcmp(rows[j].rep, rows[i].rep) == 0)
                fprintf(f, "%.9g %.9g %.9g %.9g\n", rows[j].step, rows[j].estimate, rows[j].lo,
                        rows[j].hi);
    }
    fclose(f);
    if (begin_plot(pl, name, path)) {
        FILE *g = pl->script;
        gp_var(g, "plot_title", 0, "%s across checkpoints, with intervals", target);
        compare_metric(pl, &rows[first]);
        fprintf(g, "array labels[%d]\n", nreps);
        for (int r = 0; r < nreps; r++) gp_var(g, "labels", r + 1, "%s", reps[r]);
        end_plot(pl, "trajectory.gp");
    }
    free(reps);
}

void analyze_compare_plots(const rd_analyze_params *p, const rd_compare_row *rows, int n,
                           rd_analyze_outputs *out) {
    plotter *pl = plotter_open(p, out);
    if (!pl) return;
    for (int i = 0; i < n; i++) {
        int first = 1;
        for (int j = 0; j < i; j++) first &= strcmp(rows[j].target, rows[i].target) != 0;
        if (!first) continue;
        forest_plot(pl, rows, n, i);
        trajectory_plot(pl, rows, n, i);
    }
    plotter_finish(pl);
}
