/* Multi-crop augmentation (DINOv2's DataAugmentationDINO on grey images): RandomResizedCrop
 * parameters against torchvision's get_params driven by the same draws, crop + resize against
 * Pillow, the blur against torchvision's gaussian_blur, the photometric ops against values worked
 * out by hand, their composition order, the probability of each op, and the keyed streams.
 * References come from tests/train/augment_reference.py at test time. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "pyref.h"
#include "rdino/augment.h"

static void path_of(char *buf, size_t n, const char *dir, const char *name, const char *suffix) {
    snprintf(buf, n, "%s/%s%s", dir, name, suffix);
}

static int write_blob(const char *dir, const char *name, const void *data, size_t bytes) {
    char path[1024];
    path_of(path, sizeof path, dir, name, ".in");
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    int ok = fwrite(data, 1, bytes, f) == bytes;
    return fclose(f) == 0 && ok;
}

/* NAME.want of exactly `bytes` bytes, or NULL. */
static void *read_want(const char *dir, const char *name, size_t bytes) {
    char path[1024];
    path_of(path, sizeof path, dir, name, ".want");
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    void *buf = malloc(bytes);
    size_t got = buf ? fread(buf, 1, bytes, f) : 0;
    int extra = fgetc(f) != EOF;
    fclose(f);
    if (got != bytes || extra) {
        free(buf);
        return NULL;
    }
    return buf;
}

static FILE *open_cases(rd_test *t, const char *dir, const char *name) {
    char path[1024];
    path_of(path, sizeof path, dir, name, "");
    FILE *f = fopen(path, "w");
    CHECK_MSG(f != NULL, "cannot write %s", path);
    return f;
}

/* ---- RandomResizedCrop parameters ---- */

enum { RRC_CASES = 500, RRC_WORDS = 128 };

/* Image size, scale and ratio of case c: ordinary sizes with DINOv2's global and local scales,
 * random ranges, tiny images, and strips too thin for any try (the centre-crop fallback). */
static void rrc_case(int c, rd_rng *pick, int *w, int *h, double scale[2], double ratio[2]) {
    ratio[0] = 3.0 / 4.0;
    ratio[1] = 4.0 / 3.0;
    *w = (int)rd_rng_randint(pick, 1, 600);
    *h = (int)rd_rng_randint(pick, 1, 600);
    scale[0] = c % 5 == 1 ? 0.05 : 0.32;
    scale[1] = c % 5 == 1 ? 0.32 : 1.0;
    if (c % 5 == 2) {
        scale[0] = rd_rng_range(pick, 0.01, 1.0);
        scale[1] = rd_rng_range(pick, scale[0], 1.0);
        ratio[0] = rd_rng_range(pick, 0.3, 1.0);
        ratio[1] = rd_rng_range(pick, ratio[0], 3.0);
    } else if (c % 5 == 3) {
        *w = (int)rd_rng_randint(pick, 1, 4);
        *h = (int)rd_rng_randint(pick, 1, 4);
    } else if (c % 5 == 4) { /* a strip: every try is too wide (or too tall) */
        int thin = (int)rd_rng_randint(pick, 1, 30),
            long_side = (int)rd_rng_randint(pick, 200, 600);
        *w = c % 2 ? thin : long_side;
        *h = c % 2 ? long_side : thin;
        scale[0] = 0.5;
    }
}

static void rrc_matches_torchvision(rd_test *t) {
    if (!rd_test_have_pillow(t)) return;
    const char *dir = rd_test_tmpdir(t);
    FILE *f = open_cases(t, dir, "rrc_cases.txt");
    if (!f) return;
    rd_crop_box *got = calloc(RRC_CASES, sizeof *got);
    rd_rng pick;
    rd_rng_init(&pick, 1, RD_RNG_TEST, 0, 0, 0);
    for (int c = 0; c < RRC_CASES; c++) {
        int w, h;
        double scale[2], ratio[2];
        rrc_case(c, &pick, &w, &h, scale, ratio);
        fprintf(f, "%d %d %.17g %.17g %.17g %.17g %d", w, h, scale[0], scale[1], ratio[0], ratio[1],
                RRC_WORDS);
        rd_rng r;
        rd_rng_init(&r, 11, RD_RNG_TEST, 0, (uint64_t)c, 0);
        for (int i = 0; i < RRC_WORDS; i++) fprintf(f, " %u", rd_rng_u32(&r));
        fputc('\n', f);
        rd_rng_init(&r, 11, RD_RNG_TEST, 0, (uint64_t)c, 0);
        got[c] = rd_rrc_params(w, h, scale, ratio, &r);
    }
    fclose(f);
    if (!rd_test_python_reference(t, "tests/train/augment_reference.py")) {
        free(got);
        return;
    }
    char path[1024];
    path_of(path, sizeof path, dir, "rrc_want.txt", "");
    FILE *want = fopen(path, "r");
    CHECK(want != NULL);
    int fallbacks = 0, mismatches = 0, read = 0;
    for (int c = 0; want && c < RRC_CASES; c++) {
        rd_crop_box b;
        int fallback;
        if (fscanf(want, "%d %d %d %d %d", &b.top, &b.left, &b.height, &b.width, &fallback) != 5)
            break;
        read++;
        fallbacks += fallback;
        if (memcmp(&b, &got[c], sizeof b) != 0 && mismatches++ < 5)
            rd_test_fail(t, __FILE__, __LINE__,
                         "case %d: (i j h w) = (%d %d %d %d), want (%d %d %d %d)", c, got[c].top,
                         got[c].left, got[c].height, got[c].width, b.top, b.left, b.height,
                         b.width);
    }
    if (want) fclose(want);
    CHECK_MSG(read == RRC_CASES, "%d of %d reference boxes", read, RRC_CASES);
    CHECK_MSG(mismatches == 0, "%d boxes differ", mismatches);
    CHECK_MSG(fallbacks >= 80 && fallbacks <= RRC_CASES - 300, "%d fallback cases", fallbacks);
    free(got);
}

static void rrc_boxes_inside_and_scaled(rd_test *t) {
    const double scale[2] = {0.05, 0.32}, ratio[2] = {3.0 / 4.0, 4.0 / 3.0};
    double lo = 1, hi = 0;
    for (int c = 0; c < 5000; c++) {
        rd_rng r;
        rd_rng_init(&r, 2, RD_RNG_AUGMENT, 0, (uint64_t)c, 2);
        rd_crop_box b = rd_rrc_params(518, 518, scale, ratio, &r);
        CHECK(b.top >= 0 && b.left >= 0 && b.height >= 1 && b.width >= 1);
        CHECK(b.top + b.height <= 518 && b.left + b.width <= 518);
        double area = (double)b.height * b.width / (518.0 * 518.0);
        double aspect = (double)b.width / b.height;
        lo = fmin(lo, area);
        hi = fmax(hi, area);
        /* rounding w and h moves the area by at most ~(w + h) / 2 pixels */
        CHECK_MSG(area > 0.05 * 0.97 && area < 0.32 * 1.03, "area fraction %g", area);
        CHECK_MSG(aspect > 0.75 * 0.97 && aspect < 4.0 / 3.0 * 1.03, "aspect %g", aspect);
    }
    CHECK(lo < 0.06 && hi > 0.31); /* the whole range is used */
}

/* ---- blur ---- */

static void blur_matches_torchvision(rd_test *t) {
    if (!rd_test_have_pillow(t)) return;
    const char *dir = rd_test_tmpdir(t);
    static const struct {
        int w, h;
        double sigma;
    } cases[] = {{37, 23, 0.1}, {16, 16, 0.7}, {24, 31, 1.234}, {5, 9, 2.0}, {96, 96, 1.9}};
    enum { NCASES = sizeof cases / sizeof cases[0] };
    FILE *f = open_cases(t, dir, "blur_cases.txt");
    if (!f) return;
    float *images[NCASES];
    rd_rng r;
    rd_rng_init(&r, 3, RD_RNG_TEST, 0, 0, 0);
    for (int c = 0; c < NCASES; c++) {
        size_t n = (size_t)cases[c].w * cases[c].h;
        images[c] = malloc(n * sizeof(float));
        for (size_t i = 0; i < n; i++) images[c][i] = (float)rd_rng_uniform(&r);
        char name[32];
        snprintf(name, sizeof name, "blur%d", c);
        CHECK(write_blob(dir, name, images[c], n * sizeof(float)));
        fprintf(f, "%s %d %d %.9g 9\n", name, cases[c].w, cases[c].h,
                (double)(float)cases[c].sigma);
    }
    fclose(f);
    const char *ok = rd_test_python_reference(t, "tests/train/augment_reference.py");
    for (int c = 0; c < NCASES; c++) {
        size_t n = (size_t)cases[c].w * cases[c].h;
        char name[32];
        snprintf(name, sizeof name, "blur%d", c);
        float *want = ok ? read_want(dir, name, n * sizeof(float)) : NULL;
        if (ok) CHECK_MSG(want != NULL, "%s: no reference", name);
        if (want) {
            float k[9], *scratch = malloc((n + (size_t)cases[c].w + 9) * sizeof(float));
            rd_gaussian_kernel((float)cases[c].sigma, 9, k);
            rd_augment_blur(images[c], cases[c].w, cases[c].h, k, 9, scratch);
            /* separable float sums vs torch's 81-tap float conv: a few ulp of values <= 1 */
            CHECK_CLOSE(name, images[c], want, n, 0, 1e-6);
            free(scratch);
        }
        free(want);
        free(images[c]);
    }
}

static void gaussian_kernel_properties(rd_test *t) {
    const double sigmas[] = {0.1, 0.5, 1.0, 2.0, 10.0};
    for (size_t s = 0; s < sizeof sigmas / sizeof sigmas[0]; s++) {
        float k[9];
        rd_gaussian_kernel(sigmas[s], 9, k);
        double sum = 0;
        for (int i = 0; i < 9; i++) sum += k[i];
        CHECK_NEAR(sum, 1.0, 1e-6);
        for (int i = 0; i < 4; i++) /* tails of sigma 0.1 underflow to 0 */
            CHECK(k[i] == k[8 - i] && (sigmas[s] < 0.5 ? k[i] <= k[i + 1] : k[i] < k[i + 1]));
        CHECK_NEAR(k[4] / k[3], exp(0.5 / (sigmas[s] * sigmas[s])), 1e-5 * k[4] / k[3]);
    }
    float k[9];
    rd_gaussian_kernel(0.1, 9, k);
    CHECK_NEAR(k[4], 1.0, 1e-6); /* exp(-50) neighbours */
    float img[7 * 6], scratch[7 * 6 + 7 + 9];
    for (int i = 0; i < 42; i++) img[i] = 0.25f;
    rd_gaussian_kernel(1.5, 9, k);
    rd_augment_blur(img, 7, 6, k, 9, scratch);
    for (int i = 0; i < 42; i++) CHECK_NEAR(img[i], 0.25, 1e-7); /* constant stays constant */
}

/* ---- photometric ops and normalisation ---- */

static void photometric_reference_values(rd_test *t) {
    float flip[6] = {1, 2, 3, 4, 5, 6};
    const float flipped[6] = {3, 2, 1, 6, 5, 4};
    rd_augment_hflip(flip, 3, 2);
    CHECK_CLOSE("hflip", flip, flipped, 6, 0, 0);

    float b[3] = {0.2f, 0.5f, 0.8f};
    const float b_want[3] = {0.3f, 0.75f, 1.0f}; /* x 1.5, clamped */
    rd_augment_brightness(b, 3, 1.5f);
    CHECK_CLOSE("brightness", b, b_want, 3, 1e-7, 0);

    float c1[3] = {0.0f, 0.2f, 1.0f}, c2[3] = {0.0f, 0.2f, 1.0f};
    const float c1_want[3] = {0.2f, 0.3f, 0.7f}; /* mean 0.4 + 0.5 (x - 0.4) */
    const float c2_want[3] = {0.0f, 0.0f, 1.0f}; /* 0.4 + 2 (x - 0.4), clamped */
    rd_augment_contrast(c1, 3, 0.5f);
    rd_augment_contrast(c2, 3, 2.0f);
    CHECK_CLOSE("contrast 0.5", c1, c1_want, 3, 1e-6, 0);
    CHECK_CLOSE("contrast 2", c2, c2_want, 3, 0, 1e-7);

    const float thr = 128.0f / 255.0f;
    float s[4] = {0.5f, thr, 0.9f, 0.0f};
    const float s_want[4] = {0.5f, 1.0f - thr, 1.0f - 0.9f,
                             0.0f}; /* uint8: 127 stays, 128 -> 127 */
    rd_augment_solarize(s, 4, thr);
    CHECK_CLOSE("solarize", s, s_want, 4, 0, 0);

    const float mean = 0.5307f, std = 0.2583f;
    float x[2] = {mean, mean + std}, out[6];
    rd_augment_normalize(x, 2, mean, std, 3, out);
    const float n_want[6] = {0, 1, 0, 1, 0, 1};
    CHECK_CLOSE("normalize", out, n_want, 6, 0, 1e-6);
}

/* ---- whole crops ---- */

static void test_config(rd_augment_config *c) {
    rd_augment_config_default(c, 1);
    c->global_size = 32;
    c->local_size = 16;
    c->n_local = 2;
}

static void random_image(uint8_t *img, int n, uint64_t key) {
    rd_rng r;
    rd_rng_init(&r, 4, RD_RNG_TEST, 0, key, 0);
    for (int i = 0; i < n; i++) img[i] = (uint8_t)rd_rng_randint(&r, 0, 255);
}

/* With every photometric op off and mean 0, std 1, a crop is Pillow's crop + bicubic resize. */
static void crop_resize_matches_pillow(rd_test *t) {
    if (!rd_test_have_pillow(t)) return;
    enum { W = 61, H = 47, CASES = 24 };
    const char *dir = rd_test_tmpdir(t);
    rd_augment_config c;
    test_config(&c);
    c.flip_p = c.jitter_p = c.solarize_p = 0;
    c.blur_p[0] = c.blur_p[1] = c.blur_p[2] = 0;
    c.mean = 0;
    c.std = 1;
    rd_error err = {0};
    rd_augmenter a;
    CHECK_OK(rd_augmenter_init(&a, &c, W, H, &err), &err);
    if (t->failures) return;
    uint8_t img[W * H];
    random_image(img, W * H, 0);
    rd_grey_image src = {W, H, 8, img};
    CHECK(write_blob(dir, "source", img, sizeof img));
    FILE *f = open_cases(t, dir, "crop_cases.txt");
    if (!f) {
        rd_augmenter_free(&a);
        return;
    }
    float *got[CASES];
    int sizes[CASES];
    for (int i = 0; i < CASES; i++) {
        int crop = i % 3; /* global 1, global 2, local */
        sizes[i] = crop < 2 ? c.global_size : c.local_size;
        got[i] = malloc((size_t)sizes[i] * sizes[i] * sizeof(float));
        rd_rng r;
        rd_rng_init(&r, 5, RD_RNG_AUGMENT, 0, (uint64_t)i, (uint32_t)crop);
        rd_crop_record rec;
        CHECK_OK(rd_augment_crop(&a, &src, crop, &r, got[i], &rec, &err), &err);
        char name[32];
        snprintf(name, sizeof name, "crop%d", i);
        write_blob(dir, name, img, sizeof img);
        fprintf(f, "%s %d %d %d %d %d %d %d\n", name, W, H, rec.box.top, rec.box.left,
                rec.box.height, rec.box.width, sizes[i]);
    }
    fclose(f);
    const char *ok = rd_test_python_reference(t, "tests/train/augment_reference.py");
    for (int i = 0; i < CASES; i++) {
        size_t n = (size_t)sizes[i] * sizes[i];
        char name[32];
        snprintf(name, sizeof name, "crop%d", i);
        uint8_t *want = ok ? read_want(dir, name, n) : NULL;
        if (ok) CHECK_MSG(want != NULL, "%s: no reference", name);
        int worst = 0;
        for (size_t p = 0; want && p < n; p++) {
            int q = (int)floorf(got[i][p] * 255.0f + 0.5f), d = abs(q - want[p]);
            worst = d > worst ? d : worst;
        }
        /* Pillow rounds to 8 bits between its passes and uses fixed-point weights. */
        CHECK_MSG(worst <= 1, "%s: differs from Pillow by %d grey levels", name, worst);
        free(want);
        free(got[i]);
    }
    rd_augmenter_free(&a);
}

/* The full pipeline equals the plain crop followed by the recorded ops, in torchvision's order
 * (flip, jitter in the drawn order, blur, solarize, normalise). */
static void pipeline_order(rd_test *t) {
    enum { W = 40, H = 36 };
    rd_augment_config full, plain;
    test_config(&full);
    full.jitter_p = 1; /* exercise jitter, blur, solarize and flip often */
    full.blur_p[RD_CROP_GLOBAL1] = 0.5;
    full.solarize_p = 0.5;
    full.brightness = full.contrast = 0.9; /* clamping, so the jitter order matters */
    plain = full;
    plain.flip_p = plain.jitter_p = plain.solarize_p = 0;
    plain.blur_p[0] = plain.blur_p[1] = plain.blur_p[2] = 0;
    plain.mean = 0;
    plain.std = 1;
    rd_error err = {0};
    rd_augmenter a, b;
    CHECK_OK(rd_augmenter_init(&a, &full, W, H, &err), &err);
    CHECK_OK(rd_augmenter_init(&b, &plain, W, H, &err), &err);
    if (t->failures) return;
    uint8_t img[W * H];
    random_image(img, W * H, 1);
    rd_grey_image src = {W, H, 8, img};
    float got[32 * 32], x[32 * 32], want[32 * 32], scratch[2 * 32 * 32 + 64];
    int seen[5] = {0};
    for (int i = 0; i < 60; i++) {
        int crop = i % 4, size = crop < 2 ? 32 : 16;
        size_t n = (size_t)size * size;
        rd_rng r;
        rd_crop_record rec, plain_rec;
        rd_rng_init(&r, 6, RD_RNG_AUGMENT, 0, (uint64_t)i, (uint32_t)crop);
        CHECK_OK(rd_augment_crop(&a, &src, crop, &r, got, &rec, &err), &err);
        rd_rng_init(&r, 6, RD_RNG_AUGMENT, 0, (uint64_t)i, (uint32_t)crop);
        CHECK_OK(rd_augment_crop(&b, &src, crop, &r, x, &plain_rec, &err), &err);
        CHECK(memcmp(&rec.box, &plain_rec.box, sizeof rec.box) == 0);
        if (rec.flipped) rd_augment_hflip(x, size, size);
        if (rec.jittered && rec.contrast_first) rd_augment_contrast(x, n, rec.contrast);
        if (rec.jittered) rd_augment_brightness(x, n, rec.brightness);
        if (rec.jittered && !rec.contrast_first) rd_augment_contrast(x, n, rec.contrast);
        if (rec.blurred) {
            float k[9];
            rd_gaussian_kernel(rec.sigma, 9, k);
            rd_augment_blur(x, size, size, k, 9, scratch);
        }
        if (rec.solarized) rd_augment_solarize(x, n, 128.0f / 255.0f);
        rd_augment_normalize(x, n, (float)full.mean, (float)full.std, 1, want);
        CHECK_MSG(memcmp(got, want, n * sizeof(float)) == 0, "crop %d (kind %d) differs", i, crop);
        seen[0] += rec.flipped;
        seen[1] += rec.contrast_first;
        seen[2] += rec.jittered && !rec.contrast_first;
        seen[3] += rec.blurred;
        seen[4] += rec.solarized;
    }
    for (int k = 0; k < 5; k++) CHECK_MSG(seen[k] > 0, "op %d never happened", k);
    rd_augmenter_free(&a);
    rd_augmenter_free(&b);
}

/* |count - n p| within 5 standard deviations; p = 0 never happens. */
static void check_rate(rd_test *t, const char *what, int count, int n, double p) {
    double sd = sqrt(n * p * (1 - p));
    CHECK_MSG(fabs(count - n * p) <= 5 * sd + (p > 0 ? 1 : 0), "%s: %d of %d, expected p = %g",
              what, count, n, p);
}

static void probabilities_and_ranges(rd_test *t) {
    enum { W = 40, H = 40, SAMPLES = 2500 };
    rd_augment_config c;
    test_config(&c);
    c.global_size = c.local_size = 8; /* speed; the draws do not depend on sizes */
    rd_error err = {0};
    rd_augmenter a;
    CHECK_OK(rd_augmenter_init(&a, &c, W, H, &err), &err);
    if (t->failures) return;
    uint8_t img[W * H];
    random_image(img, W * H, 2);
    rd_grey_image src = {W, H, 8, img};
    float out[4][64];
    float *global[2] = {out[0], out[1]}, *local[2] = {out[2], out[3]};
    int flips = 0, jitters = 0, contrast_first = 0, blurs[3] = {0}, solar[3] = {0};
    int n_kind[3] = {SAMPLES, SAMPLES, 2 * SAMPLES};
    for (int s = 0; s < SAMPLES; s++) {
        rd_crop_record rec[4];
        CHECK_OK(rd_augment_sample(&a, &src, 7, 3, (uint64_t)s, global, local, rec, &err), &err);
        for (int k = 0; k < 4; k++) {
            int kind = k < 2 ? k : 2;
            flips += rec[k].flipped;
            jitters += rec[k].jittered;
            contrast_first += rec[k].contrast_first;
            blurs[kind] += rec[k].blurred;
            solar[kind] += rec[k].solarized;
            if (rec[k].jittered) {
                CHECK(rec[k].brightness >= 0.6f && rec[k].brightness < 1.4f);
                CHECK(rec[k].contrast >= 0.6f && rec[k].contrast < 1.4f);
            }
            if (rec[k].blurred) CHECK(rec[k].sigma >= 0.1f && rec[k].sigma < 2.0f);
        }
    }
    check_rate(t, "flip", flips, 4 * SAMPLES, 0.5);
    check_rate(t, "jitter", jitters, 4 * SAMPLES, 0.8);
    check_rate(t, "contrast first", contrast_first, jitters, 0.5);
    const double blur_p[3] = {0.0, 0.9, 0.5}, solar_p[3] = {0.0, 0.2, 0.0};
    for (int k = 0; k < 3; k++) {
        check_rate(t, "blur", blurs[k], n_kind[k], blur_p[k]);
        check_rate(t, "solarize", solar[k], n_kind[k], solar_p[k]);
    }
    rd_augmenter_free(&a);
}

static void keyed_streams_and_depths(rd_test *t) {
    enum { W = 30, H = 30 };
    rd_augment_config c;
    test_config(&c);
    c.channels = 3;
    rd_error err = {0};
    rd_augmenter a;
    CHECK_OK(rd_augmenter_init(&a, &c, W, H, &err), &err);
    if (t->failures) return;
    uint8_t img8[W * H];
    uint16_t img16[W * H];
    random_image(img8, W * H, 3);
    for (int i = 0; i < W * H; i++) img16[i] = (uint16_t)(img8[i] * 257);
    rd_grey_image src8 = {W, H, 8, img8}, src16 = {W, H, 16, img16};
    enum { G = 3 * 32 * 32, L = 3 * 16 * 16 };
    static float out[4][2 * G + 2 * L];
    for (int v = 0; v < 4; v++) {
        float *base = out[v];
        float *global[2] = {base, base + G}, *local[2] = {base + 2 * G, base + 2 * G + L};
        const rd_grey_image *src = v == 1 ? &src16 : &src8;
        uint64_t index = v == 2 ? 6 : 5;
        uint32_t epoch = v == 3 ? 1 : 0;
        CHECK_OK(rd_augment_sample(&a, src, 9, epoch, index, global, local, NULL, &err), &err);
    }
    size_t bytes = sizeof out[0];
    CHECK(memcmp(out[0], out[1], bytes) == 0); /* 8-bit and its 16-bit copy x 257 */
    CHECK(memcmp(out[0], out[2], bytes) != 0); /* another sample index */
    CHECK(memcmp(out[0], out[3], bytes) != 0); /* another epoch */
    /* channels are copies; crop c is the crop of stream (seed, augment, epoch, index, c) */
    CHECK(memcmp(out[0], out[0] + 1024, 1024 * sizeof(float)) == 0);
    CHECK(memcmp(out[0], out[0] + 2048, 1024 * sizeof(float)) == 0);
    float one[L];
    rd_rng r;
    rd_rng_init(&r, 9, RD_RNG_AUGMENT, 0, 5, 3);
    CHECK_OK(rd_augment_crop(&a, &src8, 3, &r, one, NULL, &err), &err);
    CHECK(memcmp(one, out[0] + 2 * G + L, sizeof one) == 0);
    rd_augmenter_free(&a);
}

static void config_keys(rd_test *t) {
    rd_error err = {0};
    rd_config cfg;
    CHECK_OK(rd_config_init(&cfg, &err), &err);
    rd_augment_config got, want;
    CHECK_OK(rd_augment_config_from(&cfg, 3, &got, &err), &err);
    rd_augment_config_default(&want, 3);
    CHECK(got.global_size == want.global_size && got.local_size == want.local_size &&
          got.n_local == want.n_local && got.channels == 3);
    CHECK(got.global_scale[0] == want.global_scale[0] && got.local_scale[1] == want.local_scale[1]);
    CHECK(got.flip_p == 0.5 && got.jitter_p == 0.8 && got.brightness == 0.4 && got.contrast == 0.4);
    CHECK(got.blur_p[0] == 0.0 && got.blur_p[1] == 0.9 && got.blur_p[2] == 0.5);
    CHECK(got.blur_sigma[0] == 0.1 && got.blur_sigma[1] == 2.0 && got.solarize_p == 0.2);
    CHECK(got.mean == 0.5307 && got.std == 0.2583);
    CHECK_OK(rd_config_override(&cfg, "pretrain.augment.blur_sigma=[2.0, 0.5]", &err), &err);
    CHECK(rd_augment_config_from(&cfg, 3, &got, &err) == RD_EINVAL);
    CHECK_MSG(strstr(err.msg, "pretrain.augment.blur_sigma") != NULL, "message: %s", err.msg);
    rd_config_free(&cfg);
    CHECK_OK(rd_config_init(&cfg, &err), &err);
    CHECK_OK(rd_config_override(&cfg, "crops.local_crops_scale=[0.4, 0.3]", &err), &err);
    CHECK(rd_augment_config_from(&cfg, 3, &got, &err) == RD_EINVAL);
    CHECK_MSG(strstr(err.msg, "crops.local_crops_scale") != NULL, "message: %s", err.msg);
    rd_config_free(&cfg);
}

static const rd_test_case cases[] = {
    {"rrc_matches_torchvision", rrc_matches_torchvision},
    {"rrc_boxes_inside_and_scaled", rrc_boxes_inside_and_scaled},
    {"blur_matches_torchvision", blur_matches_torchvision},
    {"gaussian_kernel_properties", gaussian_kernel_properties},
    {"photometric_reference_values", photometric_reference_values},
    {"crop_resize_matches_pillow", crop_resize_matches_pillow},
    {"pipeline_order", pipeline_order},
    {"probabilities_and_ranges", probabilities_and_ranges},
    {"keyed_streams_and_depths", keyed_streams_and_depths},
    {"config_keys", config_keys},
};

RD_TEST_MAIN("train/augment", cases)
