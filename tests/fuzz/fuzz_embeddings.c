/* rdino-analyze's checks of its embedding files (analyze/analyze_inputs.c, rd_analyze_load). The
 * input does not feed HDF5's own parser (that is libhdf5's to fuzz): it describes one or two
 * embedding files, which the harness writes with the HDF5 store and hands to rd_analyze_load.
 * Byte 0: bit 0 cls, bit 1 patch_mean, bit 2 a second file, bit 3 split filter {train} only,
 * bits 4-7 which dataset of the first file to leave out (0 none, 1 split, 2 sex, 3 age,
 * 4 patient_id, 5 cls, 6 image_id, 7 format_version). Byte 1: rows (low nibble) and, for the
 * second file, a row difference (high nibble). Byte 2: features D (low 3 bits), a string width.
 * Then, while bytes last: per row split, sex, age (float32) and ids; then every feature value as
 * float32 bytes (NaNs and infinities included). Checks: a failure has a message that names an
 * embedding file; a success keeps only finite features and rows inside the file. */
#include "fuzz_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpi_once.h"
#include "rdino/analyze.h"
#include "rdino/h5store.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    rd_test_need_mpi();
    return 0;
}

/* The input read front to back; zeros once it runs out. */
typedef struct reader {
    const uint8_t *p;
    size_t left;
} reader;

static uint8_t next_byte(reader *r) {
    if (!r->left) return 0;
    r->left--;
    return *r->p++;
}

static float next_float(reader *r) {
    uint8_t b[4];
    for (int i = 0; i < 4; i++) b[i] = next_byte(r);
    float v;
    memcpy(&v, b, sizeof v);
    return v;
}

enum { MAX_ROWS = 16, MAX_D = 8 };

/* Writes an embedding file of n rows, features [n, d]; omit names a dataset left out. */
static rd_status write_file(const char *path, reader *r, int n, int d, int width, int omit,
                            int features, rd_error *err) {
    uint8_t split[MAX_ROWS];
    int8_t sex[MAX_ROWS];
    float age[MAX_ROWS], x[MAX_ROWS * MAX_D];
    char ids[MAX_ROWS][8], pids[MAX_ROWS][8];
    const char *id_ptr[MAX_ROWS], *pid_ptr[MAX_ROWS];
    for (int i = 0; i < n; i++) {
        split[i] = next_byte(r) % 4;
        sex[i] = (int8_t)(next_byte(r) % 3) - 1;
        age[i] = next_float(r);
        uint8_t id = next_byte(r), pid = next_byte(r);
        /* Ids are short printable strings; a patient byte of 0 gives an empty patient id. */
        snprintf(ids[i], sizeof ids[i], "i%d", id % 24);
        snprintf(pids[i], sizeof pids[i], "%.*s", pid ? 4 : 0, "pqrs" + pid % 4);
        id_ptr[i] = ids[i];
        pid_ptr[i] = pids[i];
    }
    for (int i = 0; i < n * d; i++) x[i] = next_float(r);
    rd_h5file f;
    rd_status st = rd_h5_create(&f, path, MPI_COMM_SELF, err);
    if (st) return st;
    int64_t rows[1] = {n}, shape[2] = {n, d};
    if (omit != 7) st = rd_h5_set_attr_int(&f, "/", "format_version", 1, err);
    if (!st) st = rd_h5_set_attr_str(&f, "/", "encoder", "fuzz", err);
    if (!st && omit != 6) st = rd_h5_create_strings(&f, "/meta/image_id", n, width, 0, 0, err);
    if (!st && omit != 6) st = rd_h5_write_strings(&f, "/meta/image_id", 0, n, id_ptr, err);
    if (!st && omit != 4) st = rd_h5_create_strings(&f, "/meta/patient_id", n, width, 0, 0, err);
    if (!st && omit != 4) st = rd_h5_write_strings(&f, "/meta/patient_id", 0, n, pid_ptr, err);
    if (!st && omit != 1)
        st = rd_h5_create_dataset(&f, "/meta/split", RD_H5_U8, 1, rows, 0, 0, err);
    if (!st && omit != 1) st = rd_h5_write_rows(&f, "/meta/split", RD_H5_U8, 0, n, split, err);
    if (!st && omit != 2) st = rd_h5_create_dataset(&f, "/meta/sex", RD_H5_I8, 1, rows, 0, 0, err);
    if (!st && omit != 2) st = rd_h5_write_rows(&f, "/meta/sex", RD_H5_I8, 0, n, sex, err);
    if (!st && omit != 3) st = rd_h5_create_dataset(&f, "/meta/age", RD_H5_F32, 1, rows, 0, 0, err);
    if (!st && omit != 3) st = rd_h5_write_rows(&f, "/meta/age", RD_H5_F32, 0, n, age, err);
    static const char *const sets[2] = {"/cls", "/patch_mean"};
    for (int s = 0; s < 2 && !st; s++) {
        if (!(features & (1 << s)) || (s == 0 && omit == 5)) continue;
        st = rd_h5_create_dataset(&f, sets[s], RD_H5_F32, 2, shape, NULL, 0, err);
        if (!st) st = rd_h5_write_rows(&f, sets[s], RD_H5_F32, 0, n, x, err);
    }
    if (st) {
        rd_h5_discard(&f);
        return st;
    }
    return rd_h5_publish(&f, err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    reader r = {data, size};
    uint8_t flags = next_byte(&r), rows = next_byte(&r), shape = next_byte(&r);
    int features = flags & 3 ? flags & 3 : 1, two = flags >> 2 & 1, omit = flags >> 4 & 7;
    int n = rows % MAX_ROWS, n2 = (n + (rows >> 4)) % MAX_ROWS;
    int d = 1 + shape % MAX_D, width = 1 + (shape >> 3) % 8;
    rd_error err = {0};
    char paths[2][512];
    snprintf(paths[0], sizeof paths[0], "%s/a.h5", rd_fuzz_dir());
    snprintf(paths[1], sizeof paths[1], "%s/b.h5", rd_fuzz_dir());
    /* Writing fails for strings longer than the width: that input is simply not a file. */
    if (write_file(paths[0], &r, n, d, width, omit, features, &err)) return 0;
    if (two && write_file(paths[1], &r, n2, d, width, 0, features, &err)) return 0;
    char *files[2] = {paths[0], paths[1]};
    rd_analyze_params p = {.embeddings = files,
                           .nembeddings = 1 + two,
                           .use_cls = features & 1,
                           .use_patch_mean = features >> 1 & 1,
                           .splits = flags & 8 ? 1u : 7u};
    rd_analyze_data out;
    if (rd_analyze_load(&p, &out, &err)) {
        RD_FUZZ_CHECK(err.msg[0]);
        RD_FUZZ_CHECK(strstr(err.msg, "/a.h5") || strstr(err.msg, "/b.h5"));
        return 0;
    }
    RD_FUZZ_CHECK(out.n > 0 && out.n <= out.file_rows);
    for (int i = 0; i < out.n; i++) RD_FUZZ_CHECK(out.file_row[i] < out.file_rows);
    for (int k = 0; k < out.nreps; k++)
        for (size_t j = 0; j < (size_t)out.n * (size_t)out.reps[k].d; j++)
            RD_FUZZ_CHECK(isfinite(out.reps[k].x[j]));
    rd_analyze_data_free(&out);
    return 0;
}
