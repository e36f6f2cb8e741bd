/* L2-regularised logistic regression by Newton's method: Cholesky solve of the (r+1)-square
 * Hessian, backtracking (Armijo) line search, intercept unpenalised. Quadratic convergence
 * makes the tight agreement with scikit-learn cheap, warm starts along a penalty path keep
 * each fit to a few steps, and a Hessian factor is reused while it still contracts the
 * gradient fourfold per step. */
#include "probe_internal.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { NEWTON_MAX_STEPS = 200 };
/* Converged when a Newton step moves no coefficient by more than this (relative to the
 * largest): with quadratic convergence the solution is then accurate to rounding, which a
 * gradient threshold alone does not promise when the penalty is small (error ~ grad / lambda). */
#define NEWTON_STEP_TOL 1e-10

double probe_logloss(double m, double y) {
    double softplus = m > 0.0 ? m + log1p(exp(-m)) : log1p(exp(m));
    return softplus - y * m;
}

static double sigmoid(double m) {
    if (m >= 0.0) return 1.0 / (1.0 + exp(-m));
    double e = exp(m);
    return e / (1.0 + e);
}

double probe_prior_logit(const double *y, int n) {
    double pos = 0.0;
    for (int i = 0; i < n; i++) pos += y[i];
    return log((pos + 0.5) / (n - pos + 0.5));
}

/* m = f beta + b; returns the objective at (beta, b). */
static double objective(const double *f, const double *y, int n, int r, double lambda,
                        const double *beta, double b, double *m) {
    for (int i = 0; i < n; i++) m[i] = b;
    if (r > 0 && n > 0)
        cblas_dgemv(CblasRowMajor, CblasNoTrans, n, r, 1.0, f, r, beta, 1, 1.0, m, 1);
    double obj = 0.0, sq = 0.0;
    for (int i = 0; i < n; i++) obj += probe_logloss(m[i], y[i]);
    for (int k = 0; k < r; k++) sq += beta[k] * beta[k];
    return obj + 0.5 * lambda * sq;
}

/* Cholesky factorisation of h [p, p] (lower), adding a growing ridge to the diagonal if
 * rounding has made it indefinite (saturated probabilities with a tiny penalty). */
static int cholesky_with_jitter(double *h, const double *h_orig, int p) {
    double diag_max = 0.0;
    for (int k = 0; k < p; k++) diag_max = fmax(diag_max, h_orig[(size_t)k * p + k]);
    for (double jitter = 0.0; jitter <= 1e-4; jitter = jitter == 0.0 ? 1e-12 : jitter * 100.0) {
        memcpy(h, h_orig, (size_t)p * p * sizeof *h);
        for (int k = 0; k < p; k++) h[(size_t)k * p + k] += jitter * (1.0 + diag_max);
        if (LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', p, h, p) == 0) return 0;
    }
    return -1;
}

/* a [n] = p - y; g = f^T a + lambda beta, then the intercept's sum a. Returns max |g|. */
static double gradient(const double *f, const double *y, int n, int r, double lambda,
                       const double *beta, const double *m, double *a, double *g) {
    double gb = 0.0, gmax = 0.0;
    for (int i = 0; i < n; i++) {
        a[i] = sigmoid(m[i]) - y[i];
        gb += a[i];
    }
    for (int k = 0; k < r; k++) g[k] = lambda * beta[k];
    if (r > 0 && n > 0) cblas_dgemv(CblasRowMajor, CblasTrans, n, r, 1.0, f, r, a, 1, 1.0, g, 1);
    g[r] = gb;
    for (int k = 0; k <= r; k++) gmax = fmax(gmax, fabs(g[k]));
    return gmax;
}

/* Cholesky factor hc of the Hessian [f 1]^T diag(p (1 - p)) [f 1] + lambda on beta's
 * diagonal at logits m. The n (r+1)^2 product is formed in float32 (twice the speed of
 * float64): the Hessian only steers the steps, the gradient and the convergence test stay in
 * float64. a [n, r + 1] and h [(r + 1)^2] are float scratch. */
static int factor_hessian(const double *f, int n, int r, double lambda, const double *m, float *a,
                          float *h, double *hc) {
    int p = r + 1;
    for (int i = 0; i < n; i++) {
        double pi = sigmoid(m[i]), sw = sqrt(pi * (1.0 - pi));
        float *ai = a + (size_t)i * p;
        const double *fi = f + (size_t)i * r;
        for (int k = 0; k < r; k++) ai[k] = (float)(sw * fi[k]);
        ai[r] = (float)sw;
    }
    if (n > 0)
        cblas_ssyrk(CblasRowMajor, CblasLower, CblasTrans, p, n, 1.0f, a, p, 0.0f, h, p);
    else
        memset(h, 0, (size_t)p * p * sizeof *h);
    double *hd = hc + (size_t)p * p; /* the second half of hc holds the matrix to factor */
    for (size_t k = 0; k < (size_t)p * p; k++) hd[k] = h[k];
    for (int k = 0; k < r; k++) hd[(size_t)k * p + k] += lambda;
    return cholesky_with_jitter(hc, hd, p);
}

rd_status probe_logistic_newton(const double *f, const double *y, int n, int r, double lambda,
                                double *beta, double *b, int *iterations, rd_error *err) {
    int p = r + 1; /* beta, then the intercept */
    size_t nn = (size_t)(n > 0 ? n : 1);
    double *m = malloc(nn * sizeof *m), *m_try = malloc(nn * sizeof *m_try);
    double *a = malloc(nn * sizeof *a), *hc = malloc(2 * (size_t)p * p * sizeof *hc);
    float *af = malloc(nn * p * sizeof *af), *h = malloc((size_t)p * p * sizeof *h);
    double *g = malloc((size_t)p * sizeof *g);
    double *step = malloc((size_t)p * sizeof *step), *trial = malloc((size_t)p * sizeof *trial);
    rd_status st = RD_OK;
    int it = 0, have_factor = 0;
    if (!m || !m_try || !a || !af || !h || !hc || !g || !step || !trial) {
        st = rd_fail(err, RD_ENOMEM, "probe: no memory for logistic regression on %d x %d", n, r);
        goto out;
    }
    double fval = objective(f, y, n, r, lambda, beta, *b, m), prev_gmax = INFINITY;
    for (;; it++) {
        double gmax = gradient(f, y, n, r, lambda, beta, m, a, g);
        if (!isfinite(gmax)) {
            st = rd_fail(err, RD_ENUMERIC, "probe: logistic gradient is not finite (lambda %g)",
                         lambda);
            goto out;
        }
        if (gmax == 0.0) break;
        if (it == NEWTON_MAX_STEPS) {
            st = rd_fail(err, RD_ENUMERIC,
                         "probe: logistic regression (lambda %g, %d x %d) did not converge in %d "
                         "Newton steps (max |gradient| %.3g)",
                         lambda, n, r, NEWTON_MAX_STEPS, gmax);
            goto out;
        }
        /* Forming the Hessian (n r^2) dominates; keep its factor while the gradient still
         * shrinks fourfold per step (chord steps), refresh it when progress slows. */
        if (!have_factor || gmax > 0.25 * prev_gmax) {
            if (factor_hessian(f, n, r, lambda, m, af, h, hc) != 0) {
                st =
                    rd_fail(err, RD_ENUMERIC,
                            "probe: logistic Hessian is not positive definite (lambda %g)", lambda);
                goto out;
            }
            have_factor = 1;
        }
        prev_gmax = gmax;
        for (int k = 0; k < p; k++) step[k] = -g[k];
        LAPACKE_dpotrs(LAPACK_ROW_MAJOR, 'L', p, 1, hc, p, step, 1);
        double slope = 0.0, step_max = 0.0, coef_max = fabs(*b);
        for (int k = 0; k < p; k++) {
            slope += g[k] * step[k];
            step_max = fmax(step_max, fabs(step[k]));
        }
        for (int k = 0; k < r; k++) coef_max = fmax(coef_max, fabs(beta[k]));
        int last = step_max <= NEWTON_STEP_TOL * (1.0 + coef_max);
        /* Backtracking; a Newton decrement at rounding level means we are in the quadratic
         * region, where the full step is right even if the objective cannot show it. */
        int tiny = last || -slope <= 1e-12 * (1.0 + fabs(fval));
        double t = 1.0, f_try = fval;
        for (;;) {
            for (int k = 0; k < r; k++) trial[k] = beta[k] + t * step[k];
            trial[r] = *b + t * step[r];
            f_try = objective(f, y, n, r, lambda, trial, trial[r], m_try);
            if (f_try <= fval + 1e-4 * t * slope || tiny) break;
            t *= 0.5;
            if (t < 1e-12) break;
        }
        if (t < 1e-12) {
            if (gmax <= 1e-6 * (n > 1 ? n : 1)) break; /* as close as rounding allows */
            st = rd_fail(err, RD_ENUMERIC,
                         "probe: logistic line search failed (lambda %g, max |gradient| %.3g)",
                         lambda, gmax);
            goto out;
        }
        memcpy(beta, trial, (size_t)r * sizeof *beta);
        *b = trial[r];
        fval = f_try;
        double *swap = m;
        m = m_try;
        m_try = swap;
        if (last) {
            it++;
            break;
        }
    }
out:
    if (iterations) *iterations = it;
    free(m);
    free(m_try);
    free(a);
    free(af);
    free(h);
    free(hc);
    free(g);
    free(step);
    free(trial);
    return st;
}

rd_status rd_probe_logistic_fit(const double *x, const double *y, int n, int d, double lambda,
                                int warm_start, double *w, double *b, int *iterations,
                                rd_error *err) {
    if (n < 1 || d < 1)
        return rd_fail(err, RD_EINVAL, "probe: logistic needs n, d >= 1 (got %d, %d)", n, d);
    if (!(lambda > 0.0) || !isfinite(lambda))
        return rd_fail(err, RD_EINVAL, "probe: logistic penalty %g must be positive", lambda);
    int npos = 0;
    for (int i = 0; i < n; i++) {
        if (y[i] != 0.0 && y[i] != 1.0)
            return rd_fail(err, RD_EINVAL, "probe: logistic label %g of row %d is not 0 or 1", y[i],
                           i);
        npos += y[i] == 1.0;
    }
    if (npos == 0 || npos == n)
        return rd_fail(err, RD_EINVAL, "probe: logistic labels have one class only");
    rd_status st = probe_check_finite(x, (size_t)n * d, "feature", err);
    if (st != RD_OK) return st;
    double *z = malloc((size_t)n * d * sizeof *z), *mean = malloc((size_t)d * sizeof *mean);
    double *feat = NULL, *beta = calloc((size_t)d, sizeof *beta);
    probe_basis basis = {d, d, NULL};
    if (!z || !mean || !beta) {
        st = rd_fail(err, RD_ENOMEM, "probe: no memory for logistic on %d x %d", n, d);
        goto out;
    }
    probe_center(x, n, d, mean, z);
    if ((st = probe_basis_build(z, n, d, &basis, err)) != RD_OK) goto out;
    int r = basis.r;
    if (basis.map) {
        feat = malloc((size_t)n * (r > 0 ? r : 1) * sizeof *feat);
        if (!feat) {
            st = rd_fail(err, RD_ENOMEM, "probe: no memory for logistic features");
            goto out;
        }
        probe_basis_project(&basis, z, n, feat);
    }
    /* Centred coordinates: b_c = b + mean . w; beta = map^T w (w's part outside the row space
     * changes no prediction and only adds penalty, so the optimum has none). */
    double bc = probe_prior_logit(y, n);
    if (warm_start) {
        bc = *b;
        for (int j = 0; j < d; j++) bc += mean[j] * w[j];
        if (basis.map && r > 0)
            cblas_dgemv(CblasRowMajor, CblasTrans, d, r, 1.0, basis.map, r, w, 1, 0.0, beta, 1);
        else if (!basis.map)
            memcpy(beta, w, (size_t)d * sizeof *beta);
    }
    st = probe_logistic_newton(feat ? feat : z, y, n, r, lambda, beta, &bc, iterations, err);
    if (st != RD_OK) goto out;
    if (basis.map) {
        memset(w, 0, (size_t)d * sizeof *w);
        if (r > 0)
            cblas_dgemv(CblasRowMajor, CblasNoTrans, d, r, 1.0, basis.map, r, beta, 1, 0.0, w, 1);
    } else {
        memcpy(w, beta, (size_t)d * sizeof *w);
    }
    *b = bc;
    for (int j = 0; j < d; j++) *b -= mean[j] * w[j];
out:
    probe_basis_free(&basis);
    free(z);
    free(mean);
    free(feat);
    free(beta);
    return st;
}
