/* rdino-pretrain's training loop: see include/rdino/pretrain.h and docs/PRETRAIN.md. */
#include "rdino/pretrain.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pretrain_weights.h"
#include "rdino/agree.h"
#include "rdino/allreduce.h"
#include "rdino/checkpoint.h"
#include "rdino/file.h"
#include "rdino/h5store.h"
#include "rdino/loader.h"
#include "rdino/log.h"
#include "rdino/paths.h"
#include "rdino/schedule.h"
#include "rdino/step.h"
#include "rdino/threads.h"

enum { MAX_CHECKPOINTS = 4096 };

/* What the configuration says about the loop (pretrain.* keys and DINOv2's epochs). */
typedef struct settings {
    char out_dir[RD_PATH_MAX], ckpt_dir[RD_PATH_MAX], metrics_path[RD_PATH_MAX],
        summary_path[RD_PATH_MAX];
    int64_t epoch_length;   /* train.OFFICIAL_EPOCH_LENGTH */
    int64_t schedule_total; /* optim.epochs x epoch_length: the schedules' length */
    int64_t total_steps;    /* iterations to run: schedule_total + 1 (DINOv2) or max_steps */
    int64_t checkpoint_every;
    double checkpoint_seconds;
    int keep;
    int64_t keep_every; /* checkpoints of steps divisible by it are never pruned (0: none) */
    int64_t metrics_every, check_every;
    size_t bucket_bytes;
    int threads;
    int plan_only;        /* --plan-memory */
    double max_memory_gb; /* 0 = 90% of the node's memory / ranks on the node */
    uint64_t seed;
    int64_t nan_step, kill_step; /* test hooks; -1 = off */
    int delay_ms;
} settings;

typedef struct run {
    const rd_config *cfg;
    MPI_Comm comm;
    int rank, nranks;
    settings s;
    rd_loader_params lp;
    rd_loader *loader;
    int64_t global_batch;
    rd_trainer tr;
    int have_trainer;
    rd_schedules sched;
    rd_mpi_reducer mred;
    rd_reducer red;
    rd_grad_allreduce grad;
    rd_step_comm hooks;
    char *config_yaml;
    FILE *metrics;
    int64_t last_checkpoint; /* steps of the newest checkpoint written or read; -1: none */
    double last_checkpoint_time;
    int64_t corrupt_skipped; /* samples of this run whose corrupt image was skipped, all ranks */
} run;

/* ---- settings ---- */

/* buf = dir/name; 0 when it does not fit. */
static int join(char *buf, const char *dir, const char *name) {
    return snprintf(buf, RD_PATH_MAX, "%s/%s", dir, name) < RD_PATH_MAX;
}

static int64_t env_int(const char *name, int64_t fallback) {
    const char *v = getenv(name);
    return v && *v ? strtoll(v, NULL, 10) : fallback;
}

static rd_status settings_from(const rd_config *cfg, settings *s, rd_error *err) {
    memset(s, 0, sizeof *s);
    if (rd_pipeline_path(cfg, RD_DIR_PRETRAIN, s->out_dir, err) ||
        rd_pipeline_path(cfg, RD_DIR_CHECKPOINTS, s->ckpt_dir, err) ||
        rd_pipeline_path(cfg, RD_DIR_METRICS, s->metrics_path, err))
        return err->code;
    if (!join(s->summary_path, s->out_dir, "summary.json"))
        return rd_fail(err, RD_EINVAL, "pretrain.output_dir is too long: %s", s->out_dir);
    s->epoch_length = rd_cfg_int(cfg, "train.OFFICIAL_EPOCH_LENGTH");
    s->schedule_total = rd_cfg_int(cfg, "optim.epochs") * s->epoch_length;
    int64_t max_steps = rd_cfg_int(cfg, "pretrain.max_steps");
    s->total_steps = max_steps > 0 ? max_steps : s->schedule_total + 1;
    s->checkpoint_every = rd_cfg_int(cfg, "pretrain.checkpoint_every");
    if (s->checkpoint_every == 0) s->checkpoint_every = 3 * s->epoch_length;
    s->checkpoint_seconds = 60.0 * rd_cfg_float(cfg, "pretrain.checkpoint_minutes");
    s->keep = (int)rd_cfg_int(cfg, "pretrain.keep_checkpoints");
    s->keep_every = rd_cfg_int(cfg, "pretrain.keep_every");
    s->metrics_every = rd_cfg_int(cfg, "pretrain.metrics_every");
    s->check_every = rd_cfg_int(cfg, "pretrain.check_every");
    s->bucket_bytes = (size_t)(rd_cfg_float(cfg, "pretrain.bucket_mb") * 1024.0 * 1024.0);
    s->threads = (int)rd_cfg_int(cfg, "pretrain.threads");
    s->plan_only = rd_cfg_bool(cfg, "pretrain.plan_memory");
    s->max_memory_gb = rd_cfg_float(cfg, "pretrain.max_memory_gb");
    s->seed = (uint64_t)rd_cfg_int(cfg, "train.seed");
    s->nan_step = env_int("RDINO_TEST_NAN_STEP", -1);
    s->kill_step = env_int("RDINO_TEST_KILL_STEP", -1);
    s->delay_ms = (int)env_int("RDINO_TEST_STEP_DELAY_MS", 0);
    if (max_steps > s->schedule_total + 1)
        rd_warn("pretrain.max_steps %lld runs past the schedules' end (%lld iterations): the "
                "extra steps use the final values (momentum %g: a frozen teacher when 1)",
                (long long)max_steps, (long long)s->schedule_total + 1,
                rd_cfg_float(cfg, "teacher.final_momentum_teacher"));
    return RD_OK;
}

/* The value (bytes) of a "Key:   N kB" line of /proc/meminfo; 0 when absent. */
static double meminfo_bytes(const char *key) {
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    double v = 0;
    size_t n = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, key, n) == 0 && line[n] == ':') v = 1024.0 * strtod(line + n + 1, NULL);
    if (f) fclose(f);
    return v;
}

/* The memory this process may use: MemTotal, or the cgroup's limit when smaller (v2
 * memory.max, v1 memory.limit_in_bytes; "max" or a huge number means none). */
static double node_memory_bytes(void) {
    double total = meminfo_bytes("MemTotal");
    const char *limits[] = {"/sys/fs/cgroup/memory.max",
                            "/sys/fs/cgroup/memory/memory.limit_in_bytes"};
    for (int i = 0; i < 2; i++) {
        FILE *f = fopen(limits[i], "r");
        char buf[64] = "";
        if (!f) continue;
        if (fgets(buf, sizeof buf, f)) {
            double v = strtod(buf, NULL);
            if (v > 0 && v < total) total = v;
        }
        fclose(f);
    }
    return total;
}

/* Prints the trainer's memory plan (stdout with --plan-memory, else the log) against the
 * limit, and refuses a plan over it before anything is allocated. Collective (the ranks that
 * share a node divide its memory). */
static rd_status check_memory_plan(const run *r, const rd_trainer_memory *m,
                                   const rd_vit_config *vc, rd_error *err) {
    MPI_Comm node;
    int node_ranks;
    MPI_Comm_split_type(r->comm, MPI_COMM_TYPE_SHARED, r->rank, MPI_INFO_NULL, &node);
    MPI_Comm_size(node, &node_ranks);
    MPI_Comm_free(&node);
    const double gib = 1024.0 * 1024.0 * 1024.0, node_bytes = node_memory_bytes();
    double limit =
        r->s.max_memory_gb > 0 ? r->s.max_memory_gb * gib : 0.9 * node_bytes / node_ranks;
    double process = rd_rss_mib() * 1024.0 * 1024.0,
           planned = (double)rd_trainer_memory_total(m) + process;
    char line[512], verdict[256];
    rd_trainer_memory_format(m, line, sizeof line);
    snprintf(verdict, sizeof verdict,
             "memory plan: %.2f GiB per rank (trainer + %.0f MiB already resident) %s the "
             "limit of %.2f GiB (pretrain.max_memory_gb%s)",
             planned / gib, process / (1024.0 * 1024.0), planned <= limit ? "within" : "EXCEEDS",
             limit / gib,
             r->s.max_memory_gb > 0 ? "" : ": 90% of the node's memory / ranks on the node");
    if (r->s.plan_only && r->rank == 0) {
        printf("%s\n%s\n", line, verdict);
        fflush(stdout);
    } else if (!r->s.plan_only) {
        rd_info("%s", line);
        rd_info("%s", verdict);
    }
    if (planned <= limit || r->s.plan_only) return RD_OK;
    double per_image = (double)(m->global_acts + m->local_acts) / m->batch;
    return rd_fail(err, RD_ENOMEM,
                   "the trainer needs %.2f GiB per rank, more than pretrain.max_memory_gb allows "
                   "(%.2f GiB; default 90%% of the node's %.1f GiB over its %d rank%s); nothing "
                   "was allocated. Lower pretrain.global_batch (%lld now, %d image%s per rank at "
                   "%.0f MiB of student activations each)%s, or spread the batch over more "
                   "nodes; check with rdino-pretrain --plan-memory",
                   planned / gib, limit / gib, node_bytes / gib, node_ranks,
                   node_ranks == 1 ? "" : "s", (long long)r->global_batch, m->batch,
                   m->batch == 1 ? "" : "s", per_image / (1024.0 * 1024.0),
                   vc->activation_checkpointing
                       ? ""
                       : ", set student.activation_checkpointing=true (about 6x less "
                         "activation memory for one more forward)");
}

/* The model, the step and the data settings; sizes the trainer for this rank's share. */
static rd_status setup_trainer(run *r, rd_error *err) {
    rd_vit_config vc;
    rd_step_config sc;
    rd_head_config dino, ibot;
    int separate, batch, group;
    rd_status st = rd_vit_config_from(r->cfg, &vc, err);
    if (!st) st = rd_step_setup_from_config(r->cfg, &vc, &sc, &dino, &ibot, &separate, err);
    /* grey crops: a 3-channel patch embedding sees the grey image replicated (exactly, via its
     * channel-summed weight) */
    if (!st)
        st = rd_loader_params_from_config(r->cfg, &vc, 1,
                                          (int)rd_cfg_int(r->cfg, "pretrain.global_batch"),
                                          r->nranks, r->rank, &r->lp, err);
    if (!st) st = rd_loader_check(&r->lp, &batch, &group, err);
    if (st) return st;
    r->global_batch = r->lp.global_batch;
    sc.batch = batch;
    sc.channels = 1;
    sc.koleo_group = group;
    sc.max_masked = rd_loader_max_masked(&r->lp);
    sc.ibot_center = strcmp(rd_cfg_str(r->cfg, "pretrain.ibot_center"), "mean_of_rank_means") == 0
                         ? RD_CENTER_MEAN_OF_RANK_MEANS
                         : RD_CENTER_GLOBAL_MEAN;
    rd_info("pretrain: global batch %lld = %d ranks x %d images, groups of %d (KoLeo, iBOT masks, "
            "drop path), %d OpenMP threads per rank",
            (long long)r->global_batch, r->nranks, batch, group, omp_get_max_threads());
    rd_trainer_memory plan;
    if ((st = rd_trainer_plan(&vc, &dino, separate ? &ibot : NULL, &sc, &plan, err)) ||
        (st = check_memory_plan(r, &plan, &vc, err)) || r->s.plan_only)
        return st;
    if ((st = rd_trainer_init(&r->tr, &vc, &dino, separate ? &ibot : NULL, &sc, err))) return st;
    r->have_trainer = 1;
    if (sc.bf16 && r->rank == 0) {
        rd_bf16_path path = r->tr.student_bf16.path;
        if (path == RD_BF16_PATH_FP32)
            rd_warn("pretrain.precision: bf16 computes in fp32 here: %s (RDINO_BF16=force runs "
                    "the emulated bf16 path, slowly)",
                    rd_bf16_cpu_has() ? "RDINO_BF16=off"
                                      : "this CPU has no AVX512-BF16 instructions");
        else
            rd_info("pretrain.precision: bf16 block linears of the student on the %s path (copies "
                    "%.1f MiB, re-packed every step; the teacher stays fp32)",
                    rd_bf16_path_name(path), (double)r->tr.student_bf16.bytes / 1048576.0);
    }
    return rd_schedules_from_config(&r->sched, r->cfg, r->global_batch, err);
}

/* ---- files ---- */

/* Removes the temporaries a killed run left in dir. */
static void remove_temporaries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    for (struct dirent *e; (e = readdir(d));) {
        if (!rd_is_temp_name(e->d_name)) continue;
        char path[2 * RD_PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (unlink(path) == 0) rd_info("removed %s, left by a killed run", path);
    }
    closedir(d);
}

/* Rank 0: output folders. With fresh = 1 an existing checkpoint folder is moved aside (never
 * deleted), so that old checkpoints cannot be mistaken for this run's. */
static rd_status prepare_output(const run *r, int fresh, rd_error *err) {
    rd_status st = rd_mkdir_p(r->s.out_dir, err);
    if (st) return st;
    int64_t newest;
    int n = rd_checkpoint_list(r->s.ckpt_dir, &newest, 1, err);
    if (n < 0) return err->code;
    if (fresh && n > 0) {
        char aside[RD_PATH_MAX + 64], stamp[32];
        time_t now = time(NULL);
        struct tm tm;
        strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", localtime_r(&now, &tm));
        snprintf(aside, sizeof aside, "%s-replaced-%s", r->s.ckpt_dir, stamp);
        if (rename(r->s.ckpt_dir, aside) != 0)
            return rd_fail(err, RD_EIO, "cannot move %s aside to %s: %s", r->s.ckpt_dir, aside,
                           strerror(errno));
        rd_warn("--no-resume: the existing checkpoints were moved to %s", aside);
    }
    if ((st = rd_mkdir_p(r->s.ckpt_dir, err))) return st;
    remove_temporaries(r->s.ckpt_dir);
    return RD_OK;
}

/* Rank 0: keeps the metrics.jsonl lines of steps before start (a resumed run logs again what
 * the stopped run did after its checkpoint; a torn last line goes too) and opens it. */
static rd_status open_metrics(run *r, int64_t start, rd_error *err) {
    const char *path = r->s.metrics_path;
    FILE *in = start > 0 ? fopen(path, "r") : NULL;
    if (in) {
        rd_atomic_file out;
        if (rd_atomic_open(&out, path, err)) {
            fclose(in);
            return err->code;
        }
        char *line = NULL;
        size_t cap = 0;
        ssize_t len;
        while ((len = getline(&line, &cap, in)) > 0) {
            long long step;
            if (line[len - 1] == '\n' && sscanf(line, "{\"step\": %lld", &step) == 1 &&
                step < start)
                fputs(line, out.fp);
        }
        free(line);
        fclose(in);
        if (rd_atomic_commit(&out, err)) return rd_wrap(err, "rewriting the metrics log");
    }
    r->metrics = fopen(path, start > 0 ? "a" : "w");
    if (!r->metrics) return rd_fail(err, RD_EIO, "cannot open %s: %s", path, strerror(errno));
    return RD_OK;
}

/* ---- state: checksum, checkpoints, broadcast ---- */

static uint64_t state_checksum(const rd_trainer *tr) {
    const size_t bytes = tr->student.numel * sizeof(float);
    const void *parts[4] = {tr->student.data, tr->teacher.data, tr->opt.exp_avg,
                            tr->opt.exp_avg_sq};
    uint64_t h = rd_checksum64(tr->opt.step, (size_t)tr->opt.count * sizeof(int64_t));
    for (int i = 0; i < 4; i++) h = h * 0x100000001b3ULL + rd_checksum64(parts[i], bytes);
    return h;
}

/* Collective: every rank must hold the same state (all start alike and apply the same
 * reduced gradients; a difference means a non-deterministic reduction or a faulty node). */
static rd_status check_replicas(run *r, int64_t steps, rd_error *err) {
    if (r->nranks == 1) return RD_OK;
    int same = 1;
    rd_status st = rd_replicas_agree(r->comm, state_checksum(&r->tr), &same, err);
    if (!st && !same) {
        st = rd_fail(err, RD_ENUMERIC,
                     "after %lld steps the ranks hold different parameters (state checksums "
                     "differ): a non-deterministic reduction or a faulty node",
                     (long long)steps);
        err->agreed = 1; /* every rank compared the same checksums */
    }
    return st;
}

/* Rank 0: removes all but the newest `keep` checkpoints, sparing those of the keep_every
 * schedule (a trajectory for post-hoc studies), which do not count towards `keep`. */
static void prune_checkpoints(const run *r) {
    int64_t steps[MAX_CHECKPOINTS];
    rd_error e = {0};
    int n = rd_checkpoint_list(r->s.ckpt_dir, steps, MAX_CHECKPOINTS, &e);
    int rolling = 0;
    for (int i = 0; i < n; i++) {
        if (r->s.keep_every > 0 && steps[i] % r->s.keep_every == 0) continue;
        if (++rolling <= r->s.keep) continue;
        char path[RD_PATH_MAX + 32];
        rd_checkpoint_path(path, sizeof path, r->s.ckpt_dir, steps[i]);
        if (unlink(path) != 0)
            rd_warn("cannot remove old checkpoint %s: %s", path, strerror(errno));
    }
}

/* Collective: checks the replicas agree, then rank 0 writes the checkpoint of `steps`. */
static rd_status save_checkpoint(run *r, int64_t steps, rd_error *err) {
    rd_status st = check_replicas(r, steps, err);
    if (st) return st;
    if (r->rank == 0) {
        char path[RD_PATH_MAX + 32];
        rd_checkpoint_path(path, sizeof path, r->s.ckpt_dir, steps);
        rd_checkpoint_meta meta = {.steps = steps,
                                   .global_batch = r->global_batch,
                                   .seed = (int64_t)r->s.seed,
                                   .nranks = r->nranks,
                                   .config = r->config_yaml};
        double t0 = rd_now();
        rd_hdf5_lock(); /* the loader's prefetch thread reads shards meanwhile */
        st = rd_checkpoint_write(path, &r->tr, &meta, err);
        rd_hdf5_unlock();
        if (!st) {
            rd_info("checkpoint %s written in %.2f s", path, rd_now() - t0);
            prune_checkpoints(r);
        }
    }
    st = rd_agree(r->comm, st, err);
    if (!st) {
        r->last_checkpoint = steps;
        r->last_checkpoint_time = rd_now();
    }
    return st;
}

/* Rank 0's whole training state to every rank. */
static rd_status broadcast_state(run *r, rd_error *err) {
    if (r->nranks == 1) return RD_OK;
    rd_trainer *tr = &r->tr;
    const size_t n = tr->student.numel;
    float *arrays[4] = {tr->student.data, tr->teacher.data, tr->opt.exp_avg, tr->opt.exp_avg_sq};
    for (int i = 0; i < 4; i++)
        if (rd_bcast_floats(arrays[i], n, 0, r->comm, err)) return err->code;
    MPI_Bcast(tr->opt.step, tr->opt.count, MPI_INT64_T, 0, r->comm);
    if (tr->cfg.targets != RD_TARGETS_CENTERING) return RD_OK;
    rd_center *c[2] = {&tr->center_dino, &tr->center_ibot};
    for (int k = 0; k < 2; k++) {
        if (rd_bcast_floats(c[k]->value, (size_t)c[k]->K, 0, r->comm, err)) return err->code;
        MPI_Bcast(c[k]->pending, c[k]->K + 1, MPI_DOUBLE, 0, r->comm);
        MPI_Bcast(&c[k]->has_pending, 1, MPI_INT, 0, r->comm);
    }
    return RD_OK;
}

/* Rank 0: reads the newest checkpoint that reads completely. A damaged newer one is renamed
 * *.corrupt (kept for inspection) once an older one has been read; when none reads, nothing is
 * renamed and the run stops. *found = the steps read, -1 when the folder has no checkpoint. */
static rd_status read_newest(run *r, int64_t *found, rd_error *err) {
    int64_t steps[MAX_CHECKPOINTS];
    int n = rd_checkpoint_list(r->s.ckpt_dir, steps, MAX_CHECKPOINTS, err);
    *found = -1;
    if (n < 0) return err->code;
    for (int i = 0; i < n; i++) {
        char path[RD_PATH_MAX + 32];
        rd_checkpoint_path(path, sizeof path, r->s.ckpt_dir, steps[i]);
        rd_checkpoint_meta meta;
        rd_error e = {0};
        rd_status st = rd_checkpoint_read(path, &r->tr, &meta, &e);
        if (!st && meta.steps != steps[i])
            st = rd_fail(&e, RD_EFORMAT, "%s holds step %lld, not the one its name says", path,
                         (long long)meta.steps);
        if (st) {
            rd_warn("cannot resume from this checkpoint: %s; trying the previous one", e.msg);
            continue;
        }
        for (int j = 0; j < i; j++) {
            char bad[RD_PATH_MAX + 32], aside[RD_PATH_MAX + 48];
            rd_checkpoint_path(bad, sizeof bad, r->s.ckpt_dir, steps[j]);
            snprintf(aside, sizeof aside, "%s.corrupt", bad);
            if (rename(bad, aside) == 0) rd_warn("moved the unreadable %s to %s", bad, aside);
        }
        if (meta.global_batch != r->global_batch || meta.seed != (int64_t)r->s.seed)
            rd_warn("%s was written with global batch %lld and seed %lld, this run uses %lld and "
                    "%lld: it will not continue the way the original run would have",
                    path, (long long)meta.global_batch, (long long)meta.seed,
                    (long long)r->global_batch, (long long)r->s.seed);
        rd_info("resuming from %s: %lld steps done (written by %lld ranks, now %d)", path,
                (long long)meta.steps, (long long)meta.nranks, r->nranks);
        free((char *)meta.config);
        *found = steps[i];
        return RD_OK;
    }
    if (n > 0)
        return rd_fail(err, RD_EFORMAT,
                       "none of the %d checkpoints in %s reads (see the warnings); start over "
                       "with --no-resume or restore a checkpoint",
                       n, r->s.ckpt_dir);
    return RD_OK;
}

/* Collective: the state to start from, and the first iteration to run. */
static rd_status init_state(run *r, int resume, int64_t *start, rd_error *err) {
    int64_t found = -1;
    rd_status st = RD_OK;
    if (resume && r->rank == 0) st = read_newest(r, &found, err);
    if ((st = rd_agree(r->comm, st, err))) return st;
    MPI_Bcast(&found, 1, MPI_INT64_T, 0, r->comm);
    *start = 0;
    if (found >= 0) {
        *start = r->last_checkpoint = found;
        return broadcast_state(r, err);
    }
    /* counter-based init: every rank computes the same numbers */
    rd_trainer_init_params(&r->tr, r->s.seed);
    if (!*rd_cfg_str(r->cfg, "student.pretrained_weights") &&
        !*rd_cfg_str(r->cfg, "dino.head_weights"))
        return RD_OK;
    if (r->rank == 0) st = rd_pretrain_load_weights(&r->tr, r->cfg, err);
    if ((st = rd_agree(r->comm, st, err))) return st;
    return broadcast_state(r, err);
}

/* ---- the loop ---- */

static rd_status hook_mean(void *ctx, float *grad, size_t n, rd_error *err) {
    rd_grad_allreduce *g = ctx;
    if (grad != g->grad || n != g->n)
        return rd_fail(err, RD_EINVAL, "gradient all-reduce: set up for another buffer");
    return rd_grad_allreduce_finish(g, err);
}

static rd_status hook_ready(void *ctx, size_t begin, size_t end, rd_error *err) {
    return rd_grad_allreduce_ready(ctx, begin, end, err);
}

/* rd_trainer_step's hooks of a data-parallel run: reducer, gradient mean (overlapped with the
 * backward pass when g->bucket > 0), rank count. */
static rd_step_comm step_hooks(rd_grad_allreduce *g, const rd_reducer *red) {
    return (rd_step_comm){.reducer = red,
                          .mean_gradients = hook_mean,
                          .gradients_ready = g->bucket > 0 ? hook_ready : NULL,
                          .ctx = g,
                          .nranks = g->nranks};
}

typedef struct step_times {
    double step, data, comm;
} step_times;

static void write_metrics(const run *r, int64_t it, const rd_step_stats *s,
                          const rd_schedule_values *v, const step_times *t) {
    FILE *f = r->metrics;
    fprintf(f,
            "{\"step\": %lld, \"epoch\": %.6f, \"total_loss\": %.8g, "
            "\"dino_local_crops_loss\": %.8g, \"dino_global_crops_loss\": %.8g, "
            "\"koleo_loss\": %.8g, \"ibot_loss\": %.8g, \"backprop_loss\": %.8g, "
            "\"backprop\": {\"dino_local\": %.8g, \"dino_global\": %.8g, \"koleo\": %.8g, "
            "\"ibot\": %.8g}, ",
            (long long)it, (double)it / (double)r->s.epoch_length, s->logged_total, s->dino_local,
            s->dino_global, s->logged_koleo, s->logged_ibot, s->loss, s->dino_local, s->dino_global,
            s->koleo, s->ibot);
    fprintf(f,
            "\"lr\": %.8g, \"last_layer_lr\": %.8g, \"wd\": %.8g, \"mom\": %.8g, "
            "\"teacher_temp\": %.8g, \"grad_norm\": {",
            v->lr, v->last_layer_lr, v->wd, v->momentum, v->teacher_temp);
    for (int m = 0; m < RD_MODULE_COUNT; m++)
        if (m != RD_MODULE_IBOT_HEAD || r->tr.separate_ibot)
            fprintf(f, "%s\"%s\": %.8g", m ? ", " : "", rd_module_name((rd_module)m),
                    s->grad_norm[m]);
    fprintf(f,
            "}, \"step_seconds\": %.6f, \"images_per_second\": %.4f, \"data_wait_fraction\": "
            "%.4f, \"comm_fraction\": %.4f, \"corrupt_skipped\": %lld, \"phase_seconds\": {",
            t->step, (double)r->global_batch / t->step, t->data / t->step, t->comm / t->step,
            (long long)r->corrupt_skipped);
    static const char *const phase[RD_PHASE_COUNT] = {"teacher", "student_forward", "heads_losses",
                                                      "backbone_backward", "optimizer"};
    for (int p = 0; p < RD_PHASE_COUNT; p++)
        fprintf(f, "%s\"%s\": %.6f", p ? ", " : "", phase[p], s->seconds[p]);
    fprintf(f, "}}\n");
    fflush(f);
}

typedef struct loop_totals {
    double seconds, data, comm;
} loop_totals;

/* Iterations start .. total_steps - 1. *done receives the iterations completed. */
static rd_status train(run *r, int64_t start, volatile sig_atomic_t *stop, int64_t *done,
                       loop_totals *tot, rd_error *err) {
    const settings *s = &r->s;
    rd_progress progress;
    rd_progress_start(&progress, "pretrain", s->total_steps - start, 0);
    const rd_step_comm *hooks = r->nranks > 1 ? &r->hooks : NULL;
    rd_status st = RD_OK;
    double loop_start = rd_now();
    r->last_checkpoint_time = loop_start;
    *done = start;
    for (int64_t it = start; it < s->total_steps; it++) {
        const double t0 = rd_now(), comm0 = r->grad.seconds + r->mred.seconds;
        rd_step_batch batch;
        rd_error lerr = {0};
        rd_status lst = rd_loader_next(r->loader, it, &batch, &lerr);
        rd_loader_stats ls;
        rd_loader_get_stats(r->loader, &ls);
        /* one small all-reduce per step: stop requested, a rank's data failed, checkpoint due
         * (flags: > 0 on any rank), and the samples whose corrupt image was skipped so far */
        const double tf = rd_now();
        long long flags[4] = {stop && *stop, lst != RD_OK,
                              r->rank == 0 && s->checkpoint_seconds > 0 &&
                                  tf - r->last_checkpoint_time >= s->checkpoint_seconds,
                              (long long)ls.corrupt_skipped};
        if (r->nranks > 1) MPI_Allreduce(MPI_IN_PLACE, flags, 4, MPI_LONG_LONG, MPI_SUM, r->comm);
        r->corrupt_skipped = flags[3];
        const double flag_seconds = rd_now() - tf;
        if (flags[1]) {
            *err = lerr;
            st = rd_agree(r->comm, lst, err);
            break;
        }
        if (flags[0]) {
            st = RD_EINTR;
            break;
        }
        if (it == s->nan_step && r->rank == 0)
            rd_param_data(&r->tr.student, r->tr.vit.cls_token)[0] = NAN;
        rd_schedule_values v;
        rd_schedules_at(&r->sched, it, &v);
        rd_step_stats stats;
        if ((st = rd_trainer_step(&r->tr, &batch, &v, hooks, &stats, err))) {
            /* the finiteness checks look at all-reduced values: every rank stops alike */
            err->agreed = st == RD_ENUMERIC;
            rd_wrap(err, "step %lld", (long long)it);
            break;
        }
        *done = it + 1;
        step_times t = {rd_now() - t0, ls.last_wait_seconds,
                        r->grad.seconds + r->mred.seconds - comm0 + flag_seconds};
        tot->data += t.data;
        tot->comm += t.comm;
        if (r->rank == 0 && ((it + 1 - start) % s->metrics_every == 0 || it + 1 == s->total_steps))
            write_metrics(r, it, &stats, &v, &t);
        char extra[128];
        snprintf(extra, sizeof extra, "step %lld loss %.4f lr %.3g %.1f img/s", (long long)it,
                 stats.loss, v.lr, (double)r->global_batch / t.step);
        rd_progress_update(&progress, it + 1 - start, extra);
        if (s->check_every > 0 && (it + 1) % s->check_every == 0 &&
            (st = check_replicas(r, it + 1, err)))
            break;
        if (((it + 1) % s->checkpoint_every == 0 || flags[2]) &&
            (st = save_checkpoint(r, it + 1, err)))
            break;
        if (it == s->kill_step) raise(SIGKILL);
        if (s->delay_ms > 0) usleep((useconds_t)s->delay_ms * 1000);
    }
    tot->seconds = rd_now() - loop_start;
    rd_progress_finish(&progress, NULL);
    return st;
}

/* After the loop: the final checkpoint (stopped or finished), and the message of a numeric stop
 * naming the checkpoint to go back to. */
static rd_status finish(run *r, rd_status st, int64_t done, rd_error *err) {
    if (st == RD_OK || st == RD_EINTR) {
        if (done > r->last_checkpoint && done > 0) {
            rd_status cst = save_checkpoint(r, done, err);
            if (cst) return cst;
        }
        if (st == RD_EINTR)
            rd_info("stopped by a signal after %lld steps; checkpoint saved: run again (or "
                    "requeue) to continue",
                    (long long)done);
        return st;
    }
    if (st == RD_ENUMERIC) {
        char path[RD_PATH_MAX + 32] = "none: no checkpoint was written yet";
        if (r->last_checkpoint >= 0)
            rd_checkpoint_path(path, sizeof path, r->s.ckpt_dir, r->last_checkpoint);
        char what[RD_ERROR_MSG_MAX];
        snprintf(what, sizeof what, "%s", err->msg);
        int agreed = err->agreed;
        rd_fail(err, st, "%s. Training stopped without saving; the last good checkpoint is %.*s",
                what, 300, path);
        err->agreed = agreed;
    }
    return st;
}

static void report(const run *r, int64_t start, int64_t done, const loop_totals *tot,
                   rd_pretrain_result *res) {
    double local[2] = {tot->data, tot->comm}, worst[2];
    MPI_Allreduce(local, worst, 2, MPI_DOUBLE, MPI_MAX, r->comm);
    double rss = rd_peak_rss_mib();
    double *all = r->rank == 0 ? malloc((size_t)r->nranks * sizeof *all) : NULL;
    MPI_Gather(&rss, 1, MPI_DOUBLE, all, 1, MPI_DOUBLE, 0, r->comm);
    const double secs = tot->seconds > 0 ? tot->seconds : 1e-9;
    res->seconds = tot->seconds;
    res->images_per_second = (double)(done - start) * (double)r->global_batch / secs;
    if (r->rank != 0) return;
    char rss_list[1024] = "";
    for (int i = 0; i < r->nranks && all; i++)
        snprintf(rss_list + strlen(rss_list), sizeof rss_list - strlen(rss_list), "%s%.0f",
                 i ? ", " : "", all[i]);
    rd_info("summary: %lld steps (iterations %lld..%lld of %lld) in %.1f s: %.2f images/s "
            "(global batch %lld, %d ranks x %d threads); data wait %.1f%%, communication "
            "%.1f%% (slowest rank); peak RSS per rank (MiB): %s",
            (long long)(done - start), (long long)start, (long long)done - 1,
            (long long)r->s.total_steps, tot->seconds, res->images_per_second,
            (long long)r->global_batch, r->nranks, omp_get_max_threads(), 100 * worst[0] / secs,
            100 * worst[1] / secs, rss_list);
    if (r->corrupt_skipped > 0)
        rd_info("summary: %lld samples read another image in place of a corrupt one "
                "(pretrain.on_corrupt: skip; each corrupt image named in a warning)",
                (long long)r->corrupt_skipped);
    rd_atomic_file f;
    rd_error e = {0};
    if (!rd_atomic_open(&f, r->s.summary_path, &e)) {
        fprintf(f.fp,
                "{\"format_version\": 1, \"start_step\": %lld, \"steps_completed\": %lld, "
                "\"total_steps\": %lld, \"seconds\": %.3f, \"images_per_second\": %.4f, "
                "\"global_batch\": %lld, \"ranks\": %d, \"threads\": %d, "
                "\"data_wait_fraction\": %.4f, \"comm_fraction\": %.4f, "
                "\"corrupt_skipped\": %lld, \"peak_rss_mib\": [%s]}\n",
                (long long)start, (long long)done, (long long)r->s.total_steps, tot->seconds,
                res->images_per_second, (long long)r->global_batch, r->nranks,
                omp_get_max_threads(), worst[0] / secs, worst[1] / secs,
                (long long)r->corrupt_skipped, rss_list);
        rd_atomic_commit(&f, &e);
    }
    if (e.code) rd_warn("%s", e.msg);
    free(all);
}

rd_status rd_pretrain_run(const rd_config *cfg, MPI_Comm comm, const rd_pretrain_options *opt,
                          rd_pretrain_result *res, rd_error *err) {
    run r;
    memset(&r, 0, sizeof r);
    memset(res, 0, sizeof *res);
    r.comm = comm;
    r.last_checkpoint = -1;
    MPI_Comm_rank(comm, &r.rank);
    MPI_Comm_size(comm, &r.nranks);
    /* the run's configuration, completed by released weights (stored in every checkpoint) */
    rd_config resolved = {0};
    rd_status st = rd_pretrain_resolve_config(cfg, comm, &resolved, err);
    r.cfg = &resolved;
    if (!st) st = settings_from(r.cfg, &r.s, err);
    if (!st && r.s.threads > 0) rd_threads_setup(r.s.threads, "pretrain.threads");
    if (!st) st = setup_trainer(&r, err);
    if (!st && r.s.plan_only) {
        rd_config_free(&resolved);
        return RD_OK;
    }
    if (!st && !(r.config_yaml = rd_config_dump(r.cfg)))
        st = rd_fail(err, RD_ENOMEM, "out of memory for the configuration text");
    st = rd_agree(comm, st, err);
    if (!st && r.rank == 0) st = prepare_output(&r, !opt->resume, err);
    st = rd_agree(comm, st, err);
    int64_t start = 0, done = 0;
    if (!st) st = init_state(&r, opt->resume, &start, err);
    res->start_step = start;
    res->total_steps = r.s.total_steps;
    if (!st && r.rank == 0) st = open_metrics(&r, start, err);
    st = rd_agree(comm, st, err);
    if (!st) st = rd_agree(comm, rd_loader_open(&r.loader, &r.lp, err), err);
    if (!st) st = check_replicas(&r, start, err);
    if (!st && r.nranks > 1) {
        r.red = rd_mpi_reducer_make(&r.mred, comm);
        st = rd_agree(comm,
                      rd_grad_allreduce_init(&r.grad, comm, r.tr.student.grad, r.tr.student.numel,
                                             r.s.bucket_bytes, err),
                      err);
        r.hooks = step_hooks(&r.grad, &r.red);
    }
    if (!st && start >= r.s.total_steps)
        rd_info("pretrain: nothing to do, %lld of %lld steps are done", (long long)start,
                (long long)r.s.total_steps);
    loop_totals tot = {0};
    done = start;
    if (!st) {
        st = train(&r, start, opt->stop, &done, &tot, err);
        st = finish(&r, st, done, err);
        if (st == RD_OK || st == RD_EINTR) report(&r, start, done, &tot, res);
    }
    const char *export_dir = rd_cfg_str(r.cfg, "pretrain.export_dir");
    if (!st && *export_dir) {
        if (r.rank == 0) st = rd_pretrain_export(&r.tr, r.cfg, export_dir, err);
        st = rd_agree(comm, st, err);
    }
    res->steps_completed = done;
    if (r.loader) rd_loader_close(r.loader);
    if (r.nranks > 1) rd_grad_allreduce_free(&r.grad);
    if (r.have_trainer) rd_trainer_free(&r.tr);
    if (r.metrics) fclose(r.metrics);
    free(r.config_yaml);
    rd_config_free(&resolved);
    return st;
}

/* ---- the stage ---- */

static volatile sig_atomic_t stop_requested = 0;

static void on_stop_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

rd_status rd_pretrain_stage(const rd_config *cfg, MPI_Comm comm, rd_error *err) {
    struct sigaction sa, old_usr1, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, &old_usr1);
    sigaction(SIGTERM, &sa, &old_term);
    rd_pretrain_options opt = {.resume = rd_cfg_bool(cfg, "pretrain.resume"),
                               .stop = &stop_requested};
    rd_pretrain_result res;
    rd_status st = rd_pretrain_run(cfg, comm, &opt, &res, err);
    sigaction(SIGUSR1, &old_usr1, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    return st;
}
