#include "harness.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rdino/log.h"

static char tmp_root[512];

void rd_test_fail(rd_test *t, const char *file, int line, const char *fmt, ...) {
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* Details go to stderr as they happen; the FAIL line carries the first one. */
    fprintf(stderr, "  %s: %s:%d: %s\n", t->name, file, line, msg);
    if (t->failures++ == 0)
        snprintf(t->message, sizeof t->message, "%s:%d: %.400s", file, line, msg);
}

void rd_test_skip(rd_test *t, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->message, sizeof t->message, fmt, ap);
    va_end(ap);
    t->skipped = 1;
}

int rd_test_close(rd_test *t, const char *file, int line, const char *what, const float *got,
                  const float *want, size_t n, double rtol, double atol) {
    size_t worst = 0, bad = 0;
    double worst_excess = -1.0;
    for (size_t i = 0; i < n; i++) {
        double g = got[i], w = want[i];
        double tol = atol + rtol * fabs(w);
        double excess = fabs(g - w) - tol;
        if (!(excess <= 0.0) || !isfinite(g)) {
            bad++;
            if (!isfinite(g)) excess = INFINITY;
        }
        if (excess > worst_excess) {
            worst_excess = excess;
            worst = i;
        }
    }
    if (bad) {
        rd_test_fail(t, file, line,
                     "%s: %zu of %zu elements differ; worst [%zu] got %.9g want %.9g "
                     "(rtol %.1e, atol %.1e)",
                     what, bad, n, worst, got[worst], want[worst], rtol, atol);
        return 0;
    }
    return 1;
}

int rd_test_gradcheck(rd_test *t, const char *file, int line, const char *what, float *x,
                      const float *grad, size_t n, rd_loss_fn loss, void *ctx, double eps,
                      double rtol, double atol, size_t max_checks) {
    size_t step = n > max_checks ? n / max_checks : 1;
    size_t bad = 0, checked = 0, worst = 0;
    double worst_excess = -INFINITY, worst_fd = 0;
    for (size_t i = 0; i < n; i += step) {
        float saved = x[i];
        x[i] = saved + (float)eps;
        double up = loss(ctx);
        x[i] = saved - (float)eps;
        double down = loss(ctx);
        /* Divide by the step actually taken in float, not the nominal eps. */
        double h = (double)(saved + (float)eps) - (double)(saved - (float)eps);
        x[i] = saved;
        double fd = (up - down) / h;
        double excess = fabs(fd - grad[i]) - (atol + rtol * fabs(fd));
        checked++;
        if (!(excess <= 0)) bad++;
        if (excess > worst_excess || isnan(excess)) {
            worst_excess = excess;
            worst = i;
            worst_fd = fd;
        }
    }
    if (bad) {
        rd_test_fail(t, file, line,
                     "%s: %zu of %zu checked gradients differ from finite differences; worst [%zu] "
                     "analytic %.7g, numeric %.7g",
                     what, bad, checked, worst, grad[worst], worst_fd);
        return 0;
    }
    return 1;
}

const char *rd_test_shared_dir(void) {
    static char dir[1024];
    const char *env = getenv("RDINO_SHARED");
    snprintf(dir, sizeof dir, "%s", env ? env : "../shared");
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) return NULL;
    return dir;
}

static void remove_tmp_root(void) {
    if (!tmp_root[0]) return;
    const char *keep = getenv("RDINO_KEEP_TMP");
    if (keep && strcmp(keep, "1") == 0) {
        fprintf(stderr, "kept %s\n", tmp_root);
        return;
    }
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_root);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp_root);
}

const char *rd_test_tmpdir(rd_test *t) {
    static char dir[600];
    if (!tmp_root[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(tmp_root, sizeof tmp_root, "%s/rdino-test-XXXXXX", base ? base : "/tmp");
        if (!mkdtemp(tmp_root)) {
            tmp_root[0] = '\0';
            return NULL;
        }
        atexit(remove_tmp_root);
    }
    snprintf(dir, sizeof dir, "%s/%s", tmp_root, t->name);
    mkdir(dir, 0777);
    return dir;
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int rd_test_main(int argc, char **argv, const char *suite, const rd_test_case *cases, int ncases) {
    const char *only = argc > 1 ? argv[1] : NULL;
    int failed = 0, ran = 0;
    if (!getenv("RDINO_TEST_VERBOSE")) rd_log_set_quiet(1);
    for (int i = 0; i < ncases; i++) {
        if (only && strcmp(only, cases[i].name) != 0) continue;
        rd_test t = {.name = cases[i].name};
        double t0 = now_seconds();
        cases[i].fn(&t);
        double dt = now_seconds() - t0;
        ran++;
        if (t.failures) {
            printf("FAIL %s/%s: %s\n", suite, t.name, t.message);
            failed++;
        } else if (t.skipped) {
            printf("SKIP %s/%s: %s\n", suite, t.name, t.message);
        } else {
            printf("PASS %s/%s (%.3f s)\n", suite, t.name, dt);
        }
        fflush(stdout);
    }
    if (only && ran == 0) {
        fprintf(stderr, "no test case named '%s' in %s\n", only, suite);
        return 2;
    }
    return failed ? 1 : 0;
}
