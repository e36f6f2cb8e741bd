/* Phantoms: plan, determinism, the strength-0 null property, and the documented age and sex
 * effects measured in the pixels with simple statistics (docs/SYNTH.md, "Measured effects"). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "rdino/phantom.h"

static rd_phantom_settings small_settings(double strength, uint64_t seed) {
    rd_phantom_settings s;
    rd_phantom_settings_default(&s);
    s.seed = seed;
    s.strength = strength;
    s.size_min = 160, s.size_max = 224;
    return s;
}

static int same_image(const rd_phantom_image *a, const rd_phantom_image *b) {
    return a->patient == b->patient && a->followup == b->followup && a->age == b->age &&
           a->male == b->male && a->ap == b->ap && a->width == b->width && a->height == b->height &&
           a->spacing_mm == b->spacing_mm;
}

static int same_plan_prefix(const rd_phantom_plan *a, const rd_phantom_plan *b, int64_t n) {
    if (a->n_images < n || b->n_images < n) return 0;
    for (int64_t k = 0; k < n; k++)
        if (!same_image(&a->images[k], &b->images[k])) return 0;
    return 1;
}

/* Renders one image into a fresh buffer (caller frees). */
static float *render(const rd_phantom_settings *s, const rd_phantom_image *img) {
    rd_phantom_anatomy a;
    rd_phantom_anatomy_make(s, img, &a);
    size_t n = (size_t)img->width * img->height;
    float *px = malloc(n * sizeof *px), *scratch = malloc(n * sizeof *scratch);
    if (px && scratch) rd_phantom_render(&a, px, scratch);
    free(scratch);
    return px;
}

static void plan_follows_the_settings(rd_test *t) {
    rd_phantom_settings s = small_settings(1, 3);
    s.n_patients = 300;
    s.images_min = 2, s.images_max = 5;
    s.followup_min = 0.5, s.followup_max = 1.5;
    s.age_min = 30, s.age_max = 60;
    s.aspect_min = 0.8, s.aspect_max = 1.25;
    rd_phantom_plan plan;
    rd_error err = {0};
    CHECK_OK(rd_phantom_plan_make(&s, &plan, &err), &err);
    int64_t patients = 0, males = 0, ap = 0;
    for (int64_t k = 0; k < plan.n_images; k++) {
        const rd_phantom_image *img = &plan.images[k], *prev = k ? img - 1 : NULL;
        if (img->followup == 0) {
            CHECK(img->patient == patients);
            CHECK(img->age >= 30 && img->age < 60);
            patients++, males += img->male;
        } else {
            CHECK(prev->patient == img->patient && prev->followup == img->followup - 1);
            CHECK(prev->male == img->male);
            double gap = img->age - prev->age;
            CHECK_MSG(gap >= 0.5 && gap < 1.5, "follow-up interval %g", gap);
        }
        int lng = img->width > img->height ? img->width : img->height;
        int shrt = img->width > img->height ? img->height : img->width;
        CHECK(lng >= 160 && lng <= 224);
        CHECK((double)shrt / lng >= 0.8 - 0.01);
        CHECK(img->spacing_mm * lng > 380 * 0.99 && img->spacing_mm * lng < 440 * 1.01);
        ap += img->ap;
        if (k + 1 == plan.n_images || plan.images[k + 1].followup == 0)
            CHECK_MSG(img->followup + 1 >= 2 && img->followup + 1 <= 5, "patient with %d images",
                      img->followup + 1);
    }
    CHECK(patients == 300);
    /* Bernoulli(0.5) and (0.3) proportions within 5 sd. */
    CHECK_NEAR((double)males / 300, 0.5, 5 * sqrt(0.25 / 300));
    CHECK_NEAR((double)ap / plan.n_images, 0.3, 5 * sqrt(0.21 / plan.n_images));
    char name[32];
    rd_phantom_image_name(&plan.images[plan.n_images - 1], name, sizeof name);
    CHECK_MSG(strncmp(name, "00000300_00", 11) == 0 && strlen(name) == 16, "last name %s", name);
    rd_phantom_plan_free(&plan);
    s.images_max = 1;
    CHECK(rd_phantom_plan_make(&s, &plan, &err) == RD_EINVAL);
}

static void same_seed_same_bytes_other_seed_differs(rd_test *t) {
    rd_phantom_settings s = small_settings(1, 11), other = small_settings(1, 12);
    s.n_patients = other.n_patients = 4;
    rd_phantom_plan p1, p2, p3;
    rd_error err = {0};
    CHECK_OK(rd_phantom_plan_make(&s, &p1, &err), &err);
    CHECK_OK(rd_phantom_plan_make(&s, &p2, &err), &err);
    CHECK_OK(rd_phantom_plan_make(&other, &p3, &err), &err);
    CHECK(p1.n_images == p2.n_images);
    CHECK(same_plan_prefix(&p1, &p2, p1.n_images));
    for (int k = 0; k < 3; k++) {
        float *a = render(&s, &p1.images[k]), *b = render(&s, &p2.images[k]);
        size_t n = (size_t)p1.images[k].width * p1.images[k].height;
        CHECK_MSG(memcmp(a, b, n * sizeof *a) == 0, "image %d differs between two renders", k);
        for (size_t i = 0; i < n; i++)
            if (!(a[i] >= 0 && a[i] <= 1)) {
                CHECK_MSG(0, "image %d pixel %zu = %g outside [0, 1]", k, i, a[i]);
                break;
            }
        /* the same image record under another seed: other anatomy, pose and noise */
        float *c = render(&other, &p1.images[k]);
        double diff = 0;
        for (size_t i = 0; i < n; i++) diff += fabs(a[i] - c[i]);
        CHECK_MSG(diff / n > 0.01, "seed change moved pixels by only %g on average", diff / n);
        free(a), free(b), free(c);
    }
    rd_phantom_plan_free(&p1), rd_phantom_plan_free(&p2), rd_phantom_plan_free(&p3);
}

/* An image depends on the seed, its patient and follow-up, not on the data-set size. */
static void image_independent_of_patient_count(rd_test *t) {
    rd_phantom_settings s = small_settings(1, 5), big = small_settings(1, 5);
    s.n_patients = 3, big.n_patients = 40;
    rd_phantom_plan p, q;
    rd_error err = {0};
    CHECK_OK(rd_phantom_plan_make(&s, &p, &err), &err);
    CHECK_OK(rd_phantom_plan_make(&big, &q, &err), &err);
    CHECK(q.n_images > p.n_images);
    CHECK(same_plan_prefix(&p, &q, p.n_images));
    int64_t k = p.n_images - 1;
    float *a = render(&s, &p.images[k]), *b = render(&big, &q.images[k]);
    CHECK(memcmp(a, b, (size_t)p.images[k].width * p.images[k].height * sizeof *a) == 0);
    free(a), free(b);
    rd_phantom_plan_free(&p), rd_phantom_plan_free(&q);
}

/* At strength 0 the anatomy is exactly the same whatever the patient's age and sex; at
 * strength 1 the documented parameters move in the documented directions. */
static void strength_zero_ignores_age_and_sex(rd_test *t) {
    rd_phantom_settings s = small_settings(0, 9);
    s.n_patients = 20;
    rd_phantom_plan p;
    rd_error err = {0};
    CHECK_OK(rd_phantom_plan_make(&s, &p, &err), &err);
    for (int64_t k = 0; k < p.n_images; k += 7) {
        rd_phantom_image young_f = p.images[k], old_m = p.images[k];
        young_f.male = 0, young_f.age = 20;
        old_m.male = 1, old_m.age = 90;
        rd_phantom_anatomy a, b;
        memset(&a, 0, sizeof a), memset(&b, 0, sizeof b);
        rd_phantom_anatomy_make(&s, &young_f, &a);
        rd_phantom_anatomy_make(&s, &old_m, &b);
        CHECK_MSG(memcmp(&a, &b, sizeof a) == 0, "image %lld: anatomy depends on age/sex",
                  (long long)k);
        s.strength = 1;
        rd_phantom_anatomy_make(&s, &young_f, &a);
        rd_phantom_anatomy_make(&s, &old_m, &b);
        s.strength = 0;
        CHECK(b.thorax_half_width > a.thorax_half_width * 1.1);
        CHECK(b.heart_semi_major > a.heart_semi_major);
        CHECK(a.breast_thickness > 5 * b.breast_thickness);
        CHECK(b.bone_density < 0.7 * a.bone_density);
        CHECK(b.knob_calcification > 0 && a.knob_calcification == 0);
        CHECK(b.knob_radius > a.knob_radius && b.aorta_tortuosity > a.aorta_tortuosity);
        CHECK(b.rib_drop < a.rib_drop && b.kyphosis > a.kyphosis);
        CHECK(b.dome_y[0] > a.dome_y[0] && b.dome_drop < a.dome_drop);
    }
    rd_phantom_plan_free(&p);
}

/* Follow-ups share the individual anatomy: thorax width has no age effect, so it is the same
 * in every image of a patient, while pose and exposure differ. */
static void followups_share_the_patient(rd_test *t) {
    rd_phantom_settings s = small_settings(1, 21);
    s.n_patients = 5, s.images_min = 3, s.images_max = 3;
    rd_phantom_plan p;
    rd_error err = {0};
    CHECK_OK(rd_phantom_plan_make(&s, &p, &err), &err);
    for (int64_t k = 0; k < p.n_images; k += 3) {
        rd_phantom_anatomy a, b;
        rd_phantom_anatomy_make(&s, &p.images[k], &a);
        rd_phantom_anatomy_make(&s, &p.images[k + 2], &b);
        CHECK(a.thorax_half_width == b.thorax_half_width);
        CHECK(a.breast_radius == b.breast_radius);
        CHECK(a.anat_age < b.anat_age);
        CHECK(a.contrast != b.contrast && a.center_x != b.center_x);
    }
    rd_phantom_plan_free(&p);
}

/* ---- measured effects ---- */

enum { STAT_PATIENTS = 160 };

/* Body width (mm) on the rows at 55-65 % of the height: first to last pixel brighter than 0.3,
 * median over the rows. */
static double body_width_mm(const float *px, const rd_phantom_image *img) {
    int w = img->width, h = img->height, i0 = (int)(0.55 * h), i1 = (int)(0.65 * h), n = 0;
    double widths[256];
    for (int i = i0; i < i1 && n < 256; i++) {
        int first = -1, last = -1;
        for (int j = 0; j < w; j++)
            if (px[(size_t)i * w + j] > 0.3f) {
                if (first < 0) first = j;
                last = j;
            }
        if (first >= 0) widths[n++] = (last - first + 1) * img->spacing_mm;
    }
    for (int a = 1; a < n; a++) /* insertion sort: n is small */
        for (int b = a; b > 0 && widths[b - 1] > widths[b]; b--) {
            double tmp = widths[b];
            widths[b] = widths[b - 1], widths[b - 1] = tmp;
        }
    return n ? widths[n / 2] : 0;
}

/* Bone contrast of the thoracic spine: the spine is the brightest column band in the middle
 * of the image; its row profile (mean over a 24 mm band, rows at 30-70 % of the height) minus
 * its Gaussian-smoothed self (sigma 6 mm) leaves the vertebral endplates and discs; the
 * statistic is that residual's standard deviation. */
static double spine_contrast(const float *px, const rd_phantom_image *img) {
    int w = img->width, h = img->height, i0 = (int)(0.3 * h), i1 = (int)(0.7 * h);
    int rows = i1 - i0;
    double *col = calloc((size_t)w, sizeof *col), *prof = calloc((size_t)rows, sizeof *prof);
    for (int i = i0; i < i1; i++)
        for (int j = 0; j < w; j++) col[j] += px[(size_t)i * w + j];
    int best = w / 2, win = 4;
    double best_sum = -1;
    for (int j = (int)(0.35 * w); j < (int)(0.65 * w); j++) {
        double sum = 0;
        for (int d = -win; d <= win; d++) sum += col[j + d];
        if (sum > best_sum) best_sum = sum, best = j;
    }
    int half = (int)fmax(2, round(12.0 / img->spacing_mm));
    for (int i = 0; i < rows; i++) {
        for (int j = best - half; j <= best + half; j++) prof[i] += px[(size_t)(i + i0) * w + j];
        prof[i] /= 2 * half + 1;
    }
    double sigma = 6.0 / img->spacing_mm, sum = 0, sum2 = 0;
    int radius = (int)ceil(3 * sigma);
    for (int i = 0; i < rows; i++) {
        double num = 0, den = 0;
        for (int d = -radius; d <= radius; d++) {
            int k = i + d < 0 ? 0 : i + d >= rows ? rows - 1 : i + d;
            double g = exp(-0.5 * d * d / (sigma * sigma));
            num += g * prof[k], den += g;
        }
        double r = prof[i] - num / den;
        sum += r, sum2 += r * r;
    }
    free(col), free(prof);
    double mean = sum / rows;
    return sqrt(fmax(0, sum2 / rows - mean * mean));
}

typedef struct effect_stats {
    double width_t; /* Welch t of body width, male minus female */
    double spine_r; /* Pearson r of spine contrast with age */
} effect_stats;

static effect_stats measure(double strength, uint64_t seed) {
    rd_phantom_settings s = small_settings(strength, seed);
    s.n_patients = STAT_PATIENTS, s.images_min = s.images_max = 1;
    s.size_min = 176, s.size_max = 208;
    rd_phantom_plan p;
    rd_error err = {0};
    effect_stats out = {NAN, NAN};
    if (rd_phantom_plan_make(&s, &p, &err)) return out;
    double sw[2] = {0}, sw2[2] = {0}, n[2] = {0}, sa = 0, sa2 = 0, sb = 0, sb2 = 0, sab = 0;
    for (int64_t k = 0; k < p.n_images; k++) {
        const rd_phantom_image *img = &p.images[k];
        float *px = render(&s, img);
        double width = body_width_mm(px, img), bone = spine_contrast(px, img);
        free(px);
        int m = img->male;
        sw[m] += width, sw2[m] += width * width, n[m]++;
        sa += img->age, sa2 += img->age * img->age;
        sb += bone, sb2 += bone * bone, sab += img->age * bone;
    }
    double mean[2], var[2];
    for (int m = 0; m < 2; m++) {
        mean[m] = sw[m] / n[m];
        var[m] = (sw2[m] - n[m] * mean[m] * mean[m]) / (n[m] - 1);
    }
    out.width_t = (mean[1] - mean[0]) / sqrt(var[0] / n[0] + var[1] / n[1]);
    double N = (double)p.n_images;
    double cov = sab / N - sa / N * sb / N;
    out.spine_r = cov / sqrt((sa2 / N - sa * sa / N / N) * (sb2 / N - sb * sb / N / N));
    rd_phantom_plan_free(&p);
    return out;
}

/* Thresholds: with 160 patients, a null Pearson r has sd ~0.08 and a null t sd 1; the effects
 * at strength 1 measured t ~ 10 and r ~ -0.75 (docs/SYNTH.md). */
static void sex_and_age_effects_measurable_at_strength_one(rd_test *t) {
    effect_stats e = measure(1.0, 2024);
    fprintf(stderr, "strength 1: t %.3f r %.3f\n", e.width_t, e.spine_r);
    CHECK_MSG(e.width_t > 6, "thorax width t(male - female) = %.2f, want > 6", e.width_t);
    CHECK_MSG(e.spine_r < -0.5, "r(spine contrast, age) = %.3f, want < -0.5", e.spine_r);
}

static void no_effects_at_strength_zero(rd_test *t) {
    effect_stats e = measure(0.0, 2024);
    fprintf(stderr, "strength 0: t %.3f r %.3f\n", e.width_t, e.spine_r);
    CHECK_MSG(fabs(e.width_t) < 3, "thorax width t(male - female) = %.2f, want |t| < 3", e.width_t);
    CHECK_MSG(fabs(e.spine_r) < 0.25, "r(spine contrast, age) = %.3f, want |r| < 0.25", e.spine_r);
}

static const rd_test_case cases[] = {
    {"plan_follows_the_settings", plan_follows_the_settings},
    {"same_seed_same_bytes_other_seed_differs", same_seed_same_bytes_other_seed_differs},
    {"image_independent_of_patient_count", image_independent_of_patient_count},
    {"strength_zero_ignores_age_and_sex", strength_zero_ignores_age_and_sex},
    {"followups_share_the_patient", followups_share_the_patient},
    {"sex_and_age_effects_measurable_at_strength_one",
     sex_and_age_effects_measurable_at_strength_one},
    {"no_effects_at_strength_zero", no_effects_at_strength_zero},
};

RD_TEST_MAIN("synth/phantom", cases)
