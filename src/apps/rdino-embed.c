/* rdino-embed: shards + a backbone (a checkpoint's teacher, or random initialisation) ->
 * embeddings/<name>.h5 with CLS and mean-patch features per image (parallel HDF5; layout in
 * docs/FORMATS.md, "Embeddings"). */
#include "rdino/app.h"
#include "rdino/embed.h"

int main(int argc, char **argv) {
    const rd_app_flag flags[] = {
        {"init", "MODE", "checkpoint or random (the same as embed.init=MODE)", "embed.init", NULL}};
    rd_app app;
    int status;
    if (rd_app_start(&app, &argc, &argv, "rdino-embed",
                     "Embeds every image of the shards with a frozen ViT backbone (a checkpoint's "
                     "teacher, or a random initialisation) into one HDF5 file of CLS and "
                     "mean-patch features with the images' metadata.",
                     flags, 1, &status))
        return rd_app_finish(&app, status);
    rd_error err = {0};
    rd_status st = rd_embed_stage(&app.cfg, MPI_COMM_WORLD, &err);
    return rd_app_finish(&app, rd_app_status(&app, st, &err));
}
