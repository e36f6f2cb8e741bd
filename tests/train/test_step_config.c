/* rd_step_setup_from_config: DINOv2's defaults and a vitl14-style override set. */
#include "harness.h"
#include "rdino/step.h"

static void defaults_and_overrides(rd_test *t) {
    rd_error err = {0};
    rd_config cfg;
    CHECK_OK(rd_config_init(&cfg, &err), &err);
    rd_vit_config vc;
    CHECK_OK(rd_vit_config_default(&vc, "vit_small", 16, 224, &err), &err);
    rd_step_config sc;
    rd_head_config dino, ibot;
    int separate = -1;
    CHECK_OK(rd_step_setup_from_config(&cfg, &vc, &sc, &dino, &ibot, &separate, &err), &err);
    CHECK(sc.batch == 64 && sc.n_local == 8 && sc.global_size == 224 && sc.local_size == 96);
    CHECK(sc.targets == RD_TARGETS_CENTERING && sc.koleo_weight == 0.1 && sc.clip_grad == 3.0);
    CHECK(sc.layerwise_decay == 0.9 && sc.patch_embed_lr_mult == 0.2 && sc.beta2 == 0.999);
    CHECK(sc.student_temp == 0.1 && sc.center_momentum == 0.9 && sc.sinkhorn_iterations == 3);
    CHECK(sc.channels == 3 && sc.koleo_group == 0);
    /* 64 masked images of 128: sum of floor(196 probs[i+1]) >= 64 x 19 patches. */
    CHECK(sc.max_masked >= 64 * 19 && sc.max_masked <= 64 * 98);
    CHECK(!separate && dino.prototypes == 65536 && dino.bottleneck == 256 &&
          dino.hidden_dim == 2048 && dino.nlayers == 3 && dino.in_dim == 384);
    CHECK(ibot.prototypes == dino.prototypes);
    static const char *const l14[] = {"train.centering=sinkhorn_knopp", "ibot.separate_head=true",
                                      "ibot.head_n_prototypes=1024", "train.batch_size_per_gpu=4",
                                      "ibot.mask_sample_probability=0"};
    for (size_t i = 0; i < sizeof l14 / sizeof l14[0]; i++)
        CHECK_OK(rd_config_override(&cfg, l14[i], &err), &err);
    CHECK_OK(rd_step_setup_from_config(&cfg, &vc, &sc, &dino, &ibot, &separate, &err), &err);
    CHECK(sc.targets == RD_TARGETS_SINKHORN && separate && ibot.prototypes == 1024);
    CHECK(sc.batch == 4 && sc.max_masked == 0);
    rd_config_free(&cfg);
}

static const rd_test_case cases[] = {
    {"defaults_and_overrides", defaults_and_overrides},
};
RD_TEST_MAIN("train/step_config", cases)
