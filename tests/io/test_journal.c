#include <stdio.h>
#include <stdlib.h>
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

static void atomic_write_replaces_whole_file(rd_test *t) {
    const char *dir = rd_test_tmpdir(t);
    char path[900];
    snprintf(path, sizeof path, "%s/manifest.csv", dir);
    rd_error err = {0};
    CHECK_OK(rd_write_file_atomic(path, "old\n", 4, &err), &err);
    CHECK_OK(rd_write_file_atomic(path, "new,longer\n", 11, &err), &err);
    struct stat st;
    CHECK(stat(path, &st) == 0 && st.st_size == 11);
    snprintf(path, sizeof path, "%s/no/such/dir/x.csv", dir);
    CHECK(rd_write_file_atomic(path, "x", 1, &err) == RD_EIO);
    CHECK(strstr(err.msg, "no/such/dir") != NULL);
}

/* The streamed form: nothing is visible under the final name until commit; abort leaves no
 * file and no temporary behind. */
static void streamed_atomic_file_appears_only_at_commit(rd_test *t) {
    const char *dir = rd_test_tmpdir(t);
    char path[900], cmd[1000];
    snprintf(path, sizeof path, "%s/w.bin", dir);
    rd_error err = {0};
    rd_atomic_file f;
    CHECK_OK(rd_atomic_open(&f, path, &err), &err);
    CHECK_OK(rd_atomic_write(&f, "abc", 3, &err), &err);
    struct stat st;
    CHECK(stat(path, &st) != 0);
    CHECK_OK(rd_atomic_write(&f, "defg", 4, &err), &err);
    CHECK_OK(rd_atomic_commit(&f, &err), &err);
    CHECK(stat(path, &st) == 0 && st.st_size == 7);
    rd_atomic_abort(&f); /* harmless after a commit */
    CHECK(stat(path, &st) == 0 && st.st_size == 7);
    CHECK_OK(rd_atomic_open(&f, path, &err), &err);
    CHECK_OK(rd_atomic_write(&f, "x", 1, &err), &err);
    rd_atomic_abort(&f);
    CHECK(stat(path, &st) == 0 && st.st_size == 7); /* the old file stays */
    snprintf(cmd, sizeof cmd, "test \"$(ls -A '%s')\" = w.bin", dir);
    CHECK_MSG(system(cmd) == 0, "a temporary was left in %s", dir);
    CHECK(rd_atomic_write(&f, "x", 1, &err) == RD_EINVAL);
}

static const rd_test_case cases[] = {
    {"journal_survives_a_torn_line", journal_survives_a_torn_line},
    {"journal_dir_reads_complete_lines_in_file_order",
     journal_dir_reads_complete_lines_in_file_order},
    {"atomic_write_replaces_whole_file", atomic_write_replaces_whole_file},
    {"streamed_atomic_file_appears_only_at_commit", streamed_atomic_file_appears_only_at_commit},
};
RD_TEST_MAIN("io/journal", cases)
