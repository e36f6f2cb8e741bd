/* JSON through jansson (Debian libjansson-dev 2.14): what every rdino JSON reader needs.
 *
 *     json_t *root;
 *     if (rd_json_load(path, &root, err)) return err->code;   // "config.json: line 3, column 7:
 * ..." int64_t dim; rd_status st = rd_json_get_int(root, "hidden_size", RD_JSON_REQUIRED, path,
 * &dim, err); json_decref(root);
 *
 * Parsing is strict: one document, nothing after it but whitespace, duplicate object keys are
 * errors, integers are 64-bit (json_int_t; larger ones are errors, not rounded). Messages name
 * the source (a file, or "x.safetensors header") with the line and column of a syntax error, and
 * the key of a missing or mistyped member. */
#ifndef RDINO_JSON_H
#define RDINO_JSON_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "rdino/error.h"

/* Parses len bytes of text (no NUL needed). source names it in errors. RD_EFORMAT on bad JSON. */
rd_status rd_json_parse(const char *text, size_t len, const char *source, json_t **out,
                        rd_error *err);
/* Reads and parses a whole file; RD_ENOTFOUND if it does not exist. */
rd_status rd_json_load(const char *path, json_t **out, rd_error *err);
/* Writes root to path atomically (rd_write_file_atomic), with a final newline. flags are
 * jansson's json_dumps flags (JSON_INDENT(2) | JSON_SORT_KEYS ...). */
rd_status rd_json_save(const char *path, const json_t *root, size_t flags, rd_error *err);

/* Whether a member must be present. An optional member that is absent or null leaves *out
 * unchanged (callers preset the default). */
typedef enum { RD_JSON_OPTIONAL = 0, RD_JSON_REQUIRED = 1 } rd_json_need;

/* Typed members of the object obj; source names the file (and object) in errors:
 * "config.json: missing key 'hidden_size'" (RD_ENOTFOUND), "config.json: key 'hidden_size' must
 * be an integer, not a string" (RD_EFORMAT). obj that is not an object is RD_EFORMAT too. */
rd_status rd_json_get_int(const json_t *obj, const char *key, rd_json_need need, const char *source,
                          int64_t *out, rd_error *err);
/* An integer or a real. */
rd_status rd_json_get_number(const json_t *obj, const char *key, rd_json_need need,
                             const char *source, double *out, rd_error *err);
rd_status rd_json_get_bool(const json_t *obj, const char *key, rd_json_need need,
                           const char *source, int *out, rd_error *err);
/* *out points into obj (valid while obj lives). */
rd_status rd_json_get_string(const json_t *obj, const char *key, rd_json_need need,
                             const char *source, const char **out, rd_error *err);

/* "an object", "an array", "a string", "an integer", "a real", "true", "false", "null". */
const char *rd_json_type_name(const json_t *value);

#endif
