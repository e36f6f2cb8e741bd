/* rd_embed_run on one rank with a tiny random-init ViT and tiny shards written here with the
 * shard writer: the file layout, /cls and /patch_mean against a direct rd_vit_forward of each
 * image (input normalised here by hand), metadata rows against the shards read directly, the
 * resolution change (image resampling + pos-embed interpolation), batch-size independence, and
 * errors that name the file. 1 vs 3 ranks and the program itself: tests/embed/test_embed.sh. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "damage.h"
#include "harness.h"
#include "mpi_once.h"
#include "rdino/embed.h"
#include "rdino/h5store.h"
#include "rdino/log.h"
#include "rdino/rng.h"
#include "rdino/sha256.h"
#include "rdino/shard.h"

enum { N = 23, S = 16, K = 3 };

static const float MEAN = 0.5307f, STD = 0.2583f;

/* ---- fixtures ------------------------------------------------------------------------------ */

typedef struct sample {
    rd_shard_image images[N];
    char ids[N][32], patients[N][32];
    int8_t findings[N][2]; /* FINDINGS: 1, 0, -1 */
    int depth;
} sample;

static const char FINDINGS[2][RD_FINDING_NAME_MAX] = {"finding_edema", "finding_no_finding"};

static const char *VIEWS[3] = {"PA", "AP", ""};

static void make_sample(sample *s, int depth) {
    s->depth = depth;
    for (int i = 0; i < N; i++) {
        snprintf(s->ids[i], sizeof s->ids[i], "img%03d.png", i);
        snprintf(s->patients[i], sizeof s->patients[i], "patient-%d", i / 2);
        s->images[i] = (rd_shard_image){.image_id = s->ids[i],
                                        .patient_id = s->patients[i],
                                        .view = VIEWS[i % 3],
                                        .file = s->ids[i],
                                        .age = i % 4 == 0 ? NAN : 30.0f + (float)i,
                                        .sex = (int8_t)(i % 3 - 1),
                                        .source_row = 2 + 3 * i,
                                        .findings = s->findings[i]};
        s->findings[i][0] = (int8_t)(i % 3 - 1);
        s->findings[i][1] = (int8_t)(i % 2);
    }
}

/* A smooth image with noise, different for every index. */
static rd_status load_image(void *ctx, const rd_shard_image *img, int64_t index, void *dst,
                            rd_error *err) {
    (void)img, (void)err;
    const sample *s = ctx;
    rd_rng r;
    rd_rng_init(&r, 11, RD_RNG_TEST, 0, (uint64_t)index, 0);
    double maxval = s->depth == 16 ? 65535.0 : 255.0;
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            double v = 0.5 + 0.3 * sin(0.3 * x + 0.2 * y + (double)index) +
                       0.2 * (rd_rng_uniform(&r) - 0.5);
            unsigned q = (unsigned)(v * maxval + 0.5);
            if (s->depth == 16)
                ((uint16_t *)dst)[y * S + x] = (uint16_t)q;
            else
                ((uint8_t *)dst)[y * S + x] = (uint8_t)q;
        }
    return RD_OK;
}

/* Writes K shards of the sample into dir; held_out = val and test fractions (0.3 each, or 0:
 * every image in train). */
static void write_shards_split(rd_test *t, const char *dir, int depth, double held_out) {
    rd_test_need_mpi();
    sample s;
    make_sample(&s, depth);
    rd_shard_params p = {.output_dir = dir,
                         .num_shards = K,
                         .val_fraction = held_out,
                         .test_fraction = held_out,
                         .split_seed = 3,
                         .size = S,
                         .bit_depth = depth,
                         .batch = 5,
                         .config_yaml = "",
                         .manifest_sha256 = "00",
                         .manifest_path = "manifest.csv",
                         .preprocess_yaml = "",
                         .tool_version = "test_embed",
                         .nfindings = 2,
                         .finding = FINDINGS};
    rd_shard_stats stats;
    rd_error err = {0};
    CHECK_OK(rd_shard_write_all(&p, s.images, N, load_image, &s, MPI_COMM_WORLD, &stats, &err),
             &err);
}

static void write_shards(rd_test *t, const char *dir, int depth) {
    write_shards_split(t, dir, depth, 0.3);
}

/* A tiny ViT whose every part matters: 2 registers, LayerScale 1, D = 40 (GEMM tails). */
static int tiny_backbone(rd_test *t, rd_vit *vit, rd_param_set *set, uint64_t seed) {
    rd_config cfg;
    rd_error err = {0};
    CHECK_OK(rd_config_init(&cfg, &err), &err);
    const char *overrides[] = {
        "student.arch=vit_custom",       "student.embed_dim=40",  "student.depth=2",
        "student.num_heads=4",           "student.patch_size=4",  "crops.global_crops_size=16",
        "student.num_register_tokens=2", "student.layerscale=1.0"};
    for (size_t i = 0; i < sizeof overrides / sizeof *overrides; i++)
        CHECK_OK(rd_config_override(&cfg, overrides[i], &err), &err);
    rd_status st = rd_embed_random_backbone(&cfg, seed, vit, set, &err);
    CHECK_OK(st, &err);
    rd_config_free(&cfg);
    return st == RD_OK;
}

static rd_embed_params params_for(const char *shards, const char *output) {
    return (rd_embed_params){.shards_dir = shards,
                             .output = output,
                             .encoder = "random-init",
                             .init = "random",
                             .checkpoint = "none",
                             .seed = 7,
                             .model_config = "student:\n  arch: vit_custom\n",
                             .config = "embed: {}\n",
                             .creator = "test_embed",
                             .resolution = 0,
                             .kernel = RD_KERNEL_CUBIC,
                             .mean = MEAN,
                             .std = STD,
                             .splits = 7,
                             .batch = 4};
}

static void path_in(char *buf, size_t n, const char *dir, const char *name) {
    snprintf(buf, n, "%s/%s", dir, name);
}

/* A test's folder with shards written and a tiny backbone. */
typedef struct fixture {
    const char *dir;
    char shards[512];
    rd_vit vit;
    rd_param_set set;
} fixture;

static int setup(rd_test *t, fixture *fx, int depth, uint64_t seed) {
    fx->dir = rd_test_tmpdir(t);
    path_in(fx->shards, sizeof fx->shards, fx->dir, "shards");
    write_shards(t, fx->shards, depth);
    return tiny_backbone(t, &fx->vit, &fx->set, seed) && !t->failures;
}

/* Embeds into <dir>/name (output receives the path) with p's settings. */
static void embed(rd_test *t, fixture *fx, rd_embed_params *p, const char *name, char *output,
                  size_t output_size, rd_embed_stats *stats) {
    rd_error err = {0};
    path_in(output, output_size, fx->dir, name);
    p->shards_dir = fx->shards;
    p->output = output;
    CHECK_OK(rd_embed_run(p, &fx->vit, &fx->set, MPI_COMM_WORLD, stats, &err), &err);
}

/* The selected rows of one split mask, read from the shards' /meta/split directly. */
static int64_t split_rows(rd_test *t, const char *dir, unsigned mask, int64_t *rows) {
    int64_t n = 0, row = 0;
    rd_error err = {0};
    for (int k = 0; k < K; k++) {
        char path[600];
        rd_shard_path(path, sizeof path, dir, k);
        rd_h5file f;
        CHECK_OK(rd_h5_open(&f, path, MPI_COMM_SELF, &err), &err);
        int64_t dims[RD_H5_MAX_DIMS];
        int ndim;
        uint8_t split[N];
        CHECK_OK(rd_h5_shape(&f, "/meta/split", dims, &ndim, NULL, &err), &err);
        CHECK_OK(rd_h5_read_rows(&f, "/meta/split", RD_H5_U8, 0, dims[0], split, &err), &err);
        for (int64_t i = 0; i < dims[0]; i++, row++)
            if (mask & (1u << split[i])) rows[n++] = row;
        rd_h5_close(&f);
    }
    return n;
}

/* Opens the shard holding global row `row`; *local receives the row inside it. */
static int open_shard_of(rd_test *t, const char *dir, int64_t row, rd_h5file *f, int64_t *local) {
    rd_error err = {0};
    for (int k = 0; k < K; k++) {
        int64_t first = (int64_t)N * k / K, end = (int64_t)N * (k + 1) / K;
        if (row < first || row >= end) continue;
        char path[600];
        rd_shard_path(path, sizeof path, dir, k);
        rd_status st = rd_h5_open(f, path, MPI_COMM_SELF, &err);
        CHECK_OK(st, &err);
        *local = row - first;
        return st == RD_OK;
    }
    return 0;
}

/* The model input of shard row `row` at resolution r, computed here: v / 255, resampled with
 * the image module when r != S, then (x - mean) / std. */
static void reference_input(rd_test *t, const char *dir, int64_t row, int r, float *out) {
    rd_h5file f;
    int64_t local;
    if (!open_shard_of(t, dir, row, &f, &local)) return;
    uint8_t pixels[S * S];
    rd_error err = {0};
    CHECK_OK(rd_h5_read_rows(&f, "/images", RD_H5_U8, local, 1, pixels, &err), &err);
    rd_h5_close(&f);
    if (r == S) {
        for (int i = 0; i < S * S; i++) out[i] = ((float)pixels[i] / 255.0f - MEAN) / STD;
        return;
    }
    rd_resampler rs = {0};
    rd_grey_image img = {S, S, 8, pixels};
    rd_geometry g = rd_geometry_resize(S, S, r, r);
    CHECK_OK(rd_resample_grey(&rs, &img, &g, RD_KERNEL_CUBIC, out, &err), &err);
    for (int i = 0; i < r * r; i++) out[i] = (out[i] - MEAN) / STD;
    rd_resampler_free(&rs);
}

static float *read_features(rd_test *t, const char *path, const char *name, int64_t n, int D) {
    rd_h5file f;
    rd_error err = {0};
    float *x = calloc((size_t)n * D, sizeof *x);
    CHECK_OK(rd_h5_open(&f, path, MPI_COMM_SELF, &err), &err);
    int64_t dims[RD_H5_MAX_DIMS];
    int ndim = 0;
    CHECK_OK(rd_h5_shape(&f, name, dims, &ndim, NULL, &err), &err);
    CHECK_MSG(ndim == 2 && dims[0] == n && dims[1] == D, "%s: shape [%lld, %lld], want [%lld, %d]",
              name, (long long)dims[0], (long long)dims[1], (long long)n, D);
    if (ndim == 2 && dims[0] == n && dims[1] == D)
        CHECK_OK(rd_h5_read_rows(&f, name, RD_H5_F32, 0, n, x, &err), &err);
    rd_h5_close(&f);
    return x;
}

/* Every selected image against a direct single-image forward: CLS and the patch mean (in
 * double here). Tolerance 2e-6 absolute on LayerNorm outputs of size ~1: the same arithmetic
 * in another batch position (OpenBLAS's kernels give bit-identical rows; this allows for one
 * that does not). */
static void check_against_forward(rd_test *t, const char *shards, const char *output,
                                  const rd_vit *vit, const rd_param_set *set, int r,
                                  unsigned mask) {
    int64_t rows[N];
    int64_t n = split_rows(t, shards, mask, rows);
    int D = vit->cfg.embed_dim;
    float *cls = read_features(t, output, "/cls", n, D);
    float *pmean = read_features(t, output, "/patch_mean", n, D);
    rd_vit_context ctx;
    rd_error err = {0};
    CHECK_OK(rd_vit_context_init(&ctx, vit, 1, r, r, RD_VIT_INFER, &err), &err);
    float *input = malloc((size_t)r * r * sizeof *input), *want = malloc((size_t)D * sizeof *want);
    for (int64_t i = 0; i < n && !t->failures; i++) {
        reference_input(t, shards, rows[i], r, input);
        rd_vit_output out;
        CHECK_OK(rd_vit_forward(&ctx, set, input, 1, 1, r, r, NULL, NULL, &out, &err), &err);
        if (t->failures) break;
        CHECK_CLOSE("cls", cls + (size_t)i * D, out.cls, (size_t)D, 0.0, 2e-6);
        for (int c = 0; c < D; c++) {
            double sum = 0;
            for (int p = 0; p < out.n_patches; p++) sum += out.patch[(size_t)p * D + c];
            want[c] = (float)(sum / out.n_patches);
        }
        CHECK_CLOSE("patch_mean", pmean + (size_t)i * D, want, (size_t)D, 0.0, 2e-6);
        CHECK(out.n_patches == (r / 4) * (r / 4));
    }
    rd_vit_context_free(&ctx);
    free(input), free(want), free(cls), free(pmean);
}

/* ---- cases --------------------------------------------------------------------------------- */

static void layout_and_attributes(rd_test *t) {
    fixture fx;
    if (!setup(t, &fx, 8, 7)) return;
    char output[512];
    rd_embed_params p = params_for(NULL, NULL);
    rd_embed_stats stats;
    rd_error err = {0};
    embed(t, &fx, &p, "emb/sub/random-init.h5", output, sizeof output, &stats);
    CHECK(stats.images == N && stats.embed_dim == 40 && stats.resolution == S);
    rd_h5file f;
    CHECK_OK(rd_h5_open(&f, output, MPI_COMM_SELF, &err), &err);
    if (t->failures) return;
    const struct {
        const char *name;
        rd_h5_type type;
        int ndim;
        int64_t cols;
    } datasets[] = {{"/cls", RD_H5_F32, 2, 40},
                    {"/patch_mean", RD_H5_F32, 2, 40},
                    {"/meta/image_id", RD_H5_STRING, 1, 0},
                    {"/meta/patient_id", RD_H5_STRING, 1, 0},
                    {"/meta/view", RD_H5_STRING, 1, 0},
                    {"/meta/age", RD_H5_F32, 1, 0},
                    {"/meta/sex", RD_H5_I8, 1, 0},
                    {"/meta/split", RD_H5_U8, 1, 0},
                    {"/meta/source_row", RD_H5_I64, 1, 0},
                    {"/meta/shard_row", RD_H5_I64, 1, 0}};
    for (size_t i = 0; i < sizeof datasets / sizeof *datasets; i++) {
        int64_t dims[RD_H5_MAX_DIMS];
        int ndim = 0;
        rd_h5_type type;
        CHECK_OK(rd_h5_shape(&f, datasets[i].name, dims, &ndim, NULL, &err), &err);
        CHECK_OK(rd_h5_dataset_type(&f, datasets[i].name, &type, &err), &err);
        CHECK_MSG(ndim == datasets[i].ndim && dims[0] == N && type == datasets[i].type &&
                      (ndim == 1 || dims[1] == datasets[i].cols),
                  "%s: rank %d, %lld rows, type %d", datasets[i].name, ndim, (long long)dims[0],
                  (int)type);
    }
    const struct {
        const char *name, *want;
    } strings[] = {{"encoder", "random-init"}, {"checkpoint", "none"},
                   {"init", "random"},         {"model_config", "student:\n  arch: vit_custom\n"},
                   {"shards", fx.shards},      {"splits", "train,val,test"},
                   {"resample", "none"}};
    for (size_t i = 0; i < sizeof strings / sizeof *strings; i++) {
        char *value = NULL;
        CHECK_OK(rd_h5_get_attr_str(&f, "/", strings[i].name, &value, &err), &err);
        CHECK_MSG(value && strcmp(value, strings[i].want) == 0, "attribute %s = '%s', want '%s'",
                  strings[i].name, value ? value : "(none)", strings[i].want);
        free(value);
    }
    char *digest = NULL, want_digest[65], index[600];
    path_in(index, sizeof index, fx.shards, "index.json");
    CHECK_OK(rd_sha256_file(index, want_digest, &err), &err);
    CHECK_OK(rd_h5_get_attr_str(&f, "/", "shards_index_sha256", &digest, &err), &err);
    CHECK(digest && strcmp(digest, want_digest) == 0);
    free(digest);
    const struct {
        const char *name;
        int64_t want;
    } ints[] = {{"format_version", RD_EMBED_FORMAT_VERSION},
                {"resolution", S},
                {"image_size", S},
                {"num_images", N},
                {"embed_dim", 40},
                {"seed", 7}};
    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++) {
        int64_t value = -1;
        CHECK_OK(rd_h5_get_attr_int(&f, "/", ints[i].name, &value, &err), &err);
        CHECK_MSG(value == ints[i].want, "attribute %s = %lld, want %lld", ints[i].name,
                  (long long)value, (long long)ints[i].want);
    }
    double mean = 0, std = 0;
    CHECK_OK(rd_h5_get_attr_float(&f, "/", "mean", &mean, &err), &err);
    CHECK_OK(rd_h5_get_attr_float(&f, "/", "std", &std, &err), &err);
    CHECK_NEAR(mean, MEAN, 1e-7);
    CHECK_NEAR(std, STD, 1e-7);
    rd_h5_close(&f);
    /* only the published file is left in its folder */
    char tmp[600];
    path_in(tmp, sizeof tmp, fx.dir, "emb/sub/.random-init.h5.tmp");
    CHECK(access(tmp, F_OK) != 0);
    rd_params_free(&fx.set);
}

static void cls_equals_direct_forward(rd_test *t) {
    fixture fx;
    if (!setup(t, &fx, 8, 7)) return;
    char output[512];
    rd_embed_params p = params_for(NULL, NULL);
    rd_embed_stats stats;
    embed(t, &fx, &p, "e.h5", output, sizeof output, &stats);
    if (!t->failures) check_against_forward(t, fx.shards, output, &fx.vit, &fx.set, S, 7);
    rd_params_free(&fx.set);
}

/* Another resolution: the image resampled (cubic) and the positional embedding interpolated
 * (24 px = a 6x6 grid from the native 4x4). */
static void resolution_change(rd_test *t) {
    fixture fx;
    if (!setup(t, &fx, 8, 7)) return;
    char native[512], output[512];
    rd_embed_params p = params_for(NULL, NULL);
    rd_embed_stats stats;
    rd_error err = {0};
    embed(t, &fx, &p, "native.h5", native, sizeof native, &stats);
    p.resolution = 24;
    embed(t, &fx, &p, "r24.h5", output, sizeof output, &stats);
    CHECK(stats.resolution == 24);
    if (t->failures) return;
    check_against_forward(t, fx.shards, output, &fx.vit, &fx.set, 24, 7);
    float *a = read_features(t, native, "/cls", N, 40),
          *b = read_features(t, output, "/cls", N, 40);
    double diff = 0;
    for (int i = 0; i < N * 40; i++) diff = fmax(diff, fabs(a[i] - b[i]));
    CHECK_MSG(diff > 1e-3, "24 px gives the same CLS as 16 px (max diff %g)", diff);
    rd_h5file f;
    char *kernel = NULL;
    CHECK_OK(rd_h5_open(&f, output, MPI_COMM_SELF, &err), &err);
    CHECK_OK(rd_h5_get_attr_str(&f, "/", "resample", &kernel, &err), &err);
    CHECK(kernel && strcmp(kernel, "cubic") == 0);
    free(kernel);
    rd_h5_close(&f);
    free(a), free(b);
    rd_params_free(&fx.set);
}

/* Rows with a split in the mask, in shard order, with every /meta column of the shards (the
 * finding labels too). */
static void meta_rows_match_shards(rd_test *t) {
    fixture fx;
    if (!setup(t, &fx, 16, 7)) return;
    char output[512];
    rd_embed_params p = params_for(NULL, NULL);
    unsigned mask = (1u << RD_SPLIT_VAL) | (1u << RD_SPLIT_TEST);
    p.splits = mask;
    p.batch = 3;
    rd_embed_stats stats;
    rd_error err = {0};
    embed(t, &fx, &p, "valtest.h5", output, sizeof output, &stats);
    int64_t rows[N];
    int64_t n = split_rows(t, fx.shards, mask, rows);
    CHECK_MSG(n > 2 && n < N, "%lld val/test rows of %d: the split fractions give both",
              (long long)n, N);
    CHECK(stats.images == n);
    rd_h5file f;
    CHECK_OK(rd_h5_open(&f, output, MPI_COMM_SELF, &err), &err);
    if (t->failures) return;
    char ids[N][64], patients[N][64], views[N][64];
    float age[N];
    int8_t sex[N];
    uint8_t split[N];
    int64_t source_row[N], shard_row[N];
    int8_t findings[2][N];
    for (int k = 0; k < 2; k++) {
        char name[2 * RD_FINDING_NAME_MAX + 8], *meaning = NULL;
        snprintf(name, sizeof name, "/meta/%s", FINDINGS[k]);
        CHECK_OK(rd_h5_read_rows(&f, name, RD_H5_I8, 0, n, findings[k], &err), &err);
        CHECK_OK(rd_h5_get_attr_str(&f, name, "meaning", &meaning, &err), &err);
        CHECK(meaning && strcmp(meaning, RD_FINDING_MEANING) == 0);
        free(meaning);
    }
    CHECK_OK(rd_h5_read_strings(&f, "/meta/image_id", 0, n, ids[0], 64, &err), &err);
    CHECK_OK(rd_h5_read_strings(&f, "/meta/patient_id", 0, n, patients[0], 64, &err), &err);
    CHECK_OK(rd_h5_read_strings(&f, "/meta/view", 0, n, views[0], 64, &err), &err);
    CHECK_OK(rd_h5_read_rows(&f, "/meta/age", RD_H5_F32, 0, n, age, &err), &err);
    CHECK_OK(rd_h5_read_rows(&f, "/meta/sex", RD_H5_I8, 0, n, sex, &err), &err);
    CHECK_OK(rd_h5_read_rows(&f, "/meta/split", RD_H5_U8, 0, n, split, &err), &err);
    CHECK_OK(rd_h5_read_rows(&f, "/meta/source_row", RD_H5_I64, 0, n, source_row, &err), &err);
    CHECK_OK(rd_h5_read_rows(&f, "/meta/shard_row", RD_H5_I64, 0, n, shard_row, &err), &err);
    rd_h5_close(&f);
    for (int64_t i = 0; i < n && !t->failures; i++) {
        rd_h5file g;
        int64_t local;
        if (!open_shard_of(t, fx.shards, rows[i], &g, &local)) return;
        char want_id[64], want_patient[64], want_view[64];
        float want_age;
        int8_t want_sex;
        uint8_t want_split;
        int64_t want_source;
        int8_t want_findings[2];
        CHECK_OK(
            rd_h5_read_rows(&g, "/meta/finding_edema", RD_H5_I8, local, 1, &want_findings[0], &err),
            &err);
        CHECK_OK(rd_h5_read_rows(&g, "/meta/finding_no_finding", RD_H5_I8, local, 1,
                                 &want_findings[1], &err),
                 &err);
        CHECK_OK(rd_h5_read_strings(&g, "/meta/image_id", local, 1, want_id, 64, &err), &err);
        CHECK_OK(rd_h5_read_strings(&g, "/meta/patient_id", local, 1, want_patient, 64, &err),
                 &err);
        CHECK_OK(rd_h5_read_strings(&g, "/meta/view", local, 1, want_view, 64, &err), &err);
        CHECK_OK(rd_h5_read_rows(&g, "/meta/age", RD_H5_F32, local, 1, &want_age, &err), &err);
        CHECK_OK(rd_h5_read_rows(&g, "/meta/sex", RD_H5_I8, local, 1, &want_sex, &err), &err);
        CHECK_OK(rd_h5_read_rows(&g, "/meta/split", RD_H5_U8, local, 1, &want_split, &err), &err);
        CHECK_OK(rd_h5_read_rows(&g, "/meta/source_row", RD_H5_I64, local, 1, &want_source, &err),
                 &err);
        rd_h5_close(&g);
        CHECK_MSG(strcmp(ids[i], want_id) == 0 && strcmp(patients[i], want_patient) == 0 &&
                      strcmp(views[i], want_view) == 0,
                  "row %lld: '%s' '%s' '%s', shard row %lld has '%s' '%s' '%s'", (long long)i,
                  ids[i], patients[i], views[i], (long long)rows[i], want_id, want_patient,
                  want_view);
        CHECK((isnan(age[i]) && isnan(want_age)) || age[i] == want_age);
        CHECK(sex[i] == want_sex && split[i] == want_split && (mask & (1u << split[i])));
        CHECK(source_row[i] == want_source && shard_row[i] == rows[i]);
        CHECK_MSG(findings[0][i] == want_findings[0] && findings[1][i] == want_findings[1],
                  "row %lld: findings %d %d, shard row %lld has %d %d", (long long)i,
                  findings[0][i], findings[1][i], (long long)rows[i], want_findings[0],
                  want_findings[1]);
    }
    /* the 16-bit images went through the /65535 path: compare with a forward on them */
    float *cls = read_features(t, output, "/cls", n, 40);
    rd_h5file g;
    int64_t local;
    uint16_t pixels[S * S];
    float input[S * S];
    if (open_shard_of(t, fx.shards, rows[n - 1], &g, &local)) {
        CHECK_OK(rd_h5_read_rows(&g, "/images", RD_H5_U16, local, 1, pixels, &err), &err);
        rd_h5_close(&g);
        for (int i = 0; i < S * S; i++) input[i] = ((float)pixels[i] / 65535.0f - MEAN) / STD;
        rd_vit_context ctx;
        rd_vit_output out;
        CHECK_OK(rd_vit_context_init(&ctx, &fx.vit, 1, S, S, RD_VIT_INFER, &err), &err);
        CHECK_OK(rd_vit_forward(&ctx, &fx.set, input, 1, 1, S, S, NULL, NULL, &out, &err), &err);
        if (!t->failures) CHECK_CLOSE("cls (16 bit)", cls + (n - 1) * 40, out.cls, 40, 0.0, 2e-6);
        rd_vit_context_free(&ctx);
    }
    free(cls);
    rd_params_free(&fx.set);
}

/* Batch 1, 4 and 23 (all at once) give the same datasets up to rounding: rows do not depend on
 * their batch neighbours beyond BLAS picking other kernels for other matrix sizes (OpenBLAS
 * 0.3.21 does for small ones). That is why ranks take whole batches of a global grid: the
 * rank-count identity (tests/embed/test_embed.sh) must not depend on it. */
static void batch_size_changes_only_rounding(rd_test *t) {
    fixture fx;
    if (!setup(t, &fx, 8, 9)) return;
    const int batches[3] = {1, 4, N};
    float *cls[3], *pm[3];
    for (int k = 0; k < 3; k++) {
        char name[32], output[512];
        snprintf(name, sizeof name, "b%d.h5", batches[k]);
        rd_embed_params p = params_for(NULL, NULL);
        p.batch = batches[k];
        rd_embed_stats stats;
        embed(t, &fx, &p, name, output, sizeof output, &stats);
        cls[k] = read_features(t, output, "/cls", N, 40);
        pm[k] = read_features(t, output, "/patch_mean", N, 40);
    }
    for (int k = 1; k < 3; k++) {
        CHECK_CLOSE("cls", cls[k], cls[0], (size_t)N * 40, 0.0, 2e-6);
        CHECK_CLOSE("patch_mean", pm[k], pm[0], (size_t)N * 40, 0.0, 2e-6);
        int same = memcmp(cls[0], cls[k], sizeof(float) * N * 40) == 0;
        fprintf(stderr, "note: batch 1 and batch %d: /cls %s\n", batches[k],
                same ? "bit-identical" : "equal to rounding only");
    }
    for (int k = 0; k < 3; k++) free(cls[k]), free(pm[k]);
    rd_params_free(&fx.set);
}

static void random_init_is_seeded(rd_test *t) {
    rd_vit a, b, c;
    rd_param_set sa, sb, sc;
    if (!tiny_backbone(t, &a, &sa, 5) || !tiny_backbone(t, &b, &sb, 5) ||
        !tiny_backbone(t, &c, &sc, 6))
        return;
    CHECK(sa.numel == sb.numel && sa.numel == sc.numel);
    CHECK(memcmp(sa.data, sb.data, sa.numel * sizeof(float)) == 0);
    CHECK(memcmp(sa.data, sc.data, sa.numel * sizeof(float)) != 0);
    CHECK(sa.grad == NULL); /* an encoder needs no gradients */
    rd_params_free(&sa), rd_params_free(&sb), rd_params_free(&sc);
}

static void model_yaml_loads_back(rd_test *t) {
    rd_config cfg, back;
    rd_error err = {0};
    CHECK_OK(rd_config_init(&cfg, &err), &err);
    CHECK_OK(rd_config_init(&back, &err), &err);
    CHECK_OK(rd_config_override(&cfg, "student.arch=vit_small", &err), &err);
    CHECK_OK(rd_config_override(&cfg, "student.num_register_tokens=4", &err), &err);
    CHECK_OK(rd_config_override(&cfg, "student.pretrained_weights=a \"b\" c\\d", &err), &err);
    CHECK_OK(rd_config_override(&cfg, "crops.global_crops_size=518", &err), &err);
    CHECK_OK(rd_config_override(&cfg, "pretrain.augment.std=0.25", &err), &err);
    char *yaml = rd_embed_model_yaml(&cfg);
    CHECK(yaml != NULL);
    if (!yaml) return;
    CHECK(strstr(yaml, "optim") == NULL && strstr(yaml, "local_crops_size") == NULL &&
          strstr(yaml, "flip_p") == NULL);
    CHECK_OK(rd_config_load_string(&back, yaml, "model_config", &err), &err);
    CHECK(strcmp(rd_cfg_str(&back, "student.arch"), "vit_small") == 0);
    CHECK(rd_cfg_int(&back, "student.num_register_tokens") == 4);
    CHECK(rd_cfg_int(&back, "crops.global_crops_size") == 518);
    CHECK(rd_cfg_float(&back, "pretrain.augment.std") == 0.25);
    CHECK(strstr(yaml, "# override") == NULL); /* no origin notes in the stored text */
    CHECK(strcmp(rd_cfg_str(&back, "student.pretrained_weights"), "a \"b\" c\\d") == 0);
    free(yaml);
    rd_config_free(&cfg), rd_config_free(&back);
}

static void splits_and_rank_batches(rd_test *t) {
    unsigned mask = 0;
    rd_error err = {0};
    CHECK_OK(rd_embed_parse_splits("train,val,test", &mask, &err), &err);
    CHECK(mask == 7);
    CHECK_OK(rd_embed_parse_splits(" test , val", &mask, &err), &err);
    CHECK(mask == ((1u << RD_SPLIT_TEST) | (1u << RD_SPLIT_VAL)));
    CHECK_OK(rd_embed_parse_splits("all", &mask, &err), &err);
    CHECK(mask == 7);
    CHECK(rd_embed_parse_splits("train,validation", &mask, &err) == RD_EINVAL);
    CHECK(strstr(err.msg, "embed.splits") && strstr(err.msg, "'validation'"));
    CHECK(rd_embed_parse_splits("", &mask, &err) == RD_EINVAL);
    CHECK(rd_embed_parse_splits("train,", &mask, &err) == RD_EINVAL);
    /* contiguous, covering, sizes within one */
    for (int64_t nb = 0; nb < 20; nb++)
        for (int ranks = 1; ranks <= 7; ranks++) {
            int64_t expect = 0, lo = nb, hi = 0;
            for (int r = 0; r < ranks; r++) {
                int64_t first, end;
                rd_embed_rank_batches(nb, ranks, r, &first, &end);
                CHECK(first == expect && end >= first);
                expect = end;
                lo = end - first < lo ? end - first : lo;
                hi = end - first > hi ? end - first : hi;
            }
            CHECK(expect == nb && hi - lo <= 1);
        }
}

static void patch_mean_is_the_token_mean(rd_test *t) {
    enum { B = 2, n = 5, D = 70 };
    float patch[B * n * D], out[B * D];
    for (int i = 0; i < B * n * D; i++) patch[i] = (float)((i * 37) % 101) / 7.0f - 3.0f;
    rd_embed_patch_mean(patch, B, n, D, out);
    for (int b = 0; b < B; b++)
        for (int c = 0; c < D; c++) {
            double sum = 0;
            for (int p = 0; p < n; p++) sum += patch[(b * n + p) * D + c];
            CHECK_NEAR(out[b * D + c], sum / n, 1e-6);
        }
}

/* ---- errors --------------------------------------------------------------------------------- */

/* Runs the embedding expecting failure with a message containing `part` (and `part2`, if not
 * NULL), and no file (published or temporary) at output. */
static void expect_failure(rd_test *t, const rd_embed_params *p, const rd_vit *vit,
                           const rd_param_set *set, const char *part, const char *part2) {
    rd_embed_stats stats;
    rd_error err = {0};
    rd_status st = rd_embed_run(p, vit, set, MPI_COMM_WORLD, &stats, &err);
    CHECK_MSG(st != RD_OK, "embedding succeeded; expected an error naming %s", part);
    CHECK_MSG(strstr(err.msg, part) != NULL && (!part2 || strstr(err.msg, part2) != NULL),
              "error '%s' does not name '%s'%s%s", err.msg, part, part2 ? " and " : "",
              part2 ? part2 : "");
    CHECK_MSG(access(p->output, F_OK) != 0, "%s exists after a failed run", p->output);
    fprintf(stderr, "note: error: %s\n", err.msg);
    char tmp[700];
    const char *slash = strrchr(p->output, '/');
    snprintf(tmp, sizeof tmp, "%.*s/.%s.tmp", (int)(slash - p->output), p->output, slash + 1);
    CHECK_MSG(access(tmp, F_OK) != 0, "%s left behind", tmp);
}

/* cp src dst */
static int copy_file(const char *src, const char *dst) {
    FILE *in = fopen(src, "rb"), *out = in ? fopen(dst, "wb") : NULL;
    char buf[1 << 14];
    size_t n;
    int ok = in && out;
    while (ok && (n = fread(buf, 1, sizeof buf, in)) > 0) ok = fwrite(buf, 1, n, out) == n;
    if (in) fclose(in);
    if (out && fclose(out) != 0) ok = 0;
    return ok;
}

static void errors_name_the_file(rd_test *t) {
    fixture fx;
    if (!setup(t, &fx, 8, 7)) return;
    const char *dir = fx.dir, *shards = fx.shards;
    char output[512], missing[512], shard1[600], index[600];
    path_in(output, sizeof output, dir, "out/e.h5");
    path_in(missing, sizeof missing, dir, "nowhere");
    const rd_vit *vit = &fx.vit;
    const rd_param_set *set = &fx.set;
    rd_log_set_quiet(1);

    rd_embed_params p = params_for(missing, output);
    expect_failure(t, &p, vit, set, "nowhere/index.json", NULL);

    p = params_for(shards, output);
    p.resolution = 3; /* smaller than a patch */
    expect_failure(t, &p, vit, set, "embed.resolution", NULL);

    /* a split without images: shards of only train images */
    char train_only[512];
    path_in(train_only, sizeof train_only, dir, "train-only");
    write_shards_split(t, train_only, 8, 0.0);
    p = params_for(train_only, output);
    p.splits = 1u << RD_SPLIT_TEST;
    expect_failure(t, &p, vit, set, "train-only", "no images in the split(s) test");

    /* a damaged image (shard 1, row 2): its CRC32C fails, the message names the shard, the row
     * and the image */
    char backup[700];
    rd_shard_path(shard1, sizeof shard1, shards, 1);
    snprintf(backup, sizeof backup, "%s.bak", shard1);
    CHECK(copy_file(shard1, backup));
    CHECK(rd_test_damage_image(shard1, 2, 0x5a) == 0);
    p = params_for(shards, output);
    const int64_t bad_row = (int64_t)N / K + 2; /* shard 1 starts at row floor(N / K) */
    char bad_id[32], where[64];
    snprintf(bad_id, sizeof bad_id, "image id 'img%03lld.png'", (long long)bad_row);
    snprintf(where, sizeof where, "row 2 (row %lld of the shards)", (long long)bad_row);
    expect_failure(t, &p, vit, set, "shard-00001.h5: row 2", bad_id);
    expect_failure(t, &p, vit, set, where, "CRC32C");

    /* embed.on_corrupt: skip leaves that image out, on every rank alike */
    p.skip_corrupt = 1;
    rd_embed_stats stats;
    rd_error e2 = {0};
    CHECK_OK(rd_embed_run(&p, vit, set, MPI_COMM_WORLD, &stats, &e2), &e2);
    CHECK(stats.corrupt_skipped == 1 && stats.images == N - 1);
    rd_h5file out;
    char ids[N][32];
    if (rd_h5_open(&out, output, MPI_COMM_SELF, &e2) == RD_OK) {
        CHECK_OK(rd_h5_read_strings(&out, "/meta/image_id", 0, N - 1, ids[0], sizeof ids[0], &e2),
                 &e2);
        for (int i = 0; i < N - 1; i++) {
            char want[32];
            snprintf(want, sizeof want, "img%03lld.png", (long long)(i < bad_row ? i : i + 1));
            CHECK_MSG(strcmp(ids[i], want) == 0, "row %d is %s, want %s", i, ids[i], want);
        }
        rd_h5_close(&out);
    } else {
        CHECK_OK(RD_EIO, &e2);
    }
    unlink(output);
    p.skip_corrupt = 0;

    /* a missing shard */
    CHECK(unlink(shard1) == 0);
    expect_failure(t, &p, vit, set, "shard-00001.h5", NULL);
    CHECK(rename(backup, shard1) == 0);

    /* shards of another run mixed in: shard 1 replaced by a shard 0 */
    char shard0[600];
    rd_shard_path(shard0, sizeof shard0, shards, 0);
    CHECK(copy_file(shard1, backup) && copy_file(shard0, shard1));
    expect_failure(t, &p, vit, set, "shard-00001.h5", "shard_index");
    CHECK(rename(backup, shard1) == 0);

    /* a damaged index.json */
    path_in(index, sizeof index, shards, "index.json");
    FILE *fp = fopen(index, "w");
    if (fp) fputs("{\"format_version\": 1,", fp), fclose(fp);
    expect_failure(t, &p, vit, set, "index.json: line 1", "expected near end of file");

    /* not an HDF5 file where a shard should be */
    char shards2[512];
    path_in(shards2, sizeof shards2, dir, "shards2");
    write_shards(t, shards2, 8);
    char shard2_0[600];
    rd_shard_path(shard2_0, sizeof shard2_0, shards2, 0);
    fp = fopen(shard2_0, "w");
    if (fp) fputs("not hdf5", fp), fclose(fp);
    p = params_for(shards2, output);
    expect_failure(t, &p, vit, set, "shard-00000.h5", NULL);

    /* an output folder that cannot be created (a file is in the way) */
    char blocked[600];
    path_in(blocked, sizeof blocked, dir, "file");
    fp = fopen(blocked, "w");
    if (fp) fclose(fp);
    path_in(blocked, sizeof blocked, dir, "file/e.h5");
    p = params_for(shards2, blocked);
    p.shards_dir = train_only;
    expect_failure(t, &p, vit, set, "file", NULL);
    rd_log_set_quiet(0);
    rd_params_free(&fx.set);
}

static const rd_test_case cases[] = {
    {"layout_and_attributes", layout_and_attributes},
    {"cls_equals_direct_forward", cls_equals_direct_forward},
    {"resolution_change", resolution_change},
    {"meta_rows_match_shards", meta_rows_match_shards},
    {"batch_size_changes_only_rounding", batch_size_changes_only_rounding},
    {"random_init_is_seeded", random_init_is_seeded},
    {"model_yaml_loads_back", model_yaml_loads_back},
    {"splits_and_rank_batches", splits_and_rank_batches},
    {"patch_mean_is_the_token_mean", patch_mean_is_the_token_mean},
    {"errors_name_the_file", errors_name_the_file},
};

RD_TEST_MAIN("embed", cases)
