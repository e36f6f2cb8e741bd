/* oneDNN (Debian libdnnl 2.6.3) bf16 matmul on the ViT-B/14 linears: the library alternative to
 * src/nn/gemm_bf16.c, measured like bench/bench_gemm_bf16.c. Not part of the build (rdino does
 * not link oneDNN); bench/bench_gemm_bf16.sh compiles it when the headers are installed:
 *   cc -O2 -fopenmp bench/peers/gemm_bf16_onednn.c -o gemm_bf16_onednn -ldnnl
 *   OMP_NUM_THREADS=1 ./gemm_bf16_onednn [--iters 3] [--img 518|224|all] [--shape qkv|...|all]
 * Primitives are created once per shape (user scratchpad), weights reordered once into the
 * layout the forward primitive prefers; per call fp32 activations are converted by a reorder.
 *   fwd:   reorder x -> bf16, matmul(x16, W^T) + bias -> fp32
 *   train: reorder W -> both bf16 layouts, the forward, reorder dy -> bf16,
 *          dx += dy16 W (sum post-op), dW += dy16^T x16 (dy16 read transposed by strides)
 * Also counts the malloc-family calls of one forward call (this program wraps malloc, as
 * tests/train/test_multistep.c does to check the training step allocates nothing).
 * Prints "PEER onednn gemm_bf16_<shape><img>_t<threads> fwd GFLOP/s: <x> (...)". */
#include <dnnl.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
static long allocations;
void *malloc(size_t n) {
    allocations++;
    return __libc_malloc(n);
}
void *calloc(size_t a, size_t b) {
    allocations++;
    return __libc_calloc(a, b);
}
void *realloc(void *p, size_t n) {
    allocations++;
    return __libc_realloc(p, n);
}
int posix_memalign(void **p, size_t align, size_t n) {
    allocations++;
    *p = __libc_memalign(align, n);
    return *p ? 0 : 12;
}
void *aligned_alloc(size_t align, size_t n) {
    allocations++;
    return __libc_memalign(align, n);
}

#define CHECK(call)                                                                                \
    do {                                                                                           \
        dnnl_status_t s_ = (call);                                                                 \
        if (s_ != dnnl_success) {                                                                  \
            fprintf(stderr, "gemm_bf16_onednn: %s failed (%d)\n", #call, (int)s_);                 \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static dnnl_engine_t engine;
static dnnl_stream_t stream;

static dnnl_memory_desc_t md_tag(int rows, int cols, dnnl_data_type_t type, dnnl_format_tag_t tag) {
    dnnl_memory_desc_t md;
    dnnl_dims_t dims = {rows, cols};
    CHECK(dnnl_memory_desc_init_by_tag(&md, 2, dims, type, tag));
    return md;
}

static dnnl_memory_t memory(const dnnl_memory_desc_t *md, void *data) {
    dnnl_memory_t m;
    CHECK(dnnl_memory_create(&m, md, engine, data ? data : DNNL_MEMORY_ALLOCATE));
    return m;
}

typedef struct matmul {
    dnnl_primitive_t prim;
    dnnl_memory_t scratch;
    const dnnl_memory_desc_t *weights_md;
    const char *impl;
} matmul;

/* dst (+)= src weights (+ bias): weights in the layout oneDNN picks when `any`. */
static matmul matmul_create(dnnl_memory_desc_t src, dnnl_memory_desc_t wei,
                            dnnl_memory_desc_t *bias, dnnl_memory_desc_t dst, int accumulate) {
    matmul m;
    dnnl_matmul_desc_t desc;
    CHECK(dnnl_matmul_desc_init(&desc, &src, &wei, bias, &dst));
    dnnl_primitive_attr_t attr;
    CHECK(dnnl_primitive_attr_create(&attr));
    CHECK(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user));
    if (accumulate) {
        dnnl_post_ops_t ops;
        CHECK(dnnl_post_ops_create(&ops));
        CHECK(dnnl_post_ops_append_sum(ops, 1.0f));
        CHECK(dnnl_primitive_attr_set_post_ops(attr, ops));
        dnnl_post_ops_destroy(ops);
    }
    dnnl_primitive_desc_t pd;
    CHECK(dnnl_primitive_desc_create(&pd, &desc, attr, engine, NULL));
    dnnl_primitive_attr_destroy(attr);
    CHECK(dnnl_primitive_create(&m.prim, pd));
    m.weights_md = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    m.scratch = memory(dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0), NULL);
    CHECK(dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &m.impl));
    return m; /* pd stays alive: weights_md and impl point into it */
}

static void matmul_run(const matmul *m, dnnl_memory_t src, dnnl_memory_t wei, dnnl_memory_t bias,
                       dnnl_memory_t dst) {
    dnnl_exec_arg_t args[5] = {{DNNL_ARG_SRC, src},
                               {DNNL_ARG_WEIGHTS, wei},
                               {DNNL_ARG_DST, dst},
                               {DNNL_ARG_SCRATCHPAD, m->scratch},
                               {DNNL_ARG_BIAS, bias}};
    CHECK(dnnl_primitive_execute(m->prim, stream, bias ? 5 : 4, args));
}

static dnnl_primitive_t reorder_create(const dnnl_memory_desc_t *from,
                                       const dnnl_memory_desc_t *to) {
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t p;
    CHECK(dnnl_reorder_primitive_desc_create(&pd, from, engine, to, engine, NULL));
    CHECK(dnnl_primitive_create(&p, pd));
    dnnl_primitive_desc_destroy(pd);
    return p;
}

static void reorder_run(dnnl_primitive_t p, dnnl_memory_t from, dnnl_memory_t to) {
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
    CHECK(dnnl_primitive_execute(p, stream, 2, args));
}

static float *filled(size_t n, unsigned seed) {
    float *x = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)(seed >> 8) / 16777216.0f - 0.5f;
    }
    return x;
}

int main(int argc, char **argv) {
    static const struct {
        const char *name;
        int OC, C;
    } layers[] = {{"qkv", 2304, 768}, {"proj", 768, 768}, {"fc1", 3072, 768}, {"fc2", 768, 3072}};
    static const int images[][2] = {{518, 4 * 1370}, {224, 4 * 257}};
    int iters = 3;
    const char *only_img = "all", *only_shape = "all";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--iters")) iters = atoi(argv[i + 1]);
        if (!strcmp(argv[i], "--img")) only_img = argv[i + 1];
        if (!strcmp(argv[i], "--shape")) only_shape = argv[i + 1];
    }
    CHECK(dnnl_engine_create(&engine, dnnl_cpu, 0));
    CHECK(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags));
    int threads = omp_get_max_threads();
    for (int im = 0; im < 2; im++) {
        char img[16];
        snprintf(img, sizeof img, "%d", images[im][0]);
        if (strcmp(only_img, "all") && strcmp(only_img, img)) continue;
        for (int l = 0; l < 4; l++) {
            if (strcmp(only_shape, "all") && strcmp(only_shape, layers[l].name)) continue;
            int R = images[im][1], OC = layers[l].OC, C = layers[l].C;
            float *x = filled((size_t)R * C, 1), *w = filled((size_t)OC * C, 2);
            float *b = filled((size_t)OC, 3), *dy = filled((size_t)R * OC, 4);
            float *y = filled((size_t)R * OC, 5), *dx = filled((size_t)R * C, 6);
            float *dw = filled((size_t)OC * C, 7);
            dnnl_memory_desc_t x_f = md_tag(R, C, dnnl_f32, dnnl_ab),
                               x_h = md_tag(R, C, dnnl_bf16, dnnl_ab);
            dnnl_memory_desc_t dy_f = md_tag(R, OC, dnnl_f32, dnnl_ab);
            dnnl_memory_desc_t dy_h = md_tag(R, OC, dnnl_bf16, dnnl_ab);
            dnnl_memory_desc_t dyT_h = md_tag(OC, R, dnnl_bf16, dnnl_ba); /* dy16 transposed */
            dnnl_memory_desc_t wT_f = md_tag(C, OC, dnnl_f32, dnnl_ba);   /* W^T [C, OC] over W */
            dnnl_memory_desc_t w_f = md_tag(OC, C, dnnl_f32, dnnl_ab);
            dnnl_memory_desc_t b_f = md_tag(1, OC, dnnl_f32, dnnl_ab);
            dnnl_memory_desc_t y_f = md_tag(R, OC, dnnl_f32, dnnl_ab);
            dnnl_memory_desc_t dx_f = md_tag(R, C, dnnl_f32, dnnl_ab);
            dnnl_memory_desc_t dw_f = md_tag(OC, C, dnnl_f32, dnnl_ab);
            matmul fwd =
                matmul_create(x_h, md_tag(C, OC, dnnl_bf16, dnnl_format_tag_any), &b_f, y_f, 0);
            matmul bwd_x =
                matmul_create(dy_h, md_tag(OC, C, dnnl_bf16, dnnl_format_tag_any), NULL, dx_f, 1);
            matmul bwd_w = matmul_create(dyT_h, x_h, NULL, dw_f, 1);
            dnnl_memory_t mx = memory(&x_f, x), mx16 = memory(&x_h, NULL), mdy = memory(&dy_f, dy);
            dnnl_memory_t mdy16 = memory(&dy_h, NULL), mb = memory(&b_f, b), my = memory(&y_f, y);
            dnnl_memory_t mdx = memory(&dx_f, dx), mdw = memory(&dw_f, dw);
            void *dy16_data;
            CHECK(dnnl_memory_get_data_handle(mdy16, &dy16_data));
            dnnl_memory_t mdyT16 = memory(&dyT_h, dy16_data);
            dnnl_memory_t mwT = memory(&wT_f, w), mw = memory(&w_f, w);
            dnnl_memory_t mw_fwd = memory(fwd.weights_md, NULL),
                          mw_bwd = memory(bwd_x.weights_md, NULL);
            dnnl_primitive_t to_x16 = reorder_create(&x_f, &x_h),
                             to_dy16 = reorder_create(&dy_f, &dy_h);
            dnnl_primitive_t to_w_fwd = reorder_create(&wT_f, fwd.weights_md);
            dnnl_primitive_t to_w_bwd = reorder_create(&w_f, bwd_x.weights_md);
            reorder_run(to_w_fwd, mwT, mw_fwd); /* packed once for the forward */
            double best_fwd = INFINITY, best_train = INFINITY;
            long per_call = -1;
            for (int it = 0; it <= iters; it++) {
                long a0 = allocations;
                double t0 = omp_get_wtime();
                reorder_run(to_x16, mx, mx16);
                matmul_run(&fwd, mx16, mw_fwd, mb, my);
                double t1 = omp_get_wtime();
                if (it == 1) per_call = allocations - a0;
                reorder_run(to_w_fwd, mwT, mw_fwd);
                reorder_run(to_w_bwd, mw, mw_bwd);
                reorder_run(to_x16, mx, mx16);
                matmul_run(&fwd, mx16, mw_fwd, mb, my);
                reorder_run(to_dy16, mdy, mdy16);
                matmul_run(&bwd_x, mdy16, mw_bwd, NULL, mdx);
                matmul_run(&bwd_w, mdyT16, mx16, NULL, mdw);
                double t2 = omp_get_wtime();
                if (it == 0) continue;
                if (t1 - t0 < best_fwd) best_fwd = t1 - t0;
                if (t2 - t1 < best_train) best_train = t2 - t1;
            }
            double flops = 2.0 * R * OC * C;
            printf("PEER onednn gemm_bf16_%s%s_t%d fwd GFLOP/s: %.1f (%ld allocations per call; "
                   "%s)\n",
                   layers[l].name, img, threads, flops / best_fwd / 1e9, per_call, fwd.impl);
            printf("PEER onednn gemm_bf16_%s%s_t%d train GFLOP/s: %.1f (dx %s, dW %s)\n",
                   layers[l].name, img, threads, 3 * flops / best_train / 1e9, bwd_x.impl,
                   bwd_w.impl);
            fflush(stdout);
            /* freed with the process: a benchmark of a few shapes */
        }
    }
    return 0;
}
