/* A tiny DINOv2 configuration for pretraining tests: ViT with D = 32, 2 blocks, 4 heads,
 * patch 8, 32 px global and 16 px local crops, K = 64, separate iBOT head (K = 48). */
#ifndef RDINO_TEST_TINY_H
#define RDINO_TEST_TINY_H

#include "rdino/config.h"
#include "rdino/step.h"

/* cfg (initialised here) holds the tiny config plus overrides (NULL-terminated "k=v" list). */
rd_status tiny_config(rd_config *cfg, const char *const *overrides, rd_error *err);
/* A trainer for cfg (as rdino-pretrain sets one up on one rank). */
rd_status tiny_trainer(rd_trainer *tr, const rd_config *cfg, rd_error *err);

#endif
