/* Whole-file reads, mkdir -p, room checks and the one atomic writer (temporary name, publish,
 * abandon). */
#include "rdino/file.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    if (!d) return -1;
    for (const struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static void temp_names_sit_next_to_the_file(rd_test *t) {
    char tmp[64];
    rd_error err = {0};
    CHECK_OK(rd_temp_path(tmp, sizeof tmp, "out/shards/index.json", &err), &err);
    CHECK_MSG(strcmp(tmp, "out/shards/.index.json.tmp") == 0, "%s", tmp);
    CHECK_OK(rd_temp_path(tmp, sizeof tmp, "x.h5", &err), &err);
    CHECK_MSG(strcmp(tmp, ".x.h5.tmp") == 0, "%s", tmp);
    CHECK_OK(rd_temp_path(tmp, sizeof tmp, "/x.h5", &err), &err);
    CHECK_MSG(strcmp(tmp, "/.x.h5.tmp") == 0, "%s", tmp);
    CHECK(rd_temp_path(tmp, 8, "a/long-name.csv", &err) == RD_EINVAL);
    CHECK(rd_temp_path(tmp, sizeof tmp, "dir/", &err) == RD_EINVAL);
    CHECK(rd_is_temp_name(".index.json.tmp"));
    CHECK(!rd_is_temp_name("index.json.tmp"));
    CHECK(!rd_is_temp_name(".tmp"));
    CHECK(!rd_is_temp_name(".hidden"));
}

static void atomic_write_replaces_whole_file(rd_test *t) {
    const char *dir = rd_test_tmpdir(t);
    char path[900];
    snprintf(path, sizeof path, "%s/manifest.csv", dir);
    rd_error err = {0};
    CHECK_OK(rd_write_file_atomic(path, "old\n", 4, &err), &err);
    CHECK_OK(rd_write_file_atomic(path, "new,longer\n", 11, &err), &err);
    char *text = NULL;
    CHECK_OK(rd_read_file(path, &text, NULL, &err), &err);
    CHECK(text && strcmp(text, "new,longer\n") == 0);
    free(text);
    CHECK(count_entries(dir) == 1); /* no temporary left */
    snprintf(path, sizeof path, "%s/no/such/dir/x.csv", dir);
    CHECK(rd_write_file_atomic(path, "x", 1, &err) == RD_EIO);
    CHECK(strstr(err.msg, "no/such/dir") != NULL);
}

static void streamed_file_appears_only_on_commit(rd_test *t) {
    const char *dir = rd_test_tmpdir(t);
    char path[900];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    rd_error err = {0};
    CHECK_OK(rd_write_file_atomic(path, "before\n", 7, &err), &err);
    rd_atomic_file f;
    CHECK_OK(rd_atomic_open(&f, path, &err), &err);
    fputs("after\n", f.fp);
    char *text = NULL;
    CHECK_OK(rd_read_file(path, &text, NULL, &err), &err);
    CHECK(text && strcmp(text, "before\n") == 0); /* the old file until the commit */
    free(text);
    CHECK_OK(rd_atomic_commit(&f, &err), &err);
    CHECK_OK(rd_read_file(path, &text, NULL, &err), &err);
    CHECK(text && strcmp(text, "after\n") == 0);
    free(text);

    CHECK_OK(rd_atomic_open(&f, path, &err), &err);
    fputs("abandoned\n", f.fp);
    rd_atomic_abandon(&f);
    CHECK_OK(rd_read_file(path, &text, NULL, &err), &err);
    CHECK(text && strcmp(text, "after\n") == 0);
    free(text);
    CHECK(count_entries(dir) == 1);
}

static void streamed_writes_and_double_commit(rd_test *t) {
    const char *dir = rd_test_tmpdir(t);
    char path[900];
    snprintf(path, sizeof path, "%s/w.bin", dir);
    rd_error err = {0};
    rd_atomic_file f;
    CHECK_OK(rd_atomic_open(&f, path, &err), &err);
    CHECK_OK(rd_atomic_write(&f, "abc", 3, &err), &err);
    CHECK_OK(rd_atomic_write(&f, "defg", 4, &err), &err);
    CHECK_OK(rd_atomic_commit(&f, &err), &err);
    struct stat st;
    CHECK(stat(path, &st) == 0 && st.st_size == 7);
    rd_atomic_abandon(&f); /* harmless after a commit */
    CHECK(stat(path, &st) == 0 && st.st_size == 7);
    CHECK(rd_atomic_commit(&f, &err) == RD_EINVAL);
    CHECK(rd_atomic_write(&f, "x", 1, &err) == RD_EINVAL);
    CHECK(count_entries(dir) == 1);
}

static void read_file_names_a_missing_file(rd_test *t) {
    char *text = NULL;
    rd_error err = {0};
    CHECK(rd_read_file("/nonexistent/config.yaml", &text, NULL, &err) == RD_ENOTFOUND);
    CHECK(strstr(err.msg, "/nonexistent/config.yaml") != NULL);
    char path[900];
    snprintf(path, sizeof path, "%s/a/b/c", rd_test_tmpdir(t));
    CHECK_OK(rd_mkdir_p(path, &err), &err);
    CHECK_OK(rd_mkdir_p(path, &err), &err); /* exists: fine */
    struct stat st;
    CHECK(stat(path, &st) == 0 && S_ISDIR(st.st_mode));
}

/* An output folder that cannot be used fails at mkdir -p, naming it: a file in its place (also
 * below it), or a folder without write permission (not testable as root, who may write anyway). */
static void mkdir_refuses_a_file_in_the_way(rd_test *t) {
    char file[900], below[920];
    rd_error err = {0};
    snprintf(file, sizeof file, "%s/report", rd_test_tmpdir(t));
    CHECK_OK(rd_write_file_atomic(file, "x", 1, &err), &err);
    CHECK(rd_mkdir_p(file, &err) == RD_EIO);
    CHECK_MSG(strstr(err.msg, file) && strstr(err.msg, "in the way"), "%s", err.msg);
    snprintf(below, sizeof below, "%s/sub", file);
    CHECK(rd_mkdir_p(below, &err) == RD_EIO);
    CHECK_MSG(strstr(err.msg, file) != NULL, "%s", err.msg);
}

/* Room is checked with statvfs: 1 MiB fits, 1 EiB does not, the error names the folder, and
 * nothing is left in it. */
static void room_check_leaves_nothing_behind(rd_test *t) {
    const char *dir = rd_test_tmpdir(t);
    rd_error err = {0};
    CHECK_OK(rd_dir_check_room(dir, 1 << 20, &err), &err);
    CHECK(rd_dir_check_room(dir, (int64_t)1 << 60, &err) == RD_EIO);
    CHECK_MSG(strstr(err.msg, dir) && strstr(err.msg, "no room"), "%s", err.msg);
    CHECK(count_entries(dir) == 0);
    char missing[900];
    snprintf(missing, sizeof missing, "%s/missing", dir);
    CHECK(rd_dir_check_room(missing, 1, &err) == RD_EIO);
    CHECK_MSG(strstr(err.msg, missing) != NULL, "%s", err.msg);
}

static const rd_test_case cases[] = {
    {"temp_names_sit_next_to_the_file", temp_names_sit_next_to_the_file},
    {"atomic_write_replaces_whole_file", atomic_write_replaces_whole_file},
    {"streamed_file_appears_only_on_commit", streamed_file_appears_only_on_commit},
    {"streamed_writes_and_double_commit", streamed_writes_and_double_commit},
    {"read_file_names_a_missing_file", read_file_names_a_missing_file},
    {"mkdir_refuses_a_file_in_the_way", mkdir_refuses_a_file_in_the_way},
    {"room_check_leaves_nothing_behind", room_check_leaves_nothing_behind},
};
RD_TEST_MAIN("core/file", cases)
