#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"
#include "rdino/journal.h"

static void touch(const char *dir, const char *rel, const char *text) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void journal_survives_a_torn_line(rd_test *t) {
    char path[900];
    snprintf(path, sizeof path, "%s/rank-00000.tsv", rd_test_tmpdir(t));
    rd_journal j;
    rd_error err = {0};
    CHECK_OK(rd_journal_open(&j, path, &err), &err);
    CHECK_OK(rd_journal_add(&j, "one", &err), &err);
    CHECK_OK(rd_journal_add(&j, "two", &err), &err);
    CHECK_OK(rd_journal_close(&j, &err), &err);
    FILE *f = fopen(path, "ab"); /* a kill in the middle of a write */
    fputs("thr", f);
    fclose(f);
    CHECK_OK(rd_journal_open(&j, path, &err), &err);
    CHECK_OK(rd_journal_add(&j, "four", &err), &err);
    CHECK_OK(rd_journal_commit(&j, &err), &err);
    CHECK_OK(rd_journal_close(&j, &err), &err);
    f = fopen(path, "ab");
    fputs("torn-at-end", f);
    fclose(f);
    char text[256] = "";
    f = fopen(path, "rb");
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    CHECK_MSG(strcmp(text, "one\ntwo\nthr\nfour\ntorn-at-end") == 0, "file: %s", text);
}

static rd_status collect(void *ctx, char *line, rd_error *err) {
    (void)err;
    strcat(ctx, line);
    strcat(ctx, "|");
    return RD_OK;
}

static void journal_dir_reads_complete_lines_in_file_order(rd_test *t) {
    const char *dir = rd_test_tmpdir(t);
    touch(dir, "rank-00001.tsv", "c\nd\ntorn");
    touch(dir, "rank-00000.tsv", "a\nb\n");
    touch(dir, "notes.txt", "ignored\n");
    touch(dir, ".rank-00002.tsv", "hidden\n");
    char got[256] = "";
    rd_error err = {0};
    CHECK_OK(rd_journal_read_dir(dir, ".tsv", collect, got, &err), &err);
    CHECK_MSG(strcmp(got, "a|b|c|d|") == 0, "lines: %s", got);
    got[0] = '\0';
    CHECK_OK(rd_journal_read_dir("/nonexistent/journal", ".tsv", collect, got, &err), &err);
    CHECK(got[0] == '\0');
}

static const rd_test_case cases[] = {
    {"journal_survives_a_torn_line", journal_survives_a_torn_line},
    {"journal_dir_reads_complete_lines_in_file_order",
     journal_dir_reads_complete_lines_in_file_order},
};
RD_TEST_MAIN("io/journal", cases)
