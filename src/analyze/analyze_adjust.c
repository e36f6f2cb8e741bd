/* Confounder adjustment (docs/ANALYSIS.md, "Confounders"): formulas "target ~ a + b" and the
 * residualised targets they define. */
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdino/analyze.h"

/* Trims spaces from both ends of [*a, *b). */
static void trim(const char **a, const char **b) {
    while (*a < *b && (**a == ' ' || **a == '\t')) (*a)++;
    while (*b > *a && ((*b)[-1] == ' ' || (*b)[-1] == '\t')) (*b)--;
}

static rd_status parse_formula(const char *text, rd_analyze_formula *f, rd_error *err) {
    memset(f, 0, sizeof *f);
    const char *tilde = strchr(text, '~');
    if (!tilde || strchr(tilde + 1, '~'))
        return rd_fail(err, RD_EINVAL,
                       "analyze.adjust: '%s' is not 'target ~ covariate + ...' (one ~)", text);
    const char *a = text, *b = tilde;
    trim(&a, &b);
    if (b == a || b - a >= RD_ANALYZE_NAME_MAX || memchr(a, '/', (size_t)(b - a)))
        return rd_fail(err, RD_EINVAL, "analyze.adjust: '%s' names no target before ~", text);
    memcpy(f->target, a, (size_t)(b - a));
    int len = snprintf(f->name, sizeof f->name, "%s_given", f->target);
    for (const char *c = tilde + 1;;) {
        const char *plus = strchr(c, '+');
        const char *end = plus ? plus : c + strlen(c);
        const char *ca = c, *cb = end;
        trim(&ca, &cb);
        if (cb == ca || cb - ca >= RD_ANALYZE_NAME_MAX || memchr(ca, '/', (size_t)(cb - ca)))
            return rd_fail(err, RD_EINVAL, "analyze.adjust: '%s' has an empty covariate", text);
        if (f->ncov == RD_ANALYZE_MAX_COVARIATES)
            return rd_fail(err, RD_EINVAL, "analyze.adjust: '%s' has more than %d covariates", text,
                           RD_ANALYZE_MAX_COVARIATES);
        char *cov = f->cov[f->ncov];
        memcpy(cov, ca, (size_t)(cb - ca));
        if (strcmp(cov, f->target) == 0)
            return rd_fail(err, RD_EINVAL, "analyze.adjust: '%s' adjusts %s for itself", text, cov);
        for (int k = 0; k < f->ncov; k++)
            if (strcmp(f->cov[k], cov) == 0)
                return rd_fail(err, RD_EINVAL, "analyze.adjust: '%s' names %s twice", text, cov);
        f->ncov++;
        len += snprintf(f->name + len, sizeof f->name - (size_t)len, "_%s", cov);
        if (!plus) break;
        c = plus + 1;
    }
    if (len >= (int)sizeof f->name)
        return rd_fail(err, RD_EINVAL, "analyze.adjust: '%s' makes a name longer than %d", text,
                       RD_ANALYZE_NAME_MAX - 1);
    return RD_OK;
}

rd_status rd_analyze_parse_adjust(const char *text, rd_analyze_formula **formulas, int *n,
                                  rd_error *err) {
    char **items;
    int nitems;
    *formulas = NULL;
    *n = 0;
    rd_status st = rd_analyze_split_list(text, &items, &nitems, err);
    if (st) return st;
    *formulas = calloc((size_t)(nitems > 0 ? nitems : 1), sizeof **formulas);
    if (!*formulas) st = rd_fail(err, RD_ENOMEM, "out of memory for analyze.adjust");
    for (int k = 0; !st && k < nitems; k++) {
        st = parse_formula(items[k], &(*formulas)[k], err);
        for (int j = 0; !st && j < k; j++)
            if (strcmp((*formulas)[j].name, (*formulas)[k].name) == 0)
                st = rd_fail(err, RD_EINVAL, "analyze.adjust names '%s' twice", items[k]);
        if (!st) (*n)++;
    }
    for (int k = 0; k < nitems; k++) free(items[k]);
    free(items);
    if (st) {
        free(*formulas);
        *formulas = NULL;
        *n = 0;
    }
    return st;
}

rd_status rd_analyze_residualize(const double *y, const double *cov, int n, int ncols, int stride,
                                 double *resid, rd_error *err) {
    int p = 1 + ncols, m = 0;
    int *rows = malloc((size_t)(n > 0 ? n : 1) * sizeof *rows);
    /* design [m, p]: intercept and the covariates standardised on the complete rows (the fit is
     * the same; the conditioning is better, e.g. age next to age squared); a is the copy that
     * LAPACK overwrites. */
    double *design = malloc((size_t)(n > 0 ? n : 1) * p * sizeof *design);
    double *a = malloc((size_t)(n > 0 ? n : 1) * p * sizeof *a);
    double *b = malloc((size_t)(n > p ? n : p) * sizeof *b);
    double *sv = malloc((size_t)p * sizeof *sv);
    rd_status st = RD_OK;
    if (!rows || !design || !a || !b || !sv) {
        st = rd_fail(err, RD_ENOMEM, "out of memory residualising a target");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        int complete = isfinite(y[i]);
        for (int j = 0; j < ncols && complete; j++)
            complete = isfinite(cov[(size_t)i * stride + j]);
        if (complete) rows[m++] = i;
    }
    for (int k = 0; k < m; k++) design[(size_t)k * p] = 1.0;
    for (int j = 0; j < ncols; j++) {
        double mean = 0.0, ss = 0.0;
        for (int k = 0; k < m; k++) mean += cov[(size_t)rows[k] * stride + j];
        mean /= m > 0 ? m : 1;
        for (int k = 0; k < m; k++) {
            double d = cov[(size_t)rows[k] * stride + j] - mean;
            ss += d * d;
        }
        double scale = ss > 0 ? 1.0 / sqrt(ss / m) : 0.0; /* a constant column drops out */
        for (int k = 0; k < m; k++)
            design[(size_t)k * p + 1 + j] = (cov[(size_t)rows[k] * stride + j] - mean) * scale;
    }
    memcpy(a, design, (size_t)m * p * sizeof *a);
    for (int k = 0; k < m; k++) b[k] = y[rows[k]];
    if (m > 0) {
        /* Least squares by SVD: collinear covariates (e.g. a view that is AP for every man)
         * are handled by the rank cut-off instead of failing. */
        lapack_int rank = 0;
        lapack_int info = LAPACKE_dgelsd(LAPACK_ROW_MAJOR, m, p, 1, a, p, b, 1, sv, 1e-10, &rank);
        if (info != 0) {
            st = rd_fail(err, RD_ENUMERIC,
                         "least squares of a target on its covariates failed (LAPACK dgelsd "
                         "info %d)",
                         (int)info);
            goto out;
        }
    }
    for (int i = 0; i < n; i++) a[i] = NAN; /* a: the residuals, then copied (resid may be y) */
    for (int k = 0; k < m; k++) {
        double fit = 0.0;
        for (int j = 0; j < p; j++) fit += design[(size_t)k * p + j] * b[j];
        a[rows[k]] = y[rows[k]] - fit;
    }
    memcpy(resid, a, (size_t)n * sizeof *resid);
out:
    free(rows);
    free(design);
    free(a);
    free(b);
    free(sv);
    return st;
}
