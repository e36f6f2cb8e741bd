/* Learning happens: phantoms (200 patients, sex effect at strength 1) -> 32 px shards ->
 * 200 steps of rd_pretrain_run with a tiny ViT (D 48, 2 blocks, patch 4, 32/16 px crops,
 * K 128), then
 *   - the loss went down: mean backpropagated loss of the last 20 steps < 0.8 x that of the
 *     first 5 (KoLeo spreads the CLS tokens; the DINO/iBOT terms reach their floor);
 *   - DINOv2's k-NN on the teacher CLS (leave one patient out, k = 10, weights exp(cos/0.07))
 *     predicts sex better than the same network at its random initialisation: by at least
 *     0.05 (the random init is near chance: LayerScale 1e-5 makes every CLS nearly equal).
 * Seeded and deterministic. Measured: see the INFO line (docs/PRETRAIN.md, "What a short run
 * learns"). Needs the rdino-synth, -preprocess and -shard programs ($RDINO_BUILD/bin). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "knn_eval.h"
#include "mpi_once.h"
#include "rdino/checkpoint.h"
#include "rdino/embed.h"
#include "rdino/log.h"
#include "rdino/pretrain.h"

static const char MODEL_YAML[] = "student:\n"
                                 "  arch: vit_custom\n"
                                 "  embed_dim: 48\n"
                                 "  depth: 2\n"
                                 "  num_heads: 4\n"
                                 "  patch_size: 4\n"
                                 "  drop_path_rate: 0.0\n"
                                 "crops:\n"
                                 "  global_crops_size: 32\n"
                                 "  local_crops_size: 16\n"
                                 "  local_crops_number: 4\n"
                                 "dino:\n"
                                 "  head_n_prototypes: 128\n"
                                 "  head_bottleneck_dim: 48\n"
                                 "  head_hidden_dim: 128\n"
                                 "train:\n"
                                 "  batch_size_per_gpu: 32\n"
                                 "  centering: centering\n"
                                 "  OFFICIAL_EPOCH_LENGTH: 100\n"
                                 "optim:\n"
                                 "  epochs: 4\n"
                                 "  warmup_epochs: 0.5\n"
                                 "  base_lr: 0.002\n"
                                 "teacher:\n"
                                 "  warmup_teacher_temp: 0.04\n"
                                 "  teacher_temp: 0.04\n"
                                 "  momentum_teacher: 0.996\n"
                                 "pretrain:\n"
                                 "  group_size: 8\n"
                                 "  max_steps: 200\n"
                                 "  checkpoint_every: 200\n"
                                 "  checkpoint_minutes: 0\n";

/* Phantoms -> preprocess -> shards with the stage programs; 0 on success. */
static int make_shards(const char *dir, char *data_yaml, size_t n) {
    snprintf(data_yaml, n, "%s/data.yaml", dir);
    FILE *f = fopen(data_yaml, "w");
    if (!f) return -1;
    fprintf(
        f,
        "data:\n  format: nih\n  output_dir: %s/out\n  metadata_csv: %s/out/synth/metadata.csv\n"
        "  image_root: %s/out/synth/images\nsynth:\n  n_patients: 200\n"
        "  images_per_patient: [1, 2]\n  size_range: [96, 128]\n  strength: 1.0\n  seed: 1\n"
        "preprocess:\n  size: 32\n  resample: bspline\nshard:\n  images_per_shard: 256\n",
        dir, dir, dir);
    fclose(f);
    const char *build = getenv("RDINO_BUILD");
    const char *stages[3] = {"synth", "preprocess", "shard"};
    for (int i = 0; i < 3; i++) {
        char cmd[2048];
        snprintf(cmd, sizeof cmd, "%s/bin/rdino-%s --config %s > %s/%s.log 2>&1",
                 build ? build : "build", stages[i], data_yaml, dir, stages[i]);
        if (system(cmd) != 0) return i + 1;
    }
    return 0;
}

/* Mean backpropagated loss of metrics lines [from, to). */
static double mean_loss(const char *metrics, int from, int to) {
    FILE *f = fopen(metrics, "r");
    if (!f) return NAN;
    char line[4096];
    double sum = 0;
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        int step;
        const char *p = strstr(line, "\"backprop_loss\": ");
        if (sscanf(line, "{\"step\": %d", &step) == 1 && p && step >= from && step < to) {
            sum += atof(p + 17);
            n++;
        }
    }
    fclose(f);
    return n ? sum / n : NAN;
}

static void test_learning(rd_test *t) {
    rd_test_need_mpi();
    rd_log_set_quiet(1);
    const char *dir = rd_test_tmpdir(t);
    char data_yaml[700], out[700], shards[700], metrics[800], ckpt[800];
    int failed = make_shards(dir, data_yaml, sizeof data_yaml);
    if (failed) SKIP("the stage programs failed (stage %d; build them first)", failed);
    snprintf(out, sizeof out, "%s/pretrain", dir);
    snprintf(shards, sizeof shards, "%s/out/shards", dir);
    snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", out);
    rd_error err = {0};
    rd_config cfg;
    char override[800];
    snprintf(override, sizeof override, "pretrain.output_dir=%s", out);
    CHECK_OK(rd_config_init(&cfg, &err), &err);
    CHECK_OK(rd_config_load_file(&cfg, data_yaml, &err), &err);
    CHECK_OK(rd_config_load_string(&cfg, MODEL_YAML, "model", &err), &err);
    CHECK_OK(rd_config_override(&cfg, override, &err), &err);
    if (t->failures) return;
    rd_pretrain_options opt = {.resume = 0, .stop = NULL};
    rd_pretrain_result res;
    CHECK_OK(rd_pretrain_run(&cfg, MPI_COMM_WORLD, &opt, &res, &err), &err);
    if (t->failures) {
        rd_config_free(&cfg);
        return;
    }
    CHECK(res.steps_completed == 200);

    double first = mean_loss(metrics, 0, 5), last = mean_loss(metrics, 180, 200);
    CHECK_MSG(last < 0.8 * first, "loss %.4f -> %.4f: not lower by 20%%", first, last);

    snprintf(ckpt, sizeof ckpt, "%s/checkpoints/step-0000200.h5", out);
    rd_vit vit;
    rd_param_set set;
    rd_config enc;
    knn_data trained, random;
    CHECK_OK(rd_embed_checkpoint_config(ckpt, &cfg, &enc, &err), &err); /* as rdino-embed does */
    CHECK_OK(rd_embed_checkpoint_backbone(ckpt, "teacher", &enc, MPI_COMM_WORLD, &vit, &set, &err),
             &err);
    rd_config_free(&enc);
    rd_config_free(&cfg);
    if (t->failures) return;
    CHECK_OK(knn_embed(&trained, &vit, &set, shards, 0.5307, 0.2583, &err), &err);
    rd_vit_init_params(&vit, &set, 0); /* train.seed 0: the step-0 teacher */
    CHECK_OK(knn_embed(&random, &vit, &set, shards, 0.5307, 0.2583, &err), &err);
    if (!t->failures) {
        double a = knn_accuracy(&trained, 10), b = knn_accuracy(&random, 10);
        printf("INFO pretrain/learning: %lld images, loss %.3f -> %.3f, k-NN sex accuracy "
               "(k=10) trained %.3f, random init %.3f; %.1f s, %.1f images/s\n",
               (long long)trained.n, first, last, a, b, res.seconds, res.images_per_second);
        CHECK_MSG(a >= b + 0.05, "k-NN accuracy trained %.3f vs random init %.3f", a, b);
    }
    knn_data_free(&trained);
    knn_data_free(&random);
    rd_params_free(&set);
}

static const rd_test_case cases[] = {{"learning", test_learning}};
RD_TEST_MAIN("pretrain", cases)
