/* Ridge regression by eigendecomposition of the Gram matrix (d x d), or of the kernel (n x n)
 * when there are fewer rows than features: after the decomposition every penalty costs
 * O(d^2), which makes the penalty grid, the nested CV and the permutation refits cheap. */
#include "probe_internal.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

rd_status probe_basis_build(const double *z, int n, int d, probe_basis *basis, rd_error *err) {
    basis->d = d;
    basis->r = d;
    basis->map = NULL;
    if (n >= d) return RD_OK;
    double *kern = malloc((size_t)n * n * sizeof *kern), *s = malloc((size_t)n * sizeof *s);
    double *c = NULL;
    rd_status st = RD_OK;
    if (!kern || !s) {
        st = rd_fail(err, RD_ENOMEM, "probe: no memory for a %d x %d kernel matrix", n, n);
        goto out;
    }
    cblas_dsyrk(CblasRowMajor, CblasLower, CblasNoTrans, n, d, 1.0, z, d, 0.0, kern, n);
    lapack_int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'L', n, kern, n, s);
    if (info != 0) {
        st = rd_fail(err, RD_ENUMERIC,
                     "probe: eigendecomposition of the %d x %d kernel failed "
                     "(LAPACK info %d)",
                     n, n, (int)info);
        goto out;
    }
    /* Eigenvalues ascend; keep those above rounding noise, largest first. */
    double cutoff = 1e-12 * s[n - 1];
    int r = 0;
    while (r < n && s[n - 1 - r] > cutoff && s[n - 1 - r] > 0.0) r++;
    basis->r = r;
    basis->map = calloc((size_t)d * (r > 0 ? r : 1), sizeof *basis->map);
    c = malloc((size_t)n * (r > 0 ? r : 1) * sizeof *c);
    if (!basis->map || !c) {
        st = rd_fail(err, RD_ENOMEM, "probe: no memory for a %d x %d basis", d, r);
        goto out;
    }
    /* map = z^T U S^-1/2: orthonormal columns spanning the row space of z. */
    for (int k = 0; k < r; k++) {
        int col = n - 1 - k;
        double scale = 1.0 / sqrt(s[col]);
        for (int i = 0; i < n; i++) c[(size_t)i * r + k] = kern[(size_t)i * n + col] * scale;
    }
    if (r > 0)
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, d, r, n, 1.0, z, d, c, r, 0.0,
                    basis->map, r);
out:
    free(kern);
    free(s);
    free(c);
    if (st != RD_OK) probe_basis_free(basis);
    return st;
}

void probe_basis_project(const probe_basis *basis, const double *z, int n, double *out) {
    if (!basis->map) {
        memcpy(out, z, (size_t)n * basis->d * sizeof *out);
        return;
    }
    if (n > 0 && basis->r > 0)
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, basis->r, basis->d, 1.0, z,
                    basis->d, basis->map, basis->r, 0.0, out, basis->r);
}

void probe_basis_free(probe_basis *basis) {
    free(basis->map);
    basis->map = NULL;
    basis->r = basis->d;
}

rd_status probe_ridge_factor_build(const double *z, int n, int d, probe_ridge_factor *f,
                                   rd_error *err) {
    memset(f, 0, sizeof *f);
    rd_status st = probe_basis_build(z, n, d, &f->basis, err);
    if (st != RD_OK) return st;
    int r = f->basis.r;
    size_t rr = (size_t)(r > 0 ? r : 1);
    double *proj = f->basis.map ? malloc((size_t)n * rr * sizeof *proj) : NULL;
    f->q = calloc(rr * rr, sizeof *f->q);
    f->s = calloc(rr, sizeof *f->s);
    if (!f->q || !f->s || (f->basis.map && !proj)) {
        st = rd_fail(err, RD_ENOMEM, "probe: no memory for a %d x %d ridge factor", r, r);
        goto out;
    }
    if (r == 0) goto out;
    const double *feat = z;
    if (proj) {
        probe_basis_project(&f->basis, z, n, proj);
        feat = proj;
    }
    if (n > 0) cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, r, n, 1.0, feat, r, 0.0, f->q, r);
    lapack_int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'L', r, f->q, r, f->s);
    if (info != 0) {
        st = rd_fail(err, RD_ENUMERIC,
                     "probe: eigendecomposition of the %d x %d Gram matrix "
                     "failed (LAPACK info %d)",
                     r, r, (int)info);
        goto out;
    }
    for (int k = 0; k < r; k++)
        if (f->s[k] < 0.0) f->s[k] = 0.0; /* rounding of a positive semidefinite matrix */
out:
    free(proj);
    if (st != RD_OK) probe_ridge_factor_free(f);
    return st;
}

rd_status probe_ridge_coefs(const probe_ridge_factor *f, const double *h, const double *lambda,
                            int nlambda, double *w, rd_error *err) {
    int d = f->basis.d, r = f->basis.r;
    memset(w, 0, (size_t)nlambda * d * sizeof *w);
    if (r == 0) return RD_OK;
    double *hf = malloc((size_t)r * sizeof *hf), *zq = malloc((size_t)r * sizeof *zq);
    double *c = malloc((size_t)r * sizeof *c), *beta = malloc((size_t)r * sizeof *beta);
    rd_status st = RD_OK;
    if (!hf || !zq || !c || !beta) {
        st = rd_fail(err, RD_ENOMEM, "probe: no memory for ridge coefficients");
        goto out;
    }
    /* w = map Q diag(1 / (s + lambda)) Q^T map^T h */
    if (f->basis.map)
        cblas_dgemv(CblasRowMajor, CblasTrans, d, r, 1.0, f->basis.map, r, h, 1, 0.0, hf, 1);
    else
        memcpy(hf, h, (size_t)r * sizeof *hf);
    cblas_dgemv(CblasRowMajor, CblasTrans, r, r, 1.0, f->q, r, hf, 1, 0.0, zq, 1);
    for (int l = 0; l < nlambda; l++) {
        for (int k = 0; k < r; k++) c[k] = zq[k] / (f->s[k] + lambda[l]);
        double *wl = w + (size_t)l * d;
        double *target = f->basis.map ? beta : wl;
        cblas_dgemv(CblasRowMajor, CblasNoTrans, r, r, 1.0, f->q, r, c, 1, 0.0, target, 1);
        if (f->basis.map)
            cblas_dgemv(CblasRowMajor, CblasNoTrans, d, r, 1.0, f->basis.map, r, beta, 1, 0.0, wl,
                        1);
    }
out:
    free(hf);
    free(zq);
    free(c);
    free(beta);
    return st;
}

void probe_ridge_factor_free(probe_ridge_factor *f) {
    probe_basis_free(&f->basis);
    free(f->q);
    free(f->s);
    f->q = f->s = NULL;
}

rd_status rd_probe_ridge_fit(const double *x, const double *y, int n, int d, const double *lambda,
                             int nlambda, double *w, double *b, rd_error *err) {
    if (n < 1 || d < 1 || nlambda < 1)
        return rd_fail(err, RD_EINVAL, "probe: ridge needs n, d, nlambda >= 1 (got %d, %d, %d)", n,
                       d, nlambda);
    for (int l = 0; l < nlambda; l++)
        if (!(lambda[l] > 0.0) || !isfinite(lambda[l]))
            return rd_fail(err, RD_EINVAL, "probe: ridge penalty %g must be positive", lambda[l]);
    rd_status st = probe_check_finite(x, (size_t)n * d, "feature", err);
    if (st == RD_OK) st = probe_check_finite(y, (size_t)n, "target", err);
    if (st != RD_OK) return st;
    double *z = malloc((size_t)n * d * sizeof *z), *mean = malloc((size_t)d * sizeof *mean);
    double *yc = malloc((size_t)n * sizeof *yc), *h = malloc((size_t)d * sizeof *h);
    probe_ridge_factor f;
    memset(&f, 0, sizeof f);
    if (!z || !mean || !yc || !h) {
        st = rd_fail(err, RD_ENOMEM, "probe: no memory for ridge on %d x %d", n, d);
        goto out;
    }
    double ymean;
    probe_center(x, n, d, mean, z);
    probe_center(y, n, 1, &ymean, yc);
    if ((st = probe_ridge_factor_build(z, n, d, &f, err)) != RD_OK) goto out;
    cblas_dgemv(CblasRowMajor, CblasTrans, n, d, 1.0, z, d, yc, 1, 0.0, h, 1);
    if ((st = probe_ridge_coefs(&f, h, lambda, nlambda, w, err)) != RD_OK) goto out;
    for (int l = 0; l < nlambda; l++) {
        b[l] = ymean;
        for (int j = 0; j < d; j++) b[l] -= mean[j] * w[(size_t)l * d + j];
    }
out:
    probe_ridge_factor_free(&f);
    free(z);
    free(mean);
    free(yc);
    free(h);
    return st;
}
