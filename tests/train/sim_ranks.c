/* Ranks simulated by threads (sim_ranks.h). */
#include "sim_ranks.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct sim_comm {
    int ranks;
    pthread_barrier_t barrier;
    const void *posted[SIM_MAX_RANKS];
    void *result;
};

/* combine(result, posted, ranks, n): result[i] from posted[0..ranks-1][i]. */
typedef void (*sim_combine_fn)(void *result, const void *const *posted, int ranks, size_t n,
                               int op);

static void sim_allreduce(sim_rank *r, void *buf, size_t n, size_t elem, sim_combine_fn combine,
                          int op) {
    sim_comm *c = r->comm;
    c->posted[r->rank] = buf;
    pthread_barrier_wait(&c->barrier);
    if (r->rank == 0) {
        c->result = malloc(n * elem + 1);
        combine(c->result, c->posted, c->ranks, n, op);
    }
    pthread_barrier_wait(&c->barrier);
    memcpy(buf, c->result, n * elem);
    pthread_barrier_wait(&c->barrier);
    if (r->rank == 0) free(c->result);
}

static void sim_combine_doubles(void *result, const void *const *posted, int ranks, size_t n,
                                int op) {
    double *out = result;
    for (size_t i = 0; i < n; i++) {
        double v = ((const double *)posted[0])[i];
        for (int k = 1; k < ranks; k++) {
            double x = ((const double *)posted[k])[i];
            v = op == RD_REDUCE_SUM ? v + x : fmax(v, x);
        }
        out[i] = v;
    }
}

/* Mean of floats over ranks (the gradient hook). */
static void sim_combine_float_mean(void *result, const void *const *posted, int ranks, size_t n,
                                   int op) {
    (void)op;
    float *out = result;
    for (size_t i = 0; i < n; i++) {
        float v = ((const float *)posted[0])[i];
        for (int k = 1; k < ranks; k++) v += ((const float *)posted[k])[i];
        out[i] = v / (float)ranks;
    }
}

rd_status sim_reduce(void *ctx, rd_reduce_op op, double *buf, size_t n, rd_error *err) {
    (void)err;
    sim_allreduce(ctx, buf, n, sizeof(double), sim_combine_doubles, (int)op);
    return RD_OK;
}

rd_status sim_mean_floats(void *ctx, float *buf, size_t n, rd_error *err) {
    (void)err;
    sim_allreduce(ctx, buf, n, sizeof(float), sim_combine_float_mean, 0);
    return RD_OK;
}

void sim_run(int W, sim_rank *ranks, void **args, void *(*fn)(void *)) {
    sim_comm comm = {.ranks = W};
    pthread_barrier_init(&comm.barrier, NULL, (unsigned)W);
    pthread_t th[SIM_MAX_RANKS];
    for (int r = 0; r < W; r++) ranks[r] = (sim_rank){&comm, r};
    for (int r = 0; r < W; r++) pthread_create(&th[r], NULL, fn, args[r]);
    for (int r = 0; r < W; r++) pthread_join(th[r], NULL);
    pthread_barrier_destroy(&comm.barrier);
}
