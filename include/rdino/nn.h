/* Neural-network layers as forward/backward pairs (llm.c style): plain functions on float
 * arrays, shapes in the comments, row-major storage. Backward functions ACCUMULATE into the
 * gradient arrays they are given (+=), so a layer applied several times (a head run on local
 * crops, global crops and masked patches) sums its gradients; callers zero gradients once per
 * step. A NULL input-gradient pointer skips that product (e.g. for the first layer). */
#ifndef RDINO_NN_H
#define RDINO_NN_H

#include <stddef.h>

/* Linear layer, PyTorch convention (weight [OC, C]).
 * out[N, OC] = inp[N, C] @ weight[OC, C]^T + bias[OC]      (bias may be NULL) */
void rd_linear_forward(float *out, const float *inp, const float *weight, const float *bias, int N,
                       int C, int OC);
/* dinp[N, C] += dout[N, OC] @ weight[OC, C]
 * dweight[OC, C] += dout^T @ inp,  dbias[OC] += column sums of dout   (each may be NULL) */
void rd_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, int N, int C, int OC);

/* Exact (erf) GELU, elementwise over n values: out = x * Phi(x). */
void rd_gelu_forward(float *out, const float *inp, size_t n);
/* dinp += dout * GELU'(inp) */
void rd_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n);

#endif
