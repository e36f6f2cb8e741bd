/* DINOv2's k-NN evaluation (dinov2/eval/knn.py), in small: teacher CLS embeddings (final
 * LayerNorm, L2-normalised) of every image of a shard folder, and the leave-one-patient-out k-NN
 * accuracy of a binary attribute (sex) with weights exp(cos / 0.07). For pretraining tests. */
#ifndef RDINO_TEST_KNN_EVAL_H
#define RDINO_TEST_KNN_EVAL_H

#include <stdint.h>

#include "rdino/error.h"
#include "rdino/params.h"
#include "rdino/vit.h"

typedef struct knn_data {
    int64_t n;
    int dim;
    float *emb;    /* [n, dim] L2-normalised CLS */
    int8_t *label; /* [n] 0/1, -1 unknown */
    char (*patient)[64];
} knn_data;

void knn_data_free(knn_data *d);
/* Embeds the images of shards_dir/shard-NNNNN.h5 (k = 0, 1, ... while they exist), normalised
 * like the training crops ((x / 255 - mean) / std, one grey channel). */
rd_status knn_embed(knn_data *d, const rd_vit *vit, const rd_param_set *set, const char *shards_dir,
                    double mean, double std, rd_error *err);
/* Leave-one-patient-out k-NN accuracy of the 0/1 labels (images with label -1 are skipped). */
double knn_accuracy(const knn_data *d, int k);

#endif
