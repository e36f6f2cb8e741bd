/* DINO head: finite-difference check of the backward (every parameter and the input, for 1, 2
 * and 3 MLP layers), DINOv2 parameter names, init, and the head's invariants (unit-norm
 * bottleneck output, |logit| <= max g_k). The forward runs in fp32 and the probe loss
 * sum(logits x probe) is accumulated in double; central differences with eps 1e-2 are compared
 * at rtol 5e-3, atol 5e-4. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "rdino/heads.h"
#include "rdino/rng.h"

enum { ROWS = 5, IN = 6, HIDDEN = 9, BOTTLENECK = 4, K = 7 };

typedef struct head_case {
    rd_param_set set;
    rd_head head;
    rd_arena arena;
    rd_head_acts acts;
    float x[ROWS * IN], probe[ROWS * K];
} head_case;

static void fill_normal(float *x, size_t n, uint64_t index, double scale) {
    rd_rng r;
    rd_rng_init(&r, 99, RD_RNG_TEST, 0, index, 0);
    for (size_t i = 0; i < n; i++) x[i] = (float)(scale * rd_rng_normal(&r));
}

static int setup(rd_test *t, head_case *c, int nlayers) {
    rd_error err = {0};
    rd_head_config cfg = {IN, HIDDEN, BOTTLENECK, K, nlayers};
    rd_params_init(&c->set);
    CHECK_OK(rd_head_declare(&c->head, &c->set, RD_MODULE_DINO_HEAD, &cfg, &err), &err);
    CHECK_OK(rd_params_alloc(&c->set, 1, &err), &err);
    /* Random parameters of unit-ish scale so every path matters (not the small DINOv2 init). */
    for (int i = 0; i < c->set.count; i++)
        fill_normal(rd_param_data(&c->set, i), c->set.params[i].numel, 10 + (uint64_t)i, 0.5);
    float *g = rd_param_data(&c->set, c->head.weight_g);
    for (int k = 0; k < K; k++) g[k] = 0.5f + 0.1f * (float)k;
    fill_normal(c->x, ROWS * IN, 1, 1.0);
    fill_normal(c->probe, ROWS * K, 2, 1.0);
    rd_arena_init_measure(&c->arena, "measure");
    rd_head_acts_alloc(&c->acts, &c->head, ROWS, 1, &c->arena, &err);
    size_t bytes = c->arena.peak;
    CHECK_OK(rd_arena_init(&c->arena, "head", bytes, &err), &err);
    CHECK_OK(rd_head_acts_alloc(&c->acts, &c->head, ROWS, 1, &c->arena, &err), &err);
    return t->failures == 0;
}

static void teardown(head_case *c) {
    rd_arena_free(&c->arena);
    rd_params_free(&c->set);
}

static double probe_loss(void *ctx) {
    head_case *c = ctx;
    rd_error err;
    if (rd_head_forward(&c->head, &c->set, &c->acts, c->x, ROWS, &err)) return NAN;
    double s = 0;
    for (int i = 0; i < ROWS * K; i++) s += (double)c->acts.logits[i] * c->probe[i];
    return s;
}

static void check_backward(rd_test *t, int nlayers) {
    head_case c;
    if (!setup(t, &c, nlayers)) return;
    rd_error err = {0};
    float dx[ROWS * IN] = {0};
    memset(c.set.grad, 0, c.set.numel * sizeof(float));
    CHECK_OK(rd_head_forward(&c.head, &c.set, &c.acts, c.x, ROWS, &err), &err);
    rd_head_backward(&c.head, &c.set, &c.acts, c.probe, dx);
    CHECK_GRAD("dx", c.x, dx, ROWS * IN, probe_loss, &c, 1e-2, 5e-3, 5e-4);
    for (int i = 0; i < c.set.count; i++)
        CHECK_GRAD(c.set.params[i].name, rd_param_data(&c.set, i), rd_param_grad(&c.set, i),
                   c.set.params[i].numel, probe_loss, &c, 1e-2, 5e-3, 5e-4);
    /* The backward accumulates: a second pass doubles every gradient. */
    float *once = malloc(c.set.numel * sizeof(float));
    memcpy(once, c.set.grad, c.set.numel * sizeof(float));
    CHECK_OK(rd_head_forward(&c.head, &c.set, &c.acts, c.x, ROWS, &err), &err);
    rd_head_backward(&c.head, &c.set, &c.acts, c.probe, NULL);
    for (size_t i = 0; i < c.set.numel; i++) once[i] *= 2.0f;
    CHECK_CLOSE("accumulated gradients", c.set.grad, once, c.set.numel, 1e-5, 1e-6);
    free(once);
    teardown(&c);
}

static void backward_three_layers(rd_test *t) {
    check_backward(t, 3);
}
static void backward_two_layers(rd_test *t) {
    check_backward(t, 2);
}
static void backward_one_layer(rd_test *t) {
    check_backward(t, 1);
}

static void dinov2_parameter_names(rd_test *t) {
    static const char *const want3[] = {"mlp.0.weight",        "mlp.0.bias",         "mlp.2.weight",
                                        "mlp.2.bias",          "mlp.4.weight",       "mlp.4.bias",
                                        "last_layer.weight_g", "last_layer.weight_v"};
    head_case c;
    if (!setup(t, &c, 3)) return;
    CHECK(c.set.count == 8);
    for (int i = 0; i < c.set.count && i < 8; i++)
        CHECK_MSG(strcmp(c.set.params[i].name, want3[i]) == 0, "param %d is %s, want %s", i,
                  c.set.params[i].name, want3[i]);
    const rd_param *g = &c.set.params[c.head.weight_g], *v = &c.set.params[c.head.weight_v];
    CHECK(g->ndim == 2 && g->shape[0] == K && g->shape[1] == 1);
    CHECK(v->ndim == 2 && v->shape[0] == K && v->shape[1] == BOTTLENECK);
    CHECK(c.set.params[0].shape[0] == HIDDEN && c.set.params[0].shape[1] == IN);
    teardown(&c);
    if (!setup(t, &c, 1)) return;
    CHECK(c.set.count == 4 && strcmp(c.set.params[0].name, "mlp.weight") == 0 &&
          strcmp(c.set.params[1].name, "mlp.bias") == 0);
    teardown(&c);
}

/* DINOv2 init: unit-norm effective prototypes (g = 1) so |logit| <= 1, unit-norm bottleneck. */
static void init_and_invariants(rd_test *t) {
    enum { BIG_IN = 64, BIG_HIDDEN = 128, BIG_BN = 32, BIG_K = 256, BIG_ROWS = 8 };
    rd_error err = {0};
    rd_param_set set;
    rd_params_init(&set);
    rd_head head;
    rd_head_config cfg = {BIG_IN, BIG_HIDDEN, BIG_BN, BIG_K, 3};
    CHECK_OK(rd_head_declare(&head, &set, RD_MODULE_IBOT_HEAD, &cfg, &err), &err);
    CHECK_OK(rd_params_alloc(&set, 0, &err), &err);
    rd_head_init(&head, &set, 7);
    const rd_param *w0 = &set.params[head.weight[1]];
    const float *w = rd_param_data(&set, head.weight[1]);
    double s = 0, s2 = 0;
    for (size_t i = 0; i < w0->numel; i++) {
        s += w[i];
        s2 += (double)w[i] * w[i];
    }
    double mean = s / (double)w0->numel, sd = sqrt(s2 / (double)w0->numel - mean * mean);
    CHECK_NEAR(sd, 0.02, 0.001); /* 16384 draws: sd of the estimate ~1e-4 */
    CHECK_NEAR(mean, 0.0, 0.001);
    const float *b = rd_param_data(&set, head.bias[0]);
    for (int i = 0; i < BIG_HIDDEN; i++) CHECK(b[i] == 0.0f);
    const float *v = rd_param_data(&set, head.weight_v), *g = rd_param_data(&set, head.weight_g);
    double bound = 1.0 / sqrt(BIG_BN);
    for (int i = 0; i < BIG_K * BIG_BN; i++) CHECK(fabs(v[i]) <= bound);
    for (int k = 0; k < BIG_K; k++) CHECK(g[k] == 1.0f);
    /* Same seed, same parameters; the init is a function of (seed, parameter number). */
    float *copy = malloc(set.numel * sizeof(float));
    memcpy(copy, set.data, set.numel * sizeof(float));
    rd_head_init(&head, &set, 7);
    CHECK(memcmp(copy, set.data, set.numel * sizeof(float)) == 0);
    rd_head_init(&head, &set, 8);
    CHECK(memcmp(copy, set.data, set.numel * sizeof(float)) != 0);
    free(copy);

    rd_arena arena;
    rd_arena_init_measure(&arena, "measure");
    rd_head_acts acts;
    rd_head_acts_alloc(&acts, &head, BIG_ROWS, 0, &arena, &err);
    size_t bytes = arena.peak;
    CHECK_OK(rd_arena_init(&arena, "head", bytes, &err), &err);
    CHECK_OK(rd_head_acts_alloc(&acts, &head, BIG_ROWS, 0, &arena, &err), &err);
    float x[BIG_ROWS * BIG_IN];
    fill_normal(x, BIG_ROWS * BIG_IN, 3, 1.0);
    CHECK_OK(rd_head_forward(&head, &set, &acts, x, BIG_ROWS, &err), &err);
    for (int k = 0; k < BIG_K; k++) {
        double n = 0;
        for (int j = 0; j < BIG_BN; j++)
            n += (double)acts.weight[k * BIG_BN + j] * acts.weight[k * BIG_BN + j];
        CHECK_NEAR(sqrt(n), 1.0, 1e-6);
    }
    for (int r = 0; r < BIG_ROWS; r++) {
        double n = 0;
        for (int j = 0; j < BIG_BN; j++)
            n += (double)acts.z[r * BIG_BN + j] * acts.z[r * BIG_BN + j];
        CHECK_NEAR(sqrt(n), 1.0, 1e-6);
    }
    for (int i = 0; i < BIG_ROWS * BIG_K; i++) CHECK(fabsf(acts.logits[i]) <= 1.0f + 1e-6f);
    CHECK(rd_head_forward(&head, &set, &acts, x, BIG_ROWS + 1, &err) == RD_ERANGE);
    rd_arena_free(&arena);
    rd_params_free(&set);
}

static const rd_test_case cases[] = {
    {"backward_three_layers", backward_three_layers},
    {"backward_two_layers", backward_two_layers},
    {"backward_one_layer", backward_one_layer},
    {"dinov2_parameter_names", dinov2_parameter_names},
    {"init_and_invariants", init_and_invariants},
};
RD_TEST_MAIN("model/heads", cases)
