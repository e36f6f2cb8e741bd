#!/usr/bin/env bash
# jobs/posthoc.sbatch without a cluster (srun replaced by exec, the array index set by hand): a
# tiny pretraining keeps three checkpoints, array tasks 0..2 embed and study each, a task past
# the last checkpoint fails with a message, and the job started without an index draws the
# trajectory of every effect against the step. (tests/slurm runs jobs on a real Slurm.)
cd "$(dirname "$0")/../.." || exit 1
source tests/lib.sh
source tests/pretrain/pretrain_lib.sh
source tests/analyze/posthoc_lib.sh
suite=analyze/posthoc
job=jobs/posthoc.sbatch

for b in synth preprocess shard pretrain embed analyze; do
    if [ ! -x "$RDINO_BIN/rdino-$b" ]; then rd_skip "$suite" "$RDINO_BIN/rdino-$b not built"; exit 0; fi
done
if ! command -v gnuplot >/dev/null; then
    rd_skip "$suite" "gnuplot is not installed (gnuplot-nox)"
    exit 0
fi
if [ "${RDINO_SANITIZE:-0}" = 1 ]; then export ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0"; fi
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
rd_tmpdir
T=$RD_TMP
mkdir -p "$T/fakebin"
# srun's options (single words here) dropped, the program run directly.
printf '#!/bin/sh\nwhile [ "${1#-}" != "$1" ]; do shift; done\nexec "$@"\n' >"$T/fakebin/srun"
chmod +x "$T/fakebin/srun"
name=$suite/array_tasks_then_trajectory
if ! posthoc_pipeline "$T"; then
    rd_fail "$name" "pipeline: $(tail -3 "$T/pipeline.log" | tr '\n' ' ')"
    exit 0
fi
nckpt=$(find "$T/out/pretrain/checkpoints" -name 'step-*.h5' | wc -l)
posthoc() { PATH="$T/fakebin:$PATH" RDINO_BIN="$RDINO_BIN" bash "$job" "$T/tiny.yaml" "$@" "${posthoc_args[@]}"; }
ok=1 why=""
for i in $(seq 0 $((nckpt - 1))); do
    if ! SLURM_ARRAY_TASK_ID=$i posthoc analysis/age_sex.yaml >"$T/task$i.log" 2>&1; then
        ok=0 why="task $i: $(tail -3 "$T/task$i.log" | tr '\n' ' ')"
        break
    fi
done
if [ $ok = 1 ] && [ "$nckpt" -lt 3 ]; then
    ok=0 why="only $nckpt checkpoints kept"
elif [ $ok = 1 ] && SLURM_ARRAY_TASK_ID=$nckpt posthoc >"$T/past.log" 2>&1; then
    ok=0 why="an index past the last checkpoint succeeded"
elif [ $ok = 1 ] && ! grep -q "array index $nckpt, but .* holds $nckpt checkpoints" "$T/past.log"; then
    ok=0 why="no message for an index past the checkpoints: $(tail -2 "$T/past.log" | tr '\n' ' ')"
elif [ $ok = 1 ] && ! posthoc >"$T/trajectory.log" 2>&1; then
    ok=0 why="trajectory: $(tail -3 "$T/trajectory.log" | tr '\n' ' ')"
elif [ $ok = 1 ] && ! why=$(posthoc_check "$T/out"); then
    ok=0
fi
if [ $ok = 1 ]; then rd_pass "$name"; else rd_fail "$name" "$why"; fi
