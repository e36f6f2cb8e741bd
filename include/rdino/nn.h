/* Neural-network layers as forward/backward pairs (llm.c style): plain functions on float
 * arrays, shapes in the comments, row-major storage. Backward functions ACCUMULATE into the
 * gradient arrays they are given (+=), so a layer applied several times (a head run on local
 * crops, global crops and masked patches) sums its gradients; callers zero gradients once per
 * step. A NULL input-gradient pointer skips that product (e.g. for the first layer).
 *
 * Threads: OpenMP is the only thread pool. Layers split their work over omp_get_max_threads()
 * threads (and run serially when called inside a parallel region); every BLAS call is
 * single-threaded on its part, so rd_sgemm switches OpenBLAS to one thread on first use (two
 * pools spinning on the same cores cost 10x on small GEMMs). Parameter-gradient reductions
 * add rows in a fixed order, so results do not depend on the thread count. */
#ifndef RDINO_NN_H
#define RDINO_NN_H

#include <stddef.h>

#include "rdino/threads.h" /* RD_PARALLEL_MIN */

/* ---- GEMM ------------------------------------------------------------------------------ */

/* Row-major C[M,N] = alpha * op(A)[M,K] op(B)[K,N] + beta * C, op = transpose when trans_*.
 * With bias [N] (not NULL) beta is ignored and C = alpha op(A) op(B) + bias (each row).
 * The longer side of C is cut into a grid of single-threaded BLAS calls fixed by the shape and
 * shared among the threads: bitwise the same result for any thread count. */
void rd_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc, const float *bias);
/* Sets OpenBLAS to one thread (what rd_sgemm does on first use). */
void rd_blas_one_thread(void);

/* ---- Linear, GELU ------------------------------------------------------------------------ */

/* Linear layer, PyTorch convention (weight [OC, C]).
 * out[N, OC] = inp[N, C] @ weight[OC, C]^T + bias[OC]      (bias may be NULL) */
void rd_linear_forward(float *out, const float *inp, const float *weight, const float *bias, int N,
                       int C, int OC);
/* dinp[N, C] += dout[N, OC] @ weight[OC, C]
 * dweight[OC, C] += dout^T @ inp,  dbias[OC] += column sums of dout   (each may be NULL) */
void rd_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, int N, int C, int OC);
/* sums[C] += column sums of x[N, C] (rows added in order). */
void rd_column_sums_add(float *sums, const float *x, int N, int C);

/* Exact (erf) GELU, elementwise over n values: out = x * Phi(x) (vectorised Phi, absolute
 * error < 1e-7; the output error is below 1.5e-7 * max(1, |x|)). */
void rd_gelu_forward(float *out, const float *inp, size_t n);
/* dinp += dout * GELU'(inp),  GELU'(x) = Phi(x) + x phi(x) */
void rd_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n);

/* ---- LayerNorm --------------------------------------------------------------------------- */

#define RD_LAYERNORM_EPS 1e-6f /* DINOv2 uses eps 1e-6 in every LayerNorm */

/* out[N, C] = (inp - mean) * rstd * weight[C] + bias[C], per row, rstd = 1/sqrt(var + eps)
 * with the biased variance. mean[N], rstd[N] are saved for backward (may be NULL). */
void rd_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                          const float *weight, const float *bias, int N, int C);
/* dinp[N, C] += ..., dweight[C] += sum_n dout * xhat, dbias[C] += sum_n dout
 * (xhat = (inp - mean) * rstd; dinp, dweight, dbias may each be NULL). */
void rd_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                           const float *inp, const float *mean, const float *rstd,
                           const float *weight, int N, int C);

/* ---- Multi-head self-attention core (between the qkv and proj linears) ------------------- */

/* qkv [b, T, 3D] holds q | k | v blocks of D channels, heads contiguous inside each block
 * (head h = channels h*hd .. h*hd+hd-1, hd = D / H).
 * out [b, T, D] = concat_h softmax(q_h k_h^T / sqrt(hd)) v_h, computed in tiles of queries and
 * keys with an online softmax (FlashAttention-2): no [T, T] matrix is ever stored.
 * lse [b, H, 2, T]: each row's log-sum-exp of the scaled scores s, in two parts kept for
 * backward: the row max m [T], then log sum_j exp(s_j - m) [T]. NULL for inference. scratch:
 * rd_attention_scratch_floats(T, hd) floats per thread (omp_get_max_threads()). Parallel over (b,
 * H, query tiles). */
void rd_attention_forward(float *out, float *lse, float *scratch, const float *qkv, int b, int T,
                          int D, int H);
/* dqkv [b, T, 3D] += gradient from dout [b, T, D]; out and lse from the forward on the same qkv
 * (the probabilities are recomputed tile by tile). scratch as above. Parallel over (b, H), each
 * head's sums in a fixed order: results do not depend on the thread count. */
void rd_attention_backward(float *dqkv, float *scratch, const float *dout, const float *out,
                           const float *qkv, const float *lse, int b, int T, int D, int H);
size_t rd_attention_scratch_floats(int T, int hd);

/* ---- Patch embedding (Conv2d with kernel = stride = p, as a GEMM) ------------------------ */

/* patches [b * gh * gw, c*p*p] <- images [b, c, H, W], gh = H / p, gw = W / p, patches in
 * row-major grid order, each flattened as (channel, ky, kx) like the Conv2d weight. */
void rd_patchify(float *patches, const float *images, int b, int c, int H, int W, int p);
/* out [N, D] = patches [N, c*p*p] @ weight^T + bias, weight [D, C, p, p]. When c == 1 and C > 1
 * the image is a grey image replicated to C channels and the GEMM uses the channel-summed
 * weight (fold [D, p*p] scratch); otherwise c must equal C. */
void rd_patch_embed_forward(float *out, float *fold, const float *patches, const float *weight,
                            const float *bias, int N, int c, int C, int p, int D);
/* dweight [D, C, p, p] += dout^T @ patches (each channel gets the grey gradient when c == 1;
 * fold scratch [D, p*p]); dbias [D] += column sums of dout [N, D]. */
void rd_patch_embed_backward(float *dweight, float *dbias, float *fold, const float *dout,
                             const float *patches, int N, int c, int C, int p, int D);

/* ---- Positional-embedding interpolation (DINOv2's interpolate_pos_encoding) -------------- */

/* 1-D bicubic resampling matrix w [g, M] (PyTorch upsample_bicubic2d, align_corners=False,
 * A = -0.75, clamped taps): output o reads source (o + 0.5) / scale - 0.5 when scale > 0
 * (scale-factor form), (o + 0.5) * M / g - 0.5 when scale == 0 (size form). */
void rd_bicubic_weights(float *w, int M, int g, double scale);
/* The same with antialiasing: torch.nn.functional.interpolate(mode="bicubic", antialias=True,
 * align_corners=False) as DINOv2's *_reg backbones and transformers' Dinov2WithRegistersModel use
 * it. Keys cubic a = -0.5 (Pillow's), widened by M / g when shrinking, taps beyond the border
 * dropped and the row renormalised. Computed in float as aten does for float tensors: agrees
 * with torch 1.13 to 2.4e-7 (its AVX2 and default kernels differ from each other by as much). */
void rd_bicubic_aa_weights(float *w, int M, int g, double scale);
/* out [g0 * g1, C] = sum_ab wrow[i, a] wcol[j, b] grid[a * M + b, :]  (grid [M * M, C]);
 * tmp [g0, M, C]. */
void rd_resample_forward(float *out, float *tmp, const float *grid, const float *wrow,
                         const float *wcol, int M, int g0, int g1, int C);
/* dgrid [M * M, C] += transpose of the above applied to dout [g0 * g1, C]; dtmp [g0, M, C]. */
void rd_resample_backward(float *dgrid, float *dtmp, const float *dout, const float *wrow,
                          const float *wcol, int M, int g0, int g1, int C);

/* ---- LayerScale residual with stochastic depth (dinov2/layers/block.py) ------------------ */

/* Samples are blocks of `size` floats. rows[j] = x[S[j]] for j < keep (S NULL = 0..keep-1). */
void rd_gather_samples(float *rows, const float *x, const int *S, int keep, size_t size);
/* x[S[j]] += rows[j] */
void rd_scatter_add_samples(float *x, const float *rows, const int *S, int keep, size_t size);
/* x[S[j], t, :] += scale * gamma ⊙ y[j, t, :]   (x [b, T, D], y [keep, T, D], gamma [D] or
 * NULL = no LayerScale, S NULL = all samples). */
void rd_residual_forward(float *x, const float *y, const float *gamma, const int *S, int keep,
                         int T, int D, float scale);
/* dy[j] += scale * gamma ⊙ dx[S[j]];  dgamma[D] += scale * sum_{j,t} dx[S[j], t] ⊙ y[j, t]
 * (the identity path of x needs nothing: dx passes through). */
void rd_residual_backward(float *dy, float *dgamma, const float *dx, const float *y,
                          const float *gamma, const int *S, int keep, int T, int D, float scale);

/* ---- SwiGLU gate (DINOv2 "swiglufused" FFN: w3(silu(a1) * a2), [a1 a2] = w12(x)) --------- */

/* out [N, h] = silu(inp[:, :h]) * inp[:, h:]   (inp [N, 2h]) */
void rd_swiglu_forward(float *out, const float *inp, int N, int h);
/* dinp [N, 2h] += gradient from dout [N, h] */
void rd_swiglu_backward(float *dinp, const float *dout, const float *inp, int N, int h);

#endif
