/* Patch embedding (Conv2d, kernel = stride = p, as a GEMM): forward against a direct
 * convolution in double (rtol 1e-5, atol 1e-6) including a size not divisible by p; a grey
 * image through the channel-summed weight equals the replicated 3-channel image (rtol 1e-5,
 * atol 1e-6), and so do the weight gradients; weight and bias gradients against central finite
 * differences (step 1e-2, |fd - g| <= 1e-4 + 1e-3 |fd|). */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "rdino/nn.h"
#include "rdino/rng.h"

enum { B = 2, C = 3, P = 3, D = 5, H = 7, W = 10, GH = H / P, GW = W / P, NP = B * GH * GW };

typedef struct pe_case {
    float img[B * C * H * W], weight[D * C * P * P], bias[D];
    float patches[NP * C * P * P], out[NP * D], probe[NP * D], fold[D * P * P];
} pe_case;

static void fill(float *x, size_t n, uint64_t index) {
    rd_rng r;
    rd_rng_init(&r, 17, RD_RNG_TEST, 0, index, 0);
    for (size_t i = 0; i < n; i++) x[i] = (float)rd_rng_normal(&r);
}

static void setup(pe_case *c) {
    fill(c->img, B * C * H * W, 1);
    fill(c->weight, D * C * P * P, 2);
    fill(c->bias, D, 3);
    fill(c->probe, NP * D, 4);
}

static double pe_loss(void *p) {
    pe_case *c = p;
    rd_patchify(c->patches, c->img, B, C, H, W, P);
    rd_patch_embed_forward(c->out, c->fold, c->patches, c->weight, c->bias, NP, C, C, P, D);
    double s = 0;
    for (int i = 0; i < NP * D; i++) s += (double)c->out[i] * c->probe[i];
    return s;
}

static void forward_is_a_strided_convolution(rd_test *t) {
    pe_case c;
    setup(&c);
    pe_loss(&c);
    float want[NP * D];
    for (int b = 0; b < B; b++)
        for (int r = 0; r < GH; r++)
            for (int q = 0; q < GW; q++)
                for (int d = 0; d < D; d++) {
                    double s = c.bias[d];
                    for (int ch = 0; ch < C; ch++)
                        for (int ky = 0; ky < P; ky++)
                            for (int kx = 0; kx < P; kx++)
                                s += (double)c.weight[((d * C + ch) * P + ky) * P + kx] *
                                     c.img[((b * C + ch) * H + r * P + ky) * W + q * P + kx];
                    want[((b * GH + r) * GW + q) * D + d] = (float)s;
                }
    CHECK_CLOSE("patch embedding", c.out, want, NP * D, 1e-5, 1e-6);
}

static void grey_input_equals_replicated_channels(rd_test *t) {
    pe_case c;
    setup(&c);
    float grey[B * H * W];
    for (int b = 0; b < B; b++)
        for (int ch = 0; ch < C; ch++)
            memcpy(c.img + (b * C + ch) * H * W, c.img + b * C * H * W, sizeof(float) * H * W);
    for (int b = 0; b < B; b++)
        memcpy(grey + b * H * W, c.img + b * C * H * W, sizeof(float) * H * W);
    pe_loss(&c);
    float grey_patches[NP * P * P], grey_out[NP * D];
    rd_patchify(grey_patches, grey, B, 1, H, W, P);
    rd_patch_embed_forward(grey_out, c.fold, grey_patches, c.weight, c.bias, NP, 1, C, P, D);
    CHECK_CLOSE("grey forward", grey_out, c.out, NP * D, 1e-5, 1e-6);
    float dw3[D * C * P * P] = {0}, dwg[D * C * P * P] = {0}, db3[D] = {0}, dbg[D] = {0};
    rd_patch_embed_backward(dw3, db3, c.fold, c.probe, c.patches, NP, C, C, P, D);
    rd_patch_embed_backward(dwg, dbg, c.fold, c.probe, grey_patches, NP, 1, C, P, D);
    CHECK_CLOSE("grey weight gradient", dwg, dw3, D * C * P * P, 1e-5, 1e-6);
    CHECK_CLOSE("grey bias gradient", dbg, db3, D, 1e-6, 1e-7);
}

static void backward_matches_finite_differences(rd_test *t) {
    pe_case c;
    setup(&c);
    pe_loss(&c);
    float dw[D * C * P * P] = {0}, db[D] = {0};
    rd_patch_embed_backward(dw, db, c.fold, c.probe, c.patches, NP, C, C, P, D);
    CHECK_GRAD("dweight", c.weight, dw, D * C * P * P, pe_loss, &c, 1e-2, 1e-3, 1e-4);
    CHECK_GRAD("dbias", c.bias, db, D, pe_loss, &c, 1e-2, 1e-3, 1e-4);
}

static const rd_test_case cases[] = {
    {"forward_is_a_strided_convolution", forward_is_a_strided_convolution},
    {"grey_input_equals_replicated_channels", grey_input_equals_replicated_channels},
    {"backward_matches_finite_differences", backward_matches_finite_differences},
};
RD_TEST_MAIN("nn/patch_embed", cases)
