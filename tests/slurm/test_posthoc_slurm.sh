#!/usr/bin/env bash
# jobs/posthoc.sbatch on a throwaway one-node Slurm cluster (tests/slurm/cluster.sh; root and
# Debian's slurm-wlm + munge, else SKIP): a tiny pretraining (run here, outside Slurm) keeps three
# checkpoints; an array job of three tasks embeds and studies one each (srun over PMIx), and a
# job depending on the array draws the trajectory. (Without a cluster: tests/analyze/
# test_posthoc.sh runs the same script with srun replaced.)
cd "$(dirname "$0")/../.." || exit 1
source tests/lib.sh
source tests/pretrain/pretrain_lib.sh
source tests/analyze/posthoc_lib.sh
source tests/slurm/cluster.sh
suite=slurm/posthoc

for b in synth preprocess shard pretrain embed analyze; do
    if [ ! -x "$RDINO_BIN/rdino-$b" ]; then rd_skip "$suite" "$RDINO_BIN/rdino-$b not built"; exit 0; fi
done
if [ "$(id -u)" != 0 ] || ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    rd_skip "$suite" "needs root, slurm-wlm and munge (scripts/install-deps.sh)"; exit 0
fi
if ! command -v gnuplot >/dev/null; then
    rd_skip "$suite" "gnuplot is not installed (gnuplot-nox)"; exit 0
fi
rd_tmpdir
T=$RD_TMP
cleanup() {
    slurm_cluster_stop
    if [ "${RDINO_KEEP_TMP:-0}" != 1 ]; then rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM # so that cleanup runs when the test is interrupted or timed out
export RDINO_BIN=$PWD/$RDINO_BIN OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
name=$suite/array_job_then_trajectory
if ! posthoc_pipeline "$T"; then
    rd_fail "$name" "pipeline: $(tail -3 "$T/pipeline.log" | tr '\n' ' ')"
    exit 0
fi
slurm_cluster_start "$T/cluster" >"$T/cluster.log" 2>&1 ||
    { rd_skip "$suite" "the test cluster did not start ($(tail -1 "$T/cluster.log"))"; exit 0; }
mkdir -p "$T/logs"
small=(--nodes=1 --ntasks=1 --ntasks-per-node=1 --cpus-per-task=1 --mem-per-cpu=400M --time=10 --chdir="$PWD")
export SLURM_WAIT=300
array=$(sbatch --parsable "${small[@]}" --array=0-2 --output="$T/logs/posthoc-%A_%a.log" \
    jobs/posthoc.sbatch "$T/tiny.yaml" analysis/age_sex.yaml "${posthoc_args[@]}" 2>"$T/sbatch.err")
after=$(sbatch --parsable "${small[@]}" --dependency=afterok:"$array" \
    --output="$T/logs/trajectory-%j.log" jobs/posthoc.sbatch "$T/tiny.yaml" "${posthoc_args[@]}" \
    2>>"$T/sbatch.err")
if [ -z "$array" ] || [ -z "$after" ]; then
    rd_fail "$name" "sbatch: $(tr '\n' ' ' <"$T/sbatch.err")"
    exit 0
fi
slurm_wait_jobs "$array" "$after" || true
state=$(slurm_job_state "$after")
if [ "$state" != COMPLETED ]; then
    rd_fail "$name" "trajectory job $state: $(tail -q -n 2 "$T"/logs/*.log 2>/dev/null | tr '\n' ' ' | head -c 600)"
elif ! why=$(posthoc_check "$T/out"); then
    rd_fail "$name" "$why"
else
    rd_pass "$name"
fi
