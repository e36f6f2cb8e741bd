/* The image folder as a sorted list of files, and the rules that keep every path the metadata
 * names inside it.
 *
 * Listing: a recursive walk of the root. Entries whose name starts with '.' are skipped
 * (editor and macOS "._x.png" litter, and the atomic writers' temporaries), as is an optional
 * excluded folder (the stage's own output when it lies inside the root). Symbolic links to
 * files are followed and marked when they resolve outside the root (or nowhere); links to
 * folders are not descended (no cycles, no escapes). Paths are relative to the root, '/'
 * separated, sorted bytewise. */
#ifndef RDINO_IMAGE_TREE_H
#define RDINO_IMAGE_TREE_H

#include <stddef.h>
#include <stdint.h>

#include "rdino/error.h"

typedef struct rd_image_file {
    char *path;       /* relative to the root */
    int64_t size;     /* bytes (of the link target for links) */
    int64_t mtime_ns; /* modification time */
    int outside;      /* a symbolic link resolving outside the root, or dangling */
} rd_image_file;

typedef struct rd_image_tree {
    char *root; /* as given */
    rd_image_file *files;
    size_t nfiles, cap;
} rd_image_tree;

/* Lists root. exclude (may be NULL or absent) is a folder left out of the walk. */
rd_status rd_image_tree_list(const char *root, const char *exclude, rd_image_tree *tree,
                             rd_error *err);
void rd_image_tree_free(rd_image_tree *tree);

/* The file with exactly this relative path, or NULL. */
const rd_image_file *rd_image_tree_find(const rd_image_tree *tree, const char *path);

/* Normalises a relative path lexically ("a//./b" -> "a/b", "a/../b" -> "b"). Returns 0, or
 * -1 when the path is empty, absolute, or climbs above the root with "..". */
int rd_path_normalize(const char *path, char *out, size_t cap);

/* 1 when the file name ends in ".png" in any case. */
int rd_path_is_png(const char *path);

#endif
