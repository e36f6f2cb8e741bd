/* rdino-pretrain: shards -> DINOv2 self-supervised pretraining over MPI ranks x OpenMP threads
 * -> <pretrain.output_dir>/{checkpoints/step-NNNNNNN.h5, metrics.jsonl, summary.json}
 * (docs/PRETRAIN.md), optionally from released weights and ending with the teacher exported as
 * a Hugging Face snapshot folder (--export DIR; on a finished run it only exports).
 * SIGUSR1 or SIGTERM: finish the step, checkpoint, exit 3 (requeue). */
#include "rdino/app.h"
#include "rdino/pretrain.h"

int main(int argc, char **argv) {
    const rd_app_flag flags[] = {
        {"resume", NULL, "continue from the newest readable checkpoint if there is one (default)",
         "pretrain.resume", "true"},
        {"no-resume", NULL, "start from step 0 (existing checkpoints are moved aside)",
         "pretrain.resume", "false"},
        {"export", "DIR",
         "when every step is done, write the teacher as a Hugging Face snapshot folder (the same "
         "as pretrain.export_dir=DIR)",
         "pretrain.export_dir", NULL},
        {"plan-memory", NULL,
         "print the trainer's memory plan for this configuration against pretrain.max_memory_gb "
         "and exit, allocating nothing",
         "pretrain.plan_memory", "true"}};
    rd_app app;
    int status;
    if (rd_app_start(&app, &argc, &argv, "rdino-pretrain",
                     "DINOv2 self-supervised pretraining of a ViT on the shards of rdino-shard, "
                     "data-parallel over MPI ranks (checkpoints, metrics, exact resume).",
                     flags, 4, &status))
        return rd_app_finish(&app, status);
    rd_error err = {0};
    rd_status st = rd_pretrain_stage(&app.cfg, MPI_COMM_WORLD, &err);
    return rd_app_finish(&app, rd_app_status(&app, st, &err));
}
