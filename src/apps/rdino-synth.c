/* rdino-synth: the built-in phantom data set (images + NIH-layout metadata.csv) under
 * synth.output_dir (default <data.output_dir>/synth). Restartable; output identical for any
 * number of ranks. See include/rdino/synth_stage.h and docs/SYNTH.md. */
#include "rdino/app.h"
#include "rdino/synth_stage.h"

int main(int argc, char **argv) {
    rd_app app;
    int status;
    if (rd_app_start(&app, &argc, &argv, "rdino-synth",
                     "Generates synthetic chest radiographs whose anatomy depends on patient age "
                     "and sex\n(synth.strength: 0 = independent, the null control; 1 = full "
                     "effects), written as\nimages/ plus metadata.csv in the NIH ChestX-ray14 "
                     "layout under synth.output_dir.",
                     NULL, 0, &status))
        return rd_app_finish(&app, status);
    rd_error err = {0};
    rd_synth_counts counts;
    rd_status st = rd_synth_stage(&app.cfg, MPI_COMM_WORLD, &counts, &err);
    return rd_app_finish(&app, rd_app_status(&app, st, &err));
}
