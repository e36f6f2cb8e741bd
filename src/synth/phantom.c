/* Phantom data set: the plan (patients, follow-ups, image sizes) and the anatomy of each image,
 * including the age and sex effects. Every formula here is documented in docs/SYNTH.md; keep
 * the two in step. Rendering is in phantom_render.c. */
#include "rdino/phantom.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "rdino/rng.h"

static const double PI = 3.14159265358979323846;

/* Detector field of view along the longer image side (mm). */
static const double FOV_MIN_MM = 380.0, FOV_MAX_MM = 440.0;

/* Height of the right diaphragm dome in the patient frame (mm below mid-thorax) at average
 * inspiration. */
static const double DOME_Y = 88.0;

void rd_phantom_settings_default(rd_phantom_settings *s) {
    *s = (rd_phantom_settings){.seed = 1,
                               .n_patients = 200,
                               .images_min = 1,
                               .images_max = 6,
                               .followup_min = 0.1,
                               .followup_max = 2.0,
                               .age_min = 18,
                               .age_max = 95,
                               .male_fraction = 0.5,
                               .ap_fraction = 0.3,
                               .size_min = 256,
                               .size_max = 1024,
                               .aspect_min = 0.8,
                               .aspect_max = 1.25,
                               .strength = 1.0,
                               .noise = 1.0,
                               .acquisition = 1.0};
}

rd_status rd_phantom_settings_check(const rd_phantom_settings *s, rd_error *err) {
    if (s->n_patients < 1 || s->n_patients > ((int64_t)1 << 40))
        return rd_fail(err, RD_EINVAL, "synth: n_patients must be in [1, 2^40], got %lld",
                       (long long)s->n_patients);
    if (s->images_min < 1 || s->images_max < s->images_min ||
        s->images_max > RD_PHANTOM_MAX_FOLLOWUPS)
        return rd_fail(err, RD_EINVAL,
                       "synth: images_per_patient must satisfy 1 <= min <= max <= %d, got [%d, %d]",
                       RD_PHANTOM_MAX_FOLLOWUPS, s->images_min, s->images_max);
    if (!(s->followup_min >= 0 && s->followup_max >= s->followup_min))
        return rd_fail(err, RD_EINVAL, "synth: followup_years must satisfy 0 <= min <= max");
    if (!(s->age_min >= 0 && s->age_max >= s->age_min && s->age_max <= 120))
        return rd_fail(err, RD_EINVAL, "synth: age_range must satisfy 0 <= min <= max <= 120");
    if (!(s->male_fraction >= 0 && s->male_fraction <= 1 && s->ap_fraction >= 0 &&
          s->ap_fraction <= 1 && s->strength >= 0 && s->strength <= 1 && s->noise >= 0))
        return rd_fail(err, RD_EINVAL,
                       "synth: male_fraction, ap_fraction and strength must be in [0, 1], noise "
                       ">= 0");
    if (!(s->acquisition >= 0 && s->acquisition <= 5))
        return rd_fail(err, RD_EINVAL, "synth: acquisition must be in [0, 5], got %g",
                       s->acquisition);
    if (s->size_min < 32 || s->size_max < s->size_min || s->size_max > 8192)
        return rd_fail(err, RD_EINVAL,
                       "synth: size_range must satisfy 32 <= min <= max <= 8192, got [%d, %d]",
                       s->size_min, s->size_max);
    if (!(s->aspect_min >= 0.5 && s->aspect_max >= s->aspect_min && s->aspect_max <= 2.0))
        return rd_fail(err, RD_EINVAL, "synth: aspect_range must satisfy 0.5 <= min <= max <= 2");
    return RD_OK;
}

static void stream(rd_rng *r, const rd_phantom_settings *s, rd_phantom_stream which,
                   int64_t patient, int followup) {
    rd_rng_init(r, s->seed, RD_RNG_SYNTH, (uint32_t)which, (uint64_t)patient, (uint32_t)followup);
}

/* A normal draw truncated to +-3 sd, so that no individual parameter goes wild. */
static double normal3(rd_rng *r) {
    double z = rd_rng_normal(r);
    return z < -3 ? -3 : z > 3 ? 3 : z;
}

/* The per-patient draws that the plan needs (stream PATIENT). The order of draws is fixed;
 * the surrogate covariates come first so they never depend on the follow-up count. */
typedef struct patient_draws {
    int male, surrogate_male;
    double age0, surrogate_age;
    int n_images;
} patient_draws;

static void draw_patient(const rd_phantom_settings *s, int64_t patient, rd_rng *r,
                         patient_draws *p) {
    stream(r, s, RD_PHANTOM_STREAM_PATIENT, patient, 0);
    p->male = rd_rng_uniform(r) < s->male_fraction;
    p->surrogate_male = rd_rng_uniform(r) < s->male_fraction;
    p->age0 = rd_rng_range(r, s->age_min, s->age_max);
    p->surrogate_age = rd_rng_range(r, s->age_min, s->age_max);
    p->n_images = (int)rd_rng_randint(r, s->images_min, s->images_max);
    /* the follow-up intervals follow in the same stream (see rd_phantom_plan_make) */
}

/* View, size and pixel spacing of one image (stream IMAGE). */
static void draw_image_setup(const rd_phantom_settings *s, rd_phantom_image *img) {
    rd_rng r;
    stream(&r, s, RD_PHANTOM_STREAM_IMAGE, img->patient, img->followup);
    img->ap = rd_rng_uniform(&r) < s->ap_fraction;
    int long_side = (int)rd_rng_randint(&r, s->size_min, s->size_max);
    double aspect = rd_rng_range(&r, s->aspect_min, s->aspect_max);
    double fov = rd_rng_range(&r, FOV_MIN_MM, FOV_MAX_MM);
    int short_side = (int)lround(long_side * (aspect < 1 ? aspect : 1 / aspect));
    if (short_side < 1) short_side = 1;
    img->width = aspect < 1 ? short_side : long_side;
    img->height = aspect < 1 ? long_side : short_side;
    /* Rounded to the 3 decimals the CSV carries, so the metadata is exact. */
    img->spacing_mm = round(fov / long_side * 1000.0) / 1000.0;
}

rd_status rd_phantom_plan_make(const rd_phantom_settings *s, rd_phantom_plan *plan, rd_error *err) {
    plan->n_images = 0;
    plan->images = NULL;
    if (rd_phantom_settings_check(s, err)) return err ? err->code : RD_EINVAL;
    int64_t total = 0;
    rd_rng r;
    patient_draws p;
    for (int64_t i = 0; i < s->n_patients; i++) {
        draw_patient(s, i, &r, &p);
        total += p.n_images;
    }
    plan->images = malloc((size_t)total * sizeof *plan->images);
    if (!plan->images)
        return rd_fail(err, RD_ENOMEM, "synth: cannot allocate the plan of %lld images",
                       (long long)total);
    int64_t k = 0;
    for (int64_t i = 0; i < s->n_patients; i++) {
        draw_patient(s, i, &r, &p);
        double age = p.age0;
        for (int f = 0; f < p.n_images; f++, k++) {
            if (f > 0) age += rd_rng_range(&r, s->followup_min, s->followup_max);
            rd_phantom_image *img = &plan->images[k];
            img->patient = i;
            img->followup = f;
            img->age = age;
            img->male = p.male;
            draw_image_setup(s, img);
        }
    }
    plan->n_images = total;
    return RD_OK;
}

void rd_phantom_plan_free(rd_phantom_plan *plan) {
    free(plan->images);
    plan->images = NULL;
    plan->n_images = 0;
}

void rd_phantom_image_name(const rd_phantom_image *img, char *buf, int bufsize) {
    snprintf(buf, (size_t)bufsize, "%08lld_%03d.png", (long long)(img->patient + 1), img->followup);
}

/* Individual anatomy of a patient (stream ANATOMY): drawn independently of age and sex, fixed
 * across the patient's follow-ups. Values before the age/sex effects; see docs/SYNTH.md. */
typedef struct individual {
    double thorax_half_width, lung_height, body_margin, body_half_depth, neck_half_width;
    double shoulder_offset;
    double heart_scale, heart_angle, heart_x, lung_depth, dome_drop, gastric_air;
    double knob_radius, calcification, tortuosity;
    double bone_density, cortex_fraction;
    double rib_spacing, rib_rise, rib_drop, rib_radius;
    double vertebra_half_width, clavicle_offset, clavicle_rise;
    double breast_thickness, breast_radius, breast_offset;
    double vessel_scale, mediastinum_half_width, trachea_x;
} individual;

static void draw_individual(const rd_phantom_settings *s, int64_t patient, individual *v) {
    rd_rng r;
    stream(&r, s, RD_PHANTOM_STREAM_ANATOMY, patient, 0);
    v->thorax_half_width = 138.0 * (1 + 0.035 * normal3(&r));
    v->lung_height = 235.0 * (1 + 0.04 * normal3(&r));
    v->body_margin = rd_rng_range(&r, 8, 24);
    v->body_half_depth = 100.0 * (1 + 0.06 * normal3(&r));
    v->neck_half_width = 52.0 + 4.0 * normal3(&r);
    v->shoulder_offset = 6.0 * normal3(&r);
    v->heart_scale = 1 + 0.06 * normal3(&r);
    v->heart_angle = 0.55 + 0.08 * normal3(&r);
    v->heart_x = 18.0 + 5.0 * normal3(&r);
    v->lung_depth = 135.0 * (1 + 0.05 * normal3(&r));
    v->dome_drop = 28.0 + 5.0 * normal3(&r);
    v->gastric_air = rd_rng_range(&r, 0, 30);
    v->knob_radius = 15.0 * (1 + 0.08 * normal3(&r));
    v->calcification = rd_rng_range(&r, 0.5, 1.5);
    v->tortuosity = rd_rng_range(&r, 0.5, 1.5);
    v->bone_density = 1 + 0.08 * normal3(&r);
    v->cortex_fraction = 0.28 * (1 + 0.08 * normal3(&r));
    v->rib_spacing = 1 + 0.04 * normal3(&r);
    v->rib_rise = 16.0 + 3.0 * normal3(&r);
    v->rib_drop = 45.0 + 6.0 * normal3(&r);
    v->rib_radius = 5.2 * (1 + 0.06 * normal3(&r));
    v->vertebra_half_width = 19.0 + 1.5 * normal3(&r);
    v->clavicle_offset = 6.0 * normal3(&r);
    v->clavicle_rise = 22.0 + 5.0 * normal3(&r);
    v->breast_thickness = rd_rng_range(&r, 50, 90);
    v->breast_radius = 72.0 * (1 + 0.1 * normal3(&r));
    v->breast_offset = 5.0 * normal3(&r);
    v->vessel_scale = 1 + 0.1 * normal3(&r);
    v->mediastinum_half_width = 20.0 + 2.0 * normal3(&r);
    v->trachea_x = -3.0 + 1.5 * normal3(&r);
}

static double clampd(double x, double lo, double hi) {
    return x < lo ? lo : x > hi ? hi : x;
}

void rd_phantom_anatomy_make(const rd_phantom_settings *s, const rd_phantom_image *img,
                             rd_phantom_anatomy *a) {
    rd_rng r;
    patient_draws p;
    draw_patient(s, img->patient, &r, &p);
    individual v;
    draw_individual(s, img->patient, &v);

    /* Strength mixing: the anatomy sees covariates that blend the true ones with an
     * independent surrogate patient's; at strength 0 the anatomy ignores the true ones. */
    const double st = s->strength;
    const double male = st * img->male + (1 - st) * p.surrogate_male;
    const double age = st * img->age + (1 - st) * p.surrogate_age;
    const double aa = clampd((age - 50.0) / 30.0, -1.5, 2.0); /* scaled age */
    const double sx = male - 0.5;                             /* +0.5 male, -0.5 female */
    const double old = clampd((age - 50.0) / 35.0, 0.0, 1.0);
    a->anat_age = age;
    a->anat_male = male;

    /* Pose and exposure of this image (stream EXPOSURE). The acquisition multiplier `spread` widens
     * each spread about its centre (at spread = 1 the values are exactly the draws: c + (x - c) is
     * exact for x within a factor 2 of c, and pow(x, 1) = x). */
    stream(&r, s, RD_PHANTOM_STREAM_EXPOSURE, img->patient, img->followup);
    const double spread = s->acquisition;
    const double magnification = 1.06 + spread * (rd_rng_range(&r, 1.02, 1.10) - 1.06);
    const double shift_x = 8.0 * spread * normal3(&r), shift_y = 10.0 * spread * normal3(&r);
    const double rotation = 1.5 * spread * normal3(&r) * PI / 180.0;
    const double inspiration = 8.0 * normal3(&r);
    a->exposure_scale = rd_rng_range(&r, 2.2, 2.9);
    a->contrast = 1.025 + spread * (rd_rng_range(&r, 0.9, 1.15) - 1.025);
    a->brightness = spread * rd_rng_range(&r, -0.06, 0.06);
    a->gamma = pow(rd_rng_range(&r, 0.8, 1.25), spread);
    const double dose_sigma = rd_rng_range(&r, 0.012, 0.03);
    const double blur_mm = rd_rng_range(&r, 0.15, 0.35);

    a->width = img->width;
    a->height = img->height;
    a->ap = img->ap;
    a->px_per_mm = magnification / img->spacing_mm;
    a->center_x = 0.5 * img->width + shift_x * a->px_per_mm;
    a->center_y = 0.5 * img->height + shift_y * a->px_per_mm;
    a->rotation = rotation;
    /* Quantum noise per pixel grows with the sampling density (fewer photons per pixel). */
    a->noise_sigma = s->noise * dose_sigma * a->px_per_mm / 2.4;
    a->blur_px = fmax(0.4, blur_mm * a->px_per_mm);

    /* E1 thorax width, E2 thorax height: larger in males. */
    a->thorax_half_width = v.thorax_half_width * (1 + 0.12 * sx);
    const double lung_height = v.lung_height * (1 + 0.06 * sx);
    a->body_margin = v.body_margin;
    a->body_half_depth = v.body_half_depth;
    a->neck_half_width = v.neck_half_width;

    /* The apices stay put; the domes move with inspiration (AP images are taken in shallower
     * inspiration) and E8 hyperinflation: lower, flatter domes and more air with age. */
    a->apex_y = DOME_Y - lung_height;
    const double dome = DOME_Y + inspiration + 16.0 * aa - (img->ap ? 12.0 : 0.0);
    a->dome_y[0] = dome;
    a->dome_y[1] = dome + 15.0;
    a->dome_drop = v.dome_drop * (1 - 0.25 * clampd(aa, -1, 1.5));
    a->lung_depth = v.lung_depth * (1 + 0.10 * aa);
    a->shoulder_y = a->apex_y - 25.0 + v.shoulder_offset;
    a->gastric_air = v.gastric_air;
    a->hilum_y[0] = a->apex_y + 0.45 * lung_height;
    a->hilum_y[1] = a->hilum_y[0] - 10.0;
    a->vessel_scale = v.vessel_scale;

    /* E3 heart size: larger in males, slightly larger with age; AP magnifies it. */
    const double heart = v.heart_scale * (1 + 0.10 * sx) * (1 + 0.10 * aa) * (img->ap ? 1.15 : 1);
    a->heart_semi_major = 72.0 * heart;
    a->heart_semi_minor = 52.0 * heart;
    a->heart_angle = v.heart_angle;
    a->heart_x = v.heart_x;
    a->heart_y = a->dome_y[0] - 0.75 * a->heart_semi_minor;
    a->heart_depth = 0.88;

    /* E6 aortic knob: unfolds (larger, more lateral, higher) and calcifies with age. */
    a->mediastinum_half_width = v.mediastinum_half_width;
    a->trachea_x = v.trachea_x;
    a->knob_radius = v.knob_radius * (1 + 0.4 * fmax(aa, -0.5));
    a->knob_x = v.mediastinum_half_width + 8.0 + 12.0 * aa;
    a->knob_y = a->apex_y + 72.0 - 5.0 * aa;
    a->knob_calcification = 2.0 * v.calcification * old;
    a->aorta_tortuosity = 10.0 * v.tortuosity * fmax(0, aa);

    /* E5 bone density and cortex: lower with age, more so in women after 50. */
    a->bone_density = v.bone_density * (1 - 0.2 * aa - 0.1 * (1 - male) * fmax(0, aa));
    a->cortex_fraction = v.cortex_fraction * (1 - 0.1 * aa);
    /* E7 rib angle and kyphosis: ribs more horizontal and upper ribs crowded with age.
     * E9 bone size: larger in males. */
    const double bone_size = 1 + 0.08 * sx;
    a->rib_y0 = a->apex_y + 4.0;
    a->rib_spacing = (lung_height + 30.0) / 10.0 * v.rib_spacing;
    a->rib_rise = v.rib_rise;
    a->rib_drop = v.rib_drop * (1 - 0.2 * aa);
    a->rib_radius = v.rib_radius * bone_size;
    a->kyphosis = 0.06 * fmax(0, aa);
    a->vertebra_half_width = v.vertebra_half_width * bone_size;
    /* AP: clavicles project higher and more horizontally, scapulae over the lungs. */
    a->clavicle_y = a->apex_y + (img->ap ? -5.0 : 22.0) + v.clavicle_offset;
    a->clavicle_rise = img->ap ? 0.35 * v.clavicle_rise : v.clavicle_rise;
    a->clavicle_radius = 6.5 * bone_size;
    a->scapula_shift = img->ap ? 40.0 : 0.0;

    /* E4 breasts: female shadows over the lower zones, descending with age. */
    a->breast_thickness = v.breast_thickness * (1 - 0.9 * male);
    a->breast_radius = v.breast_radius;
    a->breast_x = 0.6 * a->thorax_half_width;
    a->breast_y = DOME_Y - 20.0 + v.breast_offset + 12.0 * aa;

    a->seed = s->seed;
    a->patient = img->patient;
    a->followup = img->followup;
}
