#!/usr/bin/env bash
# The fault matrix's "SIGTERM" cell (docs/TESTING.md, "Fault matrix"), for every stage on 2
# ranks: what Slurm does at a time limit or scancel, SIGTERM to every rank, once the stage
# reports progress. The job must end within 120 s, non-zero, and a
# rerun of the same command must complete and write what an undisturbed run wrote (HDF5 files
# dataset for dataset, others byte for byte; tests/faults/same_outputs.py; logs with times and
# journals left out). Runs in the same folder as the undisturbed run (outputs record their
# paths), whose products are moved aside first.
cd "$(dirname "$0")/../.." || exit 1
source tests/lib.sh
source tests/pretrain/pretrain_lib.sh
suite=faults/sigterm
stages=(synth preprocess shard pretrain embed analyze)
for s in "${stages[@]}"; do
    if [ ! -x "$RDINO_BIN/rdino-$s" ]; then rd_skip "$suite" "$RDINO_BIN/rdino-$s not built"; exit 0; fi
done
# What happens to processes and files, not to memory: the sanitizer build would only add time.
if [ "${RDINO_SANITIZE:-0}" = 1 ]; then rd_skip "$suite" "run by make test, not under the sanitizers"; exit 0; fi
if ! /usr/bin/python3 -c 'import h5py' 2>/dev/null; then rd_skip "$suite" "/usr/bin/python3 with h5py is needed"; exit 0; fi
rd_tmpdir
T=$RD_TMP
pt_tiny_yaml "$T/tiny.yaml"
O=$T/out
args=(--config "$T/tiny.yaml" data.output_dir="$O" synth.n_patients=240
      synth.images_per_patient=[1,2] synth.size_range=[192,256] preprocess.size=32
      shard.images_per_shard=64 pretrain.max_steps=40 pretrain.checkpoint_every=10
      analyze.bootstrap=200 analyze.permutations=99 analyze.lambda_range=[0.1,10000]
      analyze.lambdas_per_decade=1 data.format=nih data.metadata_csv="$O/synth/metadata.csv"
      data.image_root="$O/synth" embed.checkpoint="$O/pretrain/checkpoints/step-0000040.h5"
      embed.resolution=96 embed.batch=4)
run() { # STAGE LOG [OVERRIDES]
    local stage=$1 log=$2
    shift 2
    OMP_NUM_THREADS=1 timeout 300 mpirun -np 2 --oversubscribe --bind-to none \
        "$RDINO_BIN/rdino-$stage" "${args[@]}" "$@" >"$log" 2>&1
}
declare -A folder=([synth]=synth [preprocess]=preprocessed [shard]=shards [pretrain]=pretrain
                   [embed]=embeddings [analyze]=report)
ignore=(summary.json journal metrics.jsonl)
export RDINO_PROGRESS_INTERVAL=0.1
mkdir -p "$T/ref"
for s in "${stages[@]}"; do
    f=${folder[$s]}
    run "$s" "$T/$s-ref.log" || { rd_fail "$suite" "the undisturbed $s failed: $(grep -m1 'error' "$T/$s-ref.log")"; exit 0; }
    # Preprocessing 32 px images is over too soon to be stopped: its check makes 256 px images
    # in a side folder; the pipeline goes on from the 32 px run above.
    side=() out=$O
    if [ "$s" = preprocess ]; then
        side=(data.output_dir="$T/side" preprocess.size=256) out=$T/side
        run "$s" "$T/$s-ref.log" "${side[@]}" || { rd_fail "$suite" "the undisturbed $s (256 px) failed"; exit 0; }
    fi
    mv "$out/$f" "$T/ref/$f"
    # Slowed down (per step, per progress update) so that the signal finds the stage at work
    # on any machine: undelayed, the shards and embeddings of this tiny run are done in 0.2-2 s.
    step_delay=0 progress_delay=50
    [ "$s" = pretrain ] && step_delay=100 progress_delay=0
    RDINO_TEST_STEP_DELAY_MS=$step_delay RDINO_TEST_PROGRESS_DELAY_MS=$progress_delay \
        run "$s" "$T/$s-term.log" "${side[@]}" &
    job=$!
    # Mid-stage: the first images written (synth, preprocess: faster than their forwarded and
    # buffered output), else the first progress line.
    for _ in $(seq 1200); do
        case $s in
            synth | preprocess) [ "$(find "$out/$f" -name '*.png' 2>/dev/null | head -20 | wc -l)" -ge 20 ] && break ;;
            *) grep -qE "^[a-z ]+: [0-9]+/[0-9]+ \(" "$T/$s-term.log" && break ;;
        esac
        kill -0 "$job" 2>/dev/null || break
        sleep 0.02
    done
    # To the ranks (children of mpirun, under timeout), as slurmstepd signals every task: through
    # mpirun, its own grace period could kill pretraining while it writes its checkpoint.
    pkill -TERM -P "$(pgrep -P "$(pgrep -P "$job" -x timeout)" -x mpirun)"
    wait "$job"
    status=$?
    rerun=fail
    run "$s" "$T/$s-rerun.log" "${side[@]}" && rerun=ok
    what=$T/ref/$f mine=$out/$f
    if [ "$s" = pretrain ]; then # the final checkpoint (the stopped run adds one at its step)
        what=$what/checkpoints/step-0000040.h5 mine=$mine/checkpoints/step-0000040.h5
    fi
    finished=0
    if [ "$s" = pretrain ]; then
        grep -q "stopped by a signal" "$T/$s-term.log" || finished=1
    else
        grep -q "rdino-$s: done in" "$T/$s-term.log" && finished=1
    fi
    if [ "$status" = 0 ] || [ "$finished" = 1 ]; then
        rd_fail "$suite/$s" "the stage ended before SIGTERM reached it (exit $status)"
    elif [ "$status" = 124 ]; then
        rd_fail "$suite/$s" "still running 300 s after SIGTERM"
    elif [ "$rerun" != ok ]; then
        rd_fail "$suite/$s" "the rerun failed: $(grep -m1 error "$T/$s-rerun.log")"
    elif ! /usr/bin/python3 tests/faults/same_outputs.py "$what" "$mine" "${ignore[@]}" >"$T/$s-cmp.txt" 2>&1; then
        rd_fail "$suite/$s" "the rerun differs from an undisturbed run: $(head -3 "$T/$s-cmp.txt")"
    else
        rd_pass "$suite/$s"
    fi
done
