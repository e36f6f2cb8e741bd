/* The pretraining log (metrics.jsonl, one JSON object per line) as loss curves. Only what the
 * plot needs is parsed: top-level keys with number values; strings, booleans, null, nested
 * objects and arrays are skipped. A line that does not parse (a torn last line after a kill)
 * is counted and ignored. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rdino/analyze.h"

static const char *skip_ws(const char *s) {
    while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n') s++;
    return s;
}

/* A JSON string starting at s (the opening quote); copies up to size - 1 bytes of it (escapes
 * kept as written) into out; returns the position after the closing quote, NULL if torn. */
static const char *parse_string(const char *s, char *out, size_t size) {
    size_t k = 0;
    for (s++; *s && *s != '"'; s++) {
        if (*s == '\\' && s[1]) s++;
        if (out && k + 1 < size) out[k++] = *s;
    }
    if (out && size) out[k] = '\0';
    return *s == '"' ? s + 1 : NULL;
}

/* Skips any JSON value; NULL if malformed. */
static const char *skip_value(const char *s) {
    s = skip_ws(s);
    if (*s == '"') return parse_string(s, NULL, 0);
    if (*s == '{' || *s == '[') {
        int depth = 0;
        for (; *s; s++) {
            if (*s == '"') {
                s = parse_string(s, NULL, 0);
                if (!s) return NULL;
                s--;
            } else if (*s == '{' || *s == '[') {
                depth++;
            } else if (*s == '}' || *s == ']') {
                if (--depth == 0) return s + 1;
            }
        }
        return NULL;
    }
    const char *start = s;
    while (*s && *s != ',' && *s != '}' && *s != ' ' && *s != '\t' && *s != '\r' && *s != '\n') s++;
    return s > start ? s : NULL;
}

static int term_index(rd_loss_curve *c, const char *key) {
    for (int t = 0; t < c->nterms; t++)
        if (strcmp(c->term[t], key) == 0) return t;
    if (c->nterms == RD_LOSS_MAX_TERMS) return -1;
    snprintf(c->term[c->nterms], sizeof c->term[0], "%s", key);
    return c->nterms++;
}

/* Parses one line into point c->npoints (row of values already NaN). 1 if it is a point. */
static int parse_line(rd_loss_curve *c, const char *s, double *step, double *values) {
    s = skip_ws(s);
    if (*s != '{') return 0;
    int have_step = 0;
    s = skip_ws(s + 1);
    while (*s && *s != '}') {
        char key[RD_ANALYZE_NAME_MAX];
        if (*s != '"' || !(s = parse_string(s, key, sizeof key))) return 0;
        s = skip_ws(s);
        if (*s != ':') return 0;
        s = skip_ws(s + 1);
        char *end;
        errno = 0;
        double v = strtod(s, &end);
        int number = end > s && (*s == '-' || (*s >= '0' && *s <= '9'));
        if (number) {
            if (strcmp(key, "step") == 0 || strcmp(key, "iteration") == 0) {
                *step = v;
                have_step = 1;
            } else if (strstr(key, "loss")) {
                int t = term_index(c, key);
                if (t >= 0) values[t] = v;
            }
            s = end;
        } else if (!(s = skip_value(s))) {
            return 0;
        }
        s = skip_ws(s);
        if (*s == ',') s = skip_ws(s + 1);
    }
    return *s == '}' && have_step;
}

rd_status rd_loss_curve_read(const char *path, rd_loss_curve *c, rd_error *err) {
    memset(c, 0, sizeof *c);
    FILE *f = fopen(path, "r");
    if (!f)
        return rd_fail(err, errno == ENOENT ? RD_ENOTFOUND : RD_EIO, "cannot open %s: %s", path,
                       strerror(errno));
    char *line = NULL;
    size_t linecap = 0;
    int cap = 0;
    rd_status st = RD_OK;
    while (getline(&line, &linecap, f) > 0) {
        if (*skip_ws(line) == '\0') continue;
        if (c->npoints == cap) {
            cap = cap ? 2 * cap : 256;
            double *steps = realloc(c->step, (size_t)cap * sizeof *steps);
            if (steps) c->step = steps;
            double *values =
                steps ? realloc(c->value, (size_t)cap * RD_LOSS_MAX_TERMS * sizeof *values) : NULL;
            if (!values) {
                st = rd_fail(err, RD_ENOMEM, "%s: out of memory at line %d", path, c->npoints);
                break;
            }
            c->value = values;
        }
        double *row = c->value + (size_t)c->npoints * RD_LOSS_MAX_TERMS;
        for (int t = 0; t < RD_LOSS_MAX_TERMS; t++) row[t] = NAN;
        if (parse_line(c, line, &c->step[c->npoints], row))
            c->npoints++;
        else
            c->bad_lines++;
    }
    if (!st && ferror(f)) st = rd_fail(err, RD_EIO, "error reading %s", path);
    free(line);
    fclose(f);
    if (st) rd_loss_curve_free(c);
    return st;
}

void rd_loss_curve_free(rd_loss_curve *c) {
    free(c->step);
    free(c->value);
    memset(c, 0, sizeof *c);
}
