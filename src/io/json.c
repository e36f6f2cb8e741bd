/* JSON via jansson; see json.h. */
#include "rdino/json.h"

#include <stdlib.h>
#include <string.h>

#include "rdino/file.h"

rd_status rd_json_parse(const char *text, size_t len, const char *source, json_t **out,
                        rd_error *err) {
    json_error_t je;
    *out = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (!*out)
        return rd_fail(err, RD_EFORMAT, "%s: line %d, column %d: %s", source, je.line, je.column,
                       je.text);
    return RD_OK;
}

rd_status rd_json_load(const char *path, json_t **out, rd_error *err) {
    char *text;
    size_t len;
    *out = NULL;
    rd_status st = rd_read_file(path, &text, &len, err);
    if (st) return st;
    st = rd_json_parse(text, len, path, out, err);
    free(text);
    return st;
}

rd_status rd_json_save(const char *path, const json_t *root, size_t flags, rd_error *err) {
    char *text = json_dumps(root, flags);
    if (!text) return rd_fail(err, RD_ENOMEM, "%s: cannot format the JSON document", path);
    size_t len = strlen(text);
    char *line = realloc(text, len + 2);
    if (!line) {
        free(text);
        return rd_fail(err, RD_ENOMEM, "%s: out of memory", path);
    }
    line[len] = '\n';
    line[len + 1] = '\0';
    rd_status st = rd_write_file_atomic(path, line, len + 1, err);
    free(line);
    return st;
}

const char *rd_json_type_name(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a real";
    case JSON_TRUE:
        return "true";
    case JSON_FALSE:
        return "false";
    case JSON_NULL:
        break;
    }
    return "null";
}

/* The member key of obj, or NULL with *st set: absent/null optional members give RD_OK. */
static const json_t *member(const json_t *obj, const char *key, rd_json_need need,
                            const char *source, rd_status *st, rd_error *err) {
    *st = RD_OK;
    if (!json_is_object(obj)) {
        *st = rd_fail(err, RD_EFORMAT, "%s: looking up '%s' in %s, not an object", source, key,
                      obj ? rd_json_type_name(obj) : "nothing");
        return NULL;
    }
    const json_t *v = json_object_get(obj, key);
    if (v && !json_is_null(v)) return v;
    if (need == RD_JSON_REQUIRED)
        *st = v ? rd_fail(err, RD_EFORMAT, "%s: key '%s' is null", source, key)
                : rd_fail(err, RD_ENOTFOUND, "%s: missing key '%s'", source, key);
    return NULL;
}

static rd_status wrong_type(const char *source, const char *key, const char *want, const json_t *v,
                            rd_error *err) {
    return rd_fail(err, RD_EFORMAT, "%s: key '%s' must be %s, not %s", source, key, want,
                   rd_json_type_name(v));
}

rd_status rd_json_get_int(const json_t *obj, const char *key, rd_json_need need, const char *source,
                          int64_t *out, rd_error *err) {
    rd_status st;
    const json_t *v = member(obj, key, need, source, &st, err);
    if (!v) return st;
    if (!json_is_integer(v)) return wrong_type(source, key, "an integer", v, err);
    *out = (int64_t)json_integer_value(v);
    return RD_OK;
}

rd_status rd_json_get_number(const json_t *obj, const char *key, rd_json_need need,
                             const char *source, double *out, rd_error *err) {
    rd_status st;
    const json_t *v = member(obj, key, need, source, &st, err);
    if (!v) return st;
    if (!json_is_number(v)) return wrong_type(source, key, "a number", v, err);
    *out = json_number_value(v);
    return RD_OK;
}

rd_status rd_json_get_bool(const json_t *obj, const char *key, rd_json_need need,
                           const char *source, int *out, rd_error *err) {
    rd_status st;
    const json_t *v = member(obj, key, need, source, &st, err);
    if (!v) return st;
    if (!json_is_boolean(v)) return wrong_type(source, key, "true or false", v, err);
    *out = json_is_true(v);
    return RD_OK;
}

rd_status rd_json_get_string(const json_t *obj, const char *key, rd_json_need need,
                             const char *source, const char **out, rd_error *err) {
    rd_status st;
    const json_t *v = member(obj, key, need, source, &st, err);
    if (!v) return st;
    if (!json_is_string(v)) return wrong_type(source, key, "a string", v, err);
    *out = json_string_value(v);
    return RD_OK;
}
