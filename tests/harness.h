/* A small test harness. Each test file defines its cases and ends with RD_TEST_MAIN.
 * Output, one line per case: "PASS suite/case (0.01 s)", "FAIL suite/case: file:line: what",
 * "SKIP suite/case: reason". tests/run.sh counts these lines.
 * Run one case with: build/tests/<module>/test_x <case-name> */
#ifndef RDINO_TEST_HARNESS_H
#define RDINO_TEST_HARNESS_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "rdino/error.h"

typedef struct rd_test {
    const char *name;
    int failures;
    int skipped;
    char message[512]; /* skip reason, or the first failure */
} rd_test;

typedef void (*rd_test_fn)(rd_test *t);

typedef struct rd_test_case {
    const char *name;
    rd_test_fn fn;
} rd_test_case;

int rd_test_main(int argc, char **argv, const char *suite, const rd_test_case *cases, int ncases);

void rd_test_fail(rd_test *t, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void rd_test_skip(rd_test *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Relative+absolute closeness of two float arrays; reports the worst element. */
int rd_test_close(rd_test *t, const char *file, int line, const char *what, const float *got,
                  const float *want, size_t n, double rtol, double atol);

/* Finite-difference check of an analytic gradient: perturbs x[i] by +-eps (x is restored),
 * evaluates loss(ctx) (which reads x), and compares (L+ - L-)/(2 eps) with grad[i] using
 * |fd - grad| <= atol + rtol * |fd|. Checks at most max_checks evenly spread elements. */
typedef double (*rd_loss_fn)(void *ctx);
int rd_test_gradcheck(rd_test *t, const char *file, int line, const char *what, float *x,
                      const float *grad, size_t n, rd_loss_fn loss, void *ctx, double eps,
                      double rtol, double atol, size_t max_checks);
#define CHECK_GRAD(what, x, grad, n, loss, ctx, eps, rtol, atol)                                   \
    rd_test_gradcheck(t, __FILE__, __LINE__, what, x, grad, n, loss, ctx, eps, rtol, atol, 64)

/* Directory of the shared test data (../shared relative to the repo), or NULL when absent.
 * Honours RDINO_SHARED. */
const char *rd_test_shared_dir(void);
/* A fresh temporary directory for this test (removed at exit unless RDINO_KEEP_TMP=1). */
const char *rd_test_tmpdir(rd_test *t);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) rd_test_fail(t, __FILE__, __LINE__, "check failed: %s", #cond);               \
    } while (0)

#define CHECK_MSG(cond, ...)                                                                       \
    do {                                                                                           \
        if (!(cond)) rd_test_fail(t, __FILE__, __LINE__, __VA_ARGS__);                             \
    } while (0)

/* Checks that an rd_status expression is RD_OK, printing err.msg otherwise. */
#define CHECK_OK(expr, errp)                                                                       \
    do {                                                                                           \
        rd_status st_ = (expr);                                                                    \
        if (st_ != RD_OK)                                                                          \
            rd_test_fail(t, __FILE__, __LINE__, "%s failed: %s", #expr, (errp)->msg);              \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                                      \
    do {                                                                                           \
        double a_ = (a), b_ = (b);                                                                 \
        if (!(fabs(a_ - b_) <= (tol)))                                                             \
            rd_test_fail(t, __FILE__, __LINE__, "%s = %.9g, %s = %.9g, |diff| %.3g > %.3g", #a,    \
                         a_, #b, b_, fabs(a_ - b_), (double)(tol));                                \
    } while (0)

#define CHECK_CLOSE(what, got, want, n, rtol, atol)                                                \
    rd_test_close(t, __FILE__, __LINE__, what, got, want, n, rtol, atol)

#define SKIP(...)                                                                                  \
    do {                                                                                           \
        rd_test_skip(t, __VA_ARGS__);                                                              \
        return;                                                                                    \
    } while (0)

#define RD_TEST_MAIN(suite, cases)                                                                 \
    int main(int argc, char **argv) {                                                              \
        return rd_test_main(argc, argv, suite, cases, (int)(sizeof cases / sizeof cases[0]));      \
    }

#endif
