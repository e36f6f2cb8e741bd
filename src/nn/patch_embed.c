#include "rdino/nn.h"

#include <string.h>

void rd_patchify(float *patches, const float *images, int b, int c, int H, int W, int p) {
    int gh = H / p, gw = W / p, K = c * p * p;
#pragma omp parallel for collapse(2) schedule(static) if ((long)b * gh * gw * K > RD_PARALLEL_MIN)
    for (int i = 0; i < b; i++)
        for (int r = 0; r < gh; r++)
            for (int col = 0; col < gw; col++) {
                float *dst = patches + (((size_t)i * gh + r) * gw + col) * K;
                for (int ch = 0; ch < c; ch++)
                    for (int ky = 0; ky < p; ky++) {
                        const float *src = images +
                                           (((size_t)i * c + ch) * H + (size_t)r * p + ky) * W +
                                           (size_t)col * p;
                        memcpy(dst + ((size_t)ch * p + ky) * p, src, (size_t)p * sizeof(float));
                    }
            }
}

/* fold [D, p*p] = sum over the C channels of weight [D, C, p*p] */
static void fold_channels(float *fold, const float *weight, int C, int pp, int D) {
    for (int d = 0; d < D; d++) {
        float *f = fold + (size_t)d * pp;
        const float *w = weight + (size_t)d * C * pp;
        for (int k = 0; k < pp; k++) f[k] = w[k];
        for (int ch = 1; ch < C; ch++)
            for (int k = 0; k < pp; k++) f[k] += w[(size_t)ch * pp + k];
    }
}

void rd_patch_embed_forward(float *out, float *fold, const float *patches, const float *weight,
                            const float *bias, int N, int c, int C, int p, int D) {
    int K = c * p * p;
    const float *w = weight;
    if (c != C) { /* grey image replicated to C channels: sum_ch W_ch x = (sum_ch W_ch) x */
        fold_channels(fold, weight, C, p * p, D);
        w = fold;
    }
    rd_linear_forward(out, patches, w, bias, N, K, D);
}

void rd_patch_embed_backward(float *dweight, float *dbias, float *fold, const float *dout,
                             const float *patches, int N, int c, int C, int p, int D) {
    int pp = p * p;
    if (c == C) {
        rd_linear_backward(NULL, dweight, dbias, dout, patches, NULL, N, c * pp, D);
        return;
    }
    /* Every replicated channel sees the same input, so each gets the grey-image gradient. */
    memset(fold, 0, (size_t)D * pp * sizeof(float));
    rd_linear_backward(NULL, fold, dbias, dout, patches, NULL, N, pp, D);
    for (int d = 0; d < D; d++)
        for (int ch = 0; ch < C; ch++)
            for (int k = 0; k < pp; k++)
                dweight[((size_t)d * C + ch) * pp + k] += fold[(size_t)d * pp + k];
}
