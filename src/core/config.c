#include "rdino/config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "rdino/file.h"

enum { KEY_MAX = 256, DEPTH_MAX = 16 };

static int find_key(const rd_config *cfg, const char *name) {
    for (int i = 0; i < cfg->nkeys; i++)
        if (strcmp(cfg->keys[i].name, name) == 0) return i;
    return -1;
}

/* True if name is a proper prefix section of some key ("optim" for "optim.base_lr"). */
static int is_section(const rd_config *cfg, const char *name) {
    size_t n = strlen(name);
    for (int i = 0; i < cfg->nkeys; i++)
        if (strncmp(cfg->keys[i].name, name, n) == 0 && cfg->keys[i].name[n] == '.') return 1;
    return 0;
}

int rd_edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    int row[KEY_MAX + 1];
    if (lb > KEY_MAX) lb = KEY_MAX;
    for (size_t j = 0; j <= lb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j];
            int cost = tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 1]) ? 0 : 1;
            int best = diag + cost;
            if (row[j] + 1 < best) best = row[j] + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

static void consider(const char *cand, size_t cand_len, const char *name, const char *leaf,
                     const char **best, size_t *best_len, int *best_d) {
    char buf[KEY_MAX];
    if (cand_len >= sizeof buf) return;
    memcpy(buf, cand, cand_len);
    buf[cand_len] = '\0';
    int d = rd_edit_distance(name, buf);
    const char *cand_leaf = strrchr(buf, '.');
    cand_leaf = cand_leaf ? cand_leaf + 1 : buf;
    /* A key that merely sits in the wrong section beats a spelling neighbour. */
    if (strcmp(cand_leaf, leaf) == 0 && d > 1) d = 1 + d / 8;
    if (d < *best_d) {
        *best_d = d;
        *best = cand;
        *best_len = cand_len;
    }
}

/* Closest valid key or section name to 'name', written to out. */
static const char *closest_name(const rd_config *cfg, const char *name, char *out, size_t n) {
    const char *best = "";
    size_t best_len = 0;
    int best_d = 1 << 30;
    const char *leaf = strrchr(name, '.');
    leaf = leaf ? leaf + 1 : name;
    for (int i = 0; i < cfg->nkeys; i++) {
        const char *k = cfg->keys[i].name;
        for (const char *dot = strchr(k, '.'); dot; dot = strchr(dot + 1, '.'))
            consider(k, (size_t)(dot - k), name, leaf, &best, &best_len, &best_d);
        consider(k, strlen(k), name, leaf, &best, &best_len, &best_d);
    }
    snprintf(out, n, "%.*s", (int)best_len, best);
    return out;
}

static char *dup_string(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static const char *type_name(rd_cfg_type t) {
    switch (t) {
    case RD_CFG_BOOL:
        return "a boolean (true/false)";
    case RD_CFG_INT:
        return "an integer";
    case RD_CFG_FLOAT:
        return "a number";
    case RD_CFG_STRING:
        return "a string";
    case RD_CFG_FLOAT_LIST:
        return "a list of numbers";
    case RD_CFG_INT_LIST:
        return "a list of integers";
    }
    return "?";
}

static int parse_bool(const char *s, int *out) {
    static const char *yes[] = {"true", "yes", "on", "1"};
    static const char *no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) return *out = 1, 1;
        if (strcasecmp(s, no[i]) == 0) return *out = 0, 1;
    }
    return 0;
}

static int parse_double(const char *s, double *out) {
    if (!*s) return 0;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    while (isspace((unsigned char)*end)) end++;
    if (*end || errno == ERANGE || !isfinite(v)) return 0;
    *out = v;
    return 1;
}

static int parse_int(const char *s, int64_t *out) {
    double v;
    if (!parse_double(s, &v)) return 0;
    /* Integers written as 1.0e+3 are fine; 2.5 is not. */
    if (v != floor(v) || fabs(v) > 9.0e18) return 0;
    *out = (int64_t)v;
    return 1;
}

static int in_choices(const char *choices, const char *s) {
    size_t n = strlen(s);
    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, s, n) == 0) return 1;
        if (!bar) break;
        p = bar + 1;
    }
    return 0;
}

static void format_number(double v, char *buf, size_t n) {
    /* Shortest representation that reads back to the same double. */
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
}

static rd_status range_error(rd_error *err, const char *where, const rd_cfg_key *k, double v) {
    return rd_fail(err, RD_ERANGE, "%s: key '%s' must be in [%g, %g], got %g", where, k->name,
                   k->min, k->max, v);
}

/* Validates and stores one value. 'items' holds a scalar (nitems = -1) or list elements. */
static rd_status set_value(rd_config *cfg, int idx, char **items, int nitems, rd_cfg_origin origin,
                           const char *where, rd_error *err) {
    const rd_cfg_key *k = &cfg->keys[idx];
    rd_cfg_value v = {0};
    char text[RD_CFG_LIST_MAX * 32 + 8]; /* canonical text of non-string values */
    int is_list = k->type == RD_CFG_FLOAT_LIST || k->type == RD_CFG_INT_LIST;
    if (is_list != (nitems >= 0))
        return rd_fail(err, RD_EINVAL, "%s: key '%s' expects %s, got %s", where, k->name,
                       type_name(k->type), is_list ? "a single value" : "a list");
    const char *s = nitems < 0 ? items[0] : NULL;
    switch (k->type) {
    case RD_CFG_BOOL:
        if (!parse_bool(s, &v.boolean))
            return rd_fail(err, RD_EINVAL, "%s: key '%s' expects %s, got '%s'", where, k->name,
                           type_name(k->type), s);
        snprintf(text, sizeof text, "%s", v.boolean ? "true" : "false");
        break;
    case RD_CFG_INT:
        if (!parse_int(s, &v.integer))
            return rd_fail(err, RD_EINVAL, "%s: key '%s' expects %s, got '%s'", where, k->name,
                           type_name(k->type), s);
        if ((double)v.integer < k->min || (double)v.integer > k->max)
            return range_error(err, where, k, (double)v.integer);
        v.num = (double)v.integer;
        snprintf(text, sizeof text, "%lld", (long long)v.integer);
        break;
    case RD_CFG_FLOAT:
        if (!parse_double(s, &v.num))
            return rd_fail(err, RD_EINVAL, "%s: key '%s' expects %s, got '%s'", where, k->name,
                           type_name(k->type), s);
        if (v.num < k->min || v.num > k->max) return range_error(err, where, k, v.num);
        format_number(v.num, text, sizeof text);
        break;
    case RD_CFG_STRING:
        if (k->choices && !in_choices(k->choices, s))
            return rd_fail(err, RD_EINVAL, "%s: key '%s' must be one of %s, got '%s'", where,
                           k->name, k->choices, s);
        break;
    case RD_CFG_FLOAT_LIST:
    case RD_CFG_INT_LIST: {
        if (nitems > RD_CFG_LIST_MAX || (k->list_len && nitems != k->list_len))
            return rd_fail(err, RD_EINVAL, "%s: key '%s' expects a list of %d elements, got %d",
                           where, k->name, k->list_len ? k->list_len : RD_CFG_LIST_MAX, nitems);
        size_t len = (size_t)snprintf(text, sizeof text, "[");
        for (int i = 0; i < nitems; i++) {
            double x = 0;
            int64_t xi = 0;
            int ok =
                k->type == RD_CFG_INT_LIST ? parse_int(items[i], &xi) : parse_double(items[i], &x);
            if (k->type == RD_CFG_INT_LIST) x = (double)xi;
            if (!ok)
                return rd_fail(err, RD_EINVAL, "%s: key '%s' expects %s, element %d is '%s'", where,
                               k->name, type_name(k->type), i, items[i]);
            if (x < k->min || x > k->max) return range_error(err, where, k, x);
            v.list[i] = x;
            char num[32];
            format_number(x, num, sizeof num);
            len += (size_t)snprintf(text + len, sizeof text - len, "%s%s", i ? ", " : "", num);
        }
        snprintf(text + len, sizeof text - len, "]");
        v.list_len = nitems;
        break;
    }
    }
    v.text = dup_string(k->type == RD_CFG_STRING ? s : text);
    if (!v.text) return rd_fail(err, RD_ENOMEM, "out of memory");
    v.origin = origin;
    free(cfg->values[idx].text);
    cfg->values[idx] = v;
    return RD_OK;
}

/* Splits "[a, b, c]" into trimmed elements in place. Returns the count or -1. */
static int split_flow_list(char *s, char **items, int max) {
    size_t n = strlen(s);
    if (n < 2 || s[0] != '[' || s[n - 1] != ']') return -1;
    s[n - 1] = '\0';
    s++;
    int count = 0;
    while (*s) {
        while (isspace((unsigned char)*s)) s++;
        if (!*s) break;
        if (count == max) return max + 1;
        char *comma = strchr(s, ',');
        if (comma) *comma = '\0';
        char *end = s + strlen(s);
        while (end > s && isspace((unsigned char)end[-1])) *--end = '\0';
        items[count++] = s;
        if (!comma) break;
        s = comma + 1;
    }
    return count;
}

rd_status rd_config_init(rd_config *cfg, rd_error *err) {
    cfg->keys = rd_config_schema(&cfg->nkeys);
    cfg->values = calloc((size_t)cfg->nkeys, sizeof *cfg->values);
    if (!cfg->values) return rd_fail(err, RD_ENOMEM, "out of memory");
    for (int i = 0; i < cfg->nkeys; i++) {
        char def[256];
        snprintf(def, sizeof def, "%s", cfg->keys[i].def);
        char *items[RD_CFG_LIST_MAX + 1];
        int n = -1;
        if (def[0] == '[')
            n = split_flow_list(def, items, RD_CFG_LIST_MAX);
        else
            items[0] = def;
        rd_status st = set_value(cfg, i, items, n, RD_CFG_FROM_DEFAULT, "built-in default", err);
        if (st) return st;
    }
    return RD_OK;
}

void rd_config_free(rd_config *cfg) {
    if (!cfg->values) return;
    for (int i = 0; i < cfg->nkeys; i++) free(cfg->values[i].text);
    free(cfg->values);
    cfg->values = NULL;
}

rd_status rd_config_copy(rd_config *dst, const rd_config *src, rd_error *err) {
    dst->keys = src->keys;
    dst->nkeys = src->nkeys;
    dst->values = calloc((size_t)src->nkeys, sizeof *dst->values);
    if (!dst->values) return rd_fail(err, RD_ENOMEM, "out of memory");
    for (int i = 0; i < src->nkeys; i++) {
        dst->values[i] = src->values[i];
        if (!(dst->values[i].text = dup_string(src->values[i].text)))
            return rd_fail(err, RD_ENOMEM, "out of memory"); /* later texts are NULL (calloc) */
    }
    return RD_OK;
}

static rd_status unknown_key(const rd_config *cfg, const char *where, const char *name,
                             rd_error *err) {
    char suggestion[KEY_MAX];
    return rd_fail(err, RD_ENOTFOUND, "%s: unknown key '%s' (did you mean '%s'?)", where, name,
                   closest_name(cfg, name, suggestion, sizeof suggestion));
}

rd_status rd_config_override(rd_config *cfg, const char *assignment, rd_error *err) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", assignment);
    char *eq = strchr(buf, '=');
    char where[1100];
    snprintf(where, sizeof where, "override '%s'", assignment);
    if (!eq || eq == buf) return rd_fail(err, RD_EINVAL, "%s: expected key.sub=value", where);
    *eq = '\0';
    char *value = eq + 1;
    int idx = find_key(cfg, buf);
    if (idx < 0) return unknown_key(cfg, where, buf, err);
    char *items[RD_CFG_LIST_MAX + 1];
    int n = -1;
    if (value[0] == '[') {
        n = split_flow_list(value, items, RD_CFG_LIST_MAX);
        if (n < 0) return rd_fail(err, RD_EINVAL, "%s: malformed list", where);
    } else {
        items[0] = value;
    }
    return set_value(cfg, idx, items, n, RD_CFG_FROM_OVERRIDE, where, err);
}

/* ---- YAML loading (libyaml event stream) ---- */

typedef struct yaml_walk {
    rd_config *cfg;
    const char *origin;
    yaml_parser_t parser;
    char seen[4096]; /* '\n'-separated keys already set by this document: duplicates are errors */
    size_t seen_len;
} yaml_walk;

static rd_status next_event(yaml_walk *w, yaml_event_t *ev, rd_error *err) {
    if (!yaml_parser_parse(&w->parser, ev))
        return rd_fail(err, RD_EFORMAT, "%s line %zu: YAML syntax error: %s", w->origin,
                       w->parser.problem_mark.line + 1,
                       w->parser.problem ? w->parser.problem : "unknown");
    return RD_OK;
}

static int seen_before(yaml_walk *w, const char *key) {
    size_t n = strlen(key);
    for (const char *p = w->seen; p < w->seen + w->seen_len;) {
        const char *nl = strchr(p, '\n');
        if ((size_t)(nl - p) == n && strncmp(p, key, n) == 0) return 1;
        p = nl + 1;
    }
    if (w->seen_len + n + 1 < sizeof w->seen) {
        memcpy(w->seen + w->seen_len, key, n);
        w->seen[w->seen_len + n] = '\n';
        w->seen_len += n + 1;
    }
    return 0;
}

static rd_status walk_mapping(yaml_walk *w, const char *prefix, int depth, rd_error *err);

/* Reads the value of 'key' (the event after the key scalar has been consumed). */
static rd_status walk_value(yaml_walk *w, const char *key, int depth, rd_error *err) {
    yaml_event_t ev;
    rd_status st = next_event(w, &ev, err);
    if (st) return st;
    char where[512];
    snprintf(where, sizeof where, "%s line %zu", w->origin, ev.start_mark.line + 1);
    int idx = find_key(w->cfg, key);
    if (ev.type == YAML_MAPPING_START_EVENT) {
        yaml_event_delete(&ev);
        if (idx >= 0)
            return rd_fail(err, RD_EINVAL, "%s: key '%s' expects %s, got a mapping", where, key,
                           type_name(w->cfg->keys[idx].type));
        if (!is_section(w->cfg, key)) return unknown_key(w->cfg, where, key, err);
        return walk_mapping(w, key, depth + 1, err);
    }
    if (idx < 0) {
        yaml_event_delete(&ev);
        if (is_section(w->cfg, key))
            return rd_fail(err, RD_EINVAL, "%s: '%s' is a section; it needs a mapping of keys",
                           where, key);
        return unknown_key(w->cfg, where, key, err);
    }
    if (seen_before(w, key)) {
        yaml_event_delete(&ev);
        return rd_fail(err, RD_EINVAL, "%s: key '%s' is given twice", where, key);
    }
    if (ev.type == YAML_SCALAR_EVENT) {
        char *items[1] = {(char *)ev.data.scalar.value};
        /* A plain null (~, null, empty) means "empty" for strings. */
        if (ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
            (strcmp(items[0], "~") == 0 || strcmp(items[0], "null") == 0))
            items[0] = "";
        st = set_value(w->cfg, idx, items, -1, RD_CFG_FROM_FILE, where, err);
        yaml_event_delete(&ev);
        return st;
    }
    if (ev.type == YAML_SEQUENCE_START_EVENT) {
        yaml_event_delete(&ev);
        char *items[RD_CFG_LIST_MAX];
        int n = 0;
        st = RD_OK;
        for (;;) {
            if ((st = next_event(w, &ev, err))) break;
            if (ev.type == YAML_SEQUENCE_END_EVENT) {
                yaml_event_delete(&ev);
                st = set_value(w->cfg, idx, items, n, RD_CFG_FROM_FILE, where, err);
                break;
            }
            if (ev.type != YAML_SCALAR_EVENT || n == RD_CFG_LIST_MAX) {
                yaml_event_delete(&ev);
                st =
                    rd_fail(err, RD_EINVAL, "%s: key '%s' expects a flat list of at most %d values",
                            where, key, RD_CFG_LIST_MAX);
                break;
            }
            items[n++] = dup_string((char *)ev.data.scalar.value);
            yaml_event_delete(&ev);
        }
        for (int i = 0; i < n; i++) free(items[i]);
        return st;
    }
    yaml_event_delete(&ev);
    return rd_fail(err, RD_EINVAL,
                   "%s: unsupported YAML construct for key '%s' (anchors and "
                   "aliases are not supported)",
                   where, key);
}

static rd_status walk_mapping(yaml_walk *w, const char *prefix, int depth, rd_error *err) {
    if (depth > DEPTH_MAX) return rd_fail(err, RD_EFORMAT, "%s: nesting too deep", w->origin);
    for (;;) {
        yaml_event_t ev;
        rd_status st = next_event(w, &ev, err);
        if (st) return st;
        if (ev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&ev);
            return RD_OK;
        }
        if (ev.type != YAML_SCALAR_EVENT) {
            size_t line = ev.start_mark.line + 1;
            yaml_event_delete(&ev);
            return rd_fail(err, RD_EFORMAT, "%s line %zu: expected a key", w->origin, line);
        }
        char key[KEY_MAX];
        int n = snprintf(key, sizeof key, "%s%s%s", prefix, *prefix ? "." : "",
                         (char *)ev.data.scalar.value);
        yaml_event_delete(&ev);
        if (n >= (int)sizeof key) return rd_fail(err, RD_EFORMAT, "%s: key too long", w->origin);
        if ((st = walk_value(w, key, depth, err))) return st;
    }
}

rd_status rd_config_load_string(rd_config *cfg, const char *yaml, const char *origin_name,
                                rd_error *err) {
    yaml_walk w = {.cfg = cfg, .origin = origin_name};
    if (!yaml_parser_initialize(&w.parser)) return rd_fail(err, RD_ENOMEM, "libyaml init failed");
    yaml_parser_set_input_string(&w.parser, (const unsigned char *)yaml, strlen(yaml));
    rd_status st = RD_OK;
    int done = 0;
    while (!done && st == RD_OK) {
        yaml_event_t ev;
        if ((st = next_event(&w, &ev, err))) break;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = 1;
            break;
        case YAML_MAPPING_START_EVENT:
            st = walk_mapping(&w, "", 0, err);
            break;
        case YAML_SCALAR_EVENT:
            /* An empty document is fine; a bare scalar is not a config. */
            if (ev.data.scalar.length > 0)
                st = rd_fail(err, RD_EFORMAT, "%s: expected a mapping of keys at the top level",
                             origin_name);
            break;
        case YAML_SEQUENCE_START_EVENT:
            st = rd_fail(err, RD_EFORMAT, "%s: expected a mapping of keys at the top level",
                         origin_name);
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&w.parser);
    return st;
}

rd_status rd_config_load_file(rd_config *cfg, const char *path, rd_error *err) {
    char *text;
    if (rd_read_file(path, &text, NULL, err)) return rd_wrap(err, "config");
    char origin[1100];
    snprintf(origin, sizeof origin, "config %s", path);
    rd_status st = rd_config_load_string(cfg, text, origin, err);
    free(text);
    return st;
}

rd_status rd_config_load_layer(rd_config *cfg, const char *path, const char *section,
                               rd_error *err) {
    rd_config layer;
    rd_status st = rd_config_init(&layer, err);
    if (!st) st = rd_config_load_file(&layer, path, err);
    size_t len = strlen(section);
    for (int i = 0; !st && i < cfg->nkeys; i++) {
        const char *name = cfg->keys[i].name;
        if (layer.values[i].origin != RD_CFG_FROM_FILE) continue;
        if (strncmp(name, section, len) != 0 || name[len] != '.')
            st = rd_fail(err, RD_EINVAL, "%s sets '%s': it may set %s.* keys only", path, name,
                         section);
    }
    /* Only after the whole file passed, so a refused layer leaves cfg unchanged. */
    for (int i = 0; !st && i < cfg->nkeys; i++) {
        if (layer.values[i].origin != RD_CFG_FROM_FILE) continue;
        if (cfg->values[i].origin == RD_CFG_FROM_OVERRIDE) continue;
        free(cfg->values[i].text);
        cfg->values[i] = layer.values[i];
        layer.values[i].text = NULL;
    }
    rd_config_free(&layer);
    return st;
}

/* ---- typed access ---- */

static const rd_cfg_value *lookup(const rd_config *cfg, const char *key, rd_cfg_type t1,
                                  rd_cfg_type t2) {
    int idx = find_key(cfg, key);
    if (idx < 0 || (cfg->keys[idx].type != t1 && cfg->keys[idx].type != t2)) {
        fprintf(stderr, "rdino bug: config key '%s' %s\n", key,
                idx < 0 ? "is not in the schema" : "is read with the wrong type");
        abort();
    }
    return &cfg->values[idx];
}

int64_t rd_cfg_int(const rd_config *cfg, const char *key) {
    return lookup(cfg, key, RD_CFG_INT, RD_CFG_INT)->integer;
}

double rd_cfg_float(const rd_config *cfg, const char *key) {
    return lookup(cfg, key, RD_CFG_FLOAT, RD_CFG_INT)->num;
}

int rd_cfg_bool(const rd_config *cfg, const char *key) {
    return lookup(cfg, key, RD_CFG_BOOL, RD_CFG_BOOL)->boolean;
}

const char *rd_cfg_str(const rd_config *cfg, const char *key) {
    return lookup(cfg, key, RD_CFG_STRING, RD_CFG_STRING)->text;
}

int rd_cfg_list(const rd_config *cfg, const char *key, double *out, int max) {
    const rd_cfg_value *v = lookup(cfg, key, RD_CFG_FLOAT_LIST, RD_CFG_INT_LIST);
    for (int i = 0; i < v->list_len && i < max; i++) out[i] = v->list[i];
    return v->list_len;
}

rd_cfg_origin rd_cfg_origin_of(const rd_config *cfg, const char *key) {
    int idx = find_key(cfg, key);
    return idx < 0 ? RD_CFG_FROM_DEFAULT : cfg->values[idx].origin;
}

/* ---- dump ---- */

typedef struct sbuf {
    char *data;
    size_t len, cap;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    if (!b->data) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap * 2 + (size_t)(n > 0 ? n : 0);
        char *d = realloc(b->data, cap);
        if (!d) {
            free(b->data);
            b->data = NULL;
            return;
        }
        b->data = d;
        b->cap = cap;
    }
}

static int needs_quotes(const char *s) {
    if (!*s) return 1;
    if (strpbrk(s, ":#{}[],&*!|>'\"%@`\n\\") || isspace((unsigned char)s[0]) ||
        isspace((unsigned char)s[strlen(s) - 1]))
        return 1;
    int b;
    double d;
    /* A string that would read back as a bool, number or null needs quotes too. */
    return parse_bool(s, &b) || parse_double(s, &d) || strcmp(s, "null") == 0 ||
           strcmp(s, "~") == 0;
}

static void sb_quoted(sbuf *b, const char *s) {
    sb_printf(b, "\"");
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            sb_printf(b, "\\%c", *s);
        else if (*s == '\n')
            sb_printf(b, "\\n");
        else
            sb_printf(b, "%c", *s);
    }
    sb_printf(b, "\"");
}

/* Number of leading dotted components shared by a and b. */
static int common_components(const char *a, const char *b) {
    int n = 0;
    for (size_t i = 0;; i++) {
        if (a[i] != b[i]) return n;
        if (a[i] == '.') n++;
        if (a[i] == '\0') return n;
    }
}

char *rd_config_dump(const rd_config *cfg) {
    sbuf b = {malloc(8192), 0, 8192};
    const char *prev = "";
    for (int i = 0; i < cfg->nkeys; i++) {
        const char *name = cfg->keys[i].name;
        int shared = common_components(prev, name);
        /* Open the sections this key enters. */
        int depth = 0;
        const char *p = name;
        for (const char *dot; (dot = strchr(p, '.')); p = dot + 1, depth++)
            if (depth >= shared) sb_printf(&b, "%*s%.*s:\n", 2 * depth, "", (int)(dot - p), p);
        const rd_cfg_value *v = &cfg->values[i];
        sb_printf(&b, "%*s%s: ", 2 * depth, "", p);
        if (cfg->keys[i].type == RD_CFG_STRING && needs_quotes(v->text))
            sb_quoted(&b, v->text);
        else
            sb_printf(&b, "%s", v->text);
        if (v->origin == RD_CFG_FROM_FILE) sb_printf(&b, "  # from file");
        if (v->origin == RD_CFG_FROM_OVERRIDE) sb_printf(&b, "  # override");
        sb_printf(&b, "\n");
        prev = name;
    }
    return b.data;
}
