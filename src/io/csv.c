/* RFC 4180 tokenizer over a file held in memory; see csv.h. */
#include "rdino/csv.h"

#include <stdlib.h>
#include <string.h>

#include "rdino/file.h"

static rd_status take_text(rd_csv *csv, char *text, size_t len, const char *name, rd_error *err) {
    memset(csv, 0, sizeof *csv);
    csv->text = text;
    csv->len = len;
    csv->line = 1;
    csv->name = strdup(name);
    if (!csv->name) {
        free(text);
        csv->text = NULL;
        return rd_fail(err, RD_ENOMEM, "%s: out of memory", name);
    }
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) csv->pos = 3; /* UTF-8 BOM */
    return RD_OK;
}

rd_status rd_csv_open_string(rd_csv *csv, const char *text, size_t len, const char *name,
                             rd_error *err) {
    char *copy = malloc(len + 1);
    if (!copy) return rd_fail(err, RD_ENOMEM, "%s: out of memory", name);
    memcpy(copy, text, len);
    copy[len] = '\0';
    return take_text(csv, copy, len, name, err);
}

rd_status rd_csv_open(rd_csv *csv, const char *path, rd_error *err) {
    memset(csv, 0, sizeof *csv);
    char *text;
    size_t len;
    if (rd_read_file(path, &text, &len, err)) return err ? err->code : RD_EIO;
    return take_text(csv, text, len, path, err);
}

void rd_csv_close(rd_csv *csv) {
    free(csv->name);
    free(csv->text);
    free(csv->buf);
    free(csv->offsets);
    free(csv->fields);
    memset(csv, 0, sizeof *csv);
}

static int put_char(rd_csv *csv, char c) {
    if (csv->buf_len == csv->buf_cap) {
        size_t cap = csv->buf_cap ? 2 * csv->buf_cap : 256;
        char *bigger = realloc(csv->buf, cap);
        if (!bigger) return -1;
        csv->buf = bigger;
        csv->buf_cap = cap;
    }
    csv->buf[csv->buf_len++] = c;
    return 0;
}

static int start_field(rd_csv *csv, int nfields) {
    if (nfields == csv->fields_cap) {
        int cap = csv->fields_cap ? 2 * csv->fields_cap : 16;
        size_t *offsets = realloc(csv->offsets, (size_t)cap * sizeof *offsets);
        if (!offsets) return -1;
        csv->offsets = offsets;
        char **fields = realloc(csv->fields, (size_t)cap * sizeof *fields);
        if (!fields) return -1;
        csv->fields = fields;
        csv->fields_cap = cap;
    }
    csv->offsets[nfields] = csv->buf_len;
    return 0;
}

/* Length of the line end at pos (CRLF 2, LF or lone CR 1), 0 when there is none. */
static size_t line_end_at(const rd_csv *csv, size_t pos) {
    if (pos >= csv->len) return 0;
    if (csv->text[pos] == '\n') return 1;
    if (csv->text[pos] == '\r') return pos + 1 < csv->len && csv->text[pos + 1] == '\n' ? 2 : 1;
    return 0;
}

/* Skips lines holding nothing but spaces and tabs. */
static void skip_blank_lines(rd_csv *csv) {
    for (;;) {
        size_t p = csv->pos;
        while (p < csv->len && (csv->text[p] == ' ' || csv->text[p] == '\t')) p++;
        size_t eol = line_end_at(csv, p);
        if (p >= csv->len) {
            csv->pos = p;
            return;
        }
        if (!eol) return;
        csv->pos = p + eol;
        csv->line++;
    }
}

/* Copies one byte of field content; NUL bytes cannot live in C strings and are dropped. */
static int put_content(rd_csv *csv, char c, const char **problem) {
    if (c == '\0') {
        *problem = "NUL byte in a field";
        return 0;
    }
    return put_char(csv, c);
}

/* Reads a quoted field starting at the opening quote. Returns -1 when out of memory. */
static int read_quoted(rd_csv *csv, const char **problem) {
    const char *t = csv->text;
    csv->pos++;
    for (;;) {
        if (csv->pos >= csv->len) {
            *problem = "unterminated quoted field (the rest of the file was read into it)";
            return 0;
        }
        char c = t[csv->pos];
        if (c == '"') {
            if (csv->pos + 1 < csv->len && t[csv->pos + 1] == '"') {
                if (put_char(csv, '"')) return -1;
                csv->pos += 2;
                continue;
            }
            csv->pos++;
            break;
        }
        size_t eol = line_end_at(csv, csv->pos);
        if (eol) {
            for (size_t k = 0; k < eol; k++)
                if (put_char(csv, t[csv->pos + k])) return -1;
            csv->pos += eol;
            csv->line++;
            continue;
        }
        if (put_content(csv, c, problem)) return -1;
        csv->pos++;
    }
    /* After the closing quote only a comma or the end of the line may follow. */
    if (csv->pos < csv->len && t[csv->pos] != ',' && !line_end_at(csv, csv->pos)) {
        *problem = "text after a closing quote";
        while (csv->pos < csv->len && t[csv->pos] != ',' && !line_end_at(csv, csv->pos))
            if (put_content(csv, t[csv->pos++], problem)) return -1;
    }
    return 0;
}

int rd_csv_next(rd_csv *csv, rd_csv_record *rec, rd_error *err) {
    skip_blank_lines(csv);
    if (csv->pos >= csv->len) return 0;
    const char *t = csv->text;
    rec->line = csv->line;
    rec->problem = NULL;
    csv->buf_len = 0;
    int n = 0;
    for (;;) {
        if (start_field(csv, n)) goto oom;
        if (csv->pos < csv->len && t[csv->pos] == '"') {
            if (read_quoted(csv, &rec->problem)) goto oom;
        } else {
            /* Unquoted: a stray quote inside is kept as a literal, as spreadsheets do. */
            while (csv->pos < csv->len && t[csv->pos] != ',' && !line_end_at(csv, csv->pos))
                if (put_content(csv, t[csv->pos++], &rec->problem)) goto oom;
        }
        if (put_char(csv, '\0')) goto oom;
        n++;
        if (csv->pos < csv->len && t[csv->pos] == ',') {
            csv->pos++;
            continue;
        }
        size_t eol = line_end_at(csv, csv->pos);
        if (eol) {
            csv->pos += eol;
            csv->line++;
        }
        break;
    }
    for (int i = 0; i < n; i++) csv->fields[i] = csv->buf + csv->offsets[i];
    rec->fields = csv->fields;
    rec->nfields = n;
    return 1;
oom:
    rd_fail(err, RD_ENOMEM, "%s line %lld: out of memory", csv->name, (long long)rec->line);
    return -1;
}

void rd_csv_put_field(FILE *out, const char *value) {
    if (!strpbrk(value, ",\"\r\n")) {
        fputs(value, out);
        return;
    }
    fputc('"', out);
    for (const char *p = value; *p; p++) {
        if (*p == '"') fputc('"', out);
        fputc(*p, out);
    }
    fputc('"', out);
}
