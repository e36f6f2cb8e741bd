/* Phantom rendering: a projection image built as the sum of the attenuation of simple solids
 * (elliptic body, lungs as air, heart, aorta, bone tubes, vessel trees), then quantum noise,
 * detector blur and a display curve. Shapes and constants: docs/SYNTH.md, "Rendering". */
#include "rdino/phantom.h"

#include <math.h>
#include <string.h>

#include "rdino/rng.h"

static const double PI = 3.14159265358979323846;

/* Attenuation per mm of path: soft tissue, and the excess of bone over the soft tissue it
 * replaces (cortical shell, trabecular core). */
static const double MU_SOFT = 0.02;
static const double MU_CORTEX = 0.06;
static const double MU_TRABECULAR = 0.012;

/* Thinner structures are widened to this many pixels (keeping their projected mass) so that
 * small images do not alias. */
static const double MIN_RADIUS_PX = 0.7;

/* Height of the elliptic cap that rounds each lung apex. */
static const double APEX_CAP_MM = 35.0;

enum { N_RIBS = 12, N_ANTERIOR_RIBS = 10, RIB_POINTS = 12, CLAVICLE_POINTS = 10 };
enum { VESSEL_LEVELS = 7, VESSEL_TRUNKS = 8 };

/* Pixel <-> patient frame. */
typedef struct frame {
    double cx, cy, cs, sn, ppm;
    int w, h;
} frame;

static void patient_at(const frame *f, double px, double py, double *x, double *y) {
    double dx = px - f->cx, dy = py - f->cy;
    *x = (f->cs * dx + f->sn * dy) / f->ppm;
    *y = (-f->sn * dx + f->cs * dy) / f->ppm;
}

/* Pixel bounding box [i0, i1) x [j0, j1) of a patient-frame rectangle; empty if off-image. */
typedef struct box {
    int i0, i1, j0, j1;
} box;

static box pixel_box(const frame *f, double x0, double x1, double y0, double y1) {
    double jmin = 1e30, jmax = -1e30, imin = 1e30, imax = -1e30;
    const double xs[2] = {x0, x1}, ys[2] = {y0, y1};
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++) {
            double px = f->cx + f->ppm * (f->cs * xs[a] - f->sn * ys[b]);
            double py = f->cy + f->ppm * (f->sn * xs[a] + f->cs * ys[b]);
            jmin = fmin(jmin, px), jmax = fmax(jmax, px);
            imin = fmin(imin, py), imax = fmax(imax, py);
        }
    box b = {(int)fmax(0, floor(imin - 1)), (int)fmin(f->h, ceil(imax + 1)),
             (int)fmax(0, floor(jmin - 1)), (int)fmin(f->w, ceil(jmax + 1))};
    return b;
}

/* Patient coordinates of pixel (i, j0) and the step per pixel along a row. */
static void row_start(const frame *f, int i, int j0, double *x, double *y, double *dx, double *dy) {
    patient_at(f, j0 + 0.5, i + 0.5, x, y);
    *dx = f->cs / f->ppm;
    *dy = -f->sn / f->ppm;
}

static inline double smooth01(double t) {
    if (t <= 0) return 0;
    if (t >= 1) return 1;
    return t * t * (3 - 2 * t);
}

/* Path length through a disc of radius r at distance d from its centre. */
static inline double chord(double r, double d) {
    double q = r * r - d * d;
    return q > 0 ? 2 * sqrt(q) : 0;
}

/* Path length through a unit ellipse at normalised radius^2 q, as a fraction of the centre. */
static inline double dome(double q) {
    return q < 1 ? sqrt(1 - q) : 0;
}

/* ---- geometry shared by the passes ---- */
typedef struct geom {
    const rd_phantom_anatomy *a;
    frame f;
    double W, mw, x_apex, apex_half, y_wide;
    double a_neck, a_shoulder, a_chest, b_chest;
    double hcos, hsin;
    double hilum_x;
} geom;

static void geom_init(geom *g, const rd_phantom_anatomy *a) {
    g->a = a;
    g->f = (frame){a->center_x,  a->center_y, cos(a->rotation), sin(a->rotation),
                   a->px_per_mm, a->width,    a->height};
    g->W = a->thorax_half_width;
    g->mw = a->mediastinum_half_width;
    g->x_apex = 0.42 * g->W;
    g->apex_half = 0.22 * g->W;
    g->y_wide = a->apex_y + 0.65 * (a->dome_y[0] - a->apex_y);
    g->a_neck = a->neck_half_width;
    g->a_chest = g->W + 6.0 + a->body_margin;
    g->a_shoulder = g->a_chest + 15.0;
    g->b_chest = a->body_half_depth;
    g->hcos = cos(a->heart_angle);
    g->hsin = sin(a->heart_angle);
    g->hilum_x = g->mw + 20.0;
}

/* Lateral boundary of a lung (distance from the midline) at height y. */
/* Lung outline: an elliptic cap over the apex, then walls that widen to the rib cage laterally
 * and reach the mediastinum medially. */
static void lung_walls(const geom *g, double y, double *x_med, double *x_lat) {
    const double top = g->a->apex_y + APEX_CAP_MM;
    if (y < top) {
        double t = (top - y) / APEX_CAP_MM;
        double half = t < 1 ? g->apex_half * sqrt(1 - t * t) : 0;
        *x_med = g->x_apex - half;
        *x_lat = g->x_apex + half;
        return;
    }
    double t = fmin(1, (y - top) / (g->y_wide - top));
    *x_lat = g->x_apex + g->apex_half +
             (g->W - g->x_apex - g->apex_half) * (1 - (1 - t) * (1 - t) * (1 - t));
    *x_med = g->x_apex - g->apex_half - (g->x_apex - g->apex_half - g->mw) * smooth01(t / 0.3);
}

static double lung_lateral(const geom *g, double y) {
    double x_med, x_lat;
    lung_walls(g, y, &x_med, &x_lat);
    return x_lat;
}

static double diaphragm_y(const geom *g, int side, double xs) {
    const rd_phantom_anatomy *a = g->a;
    double xd = 0.5 * g->W;
    if (xs >= xd) {
        double u = (xs - xd) / (g->W - xd);
        return a->dome_y[side] + a->dome_drop * u * u;
    }
    double u = (xd - xs) / (xd - g->mw);
    return a->dome_y[side] + 0.6 * a->dome_drop * u * u;
}

/* Air thickness (mm) of one lung; xs is the distance from the midline towards its side. */
static double lung_air(const geom *g, int side, double xs, double y) {
    const rd_phantom_anatomy *a = g->a;
    if (y <= a->apex_y || xs <= g->mw) return 0;
    double x_med, x_lat;
    lung_walls(g, y, &x_med, &x_lat);
    double y_dia = diaphragm_y(g, side, xs);
    if (xs <= x_med || xs >= x_lat || y >= y_dia) return 0;
    double e =
        smooth01((x_lat - xs) / 12.0) * smooth01((xs - x_med) / 6.0) * smooth01((y_dia - y) / 4.0);
    e *= 0.55 + 0.45 * smooth01((y - a->apex_y) / 80.0);
    return a->lung_depth * e;
}

/* Fraction of lung air left where the heart, aorta and hila displace it. */
static double displaced(const geom *g, double x, double y) {
    const rd_phantom_anatomy *a = g->a;
    double keep = 1;
    double dx = x - a->heart_x, dy = y - a->heart_y;
    double u = (g->hcos * dx + g->hsin * dy) / a->heart_semi_major;
    double v = (-g->hsin * dx + g->hcos * dy) / a->heart_semi_minor;
    keep *= 1 - a->heart_depth * dome(u * u + v * v);
    dx = (x - a->knob_x) / a->knob_radius;
    dy = (y - a->knob_y) / a->knob_radius;
    keep *= 1 - 0.75 * dome(dx * dx + dy * dy);
    if (y > a->knob_y && y < a->dome_y[1]) {
        double t = (y - a->knob_y) / (a->dome_y[1] - a->knob_y);
        double xa = a->knob_x - 0.35 * a->knob_radius + a->aorta_tortuosity * sin(PI * t);
        double d = (x - xa) / 11.0;
        keep *= 1 - 0.4 * dome(d * d) * smooth01(t * 8);
    }
    for (int side = 0; side < 2; side++) {
        dx = (x - (side ? 1 : -1) * g->hilum_x) / 24.0;
        dy = (y - a->hilum_y[side]) / 34.0;
        keep *= 1 - 0.25 * dome(dx * dx + dy * dy);
    }
    return keep;
}

/* Soft tissue path (mm) through the body, arms and breasts. */
static double soft_path(const geom *g, double x, double y) {
    const rd_phantom_anatomy *a = g->a;
    double s1 = smooth01((y - (a->shoulder_y - 50.0)) / 80.0);
    double s2 = smooth01((y - (a->shoulder_y + 30.0)) / 100.0);
    double half = g->a_neck + (g->a_shoulder - g->a_neck) * s1 + (g->a_chest - g->a_shoulder) * s2;
    half -= 10.0 * smooth01((y - a->dome_y[0] - 40.0) / 100.0);
    double depth = g->b_chest * (0.55 + 0.45 * s1);
    double ax = fabs(x);
    double path = 0;
    if (ax < half) path = 2 * depth * sqrt(1 - (ax / half) * (ax / half));
    /* arms, hanging beside the chest and leaving the field below the shoulders */
    double arm_in = smooth01((y - (a->shoulder_y - 10.0)) / 30.0);
    double arm_out = 1 - smooth01((y - (a->apex_y + 60.0)) / 140.0);
    if (arm_in * arm_out > 0) path += chord(42.0, ax - (g->a_shoulder + 15.0)) * arm_in * arm_out;
    /* breasts: sharp lower contour, fading upwards */
    if (a->breast_thickness > 0) {
        double u = (ax - a->breast_x) / a->breast_radius;
        double v = (y - a->breast_y) / (0.85 * a->breast_radius);
        double q = u * u + v * v;
        if (q < 1) path += a->breast_thickness * sqrt(1 - q) * smooth01((v + 1.0) / 1.1);
    }
    return path;
}

/* Pass 1: soft tissue minus lung and stomach air. Writes attenuation to A and the fraction of
 * full lung air to mask (where the vessel trees show). */
static void render_soft_tissue(const geom *g, float *A, float *mask) {
    const rd_phantom_anatomy *a = g->a;
    const frame *f = &g->f;
    const double gx = 0.45 * g->W, gy = a->dome_y[1] + 30.0;
    for (int i = 0; i < f->h; i++) {
        double x, y, dx, dy;
        row_start(f, i, 0, &x, &y, &dx, &dy);
        for (int j = 0; j < f->w; j++, x += dx, y += dy) {
            double path = soft_path(g, x, y);
            double air = 0;
            if (path > 0) {
                air = x < 0 ? lung_air(g, 0, -x, y) : lung_air(g, 1, x, y);
                if (air > 0) air *= displaced(g, x, y);
                double u = (x - gx) / 32.0, v = (y - gy) / 20.0;
                if (v < 0.3) air += a->gastric_air * dome(u * u + v * v);
            }
            double att = MU_SOFT * (path - air);
            A[(size_t)i * f->w + j] = (float)(att > 0 ? att : 0);
            mask[(size_t)i * f->w + j] = (float)(air / a->lung_depth);
        }
    }
}

/* ---- tubes: bones, airways, vessels ---- */
typedef struct tube {
    const double *x, *y; /* polyline, patient frame */
    int n;
    double r0, r1; /* radius at the first and last point */
    double depth;  /* extent along the beam / width */
    double cortex; /* shell thickness / radius (0: homogeneous) */
    double mu_shell, mu_core;
    const float *mask; /* if not NULL, multiplies the contribution per pixel */
    int flat_ends;     /* no round caps: segments of a branching tree join without overlap */
} tube;

enum { TUBE_MAX_POINTS = 16 };

/* Which columns of row i can lie within R pixels of each segment of the polyline (u, v)
 * (pixel centre coordinates): segment k reaches columns [lo[k], hi[k]] (empty if lo > hi).
 * Returns the union's bounds in *j0, *j1. */
static void tube_row_spans(const double *u, const double *v, int n, double R, int i, int w, int *lo,
                           int *hi, int *j0, int *j1) {
    double vc = i + 0.5;
    *j0 = w, *j1 = -1;
    for (int k = 0; k + 1 < n; k++) {
        double dv = v[k + 1] - v[k], ta = 0, tb = 1;
        lo[k] = 1, hi[k] = 0;
        if (fabs(dv) < 1e-9) {
            if (fabs(vc - v[k]) > R) continue;
        } else {
            double t1 = (vc - R - v[k]) / dv, t2 = (vc + R - v[k]) / dv;
            ta = fmax(0, fmin(t1, t2)), tb = fmin(1, fmax(t1, t2));
            if (ta > tb) continue;
        }
        double ua = u[k] + ta * (u[k + 1] - u[k]), ub = u[k] + tb * (u[k + 1] - u[k]);
        lo[k] = (int)fmax(0, ceil(fmin(ua, ub) - R - 0.5));
        hi[k] = (int)fmin(w - 1, floor(fmax(ua, ub) + R - 0.5));
        if (lo[k] < *j0) *j0 = lo[k];
        if (hi[k] > *j1) *j1 = hi[k];
    }
}

static void add_tube(const frame *f, float *A, const tube *t) {
    double rmax = fmax(t->r0, t->r1), rmin_mm = MIN_RADIUS_PX / f->ppm;
    rmax = fmax(rmax, rmin_mm);
    double u[TUBE_MAX_POINTS], v[TUBE_MAX_POINTS], vmin = 1e30, vmax = -1e30;
    int lo[TUBE_MAX_POINTS], hi[TUBE_MAX_POINTS];
    int n = t->n < TUBE_MAX_POINTS ? t->n : TUBE_MAX_POINTS;
    for (int k = 0; k < n; k++) {
        u[k] = f->cx + f->ppm * (f->cs * t->x[k] - f->sn * t->y[k]);
        v[k] = f->cy + f->ppm * (f->sn * t->x[k] + f->cs * t->y[k]);
        vmin = fmin(vmin, v[k]), vmax = fmax(vmax, v[k]);
    }
    const double R = rmax * f->ppm + 1.0;
    int i0 = (int)fmax(0, floor(vmin - R)), i1 = (int)fmin(f->h, ceil(vmax + R));
    for (int i = i0; i < i1; i++) {
        int j0, j1;
        tube_row_spans(u, v, n, R, i, f->w, lo, hi, &j0, &j1);
        double x, y, dx, dy;
        row_start(f, i, j0, &x, &y, &dx, &dy);
        for (int j = j0; j <= j1; j++, x += dx, y += dy) {
            double best = 1e30, where = 0;
            for (int k = 0; k + 1 < n; k++) {
                if (j < lo[k] || j > hi[k]) continue;
                double ex = t->x[k + 1] - t->x[k], ey = t->y[k + 1] - t->y[k];
                double px = x - t->x[k], py = y - t->y[k];
                double len2 = ex * ex + ey * ey;
                double s = len2 > 0 ? (px * ex + py * ey) / len2 : 0;
                if (t->flat_ends && (s < 0 || s > 1)) continue;
                s = s < 0 ? 0 : s > 1 ? 1 : s;
                double qx = px - s * ex, qy = py - s * ey, d2 = qx * qx + qy * qy;
                if (d2 < best) best = d2, where = (k + s) / (n - 1);
            }
            double r = t->r0 + (t->r1 - t->r0) * where, gain = t->depth;
            if (r < rmin_mm) gain *= (r / rmin_mm) * (r / rmin_mm), r = rmin_mm;
            if (best >= r * r) continue;
            double d = sqrt(best), ri = r * (1 - t->cortex);
            double full = chord(r, d), core = chord(ri, d);
            double val = gain * (t->mu_shell * (full - core) + t->mu_core * core);
            size_t p = (size_t)i * f->w + j;
            if (t->mask) val *= t->mask[p];
            A[p] += (float)val;
        }
    }
}

static void add_segment(const frame *f, float *A, double xa, double ya, double xb, double yb,
                        double ra, double rb, double mu, const float *mask) {
    const double px[2] = {xa, xb}, py[2] = {ya, yb};
    tube t = {px, py, 2, ra, rb, 1.0, 0.0, mu, mu, mask, 1};
    add_tube(f, A, &t);
}

/* Trachea and main bronchi: air columns in the mediastinum. */
static void render_airways(const geom *g, float *A) {
    const rd_phantom_anatomy *a = g->a;
    double cx = a->trachea_x + 2.0, cy = a->hilum_y[0] - 30.0;
    double air = -MU_SOFT;
    add_segment(&g->f, A, a->trachea_x, a->shoulder_y - 140.0, cx, cy, 8.0, 8.0, air, NULL);
    add_segment(&g->f, A, cx, cy, -(g->mw + 16.0), a->hilum_y[0] + 4.0, 6.0, 4.5, air, NULL);
    add_segment(&g->f, A, cx, cy, g->mw + 20.0, a->hilum_y[1] + 10.0, 5.5, 4.5, air, NULL);
}

/* Lung vessels: one random branching tree per trunk from each hilum, drawn in a reference lung
 * (half-width 138 mm, height 235 mm) and stretched to this one, so a patient's tree is the same
 * in every follow-up. Blood over air: visible only where the mask says there is lung. */
typedef struct vessel_ctx {
    const geom *g;
    float *A;
    const float *mask;
    rd_rng rng;
    double ox, oy, sx, sy; /* hilum and stretch; sx carries the side's sign */
} vessel_ctx;

static void vessel_branch(vessel_ctx *c, double x, double y, double angle, double len, double r,
                          int level) {
    double ex = x + len * cos(angle), ey = y + len * sin(angle);
    double gain = c->g->a->vessel_scale;
    add_segment(&c->g->f, c->A, c->ox + c->sx * x, c->oy + c->sy * y, c->ox + c->sx * ex,
                c->oy + c->sy * ey, r * gain, 0.85 * r * gain, 3.0 * MU_SOFT, c->mask);
    if (level + 1 >= VESSEL_LEVELS) return;
    double spread = rd_rng_range(&c->rng, 0.25, 0.5);
    double skew = rd_rng_range(&c->rng, -0.15, 0.15);
    double l1 = len * rd_rng_range(&c->rng, 0.7, 0.86), l2 = len * rd_rng_range(&c->rng, 0.7, 0.86);
    vessel_branch(c, ex, ey, angle - spread + skew, l1, 0.72 * r, level + 1);
    vessel_branch(c, ex, ey, angle + spread + skew, l2, 0.72 * r, level + 1);
}

static void render_vessels(const geom *g, float *A, const float *mask) {
    const rd_phantom_anatomy *a = g->a;
    static const double trunk_deg[VESSEL_TRUNKS] = {-105, -75, -45, -15, 15, 45, 70, 95};
    for (int side = 0; side < 2; side++) {
        vessel_ctx c = {.g = g,
                        .A = A,
                        .mask = mask,
                        .ox = (side ? 1 : -1) * g->hilum_x,
                        .oy = a->hilum_y[side],
                        .sx = (side ? 1 : -1) * g->W / 138.0,
                        .sy = (a->dome_y[0] - a->apex_y) / 235.0};
        rd_rng_init(&c.rng, a->seed, RD_RNG_SYNTH, RD_PHANTOM_STREAM_VESSELS, (uint64_t)a->patient,
                    (uint32_t)side);
        for (int k = 0; k < VESSEL_TRUNKS; k++) {
            /* trunks leave from along the hilum, not from one point */
            double angle = (trunk_deg[k] + rd_rng_range(&c.rng, -8, 8)) * PI / 180.0;
            double x0 = rd_rng_range(&c.rng, 0, 8),
                   y0 = 18.0 * sin(angle) + rd_rng_range(&c.rng, -5, 5);
            double len = rd_rng_range(&c.rng, 22, 30);
            vessel_branch(&c, x0, y0, angle, len, 3.4, 0);
        }
    }
}

/* ---- bones ---- */

/* Height of the centre of vertebra k (1 = T1, <= 0 cervical, > 12 lumbar). Kyphosis crowds
 * the upper thoracic levels. */
static double vertebra_y(const rd_phantom_anatomy *a, int k) {
    if (k <= 1) return a->rib_y0 + (k - 1) * 0.75 * a->rib_spacing;
    double y = a->rib_y0;
    for (int j = 1; j < k; j++) {
        double crowd = j <= N_RIBS ? a->kyphosis * (1 - (j - 1) / (double)(N_RIBS - 1)) : 0;
        y += a->rib_spacing * (1 - crowd);
    }
    return y;
}

static void render_vertebrae(const geom *g, float *A) {
    const rd_phantom_anatomy *a = g->a;
    const frame *f = &g->f;
    double dens = a->bone_density;
    for (int k = -3; k <= 16; k++) {
        double yc = vertebra_y(a, k);
        double scale = k <= 0 ? 0.72 : k > N_RIBS ? 1.2 : 1.0 + 0.01 * k;
        double vw = a->vertebra_half_width * scale;
        double hh = 0.4 * a->rib_spacing * (k <= 0 ? 0.75 : k > N_RIBS ? 1.2 : 1.0);
        box b = pixel_box(f, -vw - 2, vw + 2, yc - hh - 2, yc + hh + 10);
        for (int i = b.i0; i < b.i1; i++) {
            double x, y, dx, dy;
            row_start(f, i, b.j0, &x, &y, &dx, &dy);
            for (int j = b.j0; j < b.j1; j++, x += dx, y += dy) {
                double ax = fabs(x), ay = fabs(y - yc), v = 0;
                if (ax < vw && ay < hh + 1.5) {
                    double ey = smooth01((hh - ay) / 1.5 + 0.5);
                    double body = 28.0 * sqrt(1 - (ax / vw) * (ax / vw)) * ey;
                    double shell =
                        3.0 * (exp(-((ax - (vw - 1.5)) / 1.2) * ((ax - (vw - 1.5)) / 1.2)) +
                               exp(-((ay - (hh - 1.0)) / 1.0) * ((ay - (hh - 1.0)) / 1.0)));
                    v += MU_TRABECULAR * body + MU_CORTEX * shell * ey;
                }
                /* pedicles: cortical rings */
                double pu = (ax - 0.62 * vw) / 4.5, pv = (y - (yc - 0.15 * hh)) / 6.5;
                double pq = pu * pu + pv * pv;
                v += MU_CORTEX * 4.0 * (dome(pq) - 0.6 * dome(pq / 0.36));
                /* spinous process */
                double su = x / 3.0, sv = (y - (yc + 0.8 * hh)) / 7.0;
                v += MU_CORTEX * 5.0 * dome(su * su + sv * sv);
                A[(size_t)i * f->w + j] += (float)(dens * v);
            }
        }
    }
}

static void render_ribs(const geom *g, float *A) {
    const rd_phantom_anatomy *a = g->a;
    double dens = a->bone_density;
    for (int side = 0; side < 2; side++) {
        double sgn = side ? 1 : -1;
        for (int k = 1; k <= N_RIBS; k++) {
            double yv = vertebra_y(a, k);
            double drop = a->rib_drop * (0.75 + 0.05 * k);
            double xs0 = a->vertebra_half_width + 6.0;
            double xe = k <= 10 ? lung_lateral(g, yv + drop) + 6.0 : (k == 11 ? 0.8 : 0.6) * g->W;
            double px[RIB_POINTS], py[RIB_POINTS];
            for (int n = 0; n < RIB_POINTS; n++) {
                double t = n / (double)(RIB_POINTS - 1);
                px[n] = sgn * (xs0 + (xe - xs0) * t);
                py[n] = yv - a->rib_rise * sin(PI * t) * (1 - 0.4 * t) + drop * pow(t, 2.2);
            }
            double r = a->rib_radius * (k == 1 ? 0.85 : 1.0);
            tube post = {px,
                         py,
                         RIB_POINTS,
                         r,
                         0.9 * r,
                         0.9,
                         a->cortex_fraction,
                         dens * MU_CORTEX,
                         dens * MU_TRABECULAR,
                         NULL,
                         0};
            add_tube(&g->f, A, &post);
            if (k > N_ANTERIOR_RIBS) continue;
            /* anterior rib: from the lateral wall down and inwards, fading into cartilage */
            double ax[RIB_POINTS], ay[RIB_POINTS];
            double y1 = py[RIB_POINTS - 1] + 14.0, x1 = xe - 4.0;
            double x2 = fmin(0.3 * g->W + 3.0 * k, 0.7 * xe), y2 = y1 + 48.0;
            for (int n = 0; n < RIB_POINTS; n++) {
                double t = n / (double)(RIB_POINTS - 1);
                ax[n] = sgn * (x1 + (x2 - x1) * t);
                ay[n] = y1 + (y2 - y1) * t * t * 0.6 + (y2 - y1) * 0.4 * t;
            }
            tube ant = {ax,
                        ay,
                        RIB_POINTS,
                        0.9 * r,
                        0.5 * r,
                        0.7,
                        a->cortex_fraction,
                        0.6 * dens * MU_CORTEX,
                        0.6 * dens * MU_TRABECULAR,
                        NULL,
                        0};
            add_tube(&g->f, A, &ant);
        }
    }
}

static void render_clavicles(const geom *g, float *A) {
    const rd_phantom_anatomy *a = g->a;
    double dens = a->bone_density;
    for (int side = 0; side < 2; side++) {
        double sgn = side ? 1 : -1, px[CLAVICLE_POINTS], py[CLAVICLE_POINTS];
        double x0 = 16.0, x1 = g->W + 35.0;
        for (int n = 0; n < CLAVICLE_POINTS; n++) {
            double t = n / (double)(CLAVICLE_POINTS - 1);
            px[n] = sgn * (x0 + (x1 - x0) * t);
            py[n] = a->clavicle_y - a->clavicle_rise * t + 5.0 * sin(2 * PI * t);
        }
        tube t = {px,
                  py,
                  CLAVICLE_POINTS,
                  a->clavicle_radius,
                  0.8 * a->clavicle_radius,
                  1.0,
                  a->cortex_fraction,
                  dens * MU_CORTEX,
                  dens * MU_TRABECULAR,
                  NULL,
                  0};
        add_tube(&g->f, A, &t);
    }
}

/* Scapulae as thin triangular plates with a thicker rim, and the humeral heads. */
static void render_shoulders(const geom *g, float *A) {
    const rd_phantom_anatomy *a = g->a;
    const frame *f = &g->f;
    double dens = a->bone_density;
    for (int side = 0; side < 2; side++) {
        double sgn = side ? 1 : -1;
        double vx[3] = {g->W - 10.0 - a->scapula_shift, g->W - 2.0 - 0.8 * a->scapula_shift,
                        g->W + 48.0};
        double vy[3] = {a->apex_y - 5.0, a->apex_y + 150.0, a->shoulder_y + 32.0};
        /* inward unit normals of the three edges */
        double nx[3], ny[3], off[3];
        double cxm = (vx[0] + vx[1] + vx[2]) / 3, cym = (vy[0] + vy[1] + vy[2]) / 3;
        for (int e = 0; e < 3; e++) {
            double ex = vx[(e + 1) % 3] - vx[e], ey = vy[(e + 1) % 3] - vy[e];
            double len = sqrt(ex * ex + ey * ey);
            nx[e] = -ey / len, ny[e] = ex / len;
            if (nx[e] * (cxm - vx[e]) + ny[e] * (cym - vy[e]) < 0) nx[e] = -nx[e], ny[e] = -ny[e];
            off[e] = nx[e] * vx[e] + ny[e] * vy[e];
        }
        double xlo = fmin(vx[0], fmin(vx[1], vx[2])), xhi = fmax(vx[0], fmax(vx[1], vx[2]));
        double ylo = fmin(vy[0], fmin(vy[1], vy[2])), yhi = fmax(vy[0], fmax(vy[1], vy[2]));
        box b = side ? pixel_box(f, xlo, xhi, ylo, yhi) : pixel_box(f, -xhi, -xlo, ylo, yhi);
        for (int i = b.i0; i < b.i1; i++) {
            double x, y, dx, dy;
            row_start(f, i, b.j0, &x, &y, &dx, &dy);
            for (int j = b.j0; j < b.j1; j++, x += dx, y += dy) {
                double xs = sgn * x, inside = 1e30;
                for (int e = 0; e < 3; e++) inside = fmin(inside, nx[e] * xs + ny[e] * y - off[e]);
                if (inside <= 0) continue;
                double plate = 4.0 * MU_TRABECULAR * smooth01(inside / 2.0);
                double rim = 3.0 * MU_CORTEX * exp(-(inside - 2.0) * (inside - 2.0) / 4.0);
                A[(size_t)i * f->w + j] += (float)(dens * (plate + rim));
            }
        }
        double hx[2] = {sgn * (g->W + 58.0), sgn * (g->W + 58.0)};
        double hy[2] = {a->shoulder_y + 28.0, a->shoulder_y + 28.0};
        tube head = {hx,   hy, 2, 24.0, 24.0, 1.0, 0.12, dens * MU_CORTEX, dens * MU_TRABECULAR,
                     NULL, 0};
        add_tube(f, A, &head);
    }
}

/* Calcified rim of the aortic knob: a thin crescent on its upper lateral side. */
static void render_calcification(const geom *g, float *A) {
    const rd_phantom_anatomy *a = g->a;
    if (a->knob_calcification <= 0) return;
    const frame *f = &g->f;
    double R = a->knob_radius;
    box b = pixel_box(f, a->knob_x - 1.2 * R, a->knob_x + 1.2 * R, a->knob_y - 1.2 * R,
                      a->knob_y + 1.2 * R);
    for (int i = b.i0; i < b.i1; i++) {
        double x, y, dx, dy;
        row_start(f, i, b.j0, &x, &y, &dx, &dy);
        for (int j = b.j0; j < b.j1; j++, x += dx, y += dy) {
            double u = x - a->knob_x, v = y - a->knob_y, d = sqrt(u * u + v * v);
            if (d < 1e-9) continue;
            double ring = exp(-((d / R - 0.95) / 0.06) * ((d / R - 0.95) / 0.06));
            double facing = smooth01(((0.5 * u - 0.87 * v) / d + 0.2) / 0.8);
            A[(size_t)i * f->w + j] += (float)(MU_CORTEX * a->knob_calcification * ring * facing);
        }
    }
}

/* ---- detector ---- */

/* Quantum noise: the log-signal noise grows as exp(A / 2) (fewer photons behind dense parts). */
static void add_noise(const rd_phantom_anatomy *a, float *A) {
    if (a->noise_sigma <= 0) return;
    rd_rng r;
    rd_rng_init(&r, a->seed, RD_RNG_SYNTH, RD_PHANTOM_STREAM_NOISE, (uint64_t)a->patient,
                (uint32_t)a->followup);
    size_t n = (size_t)a->width * a->height;
    const float sigma = (float)a->noise_sigma;
    for (size_t p = 0; p < n; p += 2) {
        float u1 = (float)(1.0 - rd_rng_uniform(&r)), u2 = (float)rd_rng_uniform(&r);
        float rad = sqrtf(-2.0f * logf(u1)), c = cosf(6.2831853f * u2), sn = sinf(6.2831853f * u2);
        A[p] += sigma * expf(0.5f * A[p]) * rad * c;
        if (p + 1 < n) A[p + 1] += sigma * expf(0.5f * A[p + 1]) * rad * sn;
    }
}

enum { BLUR_MAX_RADIUS = 16 };

/* Separable Gaussian blur of A (w x h) using tmp; edges clamp. */
static void blur(float *A, float *tmp, int w, int h, double sigma) {
    int rad = (int)ceil(3 * sigma);
    if (rad < 1) return;
    if (rad > BLUR_MAX_RADIUS) rad = BLUR_MAX_RADIUS;
    float k[2 * BLUR_MAX_RADIUS + 1];
    double sum = 0;
    for (int d = -rad; d <= rad; d++)
        sum += k[d + rad] = (float)exp(-0.5 * d * d / (sigma * sigma));
    for (int d = -rad; d <= rad; d++) k[d + rad] = (float)(k[d + rad] / sum);
    for (int i = 0; i < h; i++) {
        const float *row = A + (size_t)i * w;
        float *out = tmp + (size_t)i * w;
        for (int j = 0; j < w; j++) {
            float s = 0;
            for (int d = -rad; d <= rad; d++) {
                int jj = j + d < 0 ? 0 : j + d >= w ? w - 1 : j + d;
                s += k[d + rad] * row[jj];
            }
            out[j] = s;
        }
    }
    for (int i = 0; i < h; i++) {
        float *out = A + (size_t)i * w;
        for (int j = 0; j < w; j++) out[j] = 0;
        for (int d = -rad; d <= rad; d++) {
            int ii = i + d < 0 ? 0 : i + d >= h ? h - 1 : i + d;
            const float *row = tmp + (size_t)ii * w;
            for (int j = 0; j < w; j++) out[j] += k[d + rad] * row[j];
        }
    }
}

/* Display: log-signal compressed towards white for thick parts, then contrast, brightness and
 * gamma of the exposure. */
static void display(const rd_phantom_anatomy *a, float *A) {
    size_t n = (size_t)a->width * a->height;
    const float inv = (float)(1.0 / a->exposure_scale), contrast = (float)a->contrast;
    const float offset = (float)(0.5 - 0.5 * a->contrast + a->brightness);
    const float gamma = (float)a->gamma;
    for (size_t p = 0; p < n; p++) {
        float v = 1.0f - expf(-(A[p] > 0 ? A[p] : 0) * inv);
        v = offset + contrast * v;
        v = v < 0 ? 0 : v > 1 ? 1 : v;
        A[p] = v > 0 ? powf(v, gamma) : 0;
    }
}

void rd_phantom_render(const rd_phantom_anatomy *a, float *pixels, float *scratch) {
    geom g;
    geom_init(&g, a);
    render_soft_tissue(&g, pixels, scratch);
    render_vessels(&g, pixels, scratch);
    render_airways(&g, pixels);
    render_vertebrae(&g, pixels);
    render_ribs(&g, pixels);
    render_clavicles(&g, pixels);
    render_shoulders(&g, pixels);
    render_calcification(&g, pixels);
    add_noise(a, pixels);
    blur(pixels, scratch, a->width, a->height, a->blur_px);
    display(a, pixels);
}
