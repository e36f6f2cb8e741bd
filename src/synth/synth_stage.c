/* rdino-synth: phantom images + NIH-layout metadata; see synth_stage.h. */
#include "rdino/synth_stage.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rdino/agree.h"
#include "rdino/file.h"
#include "rdino/image.h"
#include "rdino/journal.h"
#include "rdino/log.h"
#include "rdino/paths.h"
#include "rdino/png.h"
#include "rdino/workqueue.h"

rd_status rd_synth_settings(const rd_config *cfg, rd_phantom_settings *s, rd_error *err) {
    double v[2];
    rd_phantom_settings_default(s);
    s->seed = (uint64_t)rd_cfg_int(cfg, "synth.seed");
    s->n_patients = rd_cfg_int(cfg, "synth.n_patients");
    rd_cfg_list(cfg, "synth.images_per_patient", v, 2);
    s->images_min = (int)v[0], s->images_max = (int)v[1];
    rd_cfg_list(cfg, "synth.followup_years", v, 2);
    s->followup_min = v[0], s->followup_max = v[1];
    rd_cfg_list(cfg, "synth.age_range", v, 2);
    s->age_min = v[0], s->age_max = v[1];
    s->male_fraction = rd_cfg_float(cfg, "synth.male_fraction");
    s->ap_fraction = rd_cfg_float(cfg, "synth.ap_fraction");
    rd_cfg_list(cfg, "synth.size_range", v, 2);
    s->size_min = (int)v[0], s->size_max = (int)v[1];
    rd_cfg_list(cfg, "synth.aspect_range", v, 2);
    s->aspect_min = v[0], s->aspect_max = v[1];
    s->strength = rd_cfg_float(cfg, "synth.strength");
    s->noise = rd_cfg_float(cfg, "synth.noise");
    s->acquisition = rd_cfg_float(cfg, "synth.acquisition");
    int64_t depth = rd_cfg_int(cfg, "synth.bit_depth");
    if (depth != 8 && depth != 16)
        return rd_fail(err, RD_EINVAL, "synth.bit_depth must be 8 or 16, got %lld",
                       (long long)depth);
    return rd_phantom_settings_check(s, err);
}

char *rd_synth_csv(const rd_phantom_plan *plan) {
    char *text = NULL, name[32];
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return NULL;
    fputs(RD_NIH_HEADER "\n", f);
    for (int64_t k = 0; k < plan->n_images; k++) {
        const rd_phantom_image *img = &plan->images[k];
        rd_phantom_image_name(img, name, sizeof name);
        fprintf(f, "%s,No Finding,%d,%lld,%d,%s,%s,%d,%d,%.3f,%.3f\n", name, img->followup,
                (long long)(img->patient + 1), (int)floor(img->age), img->male ? "M" : "F",
                img->ap ? "AP" : "PA", img->width, img->height, img->spacing_mm, img->spacing_mm);
    }
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

/* The settings that determine the images' bytes, as YAML (synth.yaml). */
static char *settings_text(const rd_config *cfg) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return NULL;
    fprintf(f, "phantom_version: %d\n", RD_PHANTOM_VERSION);
    for (int i = 0; i < cfg->nkeys; i++) {
        const char *name = cfg->keys[i].name;
        if (strncmp(name, "synth.", 6) != 0 || strcmp(name, "synth.chunk") == 0 ||
            strcmp(name, "synth.output_dir") == 0)
            continue;
        fprintf(f, "%s: %s\n", name, cfg->values[i].text);
    }
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

/* "PPPPPPPP_FFF.png" exactly. */
static int is_phantom_name(const char *name) {
    for (int i = 0; i < 12; i++) {
        if (i == 8 ? name[i] != '_' : !isdigit((unsigned char)name[i])) return 0;
    }
    return strcmp(name + 12, ".png") == 0;
}

/* Rank 0: makes the folders, removes leftover temporaries, and removes the phantom images,
 * CSV and stamp of a run with different settings before recording the current ones. */
static rd_status prepare_folder(const char *out, const char *images, const char *stamp_text,
                                rd_error *err) {
    char path[2 * RD_PATH_MAX];
    if (rd_mkdir_p(images, err)) return err->code;
    snprintf(path, sizeof path, "%s/synth.yaml", out);
    char *old; /* no stamp, or an unreadable one: other settings */
    rd_error no_stamp;
    int same = rd_read_file(path, &old, NULL, &no_stamp) == RD_OK && strcmp(old, stamp_text) == 0;
    free(old);
    if (!same) {
        const char *gone[2] = {"metadata.csv", "synth.yaml"};
        for (int i = 0; i < 2; i++) {
            snprintf(path, sizeof path, "%s/%s", out, gone[i]);
            if (unlink(path) != 0 && errno != ENOENT)
                return rd_fail(err, RD_EIO, "cannot remove %s: %s", path, strerror(errno));
        }
    }
    DIR *d = opendir(images);
    if (!d) return rd_fail(err, RD_EIO, "cannot list %s: %s", images, strerror(errno));
    int64_t removed = 0;
    struct dirent *e;
    rd_status st = RD_OK;
    while (!st && (e = readdir(d)) != NULL) {
        /* a killed writer's temporary, or an image of other settings */
        if (!rd_is_temp_name(e->d_name) && (same || !is_phantom_name(e->d_name))) continue;
        snprintf(path, sizeof path, "%s/%s", images, e->d_name);
        if (unlink(path) != 0 && errno != ENOENT)
            st = rd_fail(err, RD_EIO, "cannot remove %s: %s", path, strerror(errno));
        removed++;
    }
    closedir(d);
    if (st) return st;
    if (!same && removed)
        rd_info("rdino-synth: settings changed; removed %lld old files from %s", (long long)removed,
                images);
    snprintf(path, sizeof path, "%s/synth.yaml", out);
    if (!same) return rd_write_file_atomic(path, stamp_text, strlen(stamp_text), err);
    return RD_OK;
}

typedef struct renderer {
    const rd_phantom_settings *s;
    const char *images;
    int depth, png_level;
    float *pixels, *scratch;
    void *samples;
    int64_t rendered;
} renderer;

static rd_status render_one(renderer *r, const rd_phantom_image *img, rd_error *err) {
    char name[32], path[2 * RD_PATH_MAX];
    rd_phantom_image_name(img, name, sizeof name);
    snprintf(path, sizeof path, "%s/%s", r->images, name);
    if (access(path, F_OK) == 0) return RD_OK; /* written atomically by an earlier run */
    rd_phantom_anatomy a;
    rd_phantom_anatomy_make(r->s, img, &a);
    rd_phantom_render(&a, r->pixels, r->scratch);
    size_t n = (size_t)img->width * (size_t)img->height;
    rd_quantize(r->pixels, n, 0.0f, 1.0f, r->depth, r->samples);
    rd_grey_image out = {img->width, img->height, r->depth, r->samples};
    if (rd_png_write_grey(path, &out, r->png_level, err)) return err->code;
    r->rendered++;
    return RD_OK;
}

static rd_status render_all(MPI_Comm comm, const rd_phantom_plan *plan, int64_t chunk, renderer *r,
                            rd_error *err) {
    size_t most = 0;
    for (int64_t k = 0; k < plan->n_images; k++) {
        size_t n = (size_t)plan->images[k].width * (size_t)plan->images[k].height;
        if (n > most) most = n;
    }
    r->pixels = malloc(most * sizeof(float));
    r->scratch = malloc(most * sizeof(float));
    r->samples = malloc(most * 2);
    rd_status st = RD_OK;
    if (!r->pixels || !r->scratch || !r->samples)
        st = rd_fail(err, RD_ENOMEM, "out of memory for a %zu-pixel image", most);
    rd_workqueue q;
    if (!st && !(st = rd_workqueue_init(&q, comm, plan->n_images, chunk, err))) {
        rd_progress bar;
        rd_progress_start(&bar, "synth", plan->n_images, 0);
        int64_t begin, end;
        int got;
        while (!st && (got = rd_workqueue_next(&q, &begin, &end, err)) == 1) {
            for (int64_t k = begin; !st && k < end; k++) {
                st = render_one(r, &plan->images[k], err);
                rd_workqueue_item_done(&q);
                if (!st) st = rd_workqueue_poll(&q, err);
                rd_progress_update(&bar, rd_workqueue_done(&q), NULL);
            }
        }
        if (!st && got < 0) st = err->code;
        /* An error here leaves the other ranks waiting: the caller aborts the job. */
        if (!st) st = rd_workqueue_finish(&q, err);
        if (!st) rd_progress_finish(&bar, NULL);
    }
    free(r->pixels);
    free(r->scratch);
    free(r->samples);
    return st;
}

rd_status rd_synth_stage(const rd_config *cfg, MPI_Comm comm, rd_synth_counts *counts,
                         rd_error *err) {
    int rank;
    MPI_Comm_rank(comm, &rank);
    memset(counts, 0, sizeof *counts);
    rd_phantom_settings s;
    if (rd_synth_settings(cfg, &s, err)) return err->code;
    char out[RD_PATH_MAX], images[RD_PATH_MAX + 16], path[2 * RD_PATH_MAX];
    if (rd_pipeline_path(cfg, RD_DIR_SYNTH, out, err)) return err->code;
    snprintf(images, sizeof images, "%s/images", out);

    /* Every rank makes the same plan: it is a pure function of the settings. */
    rd_phantom_plan plan;
    if (rd_phantom_plan_make(&s, &plan, err)) return err->code;
    rd_info("rdino-synth: %lld patients, %lld images, strength %g, into %s",
            (long long)s.n_patients, (long long)plan.n_images, s.strength, out);

    rd_status st = RD_OK;
    if (rank == 0) {
        char *stamp = settings_text(cfg);
        st = stamp ? prepare_folder(out, images, stamp, err)
                   : rd_fail(err, RD_ENOMEM, "out of memory");
        free(stamp);
    }
    if ((st = rd_agree(comm, st, err))) {
        rd_phantom_plan_free(&plan);
        return st;
    }

    renderer r = {.s = &s,
                  .images = images,
                  .depth = (int)rd_cfg_int(cfg, "synth.bit_depth"),
                  .png_level = (int)rd_cfg_int(cfg, "synth.png_level")};
    st = render_all(comm, &plan, rd_cfg_int(cfg, "synth.chunk"), &r, err);
    if (st) {
        rd_phantom_plan_free(&plan);
        return st;
    }
    /* render_all ended with the work queue's collective finish: every image exists now. */
    int64_t rendered = 0;
    MPI_Reduce(&r.rendered, &rendered, 1, MPI_INT64_T, MPI_SUM, 0, comm);
    if (rank == 0) {
        char *csv = rd_synth_csv(&plan);
        snprintf(path, sizeof path, "%s/metadata.csv", out);
        st = csv ? rd_write_file_atomic(path, csv, strlen(csv), err)
                 : rd_fail(err, RD_ENOMEM, "out of memory writing %s", path);
        free(csv);
        counts->patients = s.n_patients;
        counts->images = plan.n_images;
        counts->rendered = rendered;
        if (!st)
            rd_info("summary: %lld images of %lld patients in %s (%lld rendered now, %lld "
                    "already there)",
                    (long long)counts->images, (long long)counts->patients, out,
                    (long long)counts->rendered, (long long)(counts->images - counts->rendered));
    }
    rd_phantom_plan_free(&plan);
    return rd_agree(comm, st, err);
}
