/* rdino-shard: preprocessed PNGs + manifest.csv -> shards/shard-NNNNN.h5 and the shards' index
 * (parallel HDF5; layout in docs/FORMATS.md, "Shards"). */
#include "rdino/app.h"
#include "rdino/shard.h"

int main(int argc, char **argv) {
    const rd_app_flag flags[] = {{"force", NULL,
                                  "rewrite every shard, even those a previous run finished "
                                  "(shard.force=true)",
                                  "shard.force", "true"},
                                 {"verify", "DIR",
                                  "check the shards in DIR instead of writing: every image's "
                                  "CRC32C and every shard's metadata digest; exit 1 naming each "
                                  "corrupt image (shard.verify=DIR)",
                                  "shard.verify", NULL}};
    rd_app app;
    int status;
    if (rd_app_start(&app, &argc, &argv, "rdino-shard",
                     "Packs the images of rdino-preprocess (manifest.csv + PNGs) into parallel "
                     "HDF5 shards with patient-level train/val/test splits.",
                     flags, 2, &status))
        return rd_app_finish(&app, status);
    rd_error err = {0};
    rd_status st = rd_shard_stage(&app.cfg, MPI_COMM_WORLD, &err);
    return rd_app_finish(&app, rd_app_status(&app, st, &err));
}
