/* The HDF5 store on one rank: round trips, atomic publish, error messages, Fletcher32 catching
 * a flipped byte, layouts, and a failed write discarded cleanly. Multi-rank writes are covered by
 * tests/shard/test_shard.sh and the embed tests. */
#include <math.h>
#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "harness.h"
#include "mpi_once.h"
#include "rdino/h5store.h"

static void path_in(rd_test *t, char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/%s", rd_test_tmpdir(t), name);
}

/* Creates <tmpdir>/<name> for writing on this rank (its final name into path[PATH_LEN]). */
enum { PATH_LEN = 700 };
static rd_status create_in(rd_test *t, rd_h5file *f, const char *name, char *path, rd_error *err) {
    path_in(t, path, PATH_LEN, name);
    return rd_h5_create(f, path, MPI_COMM_SELF, err);
}

/* A file with a 3-D uint8 image stack, a float vector, strings and attributes. */
static void write_sample(rd_test *t, const char *path, int deflate) {
    rd_error err = {0};
    rd_h5file f;
    CHECK_OK(rd_h5_create(&f, path, MPI_COMM_WORLD, &err), &err);
    CHECK(access(path, F_OK) != 0); /* only the temporary name exists while writing */
    CHECK(access(f.tmp_path, F_OK) == 0);
    int64_t dims[3] = {4, 8, 8};
    CHECK_OK(rd_h5_create_dataset(&f, "/images", RD_H5_U8, 3, dims, NULL, deflate, &err), &err);
    uint8_t pixels[4 * 64];
    for (int i = 0; i < 4 * 64; i++) pixels[i] = (uint8_t)(i * 37 + 5);
    CHECK_OK(rd_h5_write_rows(&f, "/images", RD_H5_U8, 0, 4, pixels, &err), &err);
    int64_t n = 5;
    CHECK_OK(rd_h5_create_dataset(&f, "/meta/age", RD_H5_F32, 1, &n, NULL, deflate, &err), &err);
    float age[5] = {1.5f, NAN, 60, 0, 99.25f};
    CHECK_OK(rd_h5_write_rows(&f, "/meta/age", RD_H5_F32, 0, 5, age, &err), &err);
    CHECK_OK(rd_h5_create_strings(&f, "/meta/id", 3, 6, 0, deflate, &err), &err);
    const char *ids[3] = {"a", "bbbbbb", "\xc3\xa9t\xc3\xa9"};
    CHECK_OK(rd_h5_write_strings(&f, "/meta/id", 0, 3, ids, &err), &err);
    CHECK_OK(rd_h5_set_attr_str(&f, "/", "config", "a: 1\nb: [2, 3]\n", &err), &err);
    CHECK_OK(rd_h5_set_attr_str(&f, "/", "config", "replaced", &err), &err);
    CHECK_OK(rd_h5_set_attr_int(&f, "/", "format_version", 7, &err), &err);
    CHECK_OK(rd_h5_set_attr_float(&f, "/meta/age", "scale", 0.25, &err), &err);
    CHECK_OK(rd_h5_publish(&f, &err), &err);
    CHECK(f.id < 0);
}

static void round_trip(rd_test *t, int deflate) {
    rd_test_need_mpi();
    char path[700];
    path_in(t, path, sizeof path, "sample.h5");
    write_sample(t, path, deflate);
    rd_error err = {0};
    rd_h5file f;
    CHECK_OK(rd_h5_open(&f, path, MPI_COMM_SELF, &err), &err);
    int64_t dims[RD_H5_MAX_DIMS];
    int ndim = 0;
    size_t width = 99;
    CHECK_OK(rd_h5_shape(&f, "/images", dims, &ndim, &width, &err), &err);
    CHECK(ndim == 3 && dims[0] == 4 && dims[1] == 8 && dims[2] == 8 && width == 0);
    rd_h5_type type = RD_H5_F64;
    CHECK_OK(rd_h5_dataset_type(&f, "/images", &type, &err), &err);
    CHECK(type == RD_H5_U8);
    uint8_t rows[2 * 64];
    CHECK_OK(rd_h5_read_rows(&f, "/images", RD_H5_U8, 1, 2, rows, &err), &err);
    for (int i = 0; i < 2 * 64; i++) CHECK(rows[i] == (uint8_t)((i + 64) * 37 + 5));
    float age[5];
    CHECK_OK(rd_h5_read_rows(&f, "/meta/age", RD_H5_F32, 0, 5, age, &err), &err);
    CHECK(age[0] == 1.5f && isnan(age[1]) && age[4] == 99.25f);
    char ids[3][8];
    CHECK_OK(rd_h5_read_strings(&f, "/meta/id", 0, 3, ids[0], 8, &err), &err);
    CHECK(strcmp(ids[0], "a") == 0 && strcmp(ids[1], "bbbbbb") == 0);
    CHECK(strcmp(ids[2], "\xc3\xa9t\xc3\xa9") == 0);
    CHECK(rd_h5_read_strings(&f, "/meta/id", 0, 3, ids[0], 6, &err) == RD_EINVAL);
    char *config = NULL;
    CHECK_OK(rd_h5_get_attr_str(&f, "/", "config", &config, &err), &err);
    CHECK(config && strcmp(config, "replaced") == 0);
    free(config);
    int64_t version = 0;
    double scale = 0;
    CHECK_OK(rd_h5_get_attr_int(&f, "/", "format_version", &version, &err), &err);
    CHECK_OK(rd_h5_get_attr_float(&f, "/meta/age", "scale", &scale, &err), &err);
    CHECK(version == 7 && scale == 0.25);
    CHECK(rd_h5_exists(&f, "/meta/age") && !rd_h5_exists(&f, "/meta/nope") &&
          !rd_h5_exists(&f, "/nope/deeper"));
    rd_h5_close(&f);
    rd_h5_close(&f); /* closing twice is harmless */
}

static void round_trip_plain(rd_test *t) {
    round_trip(t, 0);
}

static void round_trip_deflate(rd_test *t) {
    round_trip(t, 6);
}

static void discard_leaves_nothing(rd_test *t) {
    rd_test_need_mpi();
    char path[PATH_LEN];
    rd_error err = {0};
    rd_h5file f;
    CHECK_OK(create_in(t, &f, "gone.h5", path, &err), &err);
    int64_t n = 3;
    CHECK_OK(rd_h5_create_dataset(&f, "/x", RD_H5_I64, 1, &n, NULL, 0, &err), &err);
    char tmp[RD_PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", f.tmp_path);
    rd_h5_discard(&f);
    rd_h5_discard(&f);
    CHECK(access(path, F_OK) != 0);
    CHECK(access(tmp, F_OK) != 0);
}

static void errors_name_file_and_object(rd_test *t) {
    rd_test_need_mpi();
    char path[700], missing[700];
    path_in(t, path, sizeof path, "sample.h5");
    path_in(t, missing, sizeof missing, "missing.h5");
    write_sample(t, path, 0);
    rd_error err = {0};
    rd_h5file f;
    CHECK(rd_h5_open(&f, missing, MPI_COMM_SELF, &err) == RD_ENOTFOUND);
    CHECK_MSG(strstr(err.msg, missing) != NULL, "message: %s", err.msg);

    char not_h5[700];
    path_in(t, not_h5, sizeof not_h5, "text.h5");
    FILE *fp = fopen(not_h5, "w");
    fputs("not hdf5\n", fp);
    fclose(fp);
    CHECK(rd_h5_open(&f, not_h5, MPI_COMM_SELF, &err) == RD_EHDF5);
    CHECK_MSG(strstr(err.msg, not_h5) != NULL, "message: %s", err.msg);

    CHECK_OK(rd_h5_open(&f, path, MPI_COMM_SELF, &err), &err);
    float x[8];
    CHECK(rd_h5_read_rows(&f, "/meta/weight", RD_H5_F32, 0, 1, x, &err) == RD_ENOTFOUND);
    CHECK_MSG(strstr(err.msg, path) && strstr(err.msg, "/meta/weight"), "message: %s", err.msg);
    CHECK(rd_h5_read_rows(&f, "/meta/age", RD_H5_F32, 3, 3, x, &err) == RD_ERANGE);
    CHECK_MSG(strstr(err.msg, "/meta/age") != NULL, "message: %s", err.msg);
    char *s = NULL;
    CHECK(rd_h5_get_attr_str(&f, "/", "nope", &s, &err) == RD_ENOTFOUND && s == NULL);
    CHECK(rd_h5_get_attr_str(&f, "/", "format_version", &s, &err) == RD_EFORMAT && s == NULL);
    rd_h5_close(&f);

    char other[700];
    path_in(t, other, sizeof other, "long.h5");
    CHECK_OK(rd_h5_create(&f, other, MPI_COMM_WORLD, &err), &err);
    CHECK_OK(rd_h5_create_strings(&f, "/s", 1, 3, 0, 0, &err), &err);
    const char *too_long[1] = {"abcd"};
    CHECK(rd_h5_write_strings(&f, "/s", 0, 1, too_long, &err) == RD_ERANGE);
    CHECK_MSG(strstr(err.msg, "abcd") && strstr(err.msg, other), "message: %s", err.msg);
    rd_h5_discard(&f);
}

/* File offset of chunk `index` of a dataset, from HDF5's chunk index. */
static haddr_t chunk_address(const char *path, const char *dataset, hsize_t index) {
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t ds = H5Dopen2(file, dataset, H5P_DEFAULT);
    hid_t space = H5Dget_space(ds);
    hsize_t offset[3];
    unsigned mask = 0;
    haddr_t addr = HADDR_UNDEF;
    hsize_t size = 0;
    H5Dget_chunk_info(ds, space, index, offset, &mask, &addr, &size);
    H5Sclose(space);
    H5Dclose(ds);
    H5Fclose(file);
    return addr;
}

static void flip_byte(const char *path, long offset) {
    FILE *fp = fopen(path, "r+b");
    fseek(fp, offset, SEEK_SET);
    int c = fgetc(fp);
    fseek(fp, offset, SEEK_SET);
    fputc(c ^ 0x10, fp);
    fclose(fp);
}

static void fletcher32_catches_a_flipped_byte(rd_test *t) {
    rd_test_need_mpi();
    char path[700];
    path_in(t, path, sizeof path, "flip.h5");
    write_sample(t, path, 0);
    haddr_t addr = chunk_address(path, "/images", 2);
    CHECK(addr != HADDR_UNDEF);
    if (addr == HADDR_UNDEF) return;
    flip_byte(path, (long)addr + 10);
    rd_error err = {0};
    rd_h5file f;
    CHECK_OK(rd_h5_open(&f, path, MPI_COMM_SELF, &err), &err);
    uint8_t rows[4 * 64];
    CHECK_OK(rd_h5_read_rows(&f, "/images", RD_H5_U8, 0, 2, rows, &err), &err);
    CHECK(rd_h5_read_rows(&f, "/images", RD_H5_U8, 2, 1, rows, &err) == RD_EHDF5);
    CHECK_MSG(strstr(err.msg, path) && strstr(err.msg, "/images"), "message: %s", err.msg);
    CHECK_MSG(strstr(err.msg, "Fletcher32") || strstr(err.msg, "checksum"), "message: %s", err.msg);
    CHECK(rd_h5_read_rows(&f, "/images", RD_H5_U8, 0, 4, rows, &err) == RD_EHDF5);
    rd_h5_close(&f);
}

static void empty_dataset(rd_test *t) {
    rd_test_need_mpi();
    char path[PATH_LEN];
    rd_error err = {0};
    rd_h5file f;
    CHECK_OK(create_in(t, &f, "empty.h5", path, &err), &err);
    int64_t dims[2] = {0, 4};
    CHECK_OK(rd_h5_create_dataset(&f, "/cls", RD_H5_F32, 2, dims, NULL, 3, &err), &err);
    CHECK_OK(rd_h5_write_rows(&f, "/cls", RD_H5_F32, 0, 0, NULL, &err), &err);
    CHECK_OK(rd_h5_publish(&f, &err), &err);
    CHECK_OK(rd_h5_open(&f, path, MPI_COMM_SELF, &err), &err);
    int ndim = 0;
    CHECK_OK(rd_h5_shape(&f, "/cls", dims, &ndim, NULL, &err), &err);
    CHECK(ndim == 2 && dims[0] == 0 && dims[1] == 4);
    rd_h5_close(&f);
}

/* Without a filter a dataset is contiguous, its space allocated at creation (so a reader finds
 * row i at a fixed offset); with Fletcher32 it is chunked as asked. */
static void layout_follows_filters(rd_test *t) {
    rd_test_need_mpi();
    char path[PATH_LEN];
    rd_error err = {0};
    rd_h5file f;
    CHECK_OK(create_in(t, &f, "layout.h5", path, &err), &err);
    CHECK(f.fd >= 0); /* one rank: the POSIX driver */
    int64_t dims[3] = {4, 8, 8}, chunk[3] = {1, 8, 8};
    CHECK_OK(rd_h5_create_dataset(&f, "/checked", RD_H5_U8, 3, dims, chunk, 0, &err), &err);
    rd_h5_set_fletcher32(&f, 0);
    CHECK_OK(rd_h5_create_dataset(&f, "/plain", RD_H5_U8, 3, dims, chunk, 0, &err), &err);
    const char *names[2] = {"/checked", "/plain"};
    for (int i = 0; i < 2; i++) {
        hid_t ds = H5Dopen2(f.id, names[i], H5P_DEFAULT);
        hid_t dcpl = ds >= 0 ? H5Dget_create_plist(ds) : -1;
        H5D_layout_t layout = dcpl >= 0 ? H5Pget_layout(dcpl) : H5D_LAYOUT_ERROR;
        CHECK_MSG(layout == (i ? H5D_CONTIGUOUS : H5D_CHUNKED), "%s: layout %d", names[i],
                  (int)layout);
        if (i) CHECK(H5Dget_offset(ds) != HADDR_UNDEF); /* allocated before any write */
        if (dcpl >= 0) H5Pclose(dcpl);
        if (ds >= 0) H5Dclose(ds);
    }
    rd_h5_discard(&f);
}

/* A write that fails (here for a file size limit, EFBIG) is an error naming the file, the dataset
 * and the reason; discarding removes the file. (A disk that fills during a write: the
 * disk_filled_during_the_write test of tests/shard/test_shard.sh.) */
static void failed_write_is_discarded_cleanly(rd_test *t) {
    rd_test_need_mpi();
    char path[PATH_LEN], tmp[RD_PATH_MAX];
    rd_error err = {0};
    rd_h5file f;
    CHECK_OK(create_in(t, &f, "full.h5", path, &err), &err);
    snprintf(tmp, sizeof tmp, "%s", f.tmp_path);
    rd_h5_set_fletcher32(&f, 0);
    int64_t n = 1 << 20;
    CHECK_OK(rd_h5_create_dataset(&f, "/x", RD_H5_U8, 1, &n, NULL, 0, &err), &err);
    uint8_t *x = calloc((size_t)n, 1);
    struct rlimit old, small;
    CHECK(x && getrlimit(RLIMIT_FSIZE, &old) == 0);
    small = (struct rlimit){256 << 10, old.rlim_max};
    void (*handler)(int) = signal(SIGXFSZ, SIG_IGN);
    CHECK(setrlimit(RLIMIT_FSIZE, &small) == 0);
    rd_status st = x ? rd_h5_write_rows(&f, "/x", RD_H5_U8, 0, n, x, &err) : RD_ENOMEM;
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, handler);
    rd_h5_discard(&f);
    CHECK(st == RD_EHDF5);
    CHECK_MSG(strstr(err.msg, path) && strstr(err.msg, "/x") && strstr(err.msg, "too large"),
              "message: %s", err.msg);
    CHECK(access(path, F_OK) != 0 && access(tmp, F_OK) != 0);
    free(x);
}

static const rd_test_case cases[] = {
    {"round_trip_plain", round_trip_plain},
    {"round_trip_deflate", round_trip_deflate},
    {"discard_leaves_nothing", discard_leaves_nothing},
    {"errors_name_file_and_object", errors_name_file_and_object},
    {"fletcher32_catches_a_flipped_byte", fletcher32_catches_a_flipped_byte},
    {"empty_dataset", empty_dataset},
    {"layout_follows_filters", layout_follows_filters},
    {"failed_write_is_discarded_cleanly", failed_write_is_discarded_cleanly},
};

RD_TEST_MAIN("io/h5store", cases)
