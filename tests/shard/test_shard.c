/* The shard writer on one rank with images from memory: layout and attributes as documented in
 * docs/FORMATS.md, patient-level splits, rerun/skip, and failures that leave no shard behind.
 * Multi-rank identity, h5py/h5dump and kill -9 are in tests/shard/test_shard.sh. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "damage.h"
#include "harness.h"
#include "mpi_once.h"
#include "rdino/file.h"
#include "rdino/h5store.h"
#include "rdino/shard.h"
#include "rdino/shard_reader.h"

enum { N = 23, S = 6 };

typedef struct {
    rd_shard_image images[N];
    char ids[N][32], patients[N][32];
    int fail_at; /* the loader fails on this index (-1: never) */
    int depth;
} sample;

static const char *views[3] = {"PA", "AP", ""};

static void make_sample(sample *s, int depth) {
    s->fail_at = -1;
    s->depth = depth;
    for (int i = 0; i < N; i++) {
        snprintf(s->ids[i], sizeof s->ids[i], "img%03d.png", i);
        snprintf(s->patients[i], sizeof s->patients[i], "p%d", i / 3); /* 3 images a patient */
        s->images[i] = (rd_shard_image){.image_id = s->ids[i],
                                        .patient_id = s->patients[i],
                                        .view = views[i % 3],
                                        .file = s->ids[i],
                                        .age = i % 5 == 0 ? NAN : 20.0f + (float)i * 0.5f,
                                        .sex = (int8_t)(i % 3 - 1),
                                        .source_row = 2 + 2 * i};
    }
}

static unsigned pixel_value(int64_t index, int p) {
    return (unsigned)(index * 7919 + p * 31) & 0xffff;
}

static rd_status load_from_memory(void *ctx, const rd_shard_image *img, int64_t index, void *dst,
                                  rd_error *err) {
    const sample *s = ctx;
    if (index == s->fail_at) return rd_fail(err, RD_EFORMAT, "%s: cannot decode", img->file);
    for (int p = 0; p < S * S; p++) {
        if (s->depth == 16)
            ((uint16_t *)dst)[p] = (uint16_t)pixel_value(index, p);
        else
            ((uint8_t *)dst)[p] = (uint8_t)pixel_value(index, p);
    }
    return RD_OK;
}

static rd_shard_params params_in(const char *dir, int depth) {
    return (rd_shard_params){.output_dir = dir,
                             .num_shards = 3,
                             .val_fraction = 0.2,
                             .test_fraction = 0.2,
                             .split_seed = 5,
                             .deflate = 0,
                             .size = S,
                             .bit_depth = depth,
                             .batch = 4,
                             .config_yaml = "shard:\n  num_shards: 3\n",
                             .manifest_sha256 = "00ff",
                             .manifest_path = "manifest.csv",
                             .preprocess_yaml = "size: 6\n",
                             .tool_version = "rdino-shard test"};
}

/* Reads every shard back and compares it with the sample, row by row. */
static void check_shards(rd_test *t, const char *dir, const sample *s, const rd_shard_params *p) {
    rd_error err = {0};
    int64_t row = 0;
    for (int k = 0; k < p->num_shards; k++) {
        char path[700];
        rd_shard_path(path, sizeof path, dir, k);
        rd_h5file f;
        CHECK_OK(rd_h5_open(&f, path, MPI_COMM_SELF, &err), &err);
        if (f.id < 0) return;
        int64_t dims[RD_H5_MAX_DIMS], count = 0, value = 0, first = -1;
        int ndim = 0;
        CHECK_OK(rd_h5_shape(&f, "/images", dims, &ndim, NULL, &err), &err);
        CHECK(ndim == 3 && dims[1] == S && dims[2] == S);
        count = dims[0];
        CHECK(count == (int64_t)N * (k + 1) / 3 - (int64_t)N * k / 3);
        rd_h5_type type;
        CHECK_OK(rd_h5_dataset_type(&f, "/images", &type, &err), &err);
        CHECK(type == (p->bit_depth == 16 ? RD_H5_U16 : RD_H5_U8));
        const struct {
            const char *name;
            int64_t want;
        } ints[] = {{"format_version", RD_SHARD_FORMAT_VERSION},
                    {"shard_index", k},
                    {"shard_count", 3},
                    {"num_images", count},
                    {"total_images", N},
                    {"image_size", S},
                    {"bit_depth", p->bit_depth},
                    {"split_seed", 5}};
        for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
            CHECK_OK(rd_h5_get_attr_int(&f, "/", ints[i].name, &value, &err), &err);
            CHECK_MSG(value == ints[i].want, "%s: %lld, want %lld", ints[i].name, (long long)value,
                      (long long)ints[i].want);
        }
        CHECK_OK(rd_h5_get_attr_int(&f, "/", "first_row", &first, &err), &err);
        CHECK(first == row);
        const char *strs[][2] = {{"config", p->config_yaml},
                                 {"source_manifest_sha256", "00ff"},
                                 {"source_manifest", "manifest.csv"},
                                 {"preprocess", "size: 6\n"},
                                 {"creator", "rdino-shard test"}};
        for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
            char *got = NULL;
            CHECK_OK(rd_h5_get_attr_str(&f, "/", strs[i][0], &got, &err), &err);
            CHECK_MSG(got && strcmp(got, strs[i][1]) == 0, "%s: %s", strs[i][0], got);
            free(got);
        }
        double frac = 0;
        CHECK_OK(rd_h5_get_attr_float(&f, "/", "val_fraction", &frac, &err), &err);
        CHECK(frac == 0.2);

        size_t bytes = (size_t)count * S * S * (p->bit_depth == 16 ? 2 : 1);
        unsigned char *pixels = malloc(bytes);
        CHECK_OK(rd_h5_read_rows(&f, "/images", type, 0, count, pixels, &err), &err);
        char ids[N][32], patients[N][32], view[N][32];
        float age[N];
        int8_t sex[N];
        uint8_t split[N];
        int64_t source_row[N];
        CHECK_OK(rd_h5_read_strings(&f, "/meta/image_id", 0, count, ids[0], 32, &err), &err);
        CHECK_OK(rd_h5_read_strings(&f, "/meta/patient_id", 0, count, patients[0], 32, &err), &err);
        CHECK_OK(rd_h5_read_strings(&f, "/meta/view", 0, count, view[0], 32, &err), &err);
        CHECK_OK(rd_h5_read_rows(&f, "/meta/age", RD_H5_F32, 0, count, age, &err), &err);
        CHECK_OK(rd_h5_read_rows(&f, "/meta/sex", RD_H5_I8, 0, count, sex, &err), &err);
        CHECK_OK(rd_h5_read_rows(&f, "/meta/split", RD_H5_U8, 0, count, split, &err), &err);
        CHECK_OK(rd_h5_read_rows(&f, "/meta/source_row", RD_H5_I64, 0, count, source_row, &err),
                 &err);
        for (int64_t i = 0; i < count; i++, row++) {
            const rd_shard_image *img = &s->images[row];
            CHECK(strcmp(ids[i], img->image_id) == 0);
            CHECK(strcmp(patients[i], img->patient_id) == 0);
            CHECK(strcmp(view[i], img->view) == 0);
            CHECK((isnan(age[i]) && isnan(img->age)) || age[i] == img->age);
            CHECK(sex[i] == img->sex && source_row[i] == img->source_row);
            CHECK(split[i] == rd_split_of_patient(img->patient_id, 5, 0.2, 0.2));
            for (int q = 0; q < S * S; q++) {
                unsigned got = p->bit_depth == 16 ? ((uint16_t *)pixels)[i * S * S + q]
                                                  : pixels[i * S * S + q];
                unsigned want = pixel_value(row, q) & (p->bit_depth == 16 ? 0xffff : 0xff);
                if (got != want) {
                    CHECK_MSG(0, "shard %d image %lld pixel %d: %u, want %u", k, (long long)i, q,
                              got, want);
                    break;
                }
            }
        }
        free(pixels);
        rd_h5_close(&f);
    }
    CHECK(row == N);
}

static void writes_documented_layout(rd_test *t, int depth) {
    rd_test_need_mpi();
    const char *dir = rd_test_tmpdir(t);
    sample s;
    make_sample(&s, depth);
    rd_shard_params p = params_in(dir, depth);
    rd_shard_stats stats;
    rd_error err = {0};
    CHECK_OK(
        rd_shard_write_all(&p, s.images, N, load_from_memory, &s, MPI_COMM_WORLD, &stats, &err),
        &err);
    CHECK(stats.images == N && stats.shards_written == 3 && stats.shards_skipped == 0);
    CHECK(stats.per_split[0] + stats.per_split[1] + stats.per_split[2] == N);
    CHECK(stats.bytes_written > (double)N * S * S);
    check_shards(t, dir, &s, &p);

    char path[700];
    snprintf(path, sizeof path, "%s/index.json", dir);
    char *index;
    rd_error read_err = {0};
    CHECK_OK(rd_read_file(path, &index, NULL, &read_err), &read_err);
    if (t->failures) return;
    char want[200];
    snprintf(want, sizeof want, "\"splits\": {\"train\": %lld, \"val\": %lld, \"test\": %lld}",
             (long long)stats.per_split[0], (long long)stats.per_split[1],
             (long long)stats.per_split[2]);
    CHECK_MSG(strstr(index, want) != NULL, "index.json lacks %s:\n%s", want, index);
    CHECK(strstr(index, "\"file\": \"shard-00002.h5\", \"first_row\": 15, \"num_images\": 8"));
    CHECK(strstr(index, "\"num_images\": 23,") && strstr(index, "\"num_shards\": 3,"));
    free(index);
}

static void layout_8bit(rd_test *t) {
    writes_documented_layout(t, 8);
}

static void layout_16bit(rd_test *t) {
    writes_documented_layout(t, 16);
}

static void rerun_skips_current_shards(rd_test *t) {
    rd_test_need_mpi();
    const char *dir = rd_test_tmpdir(t);
    sample s;
    make_sample(&s, 8);
    rd_shard_params p = params_in(dir, 8);
    rd_shard_stats stats;
    rd_error err = {0};
    CHECK_OK(
        rd_shard_write_all(&p, s.images, N, load_from_memory, &s, MPI_COMM_WORLD, &stats, &err),
        &err);
    CHECK_OK(
        rd_shard_write_all(&p, s.images, N, load_from_memory, &s, MPI_COMM_WORLD, &stats, &err),
        &err);
    CHECK(stats.shards_skipped == 3 && stats.shards_written == 0);
    p.force = 1;
    CHECK_OK(
        rd_shard_write_all(&p, s.images, N, load_from_memory, &s, MPI_COMM_WORLD, &stats, &err),
        &err);
    CHECK(stats.shards_written == 3);
    /* A different split seed changes the content: every shard is rewritten. */
    p.force = 0;
    p.split_seed = 6;
    CHECK_OK(
        rd_shard_write_all(&p, s.images, N, load_from_memory, &s, MPI_COMM_WORLD, &stats, &err),
        &err);
    CHECK(stats.shards_written == 3 && stats.shards_skipped == 0);
    /* Fewer shards: the ones past the new count are removed. */
    p.num_shards = 2;
    CHECK_OK(
        rd_shard_write_all(&p, s.images, N, load_from_memory, &s, MPI_COMM_WORLD, &stats, &err),
        &err);
    char path[700];
    rd_shard_path(path, sizeof path, dir, 2);
    CHECK(access(path, F_OK) != 0);
}

static void loader_failure_leaves_no_shard(rd_test *t) {
    rd_test_need_mpi();
    const char *dir = rd_test_tmpdir(t);
    sample s;
    make_sample(&s, 8);
    s.fail_at = 10; /* in shard 1 (rows 7..14) */
    rd_shard_params p = params_in(dir, 8);
    rd_shard_stats stats;
    rd_error err = {0};
    CHECK(rd_shard_write_all(&p, s.images, N, load_from_memory, &s, MPI_COMM_WORLD, &stats, &err) ==
          RD_EFORMAT);
    CHECK_MSG(strstr(err.msg, "img010.png") && strstr(err.msg, "shard 1"), "message: %s", err.msg);
    char path[700];
    rd_shard_path(path, sizeof path, dir, 0);
    CHECK(access(path, F_OK) == 0); /* finished before the failure */
    rd_shard_path(path, sizeof path, dir, 1);
    CHECK(access(path, F_OK) != 0);
    snprintf(path, sizeof path, "%s/.shard-00001.h5.tmp", dir);
    CHECK(access(path, F_OK) != 0);
    snprintf(path, sizeof path, "%s/index.json", dir);
    CHECK(access(path, F_OK) != 0);
}

static void splits_are_by_patient_with_the_right_fractions(rd_test *t) {
    enum { PATIENTS = 20000 };
    int64_t count[3] = {0, 0, 0};
    char id[32];
    for (int i = 0; i < PATIENTS; i++) {
        snprintf(id, sizeof id, "%08d", i * 7 + 3);
        rd_split a = rd_split_of_patient(id, 42, 0.15, 0.05);
        CHECK(a == rd_split_of_patient(id, 42, 0.15, 0.05));
        count[a]++;
    }
    /* Binomial: 5 standard deviations of the count. */
    const double want[3] = {0.80, 0.15, 0.05};
    for (int k = 0; k < 3; k++) {
        double sd = sqrt(PATIENTS * want[k] * (1 - want[k]));
        CHECK_NEAR((double)count[k], PATIENTS * want[k], 5 * sd);
    }
    int differ = 0;
    for (int i = 0; i < 200; i++) {
        snprintf(id, sizeof id, "%d", i);
        differ += rd_split_of_patient(id, 1, 0.3, 0.3) != rd_split_of_patient(id, 2, 0.3, 0.3);
        CHECK(rd_split_of_patient(id, 1, 0, 0) == RD_SPLIT_TRAIN);
        CHECK(rd_split_of_patient(id, 1, 0, 1) == RD_SPLIT_TEST);
    }
    CHECK(differ > 50); /* the seed matters */
}

static void shard_count_and_bad_params(rd_test *t) {
    rd_test_need_mpi();
    CHECK(rd_shard_count(10, 0, 4) == 3);
    CHECK(rd_shard_count(10, 0, 10) == 1);
    CHECK(rd_shard_count(10, 20, 4) == 10);
    CHECK(rd_shard_count(1, 0, 1000) == 1);
    sample s;
    make_sample(&s, 8);
    rd_shard_params p = params_in(rd_test_tmpdir(t), 8);
    rd_shard_stats stats;
    rd_error err = {0};
    p.val_fraction = 0.9;
    CHECK(rd_shard_write_all(&p, s.images, N, load_from_memory, &s, MPI_COMM_WORLD, &stats, &err) ==
          RD_EINVAL);
    p = params_in(rd_test_tmpdir(t), 12);
    CHECK(rd_shard_write_all(&p, s.images, N, load_from_memory, &s, MPI_COMM_WORLD, &stats, &err) ==
          RD_EINVAL);
}

/* Finding label columns: written with their meaning, read back through the reader (names in
 * order, values per row), covered by the metadata digest (rd_shard_set_verify_shard; a rerun
 * with other labels rewrites every shard); names out of order are refused. */
static void finding_columns_written_read_and_verified(rd_test *t) {
    rd_test_need_mpi();
    const char *dir = rd_test_tmpdir(t);
    sample s;
    make_sample(&s, 8);
    static const char names[2][RD_FINDING_NAME_MAX] = {"finding_effusion", "finding_mass"};
    int8_t labels[N][2];
    for (int i = 0; i < N; i++) {
        labels[i][0] = (int8_t)(i % 3 - 1);
        labels[i][1] = (int8_t)(i % 2);
        s.images[i].findings = labels[i];
    }
    rd_shard_params p = params_in(dir, 8);
    p.nfindings = 2;
    p.finding = names;
    rd_shard_stats stats;
    rd_error err = {0};
    CHECK_OK(
        rd_shard_write_all(&p, s.images, N, load_from_memory, &s, MPI_COMM_WORLD, &stats, &err),
        &err);
    check_shards(t, dir, &s, &p);
    rd_shard_set set;
    CHECK_OK(rd_shard_set_open(&set, dir, 2, MPI_COMM_WORLD, &err), &err);
    if (t->failures) return;
    CHECK(set.nfindings == 2 && strcmp(set.finding[0], "finding_effusion") == 0 &&
          strcmp(set.finding[1], "finding_mass") == 0);
    int8_t got[2][N];
    CHECK_OK(rd_shard_set_read(&set, "/meta/finding_effusion", RD_H5_I8, 0, N, got[0], &err), &err);
    CHECK_OK(rd_shard_set_read(&set, "/meta/finding_mass", RD_H5_I8, 0, N, got[1], &err), &err);
    for (int i = 0; i < N; i++)
        CHECK_MSG(got[0][i] == labels[i][0] && got[1][i] == labels[i][1], "row %d: %d %d", i,
                  got[0][i], got[1][i]);
    for (int k = 0; k < set.count; k++) {
        int64_t bad = -1;
        CHECK_OK(rd_shard_set_verify_shard(&set, k, 4, NULL, NULL, &bad, &err), &err);
        CHECK(bad == 0);
    }
    rd_shard_set_close(&set);
    char path[700];
    rd_shard_path(path, sizeof path, dir, 0);
    rd_h5file f;
    char *meaning = NULL;
    CHECK_OK(rd_h5_open(&f, path, MPI_COMM_SELF, &err), &err);
    CHECK_OK(rd_h5_get_attr_str(&f, "/meta/finding_mass", "meaning", &meaning, &err), &err);
    CHECK(meaning && strcmp(meaning, RD_FINDING_MEANING) == 0);
    free(meaning);
    rd_h5_close(&f);

    CHECK_OK(
        rd_shard_write_all(&p, s.images, N, load_from_memory, &s, MPI_COMM_WORLD, &stats, &err),
        &err);
    CHECK(stats.shards_skipped == 3);
    labels[N - 1][1] ^= 1; /* in shard 2 only */
    CHECK_OK(
        rd_shard_write_all(&p, s.images, N, load_from_memory, &s, MPI_COMM_WORLD, &stats, &err),
        &err);
    CHECK_MSG(stats.shards_skipped == 2 && stats.shards_written == 1, "skipped %d, written %d",
              stats.shards_skipped, stats.shards_written);

    static const char unordered[2][RD_FINDING_NAME_MAX] = {"finding_mass", "finding_effusion"};
    p.finding = unordered;
    CHECK(rd_shard_write_all(&p, s.images, N, load_from_memory, &s, MPI_COMM_WORLD, &stats, &err) ==
          RD_EINVAL);
    CHECK_MSG(strstr(err.msg, "name order"), "message: %s", err.msg);
}

static void write_file(const char *path, const char *text) {
    FILE *fp = fopen(path, "w");
    if (fp) fputs(text, fp), fclose(fp);
}

static void manifest_read_and_errors(rd_test *t) {
    const char *dir = rd_test_tmpdir(t);
    char path[700];
    snprintf(path, sizeof path, "%s/manifest.csv", dir);
    const char *header = "image_id,file,patient_id,age,sex,view,width,height,source_row\n";
    char text[1024];
    snprintf(
        text, sizeof text,
        "%sa.png,images/a.png,P1,61.5,M,PA,8,8,2\n\"b,\"\"q\"\".png\",images/b.png,,,,,8,8,4\n",
        header);
    write_file(path, text);
    rd_shard_manifest m;
    rd_error err = {0};
    CHECK_OK(rd_shard_manifest_read(dir, &m, &err), &err);
    CHECK(m.n == 2 && m.size == 8 && strlen(m.sha256) == 64);
    if (m.n == 2) {
        CHECK(strcmp(m.images[1].image_id, "b,\"q\".png") == 0);
        CHECK(m.images[0].age == 61.5f && isnan(m.images[1].age));
        CHECK(m.images[0].sex == 1 && m.images[1].sex == -1 && m.images[1].source_row == 4);
        CHECK(strstr(m.images[0].file, dir) && strstr(m.images[0].file, "/images/a.png"));
        CHECK(strcmp(m.images[1].patient_id, "") == 0 && strcmp(m.images[1].view, "") == 0);
    }
    rd_shard_manifest_free(&m);

    /* finding label columns: in name order whatever the header's, 1 / 0 / empty = unknown */
    write_file(path, "image_id,file,patient_id,age,sex,view,width,height,source_row,finding_mass,"
                     "finding_effusion\na.png,images/a.png,P1,,,,8,8,2,1,\n"
                     "b.png,images/b.png,P2,,,,8,8,3,0,1\n");
    CHECK_OK(rd_shard_manifest_read(dir, &m, &err), &err);
    CHECK(m.n == 2 && m.nfindings == 2);
    if (m.n == 2 && m.nfindings == 2) {
        CHECK(strcmp(m.finding[0], "finding_effusion") == 0);
        CHECK(strcmp(m.finding[1], "finding_mass") == 0);
        CHECK(m.images[0].findings[0] == -1 && m.images[0].findings[1] == 1);
        CHECK(m.images[1].findings[0] == 1 && m.images[1].findings[1] == 0);
    }
    rd_shard_manifest_free(&m);
    write_file(path, "image_id,file,patient_id,age,sex,view,width,height,source_row,finding_x\n"
                     "a.png,images/a.png,P1,,,,8,8,2,yes\n");
    CHECK(rd_shard_manifest_read(dir, &m, &err) == RD_EFORMAT);
    CHECK_MSG(strstr(err.msg, "line 2: finding_x 'yes'"), "message: %s", err.msg);
    write_file(path, "image_id,file,patient_id,age,sex,view,width,height,source_row,finding_X\n"
                     "a.png,images/a.png,P1,,,,8,8,2,1\n");
    CHECK(rd_shard_manifest_read(dir, &m, &err) == RD_EFORMAT);
    CHECK_MSG(strstr(err.msg, "'finding_X'"), "message: %s", err.msg);

    const struct {
        const char *rows, *needle;
    } bad[] = {{"a.png,images/a.png,P1,old,M,PA,8,8,2\n", "age 'old'"},
               {"a.png,images/a.png,P1,60,X,PA,8,8,2\n", "sex 'X'"},
               {"a.png,images/a.png,P1,60,M,PA,8,8,2\nb.png,images/b.png,P1,60,M,PA,8,9,3\n",
                "line 3: image is 8x9"},
               {"a.png,images/a.png,P1,60,M,PA,8,8\n", "no 'source_row'"},
               {"", "no images"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(text, sizeof text, "%s%s", header, bad[i].rows);
        write_file(path, text);
        CHECK(rd_shard_manifest_read(dir, &m, &err) == RD_EFORMAT);
        CHECK_MSG(strstr(err.msg, bad[i].needle) && strstr(err.msg, path), "case %zu: %s", i,
                  err.msg);
    }
    write_file(path, "image_id,file,age\n");
    CHECK(rd_shard_manifest_read(dir, &m, &err) == RD_EFORMAT);
    CHECK_MSG(strstr(err.msg, "patient_id"), "message: %s", err.msg);
}

/* The one reader: images across shard boundaries equal what was written; a changed pixel is
 * RD_ECORRUPT naming shard file, rows and image id (and corrupt_row), read unverified with
 * verify 0; held files are not closed to make room, and a table full of holds is an error. */
static void reader_verifies_and_holds(rd_test *t) {
    rd_test_need_mpi();
    const char *dir = rd_test_tmpdir(t);
    sample s;
    make_sample(&s, 8);
    rd_shard_params p = params_in(dir, 8);
    rd_shard_stats stats;
    rd_error err = {0};
    CHECK_OK(
        rd_shard_write_all(&p, s.images, N, load_from_memory, &s, MPI_COMM_WORLD, &stats, &err),
        &err);
    rd_shard_set set;
    CHECK_OK(rd_shard_set_open(&set, dir, 2, MPI_COMM_WORLD, &err), &err);
    if (t->failures) return;
    CHECK(set.n == N && set.count == 3 && set.first_row[1] == 7 && set.first_row[2] == 15);
    static uint8_t pixels[N * S * S];
    CHECK_OK(rd_shard_set_read_images(&set, 0, N, pixels, &err), &err); /* all three shards */
    for (int i = 0; i < N * S * S; i++)
        if (pixels[i] != (uint8_t)pixel_value(i / (S * S), i % (S * S))) {
            CHECK_MSG(0, "image %d pixel %d differs", i / (S * S), i % (S * S));
            break;
        }
    rd_shard_set_close(&set);

    char shard1[700];
    rd_shard_path(shard1, sizeof shard1, dir, 1);
    CHECK(rd_test_poke_pixel(shard1, 2) == 0); /* set row 9 */
    CHECK_OK(rd_shard_set_open(&set, dir, 2, MPI_COMM_WORLD, &err), &err);
    if (t->failures) return;
    CHECK_OK(rd_shard_set_read_images(&set, 0, 9, pixels, &err), &err);
    CHECK(set.corrupt_row == -1);
    CHECK(rd_shard_set_read_images(&set, 5, 10, pixels, &err) == RD_ECORRUPT);
    CHECK_MSG(strstr(err.msg, "shard-00001.h5: row 2 (row 9 of the shards), image id "
                              "'img009.png'") &&
                  strstr(err.msg, "CRC32C"),
              "message: %s", err.msg);
    CHECK(set.corrupt_row == 9);
    set.verify = 0;
    CHECK_OK(rd_shard_set_read_images(&set, 5, 10, pixels, &err), &err);
    set.verify = 1;
    int64_t bad = 0;
    CHECK(rd_shard_set_verify_shard(&set, 1, 3, NULL, NULL, &bad, &err) == RD_ECORRUPT && bad == 1);
    CHECK_OK(rd_shard_set_verify_shard(&set, 2, 3, NULL, NULL, &bad, &err), &err);
    CHECK(bad == 0);

    /* two files open at most: rows of shards 0 and 2 held, shard 1 cannot come in */
    rd_shard_set_begin_holds(&set);
    CHECK_OK(rd_shard_set_hold(&set, 0, &err), &err);
    CHECK_OK(rd_shard_set_hold(&set, 20, &err), &err);
    int64_t opens = set.opens;
    CHECK_OK(rd_shard_set_read_images(&set, 21, 1, pixels, &err), &err);
    CHECK(set.opens == opens); /* a held file: no open */
    CHECK(rd_shard_set_hold(&set, 8, &err) == RD_ERANGE);
    CHECK_MSG(strstr(err.msg, "held") != NULL, "message: %s", err.msg);
    rd_shard_set_begin_holds(&set); /* the earlier holds end */
    CHECK_OK(rd_shard_set_hold(&set, 8, &err), &err);
    CHECK(set.opens == opens + 1);
    rd_shard_set_close(&set);
}

static const rd_test_case cases[] = {
    {"reader_verifies_and_holds", reader_verifies_and_holds},
    {"layout_8bit", layout_8bit},
    {"layout_16bit", layout_16bit},
    {"rerun_skips_current_shards", rerun_skips_current_shards},
    {"loader_failure_leaves_no_shard", loader_failure_leaves_no_shard},
    {"splits_are_by_patient_with_the_right_fractions",
     splits_are_by_patient_with_the_right_fractions},
    {"shard_count_and_bad_params", shard_count_and_bad_params},
    {"manifest_read_and_errors", manifest_read_and_errors},
    {"finding_columns_written_read_and_verified", finding_columns_written_read_and_verified},
};

RD_TEST_MAIN("shard/shard", cases)
