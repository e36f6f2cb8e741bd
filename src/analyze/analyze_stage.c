/* rd_analyze_stage: configuration -> embeddings (+ raw-pixel baseline) -> study -> report. */
#include "analyze_internal.h"

#include <string.h>

#include "rdino/agree.h"
#include "rdino/file.h"
#include "rdino/log.h"

static void log_inputs(const rd_analyze_params *p) {
    rd_info("rdino-analyze: %d embedding file%s, features %s%s%s, targets %s, report in %s",
            p->nembeddings, p->nembeddings == 1 ? "" : "s", p->use_cls ? "cls" : "",
            p->use_cls && p->use_patch_mean ? "+" : "", p->use_patch_mean ? "patch_mean" : "",
            p->ntargets ? "as configured" : "auto (sex and numeric /meta columns)", p->output_dir);
    for (int k = 0; k < p->nembeddings; k++) rd_info("  embeddings: %s", p->embeddings[k]);
    if (p->pixel_size)
        rd_info("  raw-pixel baseline: %s, %dx%d pixels, %d PCA components", p->shards_dir,
                p->pixel_size, p->pixel_size, p->pixel_components);
}

rd_status rd_analyze_stage(const rd_config *cfg, MPI_Comm comm, rd_error *err) {
    rd_analyze_params p;
    rd_analyze_data data;
    rd_analyze_study study;
    rd_analyze_outputs out;
    memset(&data, 0, sizeof data);
    memset(&study, 0, sizeof study);
    /* A study file is a layer of analyze.* keys between the configuration and the command
     * line, read into a copy so that the caller's configuration stays as given. */
    const char *study_file = rd_cfg_str(cfg, "analyze.study");
    rd_config with_study;
    rd_status st = rd_config_copy(&with_study, cfg, err);
    if (!st && *study_file) st = rd_config_load_layer(&with_study, study_file, "analyze", err);
    if (!st) st = rd_analyze_params_from_config(&with_study, &p, err);
    if (!st && *study_file) {
        /* The resolved configuration printed at start-up predates the study: say what it changed.
         */
        rd_info("rdino-analyze: study %s", study_file);
        for (int k = 0; k < cfg->nkeys; k++)
            if (strcmp(cfg->values[k].text, with_study.values[k].text) != 0)
                rd_info("  %s: %s (from the study)", cfg->keys[k].name, with_study.values[k].text);
    }
    rd_config_free(&with_study);
    if (st) return st;
    if (p.ncompare > 0) {
        st = rd_analyze_compare(comm, &p, err);
        rd_analyze_params_free(&p);
        return st;
    }
    log_inputs(&p);
    /* The report folder before the study: one that cannot be written fails now, not at the end. */
    int rank;
    MPI_Comm_rank(comm, &rank);
    st = rd_agree(comm, rank == 0 ? rd_mkdir_p(p.output_dir, err) : RD_OK, err);
    if (!st) st = rd_agree(comm, rd_analyze_load(&p, &data, err), err);
    if (!st) {
        rd_info("rows: %d images of %lld in the embedding files; %d representations, %d targets",
                data.n, (long long)data.file_rows, data.nreps, data.ntargets);
        for (int k = 0; k < data.nskipped; k++)
            rd_warn("not analysed: %s: %s", data.skipped[k].target, data.skipped[k].reason);
        if (data.ntargets == 0)
            st = rd_fail(err, RD_EINVAL, "%s: no target with known values to analyse",
                         p.embeddings[0]);
    }
    /* Room for the report (plots, tables, one predictions row per image and representation),
     * checked before the study's work rather than found missing at its end. */
    if (!st) {
        int64_t bytes = (4 << 20) + (int64_t)data.n * data.nreps * 256;
        st = rd_agree(comm, rank == 0 ? rd_dir_check_room(p.output_dir, bytes, err) : RD_OK, err);
    }
    if (!st && p.pixel_size) st = rd_analyze_pixel_baseline(comm, &p, &data, err);
    if (!st) st = rd_analyze_add_knn_reps(&p, &data, err);
    if (!st) st = rd_analyze_run(comm, &p, &data, &study, err);
    if (!st) st = rd_analyze_write(comm, &p, &data, &study, &out, err);
    if (!st) rd_analyze_log_summary(&p, &data, &study, &out);
    rd_analyze_study_free(&study);
    rd_analyze_data_free(&data);
    rd_analyze_params_free(&p);
    return st;
}
