/* rdino-analyze: embedding files (+ shards for the raw-pixel baseline) -> report/ with
 * report.md, report.json, predictions.csv and plots: do the frozen embeddings carry patient
 * sex and age, better than the baselines? See include/rdino/analyze.h and docs/ANALYSIS.md. */
#include "rdino/analyze.h"
#include "rdino/app.h"

static const rd_app_flag flags[] = {
    {"study", "FILE",
     "study file (analysis/*.yaml): what to probe and how, as analyze.* keys read over the "
     "configuration (command-line overrides still win)",
     "analyze.study", NULL},
};

int main(int argc, char **argv) {
    rd_app app;
    int status;
    if (rd_app_start(&app, &argc, &argv, "rdino-analyze",
                     "Linear probes of frozen embeddings (analyze.embeddings) for patient sex and "
                     "age (or the\ntargets of a study file), grouped by patient, with bootstrap "
                     "intervals, permutation tests and "
                     "paired encoder comparisons,\nagainst a raw-pixel baseline from the shards; "
                     "writes the report to analyze.output_dir.",
                     flags, (int)(sizeof flags / sizeof flags[0]), &status))
        return rd_app_finish(&app, status);
    rd_error err = {0};
    rd_status st = rd_analyze_stage(&app.cfg, MPI_COMM_WORLD, &err);
    return rd_app_finish(&app, rd_app_status(&app, st, &err));
}
