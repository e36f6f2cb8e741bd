#include "rdino/nn.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>

#include "vecmath.h"

size_t rd_attention_scratch_floats(int T) {
    return ((size_t)T * T + 15) & ~(size_t)15; /* one [T, T] matrix, 64-byte multiple */
}

/* Row-wise softmax of s [T, T] in place. */
static void softmax_rows(float *s, int T) {
    for (int r = 0; r < T; r++) {
        float *row = s + (size_t)r * T;
        float mx = row[0];
#pragma omp simd reduction(max : mx)
        for (int c = 1; c < T; c++) mx = row[c] > mx ? row[c] : mx;
        float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
        for (int c = 0; c < T; c++) {
            row[c] = rd_vexpf(row[c] - mx);
            sum += row[c];
        }
        float inv = 1.0f / sum;
#pragma omp simd
        for (int c = 0; c < T; c++) row[c] *= inv;
    }
}

/* dP [T, T] -> dS = P ⊙ (dP - rowsum(dP ⊙ P)) in place (softmax backward). */
static void softmax_rows_backward(float *dp, const float *p, int T) {
    for (int r = 0; r < T; r++) {
        float *d = dp + (size_t)r * T;
        const float *pr = p + (size_t)r * T;
        float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
        for (int c = 0; c < T; c++) dot += d[c] * pr[c];
#pragma omp simd
        for (int c = 0; c < T; c++) d[c] = pr[c] * (d[c] - dot);
    }
}

void rd_attention_forward(float *out, float *att, float *scratch, const float *qkv, int b, int T,
                          int D, int H) {
    int hd = D / H, ld = 3 * D;
    float scale = 1.0f / sqrtf((float)hd);
    rd_blas_one_thread();
#pragma omp parallel for collapse(2) schedule(dynamic) if ((long)b * H * T * T > RD_PARALLEL_MIN)
    for (int i = 0; i < b; i++)
        for (int h = 0; h < H; h++) {
            const float *q = qkv + (size_t)i * T * ld + (size_t)h * hd;
            const float *k = q + D, *v = q + 2 * D;
            float *p =
                att ? att + ((size_t)i * H + h) * T * T
                    : scratch + (size_t)omp_get_thread_num() * rd_attention_scratch_floats(T);
            /* p[T, T] = softmax(q k^T * scale) */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, scale, q, ld, k, ld,
                        0.0f, p, T);
            softmax_rows(p, T);
            /* out[i, :, head h] = p @ v  [T, hd] */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, 1.0f, p, T, v, ld,
                        0.0f, out + (size_t)i * T * D + (size_t)h * hd, D);
        }
}

void rd_attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv,
                           const float *att, int b, int T, int D, int H) {
    int hd = D / H, ld = 3 * D;
    float scale = 1.0f / sqrtf((float)hd);
    rd_blas_one_thread();
#pragma omp parallel for collapse(2) schedule(dynamic) if ((long)b * H * T * T > RD_PARALLEL_MIN)
    for (int i = 0; i < b; i++)
        for (int h = 0; h < H; h++) {
            size_t head = (size_t)i * T * ld + (size_t)h * hd;
            const float *q = qkv + head, *k = q + D, *v = q + 2 * D;
            float *dq = dqkv + head, *dk = dq + D, *dv = dq + 2 * D;
            const float *p = att + ((size_t)i * H + h) * T * T;
            const float *dO = dout + (size_t)i * T * D + (size_t)h * hd;
            float *ds = scratch + (size_t)omp_get_thread_num() * rd_attention_scratch_floats(T);
            /* dP[T, T] = dO v^T;  dv += P^T dO */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, 1.0f, dO, D, v, ld, 0.0f,
                        ds, T);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hd, T, 1.0f, p, T, dO, D, 1.0f,
                        dv, ld);
            softmax_rows_backward(ds, p, T);
            /* dq += scale dS k;  dk += scale dS^T q */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, scale, ds, T, k, ld,
                        1.0f, dq, ld);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hd, T, scale, ds, T, q, ld,
                        1.0f, dk, ld);
        }
}
