/* DINOv2's k-NN classifier (dinov2/eval/knn.py, KnnModule): cosine similarity of L2-normalised
 * features, the k most similar training rows, each voting with weight exp(similarity / T). */
#include "rdino/probe.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Unit-length copy of row i of x [., d] (a zero row stays zero: similarity 0 to everything). */
static void unit_row(const float *x, int d, int i, double *out) {
    double ss = 0.0;
    for (int j = 0; j < d; j++) {
        out[j] = x[(size_t)i * d + j];
        ss += out[j] * out[j];
    }
    double inv = ss > 0 ? 1.0 / sqrt(ss) : 0.0;
    for (int j = 0; j < d; j++) out[j] *= inv;
}

/* Whether neighbour a ranks before b: larger similarity, ties to the lower training index. */
static int before(double sa, int a, double sb, int b) {
    return sa > sb || (sa == sb && a < b);
}

enum { KNN_BLOCK = 64 }; /* test rows per similarity block: 64 x ntrain doubles of scratch */

rd_status rd_probe_knn_predict(const float *x, int d, const int *train, int ntrain,
                               const double *y_train, const int *test, int ntest, int k,
                               double temperature, double *pred, rd_error *err) {
    if (k < 1 || !(temperature > 0))
        return rd_fail(err, RD_EINVAL, "probe: k-NN needs k >= 1 and T > 0 (k %d, T %g)", k,
                       temperature);
    if (ntrain < 1) return rd_fail(err, RD_EINVAL, "probe: k-NN without training rows");
    if (k > ntrain) k = ntrain;
    double *unit = malloc((size_t)ntrain * d * sizeof *unit);
    double *q = malloc((size_t)KNN_BLOCK * d * sizeof *q);
    double *block = malloc((size_t)KNN_BLOCK * ntrain * sizeof *block);
    double *sim = malloc((size_t)k * sizeof *sim);
    int *idx = malloc((size_t)k * sizeof *idx);
    rd_status st = RD_OK;
    if (!unit || !q || !block || !sim || !idx) {
        st = rd_fail(err, RD_ENOMEM, "probe: no memory for k-NN over %d rows", ntrain);
        goto out;
    }
    for (int r = 0; r < ntrain; r++) unit_row(x, d, train[r], unit + (size_t)r * d);
    for (int v0 = 0; v0 < ntest; v0 += KNN_BLOCK) {
        int nb = ntest - v0 < KNN_BLOCK ? ntest - v0 : KNN_BLOCK;
        for (int b = 0; b < nb; b++) unit_row(x, d, test[v0 + b], q + (size_t)b * d);
        /* block [nb, ntrain] = q [nb, d] unit^T: every cosine similarity of the block. */
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, ntrain, d, 1.0, q, d, unit, d, 0.0,
                    block, ntrain);
        for (int b = 0; b < nb; b++) {
            const double *row = block + (size_t)b * ntrain;
            /* The k best so far, kept sorted by insertion (k is small, 20 by default). */
            int found = 0;
            for (int r = 0; r < ntrain; r++) {
                double s = row[r];
                if (found == k && !before(s, r, sim[k - 1], idx[k - 1])) continue;
                int pos = found < k ? found++ : k - 1;
                while (pos > 0 && before(s, r, sim[pos - 1], idx[pos - 1])) {
                    sim[pos] = sim[pos - 1];
                    idx[pos] = idx[pos - 1];
                    pos--;
                }
                sim[pos] = s;
                idx[pos] = r;
            }
            /* Weights relative to the best neighbour: the same ratios, no overflow at small T. */
            double num = 0.0, den = 0.0;
            for (int m = 0; m < found; m++) {
                double w = exp((sim[m] - sim[0]) / temperature);
                num += w * y_train[idx[m]];
                den += w;
            }
            pred[v0 + b] = num / den;
        }
    }
out:
    free(unit);
    free(q);
    free(block);
    free(sim);
    free(idx);
    return st;
}
