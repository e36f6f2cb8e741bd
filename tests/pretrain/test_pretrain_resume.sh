#!/usr/bin/env bash
# Exact resume of rdino-pretrain on 2 ranks: a run of 8 steps (checkpoints every 3) against
#   - a run killed by SIGKILL after step 4 (test hook RDINO_TEST_KILL_STEP: every rank kills
#     itself, like kill -9; the last checkpoint is step 3) and resumed: bit-identical
#     checkpoint at step 8 and identical logged losses;
#   - a run stopped by SIGUSR1 (sent to mpirun, which forwards it) while in progress: exit 3
#     (requeue) with a checkpoint, then rerun: bit-identical;
#   - a killed run resumed on 1 rank instead of 2: equal to 1e-5 (sums in another order);
#   - a new run from that run's weights (student.pretrained_weights): backbone loaded by name,
#     heads fresh;
#   - pruning: the newest pretrain.keep_checkpoints, plus every checkpoint of the keep_every
#     schedule (kept for post-hoc studies, not counted).
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/pretrain_lib.sh"
if ! pt_need_python; then rd_skip pretrain/resume "/usr/bin/python3 with h5py is needed"; exit 0; fi
rd_tmpdir
T=$RD_TMP
pt_make_shards "$T" || { rd_fail pretrain/resume "could not make shards"; exit 0; }
pt_tiny_yaml "$T/tiny.yaml"
base=(--config "$T/data.yaml" --config "$T/tiny.yaml" pretrain.max_steps=8
      pretrain.checkpoint_every=3 train.centering=centering)
final=checkpoints/step-0000008.h5

pt_run 2 "$T/ref.log" "${base[@]}" pretrain.output_dir="$T/ref" ||
    { rd_fail pretrain/resume "reference run failed: $(grep -m1 error "$T/ref.log")"; exit 0; }

# kill -9 after step 4, resume
RDINO_TEST_KILL_STEP=4 pt_run 2 "$T/kill1.log" "${base[@]}" pretrain.output_dir="$T/kill"
killed=$?
if [ "$killed" -eq 0 ] || [ -e "$T/kill/$final" ]; then
    rd_fail pretrain/resume_after_kill "the killed run was not killed (exit $killed)"
elif ! pt_run 2 "$T/kill2.log" "${base[@]}" pretrain.output_dir="$T/kill"; then
    rd_fail pretrain/resume_after_kill "resume failed: $(grep -m1 error "$T/kill2.log")"
elif ! grep -q "resuming from .*step-0000003.h5" "$T/kill2.log"; then
    rd_fail pretrain/resume_after_kill "did not resume from step 3: $(grep -m1 resum "$T/kill2.log")"
elif ! verdict=$(pt_compare "$T/ref/$final" "$T/kill/$final" exact); then
    rd_fail pretrain/resume_after_kill "$verdict"
elif ! cmp -s <(pt_losses "$T/ref/metrics.jsonl") <(pt_losses "$T/kill/metrics.jsonl"); then
    rd_fail pretrain/resume_after_kill "metrics.jsonl losses differ from the uninterrupted run"
else
    rd_pass pretrain/resume_after_kill
fi

# SIGUSR1 while running (each step sleeps 150 ms so the signal lands mid-run)
(export RDINO_TEST_STEP_DELAY_MS=150 OMP_NUM_THREADS=1
 exec mpirun -np 2 --oversubscribe --bind-to none "$RDINO_BIN/rdino-pretrain" "${base[@]}" \
     pretrain.output_dir="$T/sig" >"$T/sig1.log" 2>&1) &
pid=$! # mpirun itself, which forwards SIGUSR1 to the ranks
for _ in $(seq 100); do [ -e "$T/sig/checkpoints/step-0000003.h5" ] && break; sleep 0.05; done
kill -USR1 "$pid"
wait "$pid"
stopped=$?
if [ "$stopped" -ne 3 ]; then
    rd_fail pretrain/resume_after_signal "expected exit 3 (requeue), got $stopped"
elif ! grep -q "stopped by a signal" "$T/sig1.log"; then
    rd_fail pretrain/resume_after_signal "no stop message in the log"
elif ! pt_run 2 "$T/sig2.log" "${base[@]}" pretrain.output_dir="$T/sig"; then
    rd_fail pretrain/resume_after_signal "rerun failed: $(grep -m1 error "$T/sig2.log")"
elif ! verdict=$(pt_compare "$T/ref/$final" "$T/sig/$final" exact); then
    rd_fail pretrain/resume_after_signal "$verdict"
else
    rd_pass pretrain/resume_after_signal
fi

# a 2-rank run continued on 1 rank
RDINO_TEST_KILL_STEP=4 pt_run 2 "$T/mix1.log" "${base[@]}" pretrain.output_dir="$T/mix"
if ! pt_run 1 "$T/mix2.log" "${base[@]}" pretrain.output_dir="$T/mix"; then
    rd_fail pretrain/resume_other_rank_count "resume on 1 rank failed: $(grep -m1 error "$T/mix2.log")"
elif ! verdict=$(pt_compare "$T/ref/$final" "$T/mix/$final" 1e-5); then
    rd_fail pretrain/resume_other_rank_count "$verdict"
else
    rd_pass pretrain/resume_other_rank_count
fi

# starting from another run's weights: student.pretrained_weights loads the teacher backbone by
# name; iteration 0 has lr 0, so the new student backbone after one step is exactly that
if ! pt_run 1 "$T/pre.log" "${base[@]}" pretrain.max_steps=1 pretrain.output_dir="$T/pre" \
     student.pretrained_weights="$T/ref/$final"; then
    rd_fail pretrain/init_from_weights "run failed: $(grep -m1 error "$T/pre.log")"
elif ! grep -q "initialised from .*step-0000008.h5" "$T/pre.log"; then
    rd_fail pretrain/init_from_weights "no message about the weights"
elif ! "$PT_PY" - "$T/ref/$final" "$T/pre/checkpoints/step-0000001.h5" <<'PY'
import sys
import h5py
with h5py.File(sys.argv[1], "r") as a, h5py.File(sys.argv[2], "r") as b:
    src, dst = a["teacher/backbone"], b["student/backbone"]
    differ = [k for k in src if src[k][()].tobytes() != dst[k][()].tobytes()]
    heads_fresh = a["teacher/dino_head/mlp.0.weight"][()].tobytes() != b["student/dino_head/mlp.0.weight"][()].tobytes()
    sys.exit(1 if differ or not heads_fresh or len(src) != len(dst) else 0)
PY
then
    rd_fail pretrain/init_from_weights "the student backbone is not the file's teacher backbone"
else
    rd_pass pretrain/init_from_weights
fi

# pruning with a keep_every schedule: steps 1..7 checkpointed, keep 2, keep every 3rd
pt_run 1 "$T/keep.log" "${base[@]}" pretrain.max_steps=7 pretrain.checkpoint_every=1 \
    pretrain.keep_checkpoints=2 pretrain.keep_every=3 pretrain.output_dir="$T/keep"
status=$?
kept=$(cd "$T/keep/checkpoints" 2>/dev/null && ls step-*.h5 | tr '\n' ' ')
want="step-0000003.h5 step-0000005.h5 step-0000006.h5 step-0000007.h5 "
if [ "$status" -eq 0 ] && [ "$kept" = "$want" ]; then
    rd_pass pretrain/keep_every_schedule
else
    rd_fail pretrain/keep_every_schedule "exit $status, kept: $kept (want $want)"
fi
