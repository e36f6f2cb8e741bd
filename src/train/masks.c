#include "rdino/masks.h"

#include <math.h>
#include <string.h>

void rd_mask_config_default(rd_mask_config *cfg, int crop_size, int patch_size,
                            double sample_probability, double ratio_min, double ratio_max) {
    cfg->grid_h = cfg->grid_w = crop_size / patch_size;
    cfg->sample_probability = sample_probability;
    cfg->ratio_min = ratio_min;
    cfg->ratio_max = ratio_max;
    cfg->min_patches = 4;
    /* Python: 0.5 * img_size // patch_size * img_size // patch_size, left to right. */
    cfg->max_patches = floor(floor(0.5 * crop_size / patch_size) * crop_size / patch_size);
    cfg->min_aspect = 0.3;
}

/* One block attempt of MaskingGenerator._mask: up to 10 tries; returns patches newly set. */
static int try_block(const rd_mask_config *cfg, uint8_t *mask, double budget, rd_rng *rng) {
    const int H = cfg->grid_h, W = cfg->grid_w;
    const double log_lo = log(cfg->min_aspect), log_hi = log(1.0 / cfg->min_aspect);
    int delta = 0;
    for (int attempt = 0; attempt < 10; attempt++) {
        double area = rd_rng_range(rng, cfg->min_patches, budget);
        double aspect = exp(rd_rng_range(rng, log_lo, log_hi));
        /* Python round(): half to even, which is rint() in the default rounding mode. */
        int bh = (int)rint(sqrt(area * aspect)), bw = (int)rint(sqrt(area / aspect));
        if (bw < W && bh < H) {
            int top = (int)rd_rng_randint(rng, 0, H - bh);
            int left = (int)rd_rng_randint(rng, 0, W - bw);
            int already = 0;
            for (int i = top; i < top + bh; i++)
                for (int j = left; j < left + bw; j++) already += mask[i * W + j];
            int fresh = bh * bw - already;
            if (fresh > 0 && fresh <= budget) {
                for (int i = top; i < top + bh; i++)
                    for (int j = left; j < left + bw; j++) {
                        if (!mask[i * W + j]) {
                            mask[i * W + j] = 1;
                            delta++;
                        }
                    }
            }
        }
        if (delta > 0) break;
    }
    return delta;
}

int rd_block_mask(const rd_mask_config *cfg, uint8_t *mask, int target, rd_rng *rng) {
    int count = 0;
    while (count < target) {
        double budget = fmin((double)(target - count), cfg->max_patches);
        int delta = try_block(cfg, mask, budget, rng);
        if (delta == 0) break;
        count += delta;
    }
    return count;
}

rd_status rd_ibot_masks_alloc(rd_ibot_masks *m, int capacity, int n_patches, rd_arena *arena,
                              rd_error *err) {
    memset(m, 0, sizeof *m);
    size_t cells = (size_t)capacity * n_patches;
    m->capacity = capacity;
    m->n_patches = n_patches;
    m->mask = rd_arena_alloc(arena, cells);
    m->indices = rd_arena_alloc(arena, cells * sizeof(int));
    m->weight = rd_arena_floats(arena, cells);
    if (arena->base && !m->weight)
        return rd_fail(err, RD_ENOMEM, "arena '%s' too small for the masks of %d images",
                       arena->name, capacity);
    return RD_OK;
}

/* torch.linspace(lo, hi, steps) in float32 (ATen: start + i step for the first half,
 * end - (steps - 1 - i) step for the second). */
static float linspace_f32(double lo, double hi, int steps, int i) {
    float start = (float)lo, end = (float)hi;
    if (steps == 1) return start;
    float step = (end - start) / (float)(steps - 1);
    return i < steps / 2 ? start + step * (float)i : end - step * (float)(steps - 1 - i);
}

static int n_masked_images(const rd_mask_config *cfg, int n_images) {
    return (int)floor(n_images * cfg->sample_probability);
}

int rd_ibot_masks_upperbound(const rd_mask_config *cfg, int n_images) {
    int n_masked = n_masked_images(cfg, n_images), N = cfg->grid_h * cfg->grid_w, bound = 0;
    for (int i = 0; i < n_masked; i++)
        bound +=
            (int)((float)N * linspace_f32(cfg->ratio_min, cfg->ratio_max, n_masked + 1, i + 1));
    return bound;
}

void rd_ibot_masks_index(rd_ibot_masks *m) {
    const int N = m->n_patches;
    m->count = 0;
    for (int img = 0; img < m->n_images; img++) {
        const uint8_t *row = m->mask + (size_t)img * N;
        int c = 0;
        for (int p = 0; p < N; p++) c += row[p] != 0;
        float w = 1.0f / (float)(c > 1 ? c : 1);
        for (int p = 0; p < N; p++) {
            if (!row[p]) continue;
            m->indices[m->count] = img * N + p;
            m->weight[m->count++] = w;
        }
    }
}

rd_status rd_ibot_masks_generate(rd_ibot_masks *m, const rd_mask_config *cfg, int n_images,
                                 uint64_t seed, uint32_t epoch, uint64_t first_image,
                                 rd_error *err) {
    const int N = cfg->grid_h * cfg->grid_w;
    if (n_images > m->capacity || N != m->n_patches)
        return rd_fail(err, RD_ERANGE,
                       "iBOT masks: %d images of %d patches do not fit buffers of %d x %d",
                       n_images, N, m->capacity, m->n_patches);
    const int n_masked = n_masked_images(cfg, n_images);
    if (n_masked > 65535)
        return rd_fail(err, RD_ERANGE, "iBOT masks: %d masked images per group (max 65535)",
                       n_masked);
    m->n_images = n_images;
    m->masked_images = n_masked;
    m->upperbound = rd_ibot_masks_upperbound(cfg, n_images);
    memset(m->mask, 0, (size_t)n_images * N);
    /* The shuffle comes from the group's stream; mask i (ratio and blocks) from its own
     * stream and lands in image perm[i], which is generating in order and then shuffling. */
    rd_rng rng;
    rd_rng_init(&rng, seed, RD_RNG_MASK, epoch, first_image, 0);
    int *perm = m->indices; /* scratch until rd_ibot_masks_index */
    rd_rng_permutation(&rng, perm, n_images);
    for (int i = 0; i < n_masked; i++) {
        rd_rng_init(&rng, seed, RD_RNG_MASK, epoch, first_image, (uint32_t)(1 + i));
        float lo = linspace_f32(cfg->ratio_min, cfg->ratio_max, n_masked + 1, i);
        float hi = linspace_f32(cfg->ratio_min, cfg->ratio_max, n_masked + 1, i + 1);
        /* random.uniform(lo, hi) on float32 tensors: lo + (hi - lo) * u, all in float32. */
        float ratio = lo + (hi - lo) * (float)rd_rng_uniform(&rng);
        rd_block_mask(cfg, m->mask + (size_t)perm[i] * N, (int)((float)N * ratio), &rng);
    }
    rd_ibot_masks_index(m);
    return RD_OK;
}
