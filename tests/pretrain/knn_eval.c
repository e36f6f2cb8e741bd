/* k-NN evaluation of a backbone on a shard folder (knn_eval.h). */
#include "knn_eval.h"

#include <math.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "rdino/h5store.h"
#include "rdino/shard.h"

void knn_data_free(knn_data *d) {
    free(d->emb);
    free(d->label);
    free(d->patient);
    memset(d, 0, sizeof *d);
}

rd_status knn_embed(knn_data *d, const rd_vit *vit, const rd_param_set *set, const char *shards_dir,
                    double mean, double std, rd_error *err) {
    memset(d, 0, sizeof *d);
    const int D = vit->cfg.embed_dim, S = vit->cfg.img_size, batch = 32;
    d->dim = D;
    rd_vit_context ctx;
    rd_status st = rd_vit_context_init(&ctx, vit, batch, S, S, RD_VIT_INFER, err);
    if (st) return st;
    float *x = malloc((size_t)batch * S * S * sizeof(float));
    uint8_t *pix = malloc((size_t)batch * S * S);
    for (int k = 0; !st; k++) {
        char path[4096];
        rd_shard_path(path, sizeof path, shards_dir, k);
        rd_h5file f;
        rd_error e = {0};
        if (rd_h5_open(&f, path, MPI_COMM_SELF, &e)) break; /* no more shards */
        int64_t dims[RD_H5_MAX_DIMS];
        int ndim;
        size_t width = 0;
        st = rd_h5_shape(&f, "/images", dims, &ndim, NULL, err);
        if (!st && (dims[1] != S || dims[2] != S))
            st = rd_fail(err, RD_EINVAL, "%s: images are %lldpx, the model wants %d", path,
                         (long long)dims[1], S);
        const int64_t n = dims[0], n0 = d->n;
        d->n += n;
        d->emb = realloc(d->emb, (size_t)d->n * D * sizeof(float));
        d->label = realloc(d->label, (size_t)d->n);
        d->patient = realloc(d->patient, (size_t)d->n * sizeof *d->patient);
        if (!st) st = rd_h5_read_rows(&f, "/meta/sex", RD_H5_I8, 0, n, d->label + n0, err);
        if (!st) st = rd_h5_shape(&f, "/meta/patient_id", dims, &ndim, &width, err);
        if (!st && width >= sizeof d->patient[0])
            st = rd_fail(err, RD_EINVAL, "patient ids too long");
        if (!st)
            st = rd_h5_read_strings(&f, "/meta/patient_id", 0, n, d->patient[n0],
                                    sizeof d->patient[0], err);
        for (int64_t i = 0; !st && i < n; i += batch) {
            int b = (int)(n - i < batch ? n - i : batch);
            st = rd_h5_read_rows(&f, "/images", RD_H5_U8, i, b, pix, err);
            for (size_t j = 0; j < (size_t)b * S * S; j++)
                x[j] = (float)((pix[j] / 255.0 - mean) / std);
            rd_vit_output out;
            if (!st) st = rd_vit_forward(&ctx, set, x, b, 1, S, S, NULL, NULL, &out, err);
            for (int r = 0; !st && r < b; r++) {
                float *dst = d->emb + (size_t)(n0 + i + r) * D;
                double norm = 0;
                for (int c = 0; c < D; c++)
                    norm += (double)out.cls[(size_t)r * D + c] * out.cls[(size_t)r * D + c];
                for (int c = 0; c < D; c++)
                    dst[c] = (float)(out.cls[(size_t)r * D + c] / (sqrt(norm) + 1e-12));
            }
        }
        rd_h5_close(&f);
    }
    free(x);
    free(pix);
    rd_vit_context_free(&ctx);
    if (!st && d->n == 0) st = rd_fail(err, RD_ENOTFOUND, "no shards in %s", shards_dir);
    return st;
}

double knn_accuracy(const knn_data *d, int k) {
    int64_t right = 0, total = 0;
    double *sim = malloc((size_t)d->n * sizeof *sim);
    for (int64_t q = 0; q < d->n; q++) {
        if (d->label[q] < 0) continue;
        for (int64_t j = 0; j < d->n; j++) {
            double s = -INFINITY;
            if (d->label[j] >= 0 && strcmp(d->patient[j], d->patient[q]) != 0) {
                s = 0;
                for (int c = 0; c < d->dim; c++)
                    s += (double)d->emb[q * d->dim + c] * d->emb[j * d->dim + c];
            }
            sim[j] = s;
        }
        double vote[2] = {0, 0};
        for (int t = 0; t < k; t++) { /* k largest, by selection */
            int64_t best = -1;
            for (int64_t j = 0; j < d->n; j++)
                if (sim[j] > -INFINITY && (best < 0 || sim[j] > sim[best])) best = j;
            if (best < 0) break;
            vote[d->label[best]] += exp(sim[best] / 0.07);
            sim[best] = -INFINITY;
        }
        right += (vote[1] > vote[0]) == (d->label[q] == 1);
        total++;
    }
    free(sim);
    return total ? (double)right / (double)total : 0.0;
}
