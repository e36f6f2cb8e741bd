/* DINOv2 losses with their gradients: DINOLoss (dinov2/loss/dino_clstoken_loss.py),
 * iBOTPatchLoss.forward_masked (ibot_patch_loss.py) and KoLeoLoss (koleo_loss.py), weighted as
 * SSLMetaArch.forward_backward (dinov2/train/ssl_meta_arch.py) does. Cross-entropies are
 * CE(q, s) = -sum_k q_k log_softmax(s / student_temp)_k per row. Each function returns the
 * unweighted loss term and writes weight x dTerm/dInput; gradients w.r.t. logits may be written
 * over the logits themselves (ds may alias s), which halves the memory for large K. */
#ifndef RDINO_LOSS_H
#define RDINO_LOSS_H

#include <stddef.h>

/* Z = n_glob_terms + n_loc_terms = 2 + max(2 n_local, 1) (so n_local = 0 gives 3). */
int rd_dino_loss_terms(int n_local);

/* DINO loss over B images: targets [2B, K] in swapped order (row r = teacher on the other view
 * of student row r: [teacher crop 2; teacher crop 1]); s_local [n_local B, K] crop-major
 * (row j B + b); s_global [2B, K] ([crop 1; crop 2]).
 *   local  = (1/Z) sum_j sum_g mean_b CE(T[g, b], s_local[j B + b])
 *   global = (2/Z) mean_r CE(T[r], s_global[r])
 * ds_local / ds_global receive weight x the gradients (ds_local unused if n_local = 0). */
void rd_dino_loss(const float *targets, const float *s_local, const float *s_global, int B,
                  int n_local, int K, double student_temp, double weight, double *loss_local,
                  double *loss_global, float *ds_local, float *ds_global);

/* iBOT loss over M masked patches of n_images (= 2B) global crops:
 *   (1/n_images) sum_p masks_weight[p] CE(targets[p], s[p]); ds [M, K] = weight x gradient. */
double rd_ibot_loss(const float *targets, const float *s, const float *masks_weight, int M,
                    int n_images, int K, double student_temp, double weight, float *ds);

/* Doubles of work rd_koleo_loss needs for n rows of dimension D. */
size_t rd_koleo_work(int n, int D);
/* KoLeo on rows x [n, D] (one crop of a group of images):
 *   x^_i = x_i / max(||x_i||, 1e-8), j(i) = argmax_j <x^_i, x^_j> with the diagonal set to -1,
 *   d_i = ||x^_i - x^_j(i) + 1e-8||, loss = -mean_i log(d_i + 1e-8).
 * dx [n, D] += weight x dloss/dx (gradient flows into x_i and x_j(i); none through j(i));
 * dx may be NULL. nn_index [n] (optional) receives j(i). work: rd_koleo_work(n, D) doubles. */
double rd_koleo_loss(const float *x, int n, int D, double weight, float *dx, int *nn_index,
                     double *work);

#endif
