#include "loss.h"

#include <math.h>
#include <string.h>

#define KOLEO_EPS 1e-8

int rd_dino_loss_terms(int n_local) {
    return 2 + (2 * n_local > 1 ? 2 * n_local : 1);
}

/* One row of soft cross-entropy against q = q1 (+ q2 if not NULL):
 * returns -sum_k q_k log_softmax(s/T)_k and writes ds_k = coef (qsum p_k - q_k) / T, p the
 * student softmax. One exp per element; ds may alias s (each s_k is read before ds_k is
 * written). */
static double row_cross_entropy(const float *s, const float *q1, const float *q2, int K,
                                double inv_temp, double coef, float *ds) {
    float mx = -INFINITY;
    for (int k = 0; k < K; k++) mx = fmaxf(mx, s[k]);
    const double m = (double)mx * inv_temp;
    double sum_e = 0.0, qsum = 0.0, qs = 0.0;
    for (int k = 0; k < K; k++) {
        double q = (double)q1[k] + (q2 ? (double)q2[k] : 0.0), sk = (double)s[k] * inv_temp;
        float e = expf((float)(sk - m));
        qsum += q;
        qs += q * sk;
        sum_e += e;
        ds[k] = e;
    }
    /* sum_e >= 1: the maximum contributes exp(0). */
    // cppcheck-suppress invalidFunctionArg
    double lse = m + log(sum_e);
    const float a = (float)(coef * inv_temp * qsum / sum_e), b = (float)(coef * inv_temp);
    for (int k = 0; k < K; k++) ds[k] = a * ds[k] - b * (q1[k] + (q2 ? q2[k] : 0.0f));
    return qsum * lse - qs;
}

void rd_dino_loss(const float *targets, const float *s_local, const float *s_global, int B,
                  int n_local, int K, double student_temp, double weight, double *loss_local,
                  double *loss_global, float *ds_local, float *ds_global) {
    const double inv_temp = 1.0 / student_temp, Z = rd_dino_loss_terms(n_local);
    const double coef = weight / (Z * B);
    const float *t_crop2 = targets, *t_crop1 = targets + (size_t)B * K; /* T[0], T[1] */
    double local = 0.0, global = 0.0;
    /* Local crops: CE is linear in q, so the two teacher views add into one target. */
#pragma omp parallel for schedule(static) reduction(+ : local)
    for (int r = 0; r < n_local * B; r++) {
        size_t b = (size_t)(r % B) * K, o = (size_t)r * K;
        local += row_cross_entropy(s_local + o, t_crop2 + b, t_crop1 + b, K, inv_temp, coef,
                                   ds_local + o);
    }
#pragma omp parallel for schedule(static) reduction(+ : global)
    for (int r = 0; r < 2 * B; r++) {
        size_t o = (size_t)r * K;
        global +=
            row_cross_entropy(s_global + o, targets + o, NULL, K, inv_temp, coef, ds_global + o);
    }
    *loss_local = local / (Z * B);
    *loss_global = global / (Z * B);
}

double rd_ibot_loss(const float *targets, const float *s, const float *masks_weight, int M,
                    int n_images, int K, double student_temp, double weight, float *ds) {
    const double inv_temp = 1.0 / student_temp;
    double total = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : total)
    for (int p = 0; p < M; p++) {
        size_t o = (size_t)p * K;
        double w = masks_weight[p];
        total += w * row_cross_entropy(s + o, targets + o, NULL, K, inv_temp, weight * w / n_images,
                                       ds + o);
    }
    return total / n_images;
}

size_t rd_koleo_work(int n, int D) {
    return 2 * (size_t)n * D + (size_t)n;
}

double rd_koleo_loss(const float *x, int n, int D, double weight, float *dx, int *nn_index,
                     double *work) {
    double *xn = work, *dxn = work + (size_t)n * D, *norm = dxn + (size_t)n * D;
    for (int i = 0; i < n; i++) {
        double s = 0.0;
        for (int d = 0; d < D; d++) s += (double)x[(size_t)i * D + d] * x[(size_t)i * D + d];
        norm[i] = sqrt(s);
        double inv = 1.0 / fmax(norm[i], KOLEO_EPS);
        for (int d = 0; d < D; d++) xn[(size_t)i * D + d] = x[(size_t)i * D + d] * inv;
    }
    memset(dxn, 0, (size_t)n * D * sizeof(double));
    double loss = 0.0;
    for (int i = 0; i < n; i++) {
        /* Nearest neighbour by cosine; the diagonal counts as -1 (first maximum wins). */
        int j_best = 0;
        double best = -INFINITY;
        for (int j = 0; j < n; j++) {
            double dot = -1.0;
            if (j != i) {
                dot = 0.0;
                for (int d = 0; d < D; d++) dot += xn[(size_t)i * D + d] * xn[(size_t)j * D + d];
            }
            if (dot > best) {
                best = dot;
                j_best = j;
            }
        }
        if (nn_index) nn_index[i] = j_best;
        const double *a = xn + (size_t)i * D, *b = xn + (size_t)j_best * D;
        double dist2 = 0.0;
        for (int d = 0; d < D; d++) {
            double u = a[d] - b[d] + KOLEO_EPS;
            dist2 += u * u;
        }
        double dist = sqrt(dist2);
        loss -= log(dist + KOLEO_EPS) / n;
        if (dist > 0) { /* d(-log(d + eps)/n)/du = -u / (n d (d + eps)); torch's norm: 0 at 0 */
            double g = -1.0 / (n * dist * (dist + KOLEO_EPS));
            for (int d = 0; d < D; d++) {
                double gu = g * (a[d] - b[d] + KOLEO_EPS);
                dxn[(size_t)i * D + d] += gu;
                dxn[(size_t)j_best * D + d] -= gu;
            }
        }
    }
    if (dx) {
        /* Through x^ = x / max(||x||, eps): (dx^ - x^ <x^, dx^>) / ||x||, or dx^ / eps. */
        for (int i = 0; i < n; i++) {
            const double *a = xn + (size_t)i * D, *g = dxn + (size_t)i * D;
            double dot = 0.0;
            for (int d = 0; d < D; d++) dot += a[d] * g[d];
            int clamped = norm[i] <= KOLEO_EPS;
            double inv = 1.0 / fmax(norm[i], KOLEO_EPS);
            for (int d = 0; d < D; d++)
                dx[(size_t)i * D + d] +=
                    (float)(weight * (g[d] - (clamped ? 0.0 : a[d] * dot)) * inv);
        }
    }
    return loss;
}
