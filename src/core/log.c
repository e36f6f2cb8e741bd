#include "rdino/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static int log_rank = 0;
static int log_nranks = 1;
static int log_quiet = 0;

void rd_log_set_rank(int rank, int nranks) {
    log_rank = rank;
    log_nranks = nranks;
}

void rd_log_set_quiet(int quiet) {
    log_quiet = quiet;
}

void rd_info(const char *fmt, ...) {
    if (log_rank != 0 || log_quiet) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
}

/* One write per line: stderr is unbuffered, and mpirun forwards stdout and stderr separately, so a
 * line written in pieces can have another line land in the middle of it in a merged log. */
static void print_tagged(const char *tag, const char *fmt, va_list ap) {
    char line[4096];
    int used = log_nranks > 1 ? snprintf(line, sizeof line, "%s [rank %d]: ", tag, log_rank)
                              : snprintf(line, sizeof line, "%s: ", tag);
    vsnprintf(line + used, sizeof line - (size_t)used - 1, fmt, ap);
    size_t len = strlen(line);
    line[len] = '\n';
    fwrite(line, 1, len + 1, stderr);
    fflush(stderr);
}

void rd_warn(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    print_tagged("warning", fmt, ap);
    va_end(ap);
}

void rd_error_print(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    print_tagged("error", fmt, ap);
    va_end(ap);
}

double rd_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double rd_peak_rss_mib(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0.0;
    return (double)ru.ru_maxrss / 1024.0; /* ru_maxrss is in KiB on Linux */
}

double rd_rss_mib(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, resident = 0;
    if (f && fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    if (f) fclose(f);
    return (double)resident * (double)sysconf(_SC_PAGESIZE) / (1024.0 * 1024.0);
}

static void format_duration(double s, char *buf, size_t n) {
    if (s < 0 || s > 1e8) {
        snprintf(buf, n, "--:--");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
    else
        snprintf(buf, n, "%02ld:%02ld", t / 60, t % 60);
}

void rd_progress_start(rd_progress *p, const char *label, int64_t total, double interval) {
    p->label = label;
    p->total = total;
    p->done = 0;
    p->start = rd_now();
    p->last_print = p->start;
    if (interval <= 0) {
        const char *env = getenv("RDINO_PROGRESS_INTERVAL");
        interval = env ? atof(env) : 30.0;
    }
    p->interval = interval;
    const char *delay = getenv("RDINO_TEST_PROGRESS_DELAY_MS");
    p->test_delay_ms = delay ? atoi(delay) : 0;
    p->tty = isatty(STDERR_FILENO);
    p->active = (log_rank == 0) && !log_quiet;
}

static void progress_print(rd_progress *p, const char *extra, int final) {
    double now = rd_now();
    double elapsed = now - p->start;
    double frac = p->total > 0 ? (double)p->done / (double)p->total : 1.0;
    double rate = elapsed > 0 ? (double)p->done / elapsed : 0.0;
    double eta = rate > 0 ? (double)(p->total - p->done) / rate : -1.0;
    char el[32], et[32];
    format_duration(elapsed, el, sizeof el);
    format_duration(eta, et, sizeof et);
    if (p->tty) {
        enum { WIDTH = 30 };
        char bar[WIDTH + 1];
        int fill = (int)(frac * WIDTH);
        for (int i = 0; i < WIDTH; i++) bar[i] = i < fill ? '#' : '.';
        bar[WIDTH] = '\0';
        fprintf(stderr, "\r%s [%s] %5.1f%% %lld/%lld %s<%s %.1f/s %s\033[K", p->label, bar,
                100.0 * frac, (long long)p->done, (long long)p->total, el, et, rate,
                extra ? extra : "");
        if (final) fputc('\n', stderr);
        fflush(stderr);
    } else {
        fprintf(stdout, "%s: %lld/%lld (%.1f%%) elapsed %s eta %s %.1f/s %s\n", p->label,
                (long long)p->done, (long long)p->total, 100.0 * frac, el, et, rate,
                extra ? extra : "");
        fflush(stdout);
    }
    p->last_print = now;
}

void rd_progress_update(rd_progress *p, int64_t done, const char *extra) {
    p->done = done;
    if (p->test_delay_ms > 0) {
        struct timespec pause = {p->test_delay_ms / 1000,
                                 (long)(p->test_delay_ms % 1000) * 1000000L};
        nanosleep(&pause, NULL);
    }
    if (!p->active) return;
    double now = rd_now();
    double min_gap = p->tty ? 0.2 : p->interval;
    if (now - p->last_print >= min_gap) progress_print(p, extra, 0);
}

void rd_progress_finish(rd_progress *p, const char *extra) {
    if (!p->active) return;
    progress_print(p, extra, 1);
}
