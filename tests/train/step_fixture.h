/* The model, head and step settings of an oracle step fixture (tests/reference/README.md: the
 * StepConfig attributes) and its tensors, for tests that build an rd_trainer from one.
 * Attributes only some fixtures have, with the value when absent: layerscale (1e-5, DINOv2's;
 * 0 = no LayerScale), ffn ("mlp", or "swiglu"), qkv_bias (1), channels (in_chans), max_masked
 * (n_masked_patches), koleo_group (0). */
#ifndef RDINO_TEST_STEP_FIXTURE_H
#define RDINO_TEST_STEP_FIXTURE_H

#include "fixture.h"

#include "harness.h"
#include "rdino/step.h"

typedef struct step_fixture_config {
    rd_vit_config vit;
    rd_head_config dino, ibot;
    int separate; /* ibot is a head of its own */
    rd_step_config step;
} step_fixture_config;

/* Reads the settings from the fixture's attributes. */
void step_fixture_config_read(hid_t f, step_fixture_config *c);
/* Fills dst (data, grad or a moment buffer laid out like set) from prefix/<module>/<name>;
 * returns 0 (after a failed CHECK naming the dataset) when one is missing or misshapen. */
int step_fixture_load(rd_test *t, hid_t f, const rd_param_set *set, const char *prefix, float *dst);
/* A trainer shaped like the fixture (c receives its settings). */
rd_status step_fixture_trainer(hid_t f, rd_trainer *tr, step_fixture_config *c, rd_error *err);

#endif
