/* rd_json: syntax errors name the source with line and column, duplicate keys and oversized
 * integers are refused, getters name the key and the type found, files round-trip. */
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "rdino/json.h"

static void syntax_errors_name_source_line_and_column(rd_test *t) {
    json_t *root;
    rd_error err = {0};
    const char *text = "{\n  \"a\": 1,\n  \"b\": tru\n}";
    CHECK(rd_json_parse(text, strlen(text), "cfg.json", &root, &err) == RD_EFORMAT);
    CHECK_MSG(strstr(err.msg, "cfg.json: line 3, column"), "%s", err.msg);
    text = "{\"a\": 1, \"a\": 2}";
    CHECK(rd_json_parse(text, strlen(text), "dup.json", &root, &err) == RD_EFORMAT);
    CHECK_MSG(strstr(err.msg, "dup.json") && strstr(err.msg, "duplicate"), "%s", err.msg);
    text = "{\"a\": 1} x";
    CHECK(rd_json_parse(text, strlen(text), "tail.json", &root, &err) == RD_EFORMAT);
    text = "{\"a\": 99999999999999999999}";
    CHECK(rd_json_parse(text, strlen(text), "big.json", &root, &err) == RD_EFORMAT);
    CHECK_MSG(strstr(err.msg, "big.json"), "%s", err.msg);
}

static void getters_check_types_and_name_the_key(rd_test *t) {
    const char *text = "{\"n\": 9007199254740993, \"x\": 1e-06, \"b\": true, \"s\": \"gelu\", "
                       "\"z\": null, \"i\": 4}";
    json_t *root;
    rd_error err = {0};
    CHECK_OK(rd_json_parse(text, strlen(text), "c.json", &root, &err), &err);
    int64_t n = 0;
    double x = 0, i = 0;
    int b = 0;
    const char *s = NULL;
    CHECK_OK(rd_json_get_int(root, "n", RD_JSON_REQUIRED, "c.json", &n, &err), &err);
    CHECK(n == 9007199254740993LL); /* 64-bit exact, not rounded through a double */
    CHECK_OK(rd_json_get_number(root, "x", RD_JSON_REQUIRED, "c.json", &x, &err), &err);
    CHECK(x == 1e-6);
    CHECK_OK(rd_json_get_number(root, "i", RD_JSON_REQUIRED, "c.json", &i, &err), &err);
    CHECK(i == 4.0);
    CHECK_OK(rd_json_get_bool(root, "b", RD_JSON_REQUIRED, "c.json", &b, &err), &err);
    CHECK(b == 1);
    CHECK_OK(rd_json_get_string(root, "s", RD_JSON_REQUIRED, "c.json", &s, &err), &err);
    CHECK(s && strcmp(s, "gelu") == 0);
    int64_t keep = 7;
    CHECK_OK(rd_json_get_int(root, "absent", RD_JSON_OPTIONAL, "c.json", &keep, &err), &err);
    CHECK_OK(rd_json_get_int(root, "z", RD_JSON_OPTIONAL, "c.json", &keep, &err), &err);
    CHECK(keep == 7);
    CHECK(rd_json_get_int(root, "absent", RD_JSON_REQUIRED, "c.json", &keep, &err) == RD_ENOTFOUND);
    CHECK_MSG(strcmp(err.msg, "c.json: missing key 'absent'") == 0, "%s", err.msg);
    CHECK(rd_json_get_int(root, "x", RD_JSON_REQUIRED, "c.json", &keep, &err) == RD_EFORMAT);
    CHECK_MSG(strcmp(err.msg, "c.json: key 'x' must be an integer, not a real") == 0, "%s",
              err.msg);
    CHECK(rd_json_get_bool(root, "s", RD_JSON_OPTIONAL, "c.json", &b, &err) == RD_EFORMAT);
    CHECK(rd_json_get_string(root, "z", RD_JSON_REQUIRED, "c.json", &s, &err) == RD_EFORMAT);
    CHECK(rd_json_get_int(json_object_get(root, "s"), "k", RD_JSON_OPTIONAL, "c.json", &keep,
                          &err) == RD_EFORMAT);
    json_decref(root);
}

static void save_then_load_round_trips(rd_test *t) {
    char path[1024];
    snprintf(path, sizeof path, "%s/a.json", rd_test_tmpdir(t));
    json_t *doc = json_pack("{s:i, s:[s]}", "hidden_size", 768, "architectures", "Dinov2Model");
    rd_error err = {0};
    CHECK_OK(rd_json_save(path, doc, JSON_INDENT(2) | JSON_SORT_KEYS, &err), &err);
    json_t *back = NULL;
    CHECK_OK(rd_json_load(path, &back, &err), &err);
    CHECK(back && json_equal(doc, back));
    json_decref(doc);
    json_decref(back);
    snprintf(path, sizeof path, "%s/none.json", rd_test_tmpdir(t));
    CHECK(rd_json_load(path, &back, &err) == RD_ENOTFOUND && back == NULL);
}

static const rd_test_case cases[] = {
    {"syntax_errors_name_source_line_and_column", syntax_errors_name_source_line_and_column},
    {"getters_check_types_and_name_the_key", getters_check_types_and_name_the_key},
    {"save_then_load_round_trips", save_then_load_round_trips},
};
RD_TEST_MAIN("io/json", cases)
