/* Recursive listing of the image folder and path containment; see image_tree.h. */
#include "rdino/image_tree.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "rdino/file.h"

typedef struct walk {
    rd_image_tree *tree;
    char root_real[RD_PATH_MAX];
    char exclude_real[RD_PATH_MAX]; /* "" when nothing is excluded */
} walk;

static int64_t mtime_ns(const struct stat *st) {
    return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

/* 1 when real lies in dir (or is dir). */
static int inside(const char *real, const char *dir) {
    size_t n = strlen(dir);
    if (n == 1 && dir[0] == '/') return 1;
    return strncmp(real, dir, n) == 0 && (real[n] == '/' || real[n] == '\0');
}

static rd_status add_file(walk *w, const char *rel, const struct stat *st, int outside,
                          rd_error *err) {
    rd_image_tree *t = w->tree;
    if (t->nfiles == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 1024;
        rd_image_file *bigger = realloc(t->files, cap * sizeof *bigger);
        if (!bigger) return rd_fail(err, RD_ENOMEM, "listing %s: out of memory", t->root);
        t->files = bigger;
        t->cap = cap;
    }
    rd_image_file *f = &t->files[t->nfiles];
    f->path = strdup(rel);
    if (!f->path) return rd_fail(err, RD_ENOMEM, "listing %s: out of memory", t->root);
    f->size = st ? (int64_t)st->st_size : 0;
    f->mtime_ns = st ? mtime_ns(st) : 0;
    f->outside = outside;
    t->nfiles++;
    return RD_OK;
}

/* Walks dir (absolute path abs, relative path rel, "" at the root). */
static rd_status walk_dir(walk *w, const char *abs, const char *rel, rd_error *err) {
    DIR *d = opendir(abs);
    if (!d) return rd_fail(err, RD_EIO, "cannot list %s: %s", abs, strerror(errno));
    rd_status st = RD_OK;
    struct dirent *e;
    while (!st && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char child_abs[RD_PATH_MAX], child_rel[RD_PATH_MAX];
        if (snprintf(child_abs, sizeof child_abs, "%s/%s", abs, e->d_name) >= RD_PATH_MAX ||
            snprintf(child_rel, sizeof child_rel, "%s%s%s", rel, rel[0] ? "/" : "", e->d_name) >=
                RD_PATH_MAX) {
            st = rd_fail(err, RD_EINVAL, "path too long under %s", abs);
            break;
        }
        struct stat ls;
        if (lstat(child_abs, &ls) != 0) continue; /* vanished while listing */
        if (S_ISDIR(ls.st_mode)) {
            char real[RD_PATH_MAX];
            if (w->exclude_real[0] && realpath(child_abs, real) && inside(real, w->exclude_real))
                continue;
            st = walk_dir(w, child_abs, child_rel, err);
        } else if (S_ISREG(ls.st_mode)) {
            st = add_file(w, child_rel, &ls, 0, err);
        } else if (S_ISLNK(ls.st_mode)) {
            struct stat target;
            char real[RD_PATH_MAX];
            if (stat(child_abs, &target) != 0 || !realpath(child_abs, real))
                st = add_file(w, child_rel, NULL, 1, err); /* dangling */
            else if (S_ISREG(target.st_mode))
                st = add_file(w, child_rel, &target, !inside(real, w->root_real), err);
        }
    }
    closedir(d);
    return st;
}

static int cmp_file(const void *a, const void *b) {
    return strcmp(((const rd_image_file *)a)->path, ((const rd_image_file *)b)->path);
}

rd_status rd_image_tree_list(const char *root, const char *exclude, rd_image_tree *tree,
                             rd_error *err) {
    memset(tree, 0, sizeof *tree);
    walk w = {.tree = tree};
    if (!root || !root[0]) return rd_fail(err, RD_EINVAL, "no image folder given");
    if (!realpath(root, w.root_real))
        return rd_fail(err, RD_ENOTFOUND, "image folder %s: %s", root, strerror(errno));
    if (exclude && exclude[0] && !realpath(exclude, w.exclude_real)) w.exclude_real[0] = '\0';
    tree->root = strdup(root);
    if (!tree->root) return rd_fail(err, RD_ENOMEM, "out of memory");
    rd_status st = walk_dir(&w, w.root_real, "", err);
    if (st) {
        rd_image_tree_free(tree);
        return st;
    }
    qsort(tree->files, tree->nfiles, sizeof *tree->files, cmp_file);
    return RD_OK;
}

void rd_image_tree_free(rd_image_tree *tree) {
    for (size_t i = 0; i < tree->nfiles; i++) free(tree->files[i].path);
    free(tree->files);
    free(tree->root);
    memset(tree, 0, sizeof *tree);
}

const rd_image_file *rd_image_tree_find(const rd_image_tree *tree, const char *path) {
    rd_image_file key = {.path = (char *)path};
    return bsearch(&key, tree->files, tree->nfiles, sizeof key, cmp_file);
}

int rd_path_normalize(const char *path, char *out, size_t cap) {
    if (!path[0] || path[0] == '/' || cap == 0) return -1;
    size_t len = 0;
    const char *p = path;
    while (*p) {
        size_t n = strcspn(p, "/");
        if (n == 2 && p[0] == '.' && p[1] == '.') {
            if (len == 0) return -1; /* above the root */
            while (len > 0 && out[len - 1] != '/') len--;
            if (len > 0) len--; /* the separator */
        } else if (n > 0 && !(n == 1 && p[0] == '.')) {
            if (len + (len > 0) + n + 1 > cap) return -1;
            if (len > 0) out[len++] = '/';
            memcpy(out + len, p, n);
            len += n;
        }
        p += n;
        while (*p == '/') p++;
    }
    out[len] = '\0';
    return len > 0 ? 0 : -1;
}

int rd_path_is_png(const char *path) {
    size_t n = strlen(path);
    return n >= 4 && strcasecmp(path + n - 4, ".png") == 0;
}
