/* rd_sgemm: every transpose combination, bias rows, accumulation, both split directions, and
 * results that do not depend on the thread count. Reference: double-precision triple loop;
 * tolerance rtol 1e-5, atol 1e-5 (K <= 300 products of O(1) values). */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "rdino/nn.h"
#include "rdino/rng.h"

static float *random_floats(size_t n, uint64_t index) {
    float *x = malloc(n * sizeof(float));
    rd_rng r;
    rd_rng_init(&r, 5, RD_RNG_TEST, 0, index, 0);
    for (size_t i = 0; i < n; i++) x[i] = (float)rd_rng_normal(&r);
    return x;
}

/* C = alpha op(A) op(B) + beta C0 (+ bias) in double. */
static void naive(int ta, int tb, int M, int N, int K, float alpha, const float *A, const float *B,
                  float beta, const float *C0, const float *bias, float *out) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++) {
                double a = ta ? A[(size_t)k * M + i] : A[(size_t)i * K + k];
                double b = tb ? B[(size_t)j * K + k] : B[(size_t)k * N + j];
                s += a * b;
            }
            s *= alpha;
            s += bias ? bias[j] : (double)beta * C0[(size_t)i * N + j];
            out[(size_t)i * N + j] = (float)s;
        }
}

static void all_transposes_bias_and_beta(rd_test *t) {
    /* (M, N, K): tall (split rows), wide (split columns), tiny (serial) */
    static const int shapes[][3] = {{301, 37, 129}, {23, 517, 77}, {5, 7, 3}};
    for (size_t s = 0; s < 3; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        float *A = random_floats((size_t)M * K, 1), *B = random_floats((size_t)K * N, 2);
        float *C0 = random_floats((size_t)M * N, 3), *bias = random_floats((size_t)N, 4);
        float *C = malloc((size_t)M * N * sizeof(float)),
              *want = malloc((size_t)M * N * sizeof(float));
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int mode = 0; mode < 2; mode++) { /* 0: beta = 0.5, 1: bias */
                    memcpy(C, C0, (size_t)M * N * sizeof(float));
                    const float *bs = mode ? bias : NULL;
                    rd_sgemm(ta, tb, M, N, K, 0.75f, A, ta ? M : K, B, tb ? K : N, 0.5f, C, N, bs);
                    naive(ta, tb, M, N, K, 0.75f, A, B, 0.5f, C0, bs, want);
                    CHECK_CLOSE("sgemm", C, want, (size_t)M * N, 1e-5, 1e-5);
                }
        free(A), free(B), free(C0), free(bias), free(C), free(want);
    }
}

static void same_result_on_one_and_two_threads(rd_test *t) {
    int M = 400, N = 300, K = 200, saved = omp_get_max_threads();
    float *A = random_floats((size_t)M * K, 5), *B = random_floats((size_t)N * K, 6);
    float *C1 = calloc((size_t)M * N, sizeof(float)), *C2 = calloc((size_t)M * N, sizeof(float));
    omp_set_num_threads(1);
    rd_sgemm(0, 1, M, N, K, 1.0f, A, K, B, K, 0.0f, C1, N, NULL);
    omp_set_num_threads(2);
    rd_sgemm(0, 1, M, N, K, 1.0f, A, K, B, K, 0.0f, C2, N, NULL);
    omp_set_num_threads(saved);
    CHECK(memcmp(C1, C2, (size_t)M * N * sizeof(float)) == 0);
    free(A), free(B), free(C1), free(C2);
}

static const rd_test_case cases[] = {
    {"all_transposes_bias_and_beta", all_transposes_bias_and_beta},
    {"same_result_on_one_and_two_threads", same_result_on_one_and_two_threads},
};
RD_TEST_MAIN("nn/gemm", cases)
