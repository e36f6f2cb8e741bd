#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "rdino/image_tree.h"

static void touch(const char *dir, const char *rel, const char *text) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void normalize_keeps_paths_inside(rd_test *t) {
    const char *ok[][2] = {{"a.png", "a.png"},      {"a//b/./c.png", "a/b/c.png"},
                           {"a/../b.png", "b.png"}, {"./x/y/../z.png", "x/z.png"},
                           {"a/b/../../c", "c"},    {"trailing/", "trailing"}};
    char out[256];
    for (int i = 0; i < 6; i++) {
        CHECK_MSG(rd_path_normalize(ok[i][0], out, sizeof out) == 0, "'%s' refused", ok[i][0]);
        CHECK_MSG(strcmp(out, ok[i][1]) == 0, "'%s' -> '%s'", ok[i][0], out);
    }
    const char *bad[] = {"", "/etc/passwd", "../x.png", "a/../../x.png", "a/..", ".", "//x"};
    for (int i = 0; i < 7; i++)
        CHECK_MSG(rd_path_normalize(bad[i], out, sizeof out) != 0, "'%s' accepted", bad[i]);
    CHECK(rd_path_normalize("abcdef", out, 4) != 0); /* does not fit */
    CHECK(rd_path_is_png("x/a.PNG") && rd_path_is_png("b.png") && !rd_path_is_png("png"));
    CHECK(!rd_path_is_png("a.png.tmp"));
}

static void listing_is_sorted_skips_hidden_and_marks_escapes(rd_test *t) {
    const char *dir = rd_test_tmpdir(t);
    char root[800], outside[800], sub[900], path[900], out_dir[900];
    snprintf(root, sizeof root, "%s/root", dir);
    snprintf(outside, sizeof outside, "%s/outside.png", dir);
    mkdir(root, 0777);
    snprintf(sub, sizeof sub, "%s/sub", root);
    mkdir(sub, 0777);
    snprintf(out_dir, sizeof out_dir, "%s/out", root);
    mkdir(out_dir, 0777);
    touch(root, "b.png", "b");
    touch(root, "a.png", "aa");
    touch(root, "sub/c.png", "c");
    touch(root, ".hidden.png", "h");
    touch(root, "out/written.png", "o");
    touch(dir, "outside.png", "x");
    snprintf(path, sizeof path, "%s/link_out.png", root);
    CHECK(symlink(outside, path) == 0);
    snprintf(path, sizeof path, "%s/link_in.png", root);
    CHECK(symlink("a.png", path) == 0);
    snprintf(path, sizeof path, "%s/dangling.png", root);
    CHECK(symlink("nowhere.png", path) == 0);
    snprintf(path, sizeof path, "%s/dirlink", root);
    CHECK(symlink(dir, path) == 0); /* a folder link: not descended */

    rd_image_tree tree;
    rd_error err = {0};
    CHECK_OK(rd_image_tree_list(root, out_dir, &tree, &err), &err);
    const char *want[] = {"a.png",       "b.png",        "dangling.png",
                          "link_in.png", "link_out.png", "sub/c.png"};
    CHECK_MSG(tree.nfiles == 6, "%zu files", tree.nfiles);
    for (size_t i = 0; i < tree.nfiles && i < 6; i++)
        CHECK_MSG(strcmp(tree.files[i].path, want[i]) == 0, "file %zu is %s", i,
                  tree.files[i].path);
    const rd_image_file *f = rd_image_tree_find(&tree, "a.png");
    CHECK(f && f->size == 2 && !f->outside && f->mtime_ns > 0);
    f = rd_image_tree_find(&tree, "link_in.png");
    CHECK(f && !f->outside && f->size == 2);
    f = rd_image_tree_find(&tree, "link_out.png");
    CHECK(f && f->outside);
    f = rd_image_tree_find(&tree, "dangling.png");
    CHECK(f && f->outside);
    CHECK(rd_image_tree_find(&tree, "nope.png") == NULL);
    rd_image_tree_free(&tree);

    CHECK(rd_image_tree_list("/nonexistent/images", NULL, &tree, &err) == RD_ENOTFOUND);
    CHECK(strstr(err.msg, "/nonexistent/images") != NULL);
}

static const rd_test_case cases[] = {
    {"normalize_keeps_paths_inside", normalize_keeps_paths_inside},
    {"listing_is_sorted_skips_hidden_and_marks_escapes",
     listing_is_sorted_skips_hidden_and_marks_escapes},
};
RD_TEST_MAIN("preprocess/image_tree", cases)
