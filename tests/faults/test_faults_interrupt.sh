#!/usr/bin/env bash
# The fault matrix's "SIGTERM" and "kill -9 at three moments" cells (docs/TESTING.md, "Fault
# matrix"), for every stage on 2 ranks. Each stage first runs undisturbed (the reference), then:
# - SIGTERM to every rank once the stage reports progress, as slurmstepd does at a time limit or
#   scancel: the job ends within 300 s, non-zero;
# - SIGKILL to rank 1 when the stage's progress passes 10%, 50% and 80% (the shard stage counts
#   images as they are decoded): the job ends non-zero, and every file it published under a final name
#   is complete (equal to the reference's);
# and after each, a rerun of the same command completes and writes what the undisturbed run
# wrote (HDF5 files dataset for dataset, others byte for byte; tests/faults/same_outputs.py;
# logs with times and journals left out). Runs in the same folder as the undisturbed run
# (outputs record their paths), whose products are moved aside first.
cd "$(dirname "$0")/../.." || exit 1
source tests/lib.sh
source tests/pretrain/pretrain_lib.sh
source tests/faults/faults_lib.sh
fault_requirements faults/interrupt h5py || exit 0
rd_tmpdir
T=$RD_TMP
pt_tiny_yaml "$T/tiny.yaml"
O=$T/out
fault_pipeline_args "$T/tiny.yaml" "$O"
run() { # STAGE LOG [OVERRIDES]
    local stage=$1 log=$2
    shift 2
    OMP_NUM_THREADS=1 timeout 300 mpirun -np 2 --oversubscribe --bind-to none \
        "$RDINO_BIN/rdino-$stage" "${args[@]}" "$@" >"$log" 2>&1
}
# percent LOG: the whole percent done in the stage's last progress line (-1 before the first)
percent() {
    local p
    p=$(grep -oE '^[a-z ]+: [0-9]+/[0-9]+ \([0-9]+' "$1" | tail -n 1 | sed -E 's/.*\(//')
    echo "${p:--1}"
}
ignore=(summary.json journal metrics.jsonl)
export RDINO_PROGRESS_INTERVAL=0.1
mkdir -p "$T/ref"

# interrupt STAGE CELL SIGNAL WHO PERCENT: runs STAGE in the background (slowed down so that the
# signal finds it at work on any machine: undelayed, this run's shards and embeddings take
# 0.2-2 s), sends SIGNAL to WHO (all ranks, or rank 1) once its progress reaches PERCENT, reruns
# it, and checks both runs. Sets nothing; prints the cell's result.
interrupt() {
    local s=$1 cell=$2 sig=$3 who=$4 at=$5
    local f=${fault_folder[$s]} log=$T/$s-$cell.log side=() out=$O
    # Preprocessing 32 px images is over too soon to be stopped: its cells make 256 px images in
    # a side folder; the pipeline goes on from the 32 px run.
    if [ "$s" = preprocess ]; then side=(data.output_dir="$T/side" preprocess.size=256) out=$T/side; fi
    rm -rf "${out:?}/$f"
    local step_delay=0 progress_delay=50
    [ "$s" = pretrain ] && step_delay=100 progress_delay=0
    RDINO_TEST_STEP_DELAY_MS=$step_delay RDINO_TEST_PROGRESS_DELAY_MS=$progress_delay \
        run "$s" "$log" "${side[@]}" &
    local job=$! mpirun_pid="" ranks=""
    for _ in $(seq 1500); do
        [ -z "$mpirun_pid" ] && mpirun_pid=$(pgrep -P "$(pgrep -P "$job" -x timeout)" -x mpirun)
        [ -n "$mpirun_pid" ] && [ "$(percent "$log")" -ge "$at" ] && break
        kill -0 "$job" 2>/dev/null || break
        sleep 0.02
    done
    # To the ranks themselves (children of mpirun), as slurmstepd signals every task: through
    # mpirun, its own grace period could kill pretraining while it writes its checkpoint.
    for p in $(pgrep -P "$mpirun_pid"); do
        if [ "$who" = all ] || [ "$(rank_of "$p")" = 1 ]; then ranks="$ranks $p"; fi
    done
    [ -n "$ranks" ] && kill "-$sig" $ranks 2>/dev/null
    echo "  faults/$cell/$s: SIG$sig to$ranks at $(percent "$log")%" >&2
    wait "$job"
    local status=$? finished=0
    if [ "$s" = pretrain ] && [ "$sig" = TERM ]; then # it checkpoints, and says so
        grep -q "stopped by a signal" "$log" || finished=1
    else
        grep -q "rdino-$s: done in" "$log" && finished=1
    fi
    # What the stopped run published under final names (temporary .NAME.tmp files aside), before
    # the rerun replaces it. SIGTERM'd pretraining adds a checkpoint at its step, not in the
    # reference: that cell compares the final checkpoint only.
    local published=ok
    if [ "$sig" = KILL ] && [ -d "$out/$f" ]; then
        /usr/bin/python3 tests/faults/same_outputs.py --published "$T/ref/$f" "$out/$f" "${ignore[@]}" \
            >"$T/$s-$cell-published.txt" 2>&1 || published=$(head -n 3 "$T/$s-$cell-published.txt")
    fi
    local rerun=fail
    run "$s" "$T/$s-$cell-rerun.log" "${side[@]}" && rerun=ok
    local what=$T/ref/$f mine=$out/$f
    if [ "$s" = pretrain ]; then # the final checkpoint
        what=$what/checkpoints/step-0000040.h5 mine=$mine/checkpoints/step-0000040.h5
    fi
    if [ -z "$ranks" ]; then
        rd_fail "faults/$cell/$s" "no rank to signal (mpirun ${mpirun_pid:-not found}; exit $status)"
    elif [ "$status" = 0 ] || [ "$finished" = 1 ]; then
        rd_fail "faults/$cell/$s" "the stage ended before SIG$sig reached it (exit $status; $(percent "$log")%)"
    elif [ "$status" = 124 ]; then
        rd_fail "faults/$cell/$s" "still running 300 s after SIG$sig"
    elif [ "$published" != ok ]; then
        rd_fail "faults/$cell/$s" "a file published incomplete: $published"
    elif [ "$rerun" != ok ]; then
        rd_fail "faults/$cell/$s" "the rerun failed: $(grep -m1 error "$T/$s-$cell-rerun.log")"
    elif ! /usr/bin/python3 tests/faults/same_outputs.py "$what" "$mine" "${ignore[@]}" >"$T/$s-cmp.txt" 2>&1; then
        rd_fail "faults/$cell/$s" "the rerun differs from an undisturbed run: $(head -3 "$T/$s-cmp.txt")"
    else
        rd_pass "faults/$cell/$s"
    fi
}

for s in "${fault_stages[@]}"; do
    f=${fault_folder[$s]}
    run "$s" "$T/$s-ref.log" || { rd_fail faults/interrupt "the undisturbed $s failed: $(grep -m1 'error' "$T/$s-ref.log")"; exit 0; }
    if [ "$s" = preprocess ]; then
        run "$s" "$T/$s-ref.log" data.output_dir="$T/side" preprocess.size=256 ||
            { rd_fail faults/interrupt "the undisturbed $s (256 px) failed"; exit 0; }
        mv "$T/side/$f" "$T/ref/$f"
    else
        mv "$O/$f" "$T/ref/$f"
    fi
    interrupt "$s" sigterm TERM all 0
    for at in 10 50 80; do interrupt "$s" "kill9_at_$at" KILL rank1 "$at"; done
done
