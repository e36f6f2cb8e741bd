/* Principal component analysis by eigendecomposition of the sample covariance (p x p, which is
 * small here: downsampled pixels, or one embedding's width). */
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rdino/analyze.h"

rd_status rd_pca_fit(const float *x, int n, int p, int k, rd_pca *pca, rd_error *err) {
    memset(pca, 0, sizeof *pca);
    if (n < 2 || p < 1 || k < 1 || k > p || k > n - 1)
        return rd_fail(err, RD_EINVAL,
                       "PCA: %d components of %d rows x %d columns (need "
                       "1 <= k <= min(p, n - 1))",
                       k, n, p);
    double *xc = malloc((size_t)n * p * sizeof *xc);
    double *cov = malloc((size_t)p * p * sizeof *cov);
    double *eval = malloc((size_t)p * sizeof *eval);
    pca->mean = calloc((size_t)p, sizeof *pca->mean);
    pca->components = malloc((size_t)k * p * sizeof *pca->components);
    pca->variance = malloc((size_t)k * sizeof *pca->variance);
    rd_status st = RD_OK;
    if (!xc || !cov || !eval || !pca->mean || !pca->components || !pca->variance) {
        st = rd_fail(err, RD_ENOMEM, "PCA: no memory for %d x %d", n, p);
        goto out;
    }
    pca->p = p;
    pca->k = k;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < p; j++) pca->mean[j] += x[(size_t)i * p + j];
    for (int j = 0; j < p; j++) pca->mean[j] /= n;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < p; j++) xc[(size_t)i * p + j] = x[(size_t)i * p + j] - pca->mean[j];
    /* cov = xc^T xc / (n - 1), upper triangle (row-major), eigenvalues ascending. */
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, p, n, 1.0 / (n - 1), xc, p, 0.0, cov, p);
    pca->total_variance = 0.0;
    for (int j = 0; j < p; j++) pca->total_variance += cov[(size_t)j * p + j];
    lapack_int info = LAPACKE_dsyev(LAPACK_ROW_MAJOR, 'V', 'U', p, cov, p, eval);
    if (info != 0) {
        st =
            rd_fail(err, RD_ENUMERIC, "PCA: eigendecomposition failed (LAPACK info %d)", (int)info);
        goto out;
    }
    for (int c = 0; c < k; c++) {
        int col = p - 1 - c; /* largest first */
        double *row = pca->components + (size_t)c * p, biggest = 0.0;
        for (int j = 0; j < p; j++) {
            row[j] = cov[(size_t)j * p + col];
            if (fabs(row[j]) > fabs(biggest)) biggest = row[j];
        }
        if (biggest < 0)
            for (int j = 0; j < p; j++) row[j] = -row[j];
        pca->variance[c] = eval[col] > 0 ? eval[col] : 0.0;
    }
out:
    free(xc);
    free(cov);
    free(eval);
    if (st) rd_pca_free(pca);
    return st;
}

void rd_pca_transform(const rd_pca *pca, const float *x, int n, float *scores) {
    int p = pca->p;
    for (int i = 0; i < n; i++)
        for (int c = 0; c < pca->k; c++) {
            const double *v = pca->components + (size_t)c * p;
            double s = 0.0;
            for (int j = 0; j < p; j++) s += (x[(size_t)i * p + j] - pca->mean[j]) * v[j];
            scores[(size_t)i * pca->k + c] = (float)s;
        }
}

void rd_pca_free(rd_pca *pca) {
    free(pca->mean);
    free(pca->components);
    free(pca->variance);
    memset(pca, 0, sizeof *pca);
}
