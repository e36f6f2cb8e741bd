/* An RFC 4180 CSV tokenizer for the metadata files users bring: quoted fields with embedded
 * commas, quotes ("") and newlines; CRLF, LF or lone CR line ends; a UTF-8 byte-order mark;
 * blank lines (skipped). Each record carries the line number where it starts, so every
 * message can point the user at the line in their editor. The tokenizer knows nothing about
 * columns: field counts, trailing commas and headers are the readers' business (metadata.h).
 *
 * A record that breaks the grammar (text after a closing quote, a quote that never closes) is
 * still returned, with its fields so far and `problem` set, so one bad row does not stop a
 * million-row file. An unterminated quote swallows the rest of the file: that is the only
 * reading RFC 4180 allows, and the message names the line where the quote opened. */
#ifndef RDINO_CSV_H
#define RDINO_CSV_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "rdino/error.h"

typedef struct rd_csv_record {
    char **fields; /* nfields NUL-terminated strings, unquoted; valid until the next read */
    int nfields;
    int64_t line;        /* 1-based line where the record starts */
    const char *problem; /* NULL, or why the record breaks the CSV grammar */
} rd_csv_record;

typedef struct rd_csv {
    char *name; /* file name for messages */
    char *text; /* the whole file, NUL-terminated */
    size_t len, pos;
    int64_t line;
    /* record storage, reused between records */
    char *buf;
    size_t buf_len, buf_cap;
    size_t *offsets;
    char **fields;
    int fields_cap;
} rd_csv;

/* Reads the whole file (metadata files are megabytes, not gigabytes). */
rd_status rd_csv_open(rd_csv *csv, const char *path, rd_error *err);
/* Tokenizes a copy of text; name is used in messages. */
rd_status rd_csv_open_string(rd_csv *csv, const char *text, size_t len, const char *name,
                             rd_error *err);
/* Returns 1 with the next record, 0 at the end of the file, or -1 when out of memory. */
int rd_csv_next(rd_csv *csv, rd_csv_record *rec, rd_error *err);
void rd_csv_close(rd_csv *csv);

/* Writes value as one CSV field, quoted only when it must be (comma, quote, CR or LF). */
void rd_csv_put_field(FILE *out, const char *value);

#endif
