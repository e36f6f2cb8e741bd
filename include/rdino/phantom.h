/* Synthetic chest radiographs ("phantoms") whose anatomy depends on patient sex and age in
 * documented, tunable ways (docs/SYNTH.md has every effect with its formula).
 * Pure computation, no I/O: a data-set plan (patients, follow-ups, image sizes), the anatomy of
 * one image, and its rendering into a float image in [0, 1] (0 = black, air).
 * Every random draw comes from rd_rng with purpose RD_RNG_SYNTH keyed by the patient number
 * (and the follow-up number for per-image draws), so an image does not depend on which rank
 * renders it, nor on how many patients the data set has. */
#ifndef RDINO_PHANTOM_H
#define RDINO_PHANTOM_H

#include <stdint.h>

#include "rdino/error.h"

/* The rd_rng epoch field selects the sub-stream of a draw (docs/SYNTH.md, "Randomness"). */
typedef enum {
    RD_PHANTOM_STREAM_PATIENT = 0,  /* index = patient: sex, ages, follow-ups, surrogates */
    RD_PHANTOM_STREAM_ANATOMY = 1,  /* index = patient: individual anatomy */
    RD_PHANTOM_STREAM_VESSELS = 2,  /* index = patient: lung vessel tree */
    RD_PHANTOM_STREAM_IMAGE = 3,    /* index = patient, crop = follow-up: view, size */
    RD_PHANTOM_STREAM_EXPOSURE = 4, /* index = patient, crop = follow-up: pose, exposure */
    RD_PHANTOM_STREAM_NOISE = 5     /* index = patient, crop = follow-up: quantum noise */
} rd_phantom_stream;

enum { RD_PHANTOM_MAX_FOLLOWUPS = 1000 }; /* image names carry a 3-digit follow-up number */

typedef struct rd_phantom_settings {
    uint64_t seed;
    int64_t n_patients;
    int images_min, images_max;        /* images per patient, uniform on [min, max] */
    double followup_min, followup_max; /* years between consecutive images of a patient */
    double age_min, age_max;           /* age at the first image, uniform */
    double male_fraction;
    double ap_fraction;            /* probability that an image is an AP (not PA) projection */
    int size_min, size_max;        /* longer image side in pixels, uniform */
    double aspect_min, aspect_max; /* width / height, uniform (< 1 portrait, > 1 landscape) */
    double strength; /* 0: anatomy independent of age and sex; 1: full documented effects */
    double noise;    /* multiplier of the quantum noise (0 = noise-free) */
    /* multiplier of the image-to-image acquisition variation around its centre: patient shift
     * and rotation, magnification, display contrast, brightness and gamma (1 = the documented
     * spreads, 0 = every image taken alike); never touches the anatomy */
    double acquisition;
} rd_phantom_settings;

void rd_phantom_settings_default(rd_phantom_settings *s);
rd_status rd_phantom_settings_check(const rd_phantom_settings *s, rd_error *err);

/* One image of the data set, as listed in its metadata. */
typedef struct rd_phantom_image {
    int64_t patient; /* 0-based; the NIH Patient ID is patient + 1 */
    int followup;    /* 0-based follow-up number */
    double age;      /* exact age in years when the image was taken */
    int male;        /* 1 = M, 0 = F */
    int ap;          /* 1 = AP, 0 = PA */
    int width, height;
    double spacing_mm; /* pixel spacing (square pixels) */
} rd_phantom_image;

typedef struct rd_phantom_plan {
    int64_t n_images;
    rd_phantom_image *images; /* ordered by patient, then follow-up */
} rd_phantom_plan;

/* The whole data set's image list (cheap: a few draws per image, no rendering). */
rd_status rd_phantom_plan_make(const rd_phantom_settings *s, rd_phantom_plan *plan, rd_error *err);
void rd_phantom_plan_free(rd_phantom_plan *plan);

/* NIH-style image name "PPPPPPPP_FFF.png" (patient + 1, follow-up); buf holds >= 32 bytes. */
void rd_phantom_image_name(const rd_phantom_image *img, char *buf, int bufsize);

/* Everything the renderer needs for one image. Geometry in millimetres in the patient frame:
 * x to the image right (the patient's left in a PA view), y downwards (caudal), origin on the
 * midline at mid-thorax height. Attenuation in units where soft tissue is 0.02 per mm. */
typedef struct rd_phantom_anatomy {
    /* image, detector sampling and positioning */
    int width, height;
    double px_per_mm;
    double center_x, center_y; /* image position (px) of the patient-frame origin */
    double rotation;           /* radians; positive turns the patient clockwise in the image */
    int ap;
    /* covariates the anatomy was built from, after strength mixing (docs/SYNTH.md) */
    double anat_age, anat_male;
    /* body wall */
    double thorax_half_width; /* inner rib cage at its widest */
    double apex_y;            /* lung apices */
    double body_margin;       /* soft tissue outside the rib cage */
    double body_half_depth;   /* AP half-thickness of the chest */
    double shoulder_y;
    double neck_half_width;
    /* lungs, diaphragm, stomach */
    double lung_depth;   /* AP thickness of air in the mid lung */
    double dome_y[2];    /* diaphragm domes: [0] patient right (image left), [1] left */
    double dome_drop;    /* vertical drop from a dome to its costophrenic angle */
    double gastric_air;  /* air thickness of the stomach bubble under the left dome */
    double hilum_y[2];   /* hila, where the vessel trees start */
    double vessel_scale; /* thickness multiplier of the lung vessels */
    /* heart (rotated half-ellipsoid) */
    double heart_x, heart_y, heart_semi_major, heart_semi_minor, heart_angle, heart_depth;
    /* mediastinum, trachea, aorta */
    double mediastinum_half_width;
    double trachea_x;
    double knob_x, knob_y, knob_radius;
    double knob_calcification; /* bone-equivalent thickness of the calcified rim, mm */
    double aorta_tortuosity;   /* lateral excursion of the descending aorta, mm */
    /* bones */
    double bone_density;    /* multiplies all bone attenuation */
    double cortex_fraction; /* cortical shell thickness / bone radius */
    double rib_y0, rib_spacing, rib_rise, rib_drop, rib_radius, kyphosis;
    double vertebra_half_width;
    double clavicle_y, clavicle_rise, clavicle_radius;
    double scapula_shift; /* medial shift of the scapulae (AP: they overlap the lungs) */
    /* breasts */
    double breast_thickness, breast_radius, breast_x, breast_y;
    /* exposure and detector */
    double exposure_scale; /* attenuation at which the display reaches 1 - 1/e */
    double contrast, brightness, gamma;
    double noise_sigma; /* quantum noise std (attenuation units) where attenuation is 0 */
    double blur_px;     /* detector blur, Gaussian sigma in pixels */
    /* keys of the per-pixel streams (vessels, noise) */
    uint64_t seed;
    int64_t patient;
    int followup;
} rd_phantom_anatomy;

/* Draws the anatomy of one image of the plan: individual parameters, the age and sex
 * effects scaled by s->strength, positioning and exposure. */
void rd_phantom_anatomy_make(const rd_phantom_settings *s, const rd_phantom_image *img,
                             rd_phantom_anatomy *a);

/* Renders into pixels [height x width], values in [0, 1]. scratch holds width * height
 * floats of working space. No allocation; deterministic. */
void rd_phantom_render(const rd_phantom_anatomy *a, float *pixels, float *scratch);

#endif
