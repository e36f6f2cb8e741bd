#!/usr/bin/env bash
# The fault matrix's "one rank dying inside a collective" cell (docs/TESTING.md, "Fault matrix"),
# for every stage on 2 ranks under mpirun: once the stage reports progress (the ranks are in
# their work loop, whose collectives need both), rank 1 gets SIGKILL. The job must end within
# its bound (timeout 120 s: a hang fails) with a non-zero status and a message naming rank 1.
# The workload (more phantoms than elsewhere, a pretraining step delay, many permutations) makes
# each stage run for a few seconds so that the kill lands mid-stage.
cd "$(dirname "$0")/../.." || exit 1
source tests/lib.sh
source tests/pretrain/pretrain_lib.sh
source tests/faults/faults_lib.sh
suite=faults/rank_dies
fault_requirements "$suite" || exit 0
rd_tmpdir
T=$RD_TMP
pt_tiny_yaml "$T/tiny.yaml"
O=$T/out
fault_pipeline_args "$T/tiny.yaml" "$O"
run() { # STAGE LOG [OVERRIDES]
    local stage=$1 log=$2
    shift 2
    OMP_NUM_THREADS=1 rd_mpirun 2 "$RDINO_BIN/rdino-$stage" "${args[@]}" "$@" >"$log" 2>&1
}
export RDINO_PROGRESS_INTERVAL=0.1
for s in "${fault_stages[@]}"; do
    log=$T/kill-$s.log
    # The stage's own work on a copy of the inputs, so that the undisturbed run below starts clean.
    rm -rf "$T/killed" && cp -a "$O" "$T/killed" 2>/dev/null || mkdir -p "$T/killed"
    # Slowed down so that rank 1 dies while the stage works, on any machine.
    step_delay=0 progress_delay=50
    [ "$s" = pretrain ] && step_delay=100 progress_delay=0
    RDINO_TEST_STEP_DELAY_MS=$step_delay RDINO_TEST_PROGRESS_DELAY_MS=$progress_delay \
        OMP_NUM_THREADS=1 timeout 120 \
        mpirun -np 2 --oversubscribe --bind-to none "$RDINO_BIN/rdino-$s" "${args[@]}" \
        data.output_dir="$T/killed" data.metadata_csv="$T/killed/synth/metadata.csv" \
        data.image_root="$T/killed/synth" >"$log" 2>&1 &
    job=$!
    victim=""
    for _ in $(seq 600); do
        if [ -z "$victim" ]; then
            for p in $(pgrep -P "$job" -f "rdino-$s"; pgrep -f "$RDINO_BIN/rdino-$s .*$T/killed"); do
                [ "$(rank_of "$p")" = 1 ] && victim=$p
            done
        fi
        [ -n "$victim" ] && grep -qE "^[a-z ]+: [0-9]+/[0-9]+ \(" "$log" && break
        kill -0 "$job" 2>/dev/null || break
        sleep 0.05
    done
    [ -n "$victim" ] && kill -9 "$victim" 2>/dev/null
    wait "$job"
    status=$?
    if [ -z "$victim" ]; then
        rd_fail "$suite/$s" "rank 1 not found or the stage ended first (exit $status)"
    elif [ "$status" = 124 ]; then
        rd_fail "$suite/$s" "still running 120 s after rank 1 died"
    elif [ "$status" = 0 ]; then
        rd_fail "$suite/$s" "exit 0 although rank 1 was killed (the stage ended first?)"
    elif ! grep -q "rank 1" "$log"; then
        rd_fail "$suite/$s" "exit $status, no message naming rank 1: $(tail -3 "$log" | tr '\n' ' ')"
    else
        rd_pass "$suite/$s"
    fi
    # The undisturbed stage, input of the next one.
    run "$s" "$T/$s.log" || { rd_fail "$suite" "the undisturbed $s failed: $(grep -m1 'error' "$T/$s.log")"; exit 0; }
done
