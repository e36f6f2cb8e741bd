/* Logging and progress reporting for batch jobs.
 * Info lines come from rank 0 only; warnings and errors from any rank, tagged with the rank.
 * Progress is a redrawn bar with ETA on a terminal and a periodic plain line in a Slurm log. */
#ifndef RDINO_LOG_H
#define RDINO_LOG_H

#include <stddef.h>
#include <stdint.h>

void rd_log_set_rank(int rank, int nranks);
/* Silences info lines (tests); warnings and errors still print. */
void rd_log_set_quiet(int quiet);

void rd_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void rd_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void rd_error_print(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Monotonic wall clock in seconds. */
double rd_now(void);
/* Peak resident set size of this process in MiB (getrusage). */
double rd_peak_rss_mib(void);
/* Resident set size of this process now, in MiB (/proc/self/statm; 0 where absent). */
double rd_rss_mib(void);

typedef struct rd_progress {
    const char *label;
    int64_t total;
    int64_t done;
    double start;
    double last_print;
    double interval; /* seconds between lines when not on a terminal */
    int tty;
    int active;        /* prints only on rank 0 */
    int test_delay_ms; /* RDINO_TEST_PROGRESS_DELAY_MS: each update sleeps this long, so that
                        * the fault tests can signal a stage that would otherwise end first */
} rd_progress;

/* interval <= 0 picks the default: RDINO_PROGRESS_INTERVAL seconds or 30 s. */
void rd_progress_start(rd_progress *p, const char *label, int64_t total, double interval);
/* Sets the absolute count done (callers on rank 0 pass the global count they know). */
void rd_progress_update(rd_progress *p, int64_t done, const char *extra);
void rd_progress_finish(rd_progress *p, const char *extra);

#endif
