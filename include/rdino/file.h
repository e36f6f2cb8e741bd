#ifndef RDINO_FILE_H
#define RDINO_FILE_H
/* Whole small files and folders: the config, CSVs, index.json, stamps. */
#include <stddef.h>

#include "rdino/error.h"

/* *text = the whole file, NUL-terminated (free it); *len (may be NULL) = its length in bytes.
 * RD_ENOTFOUND if it does not exist, RD_EIO on other failures; the message names the file. */
rd_status rd_read_file(const char *path, char **text, size_t *len, rd_error *err);

/* Creates a directory and its parents (mkdir -p). */
rd_status rd_mkdir_p(const char *path, rd_error *err);

#endif
