/* Schedules (CosineScheduler, build_schedulers) built from the default config: boundary values, the
 * cosine and linear shapes (rtol 1e-12 against the closed forms), and the lr scaling rules. */
#include "harness.h"
#include "rdino/config.h"
#include "rdino/schedule.h"

static void default_schedules(rd_test *t) {
    rd_config cfg;
    rd_error err = {0};
    CHECK_OK(rd_config_init(&cfg, &err), &err);
    rd_schedules s;
    CHECK_OK(rd_schedules_from_config(&s, &cfg, 1024, &err), &err);
    const int64_t total = 100 * 1250, warmup = 10 * 1250;
    const double peak = 4e-3; /* base_lr x sqrt(1024 / 1024) */
    rd_schedule_values v;
    rd_schedules_at(&s, 0, &v);
    CHECK(v.lr == 0.0 && v.last_layer_lr == 0.0);
    /* final + 0.5 (base - final) x 2 is base up to one rounding, as in numpy. */
    CHECK_NEAR(v.wd, 0.04, 1e-16);
    CHECK_NEAR(v.momentum, 0.992, 1e-16);
    CHECK(v.teacher_temp == 0.04);
    CHECK_NEAR(rd_cosine_value(&s.lr, warmup - 1), peak, 1e-18);
    CHECK_NEAR(rd_cosine_value(&s.lr, warmup), peak, 1e-18);
    CHECK_NEAR(rd_cosine_value(&s.lr, 1000), peak * 1000 / (warmup - 1), 1e-15);
    /* Cosine half way through the decay: the mean of peak and min_lr. */
    CHECK_NEAR(rd_cosine_value(&s.lr, warmup + (total - warmup) / 2), (peak + 1e-6) / 2, 1e-15);
    CHECK(rd_cosine_value(&s.lr, total - 1) > 1e-6); /* never reaches final inside */
    rd_schedules_at(&s, total, &v);
    CHECK(v.lr == 1e-6 && v.last_layer_lr == 1e-6 && v.wd == 0.4 && v.momentum == 1.0);
    rd_schedules_at(&s, total + 5, &v);
    CHECK(v.momentum == 1.0 && v.teacher_temp == 0.07);
    /* Last layer frozen during the first epoch, then the lr schedule. */
    CHECK(rd_cosine_value(&s.last_layer_lr, 1249) == 0.0);
    CHECK(rd_cosine_value(&s.last_layer_lr, 1250) == rd_cosine_value(&s.lr, 1250));
    CHECK(rd_cosine_value(&s.lr, 1249) > 0.0);
    /* Teacher temperature linear over 30 epochs, 0.07 from iteration 37499 on. */
    CHECK(rd_cosine_value(&s.teacher_temp, 37499) == 0.07);
    CHECK(rd_cosine_value(&s.teacher_temp, 37500) == 0.07);
    CHECK_NEAR(rd_cosine_value(&s.teacher_temp, 20000), 0.04 + 0.03 * 20000 / 37499.0, 1e-15);
    /* Weight decay and momentum: cosine from the start. */
    CHECK_NEAR(rd_cosine_value(&s.wd, total / 2), 0.22, 1e-15);
    CHECK_NEAR(rd_cosine_value(&s.momentum, total / 4),
               1.0 + 0.5 * (0.992 - 1.0) * (1 + cos(3.141592653589793 / 4)), 1e-15);
    rd_config_free(&cfg);
}

static void lr_scaling_rules(rd_test *t) {
    rd_lr_scaling rule;
    rd_error err = {0};
    CHECK_OK(rd_lr_scaling_parse("sqrt_wrt_1024", &rule, &err), &err);
    CHECK_NEAR(rd_lr_scaled(rule, 4e-3, 256), 2e-3, 1e-18);
    CHECK_OK(rd_lr_scaling_parse("linear_wrt_256", &rule, &err), &err);
    CHECK_NEAR(rd_lr_scaled(rule, 4e-3, 512), 8e-3, 1e-18);
    CHECK_OK(rd_lr_scaling_parse("none", &rule, &err), &err);
    CHECK(rd_lr_scaled(rule, 4e-3, 512) == 4e-3);
    CHECK(rd_lr_scaling_parse("sqrt", &rule, &err) == RD_EINVAL);
    /* Through the config: 8 images x 4 ranks with the default sqrt rule. */
    rd_config cfg;
    CHECK_OK(rd_config_init(&cfg, &err), &err);
    rd_schedules s;
    CHECK_OK(rd_schedules_from_config(&s, &cfg, 32, &err), &err);
    CHECK_NEAR(s.lr.base, 4e-3 * sqrt(32.0 / 1024.0), 1e-18);
    CHECK_OK(rd_config_override(&cfg, "optim.warmup_epochs=1", &err), &err);
    CHECK_OK(rd_config_override(&cfg, "optim.epochs=2", &err), &err);
    CHECK_OK(rd_schedules_from_config(&s, &cfg, 32, &err), &err);
    CHECK(s.lr.warmup == 1250 && s.lr.total == 2500);
    CHECK_OK(rd_config_override(&cfg, "optim.warmup_epochs=3", &err), &err);
    CHECK(rd_schedules_from_config(&s, &cfg, 32, &err) == RD_EINVAL);
    rd_config_free(&cfg);
}

/* Degenerate shapes: warmup of one iteration is the start value; no cosine part. */
static void degenerate_shapes(rd_test *t) {
    rd_cosine_schedule s = {
        .base = 1.0, .final = 0.5, .start_warmup = 0.25, .total = 3, .warmup = 1};
    CHECK(rd_cosine_value(&s, 0) == 0.25);
    CHECK(rd_cosine_value(&s, 1) == 1.0);
    CHECK(rd_cosine_value(&s, 3) == 0.5);
    s.warmup = 3;
    CHECK(rd_cosine_value(&s, 0) == 0.25 && rd_cosine_value(&s, 2) == 1.0);
    CHECK(rd_cosine_value(&s, 1) == 0.625);
}

static const rd_test_case cases[] = {
    {"default_schedules", default_schedules},
    {"lr_scaling_rules", lr_scaling_rules},
    {"degenerate_shapes", degenerate_shapes},
};
RD_TEST_MAIN("train/schedule", cases)
