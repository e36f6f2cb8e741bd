#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "rdino/csv.h"

/* Expected records: fields joined by '|', one string per record, plus its start line. */
typedef struct expected {
    const char *joined;
    int64_t line;
    int has_problem;
} expected;

static void expect_records(rd_test *t, const char *text, size_t len, const expected *want,
                           int nwant) {
    rd_csv csv;
    rd_error err = {0};
    CHECK_OK(rd_csv_open_string(&csv, text, len, "test.csv", &err), &err);
    rd_csv_record rec;
    int n = 0, got;
    while ((got = rd_csv_next(&csv, &rec, &err)) == 1) {
        char joined[512] = "";
        for (int i = 0; i < rec.nfields; i++) {
            if (i) strcat(joined, "|");
            strcat(joined, rec.fields[i]);
        }
        if (n < nwant) {
            CHECK_MSG(strcmp(joined, want[n].joined) == 0, "record %d: got '%s', want '%s'", n,
                      joined, want[n].joined);
            CHECK_MSG(rec.line == want[n].line, "record %d: line %lld, want %lld", n,
                      (long long)rec.line, (long long)want[n].line);
            CHECK_MSG((rec.problem != NULL) == want[n].has_problem, "record %d: problem %s", n,
                      rec.problem ? rec.problem : "(none)");
        }
        n++;
    }
    CHECK(got == 0);
    CHECK_MSG(n == nwant, "%d records, want %d", n, nwant);
    rd_csv_close(&csv);
}

#define EXPECT(text, ...)                                                                          \
    do {                                                                                           \
        const expected want_[] = {__VA_ARGS__};                                                    \
        expect_records(t, text, strlen(text), want_, (int)(sizeof want_ / sizeof want_[0]));       \
    } while (0)

static void plain_fields_and_lines(rd_test *t) {
    EXPECT("a,b,c\n1,2,3\n", {"a|b|c", 1, 0}, {"1|2|3", 2, 0});
    EXPECT("a,b\n1,2", {"a|b", 1, 0}, {"1|2", 2, 0}); /* no final newline */
    EXPECT("x,,\n", {"x||", 1, 0});                   /* empty fields, trailing comma */
    EXPECT("only\n", {"only", 1, 0});
}

static void quotes_hide_commas_newlines_and_quotes(rd_test *t) {
    EXPECT("\"a,b\",c\n", {"a,b|c", 1, 0});
    EXPECT("\"say \"\"hi\"\"\",x\n", {"say \"hi\"|x", 1, 0});
    EXPECT("\"two\nlines\",x\nnext,y\n", {"two\nlines|x", 1, 0}, {"next|y", 3, 0});
    EXPECT("\"\",\"\"\n", {"|", 1, 0});
    EXPECT("a\"b,c\n", {"a\"b|c", 1, 0}); /* stray quote in an unquoted field: literal */
}

static void line_ends_bom_and_blank_lines(rd_test *t) {
    EXPECT("\xEF\xBB\xBFh1,h2\r\n1,2\r\n", {"h1|h2", 1, 0}, {"1|2", 2, 0});
    EXPECT("a\r\n\r\n\n  \nb\n", {"a", 1, 0}, {"b", 5, 0});
    EXPECT("a\rb\r", {"a", 1, 0}, {"b", 2, 0}); /* old Mac line ends */
    EXPECT("\"x\r\ny\",z\r\nw\r\n", {"x\r\ny|z", 1, 0}, {"w", 3, 0});
}

static void grammar_errors_are_flagged_not_fatal(rd_test *t) {
    EXPECT("\"ab\"cd,e\nok,1\n", {"abcd|e", 1, 1}, {"ok|1", 2, 0});
    EXPECT("a,\"never closed\nb,c\n", {"a|never closed\nb,c\n", 1, 1});
    const char with_nul[] = "a\0b,c\nd\n";
    const expected want[] = {{"ab|c", 1, 1}, {"d", 2, 0}};
    expect_records(t, with_nul, sizeof with_nul - 1, want, 2);
}

static void empty_input_has_no_records(rd_test *t) {
    const char *inputs[] = {"", "\n\n", "\xEF\xBB\xBF", "\r\n \t\r\n"};
    for (int i = 0; i < 4; i++) {
        rd_csv csv;
        rd_error err = {0};
        rd_csv_record rec;
        CHECK_OK(rd_csv_open_string(&csv, inputs[i], strlen(inputs[i]), "e.csv", &err), &err);
        CHECK_MSG(rd_csv_next(&csv, &rec, &err) == 0, "input %d gave a record", i);
        rd_csv_close(&csv);
    }
}

static void put_field_round_trips(rd_test *t) {
    const char *values[] = {"plain", "a,b", "say \"hi\"", "two\nlines", "", "cr\r"};
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    for (int i = 0; i < 6; i++) {
        if (i) fputc(',', f);
        rd_csv_put_field(f, values[i]);
    }
    fputc('\n', f);
    fclose(f);
    CHECK(strncmp(text, "plain,\"a,b\",", 12) == 0);
    rd_csv csv;
    rd_error err = {0};
    rd_csv_record rec;
    CHECK_OK(rd_csv_open_string(&csv, text, len, "rt.csv", &err), &err);
    CHECK(rd_csv_next(&csv, &rec, &err) == 1);
    CHECK(rec.nfields == 6 && !rec.problem);
    for (int i = 0; i < 6 && i < rec.nfields; i++)
        CHECK_MSG(strcmp(rec.fields[i], values[i]) == 0, "field %d '%s'", i, rec.fields[i]);
    rd_csv_close(&csv);
    free(text);
}

static void open_names_the_missing_file(rd_test *t) {
    rd_csv csv;
    rd_error err = {0};
    CHECK(rd_csv_open(&csv, "/nonexistent/dir/x.csv", &err) == RD_ENOTFOUND);
    CHECK(strstr(err.msg, "/nonexistent/dir/x.csv") != NULL);
}

static const rd_test_case cases[] = {
    {"plain_fields_and_lines", plain_fields_and_lines},
    {"quotes_hide_commas_newlines_and_quotes", quotes_hide_commas_newlines_and_quotes},
    {"line_ends_bom_and_blank_lines", line_ends_bom_and_blank_lines},
    {"grammar_errors_are_flagged_not_fatal", grammar_errors_are_flagged_not_fatal},
    {"empty_input_has_no_records", empty_input_has_no_records},
    {"put_field_round_trips", put_field_round_trips},
    {"open_names_the_missing_file", open_names_the_missing_file},
};
RD_TEST_MAIN("io/csv", cases)
