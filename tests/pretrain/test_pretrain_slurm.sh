#!/usr/bin/env bash
# jobs/pretrain.sbatch on a throwaway one-node Slurm cluster (tests/slurm/cluster.sh; root and
# Debian's slurm-wlm + munge, else SKIP): 2 tasks over PMIx; SIGUSR1 to the batch script (what
# --signal=B:USR1@120 does) once the first checkpoint exists -> the script forwards it, the
# ranks checkpoint and exit 3, the script requeues the job; the requeued job resumes and
# finishes. Its final checkpoint must equal (bit for bit) an uninterrupted 2-rank mpirun run.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/pretrain_lib.sh"
source "$(dirname "$0")/../slurm/cluster.sh"
name=pretrain/slurm_requeue
if [ "$(id -u)" != 0 ] || ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    rd_skip "$name" "needs root, slurm-wlm and munge"; exit 0
fi
if ! pt_need_python; then rd_skip "$name" "/usr/bin/python3 with h5py is needed"; exit 0; fi
rd_tmpdir
T=$RD_TMP
trap 'slurm_cluster_stop; rm -rf "$T"' EXIT
pt_make_shards "$T" || { rd_fail "$name" "could not make shards"; exit 0; }
pt_tiny_yaml "$T/tiny.yaml"
args=(--config "$T/tiny.yaml" pretrain.max_steps=10 pretrain.checkpoint_every=3
      train.centering=centering)
pt_run 2 "$T/ref.log" --config "$T/data.yaml" "${args[@]}" pretrain.output_dir="$T/ref" ||
    { rd_fail "$name" "reference run failed"; exit 0; }
slurm_cluster_start "$T/cluster" >"$T/cluster.log" 2>&1 ||
    { rd_skip "$name" "the test cluster did not start ($(tail -1 "$T/cluster.log"))"; exit 0; }

export RDINO_BIN=$PWD/$RDINO_BIN SLURM_MPI_TYPE=pmix RDINO_TEST_STEP_DELAY_MS=150
job=$(sbatch --parsable --nodes=1 --ntasks=2 --cpus-per-task=1 --mem-per-cpu=500M --time=10 \
      --output="$T/job.log" jobs/pretrain.sbatch "$T/data.yaml" "${args[@]}" \
      pretrain.output_dir="$T/run" 2>&1) || { rd_fail "$name" "sbatch: $job"; exit 0; }
for _ in $(seq 300); do [ -e "$T/run/checkpoints/step-0000003.h5" ] && break; sleep 0.1; done
scancel --signal=USR1 --batch "$job"
slurm_start_requeued "$job"
SLURM_WAIT=120 slurm_wait_jobs "$job"
state=$(slurm_job_state "$job")
final=checkpoints/step-0000010.h5
if ! grep -q "requeueing job $job" "$T/job.log"; then
    rd_fail "$name" "the job was not requeued (state $state): $(grep -m2 -iE 'error|stopped' "$T/job.log" | tr '\n' ' ')"
elif [ "$state" != COMPLETED ]; then
    rd_fail "$name" "final state $state; the job's log:"
    tail -n 25 "$T/job.log" >&2
elif ! verdict=$(pt_compare "$T/ref/$final" "$T/run/$final" exact); then
    rd_fail "$name" "$verdict"
else
    rd_pass "$name"
fi
