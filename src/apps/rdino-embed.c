/* rdino-embed: a frozen ViT backbone (a checkpoint's teacher, released weights such as
 * microsoft/rad-dino, or random initialisation) over the shards or over PNG files ->
 * embeddings/<name>.h5 with CLS and mean-patch features per image (parallel HDF5; layout in
 * docs/FORMATS.md, "Embeddings"). */
#include "rdino/app.h"
#include "rdino/embed.h"

int main(int argc, char **argv) {
    const rd_app_flag flags[] = {
        {"init", "MODE", "checkpoint or random (the same as embed.init=MODE)", "embed.init", NULL},
        {"weights", "PATH",
         "released weights: a Hugging Face snapshot folder or a .safetensors file (the same as "
         "embed.weights=PATH)",
         "embed.weights", NULL},
        {"images", "PATH",
         "PNG files instead of shards: a folder or a metadata CSV (the same as embed.images=PATH)",
         "embed.images", NULL},
        {"output", "FILE", "the embeddings file to write (the same as embed.output=FILE)",
         "embed.output", NULL}};
    rd_app app;
    int status;
    if (rd_app_start(&app, &argc, &argv, "rdino-embed",
                     "Embeds every image of the shards, or every PNG of a folder or metadata CSV, "
                     "with a frozen ViT backbone (a checkpoint's teacher, released DINOv2 / "
                     "RAD-DINO weights, or a random initialisation) into one HDF5 file of CLS and "
                     "mean-patch features with the images' metadata.",
                     flags, 4, &status))
        return rd_app_finish(&app, status);
    rd_error err = {0};
    rd_status st = rd_embed_stage(&app.cfg, MPI_COMM_WORLD, &err);
    return rd_app_finish(&app, rd_app_status(&app, st, &err));
}
