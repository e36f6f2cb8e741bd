#include "rdino/nn.h"

#include <cblas.h>
#include <omp.h>
#include <string.h>

/* Below this many multiply-adds a GEMM runs on the calling thread. */
#define RD_PARALLEL_MIN_MACS (1 << 18)

void rd_blas_one_thread(void) {
    if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);
}

/* Rows [begin, end) of part `part` of `parts` for n items, boundaries on multiples of align. */
static void split(int n, int parts, int part, int align, int *begin, int *end) {
    int units = (n + align - 1) / align;
    *begin = (int)((long)units * part / parts) * align;
    *end = (int)((long)units * (part + 1) / parts) * align;
    if (*begin > n) *begin = n;
    if (*end > n) *end = n;
}

/* One memcpy per row: the element loop stayed scalar (c may alias bias) and cost 2 % of a
 * ViT forward. */
static void fill_bias(float *c, int ldc, int rows, int cols, const float *bias) {
    for (int i = 0; i < rows; i++) memcpy(c + (size_t)i * ldc, bias, (size_t)cols * sizeof *c);
}

static void gemm_part(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                      int lda, const float *b, int ldb, float beta, float *c, int ldc,
                      const float *bias) {
    if (m <= 0 || n <= 0) return;
    if (bias) {
        fill_bias(c, ldc, m, n, bias);
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

/* Parts the longer output side of an L-long GEMM is cut into: a power of two, so that 2, 4, 8
 * ... threads get equal shares, with parts of at least 128 rows or columns (a BLAS call per
 * part repacks the other operand: negligible from 128 on). */
static int parts_of(int L) {
    int parts = 1;
    while (parts < 64 && L / (2 * parts) >= 128) parts *= 2;
    return parts;
}

void rd_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc, const float *bias) {
    rd_blas_one_thread();
    /* The grid of BLAS calls depends on the shape alone, never on the thread count: OpenBLAS's
     * kernels round an element differently depending on how a product is partitioned (seen
     * with its Haswell kernels, which it picks on CPUs it does not know), so only the same
     * calls give bitwise the same result on 1 or 64 threads. */
    int by_rows = M >= N;
    int parts = (double)M * N * K < RD_PARALLEL_MIN_MACS ? 1 : parts_of(by_rows ? M : N);
    if (parts == 1) {
        gemm_part(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias);
        return;
    }
    int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
#pragma omp parallel for schedule(static) num_threads(threads < parts ? threads : parts)
    for (int part = 0; part < parts; part++) {
        int begin, end;
        if (by_rows) {
            split(M, parts, part, 16, &begin, &end);
            const float *a = trans_a ? A + begin : A + (size_t)begin * lda;
            gemm_part(trans_a, trans_b, end - begin, N, K, alpha, a, lda, B, ldb, beta,
                      C + (size_t)begin * ldc, ldc, bias);
        } else {
            split(N, parts, part, 16, &begin, &end);
            const float *b = trans_b ? B + (size_t)begin * ldb : B + begin;
            gemm_part(trans_a, trans_b, M, end - begin, K, alpha, A, lda, b, ldb, beta, C + begin,
                      ldc, bias ? bias + begin : NULL);
        }
    }
}
