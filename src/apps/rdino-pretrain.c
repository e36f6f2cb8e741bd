/* rdino-pretrain: shards -> DINOv2 self-supervised pretraining over MPI ranks x OpenMP threads
 * -> <pretrain.output_dir>/{checkpoints/step-NNNNNNN.h5, metrics.jsonl, summary.json}
 * (docs/PRETRAIN.md). SIGUSR1 or SIGTERM: finish the step, checkpoint, exit 3 (requeue). */
#include <signal.h>
#include <string.h>

#include "rdino/app.h"
#include "rdino/log.h"
#include "rdino/pretrain.h"

static volatile sig_atomic_t stop_requested = 0;

static void on_stop_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

static void install_stop_handlers(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int main(int argc, char **argv) {
    const char *no_resume = "0", *resume = "1";
    const rd_app_flag flags[] = {
        {"resume", NULL, "continue from the newest readable checkpoint if there is one (default)",
         &resume},
        {"no-resume", NULL, "start from step 0 (existing checkpoints are moved aside)",
         &no_resume}};
    rd_app app;
    int status;
    if (rd_app_start(&app, &argc, &argv, "rdino-pretrain",
                     "DINOv2 self-supervised pretraining of a ViT on the shards of rdino-shard, "
                     "data-parallel over MPI ranks (checkpoints, metrics, exact resume).",
                     flags, 2, &status))
        return rd_app_finish(&app, status);
    install_stop_handlers();

    rd_pretrain_options opt = {.resume = strcmp(no_resume, "1") != 0, .stop = &stop_requested};
    rd_pretrain_result res;
    rd_error err = {0};
    rd_status st = rd_pretrain_run(&app.cfg, MPI_COMM_WORLD, &opt, &res, &err);
    if (st == RD_OK) return rd_app_finish(&app, RD_EXIT_OK);
    if (st == RD_EINTR) return rd_app_finish(&app, RD_EXIT_REQUEUE);
    if (!res.agreed) return rd_app_finish(&app, rd_app_fail(&app, &err));
    /* every rank stopped with the same error: report once, exit cleanly */
    if (app.rank == 0) rd_error_print("rdino-pretrain: %s", err.msg);
    return rd_app_finish(&app, RD_EXIT_FAILURE);
}
