/* bf16 matrix products with fp32 accumulation for the linear layers (inference and training)
 * and the attention (inference).
 *
 * Inputs are rounded to bfloat16 (round to nearest even), multiplied exactly (a bf16 x bf16
 * product fits in fp32) and summed in fp32, in k order, with the AVX512-BF16 instruction
 * VDPBF16PS (Intel SDM vol. 2: each lane adds the odd pair element's product, then the even
 * one's; subnormal inputs count as zero and subnormal sums are flushed, so values below 1.2e-38
 * are lost). Outputs are fp32. Error per output: at most K 2^-24 (|init| + sum |products|). The
 * kernels are compiled for AVX512-BF16 by function attributes, so the library builds for any x86-64
 * (ARCH=-march=x86-64-v2 too) and picks the path at run time:
 *
 *   path      when                                           what the entry points compute
 *   avx512    CPU has AVX512-BF16 (Zen 4+, Cooper Lake,      bf16 products, fp32 sums
 *             Sapphire Rapids+), mode auto or force
 *   emulated  mode emulate; or force without the             the same, in portable C (slow; lets
 *             instructions                                   tests run the bf16 path anywhere)
 *   fp32      mode off; or auto without the instructions     rd_linear_forward / rd_sgemm on the
 *                                                            fp32 arrays: no rounding at all
 *
 * The mode comes from rd_bf16_set_mode() if called, else from the environment variable
 * RDINO_BF16 = auto (default) | off | force | emulate. Library code never warns: a stage that
 * asked for bf16 and got the fp32 path says so (rd_bf16_path_name()).
 *
 * Both paths give results that do not depend on the thread count: threads own whole output
 * blocks and every output element is summed in the same order. Why own kernels rather than
 * oneDNN, and the measured speed: docs/BF16.md.
 *
 * How the callers use it (the ViT does not yet; see the integration notes at the end).
 *   Weights: an rd_bf16_weight per linear holds bf16 copies of the fp32 master weight [OC, C],
 *   packed into the kernel's panel layout; the buffer is the caller's (rd_bf16_weight_bytes),
 *   refreshed from the master with rd_bf16_weight_refresh() after every change of the master.
 *   Activations: converted to bf16 inside each call, into per-thread scratch the caller owns
 *   (rd_bf16_scratch_bytes() per thread). Nothing is allocated per call. */
#ifndef RDINO_GEMM_BF16_H
#define RDINO_GEMM_BF16_H

#include <stddef.h>
#include <stdint.h>

#include "rdino/error.h"

typedef uint16_t rd_bf16; /* the upper 16 bits of an IEEE binary32 */

/* Round to nearest, ties to even, on every input: subnormals round like any other value (they
 * are not flushed), overflow gives +-inf, inf stays inf, a NaN stays a NaN (made quiet; its
 * sign and upper payload kept). */
rd_bf16 rd_bf16_from_float(float x);
float rd_bf16_to_float(rd_bf16 x);
/* dst[i] = rd_bf16_from_float(src[i]) for i < n (vectorised where the CPU allows). */
void rd_bf16_from_floats(rd_bf16 *dst, const float *src, size_t n);

/* ---- path selection ------------------------------------------------------------------------ */

typedef enum {
    RD_BF16_AUTO,    /* AVX512-BF16 when the CPU has it, else fp32 */
    RD_BF16_OFF,     /* fp32 */
    RD_BF16_FORCE,   /* bf16 on every CPU: AVX512-BF16 when present, else emulated */
    RD_BF16_EMULATE, /* emulated bf16 even where the instructions exist (tests) */
    RD_BF16_FROM_ENV /* forget rd_bf16_set_mode(): RDINO_BF16 decides again */
} rd_bf16_mode;

typedef enum { RD_BF16_PATH_FP32, RD_BF16_PATH_AVX512, RD_BF16_PATH_EMULATED } rd_bf16_path;

/* Overrides RDINO_BF16 for weights initialised from now on (not thread-safe: call it before
 * the weights are set up). */
void rd_bf16_set_mode(rd_bf16_mode mode);
/* 1 when the CPU executes AVX512-BF16 (CPUID and OS-enabled AVX-512 state). */
int rd_bf16_cpu_has(void);
/* The path weights initialised now would take; RD_EINVAL for an unknown RDINO_BF16 value. */
rd_status rd_bf16_select_path(rd_bf16_path *path, rd_error *err);
/* 1 when weights initialised now would compute in bf16 (avx512 or emulated path). */
int rd_bf16_available(void);
const char *rd_bf16_path_name(rd_bf16_path path); /* "avx512-bf16", "emulated-bf16", "fp32" */

/* ---- weights --------------------------------------------------------------------------------- */

/* bf16 copies of one linear's fp32 master weight [OC, C], in the kernels' panel layouts. The
 * path is fixed when the weight is initialised. */
typedef struct rd_bf16_weight {
    const float *master; /* fp32 [OC, C]: the fp32 path computes from it, refresh reads it */
    int OC, C;
    rd_bf16_path path;
    uint32_t *forward;  /* W^T for out = x W^T (pairs of bf16 along C); NULL on the fp32 path */
    uint32_t *backward; /* W for dx = dy W (pairs along OC); NULL unless training, or fp32 path */
    void *owned;        /* the buffer when rd_bf16_weight_create allocated it, else NULL */
} rd_bf16_weight;

/* Bytes of the caller's buffer for rd_bf16_weight_init (forward panels, plus the backward
 * panels when training). Upper bound for every path. */
size_t rd_bf16_weight_bytes(int OC, int C, int training);
/* Points w at master and buffer (rd_bf16_weight_bytes(OC, C, training) bytes, 64-byte aligned
 * for speed, caller-owned and outliving w; may be NULL when rd_bf16_available() is 0) and packs
 * the copies. Errors: RD_EINVAL for bad sizes, a NULL buffer on a bf16 path, or a bad
 * RDINO_BF16. */
rd_status rd_bf16_weight_init(rd_bf16_weight *w, void *buffer, const float *master, int OC, int C,
                              int training, rd_error *err);
/* Re-packs the bf16 copies from the master (after each optimiser step; also for an EMA
 * teacher). Threads over panels. No-op on the fp32 path. */
void rd_bf16_weight_refresh(rd_bf16_weight *w);
/* Inference: rd_bf16_weight_init on a buffer it allocates (forward panels only). */
rd_status rd_bf16_weight_create(rd_bf16_weight *w, const float *master, int OC, int C,
                                rd_error *err);
void rd_bf16_weight_free(rd_bf16_weight *w); /* frees what _create allocated; w is cleared */

/* Bytes of scratch each thread needs (the activations' bf16 blocks); callers pass
 * omp_get_max_threads() times this (the team size when called inside a parallel region, where
 * the call runs on the calling thread and uses slot omp_get_thread_num()). */
size_t rd_bf16_scratch_bytes(void);

/* ---- the linear layer ------------------------------------------------------------------------ */

/* out[N, OC] = bf16(inp[N, C]) @ bf16(W)^T + bias[OC]   (bias may be NULL; fp32 sums and out)
 * fp32 path: rd_linear_forward(out, inp, w->master, bias, N, C, OC), bit for bit. */
void rd_bf16_linear_forward(float *out, const float *inp, const rd_bf16_weight *w,
                            const float *bias, int N, void *scratch);
/* dinp[N, C] (+)= bf16(dout[N, OC]) @ bf16(W)       (dinp_add 1: +=, 0: =; dinp may be NULL)
 * dweight[OC, C] += bf16(dout)^T @ bf16(inp[N, C])  (may be NULL)
 * dbias[OC] += column sums of dout, in fp32         (may be NULL)
 * w must have been initialised with training = 1 for dinp (else dinp is computed in fp32).
 * fp32 path: rd_linear_backward's products, bit for bit. */
void rd_bf16_linear_backward(float *dinp, int dinp_add, float *dweight, float *dbias,
                             const float *dout, const float *inp, const rd_bf16_weight *w, int N,
                             void *scratch);

/* ---- the attention ----------------------------------------------------------------------------
 */

/* rd_attention_forward (rdino/nn.h) with its two products in bf16: the scores from bf16(q *
 * scale) and bf16(k), the output from bf16(probabilities) and bf16(v); the scores, the online
 * softmax, its sums and out are fp32, the probabilities are rounded after the softmax (as
 * PyTorch's bf16 autocast does around its fp32 softmax). lse as rd_attention_forward's.
 * path: the caller's (rd_vit_bf16.path); RD_BF16_PATH_FP32 runs rd_attention_forward itself.
 * scratch: rd_attention_bf16_scratch_floats(T, hd) floats per thread (the tiles, plus one
 * head's k and v as bf16 pairs). Parallel over (b, H); results do not depend on the thread
 * count, and the emulated path gives the AVX512-BF16 path's bits. */
void rd_attention_forward_bf16(float *out, float *lse, float *scratch, const float *qkv, int b,
                               int T, int D, int H, rd_bf16_path path);
/* rd_attention_backward with its five products in bf16 (fp32 sums): the probabilities
 * recomputed from the same bf16 scores as rd_attention_forward_bf16 (so lse must come from it),
 * dP from bf16(dout) and bf16(v), dv from bf16(P) and bf16(dout), dq and dk from bf16(dS) and
 * bf16(k) / bf16(q); dS = P (dP - delta), delta and the gradients are fp32. Same scratch,
 * threads and path rules as the forward. */
void rd_attention_backward_bf16(float *dqkv, float *scratch, const float *dout, const float *out,
                                const float *qkv, const float *lse, int b, int T, int D, int H,
                                rd_bf16_path path);
size_t rd_attention_bf16_scratch_floats(int T, int hd);

/* ---- integration notes -------------------------------------------------------------------------
 * Embedding (inference, src/embed + the ViT forward): after loading the checkpoint, one
 * rd_bf16_weight per block linear (qkv, proj, fc1, fc2; the patch embedding and heads may stay
 * fp32) from rd_bf16_weight_create(&w, P(params, bp->qkv_weight), 3 * D, D, err), freed with the
 * model; one scratch buffer of omp_get_max_threads() * rd_bf16_scratch_bytes() bytes in the ViT
 * context; block_forward calls rd_bf16_linear_forward(A->h, L->ln, &w_qkv, qkv_bias, rows,
 * scratch) where it now calls rd_linear_forward. Log rd_bf16_path_name() once.
 *
 * Pretraining (src/train, the ViT's train mode): per block linear of the student, an
 * rd_bf16_weight initialised with training = 1 on a buffer from the parameter arena
 * (rd_bf16_weight_bytes(OC, C, 1)); the teacher's linears with training = 0 (forward only).
 * After every optimiser step and EMA update: rd_bf16_weight_refresh() on each (the master arrays
 * are updated in place, so the pointers stay valid). Forward: rd_bf16_linear_forward as above.
 * Backward: linear_backward_into(dinp, dW, db, dout, inp, W, N, C, OC) becomes
 * rd_bf16_linear_backward(dinp, 0, dW, db, dout, inp, &w, N, scratch); heads' += calls pass
 * dinp_add = 1. Activations stay fp32 (the products round them on the fly), gradients and the
 * optimiser stay fp32. Scratch: one buffer of omp_get_max_threads() * rd_bf16_scratch_bytes()
 * in the activation arena, shared by all layers (calls run one after another). Memory: 2 bytes
 * per weight per copy, so about 340 MB for a ViT-B/14 student's block linears (85 M weights,
 * both copies) and 170 MB for its teacher. */

#endif
