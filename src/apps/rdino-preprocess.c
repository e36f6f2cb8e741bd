/* rdino-preprocess: PNG + metadata CSV -> normalised, resized PNGs + manifest.csv, report.csv,
 * summary.json under <data.output_dir>/preprocessed/. Restartable: rerun the same command
 * after a kill and it finishes the rest. See include/rdino/preprocess_stage.h. */
#include "rdino/app.h"
#include "rdino/preprocess_stage.h"

int main(int argc, char **argv) {
    rd_app app;
    int status;
    if (rd_app_start(&app, &argc, &argv, "rdino-preprocess",
                     "Reads the metadata CSV (data.format, data.metadata_csv) and the images "
                     "under data.image_root,\nwrites resized, normalised PNGs, a manifest and a "
                     "report of every rejected input\nunder data.output_dir/preprocessed/.",
                     NULL, 0, &status))
        return rd_app_finish(&app, status);
    rd_error err = {0};
    rd_preprocess_counts counts;
    rd_status st = rd_preprocess_stage(&app.cfg, MPI_COMM_WORLD, &counts, &err);
    return rd_app_finish(&app, rd_app_status(&app, st, &err));
}
