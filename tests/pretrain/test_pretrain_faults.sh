#!/usr/bin/env bash
# rdino-pretrain when things break (2 ranks, checkpoints every 2 steps):
#   - the newest checkpoint damaged (a flipped byte in a tensor: Fletcher32; truncated; a
#     dataset missing): resume falls back to the previous one with a warning naming the file,
#     moves the damaged one to *.corrupt, and ends bit-identical to an undisturbed run;
#   - every checkpoint damaged: a clear error, and nothing renamed or deleted;
#   - a NaN injected before step 5 (test hook RDINO_TEST_NAN_STEP): exit 1, the message names
#     the step and the loss term and the last good checkpoint, and no checkpoint after step 4;
#   - a missing shard: exit 1, the message names the file.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/pretrain_lib.sh"
if ! pt_need_python; then rd_skip pretrain/faults "/usr/bin/python3 with h5py is needed"; exit 0; fi
rd_tmpdir
T=$RD_TMP
pt_make_shards "$T" || { rd_fail pretrain/faults "could not make shards"; exit 0; }
pt_tiny_yaml "$T/tiny.yaml"
base=(--config "$T/data.yaml" --config "$T/tiny.yaml" pretrain.checkpoint_every=2
      pretrain.keep_checkpoints=5)
ck() { echo "$T/$1/checkpoints/step-$(printf %07d "$2").h5"; }

pt_run 2 "$T/ref.log" "${base[@]}" pretrain.max_steps=8 pretrain.output_dir="$T/ref" ||
    { rd_fail pretrain/faults "reference run failed: $(grep -m1 error "$T/ref.log")"; exit 0; }

damage() { # KIND FILE
    "$PT_PY" - "$1" "$2" <<'PY'
import os, sys
import h5py
kind, path = sys.argv[1], sys.argv[2]
if kind == "flip":  # one byte inside the teacher's qkv weight chunk
    with h5py.File(path, "r") as f:
        offset = f["teacher/backbone/blocks.1.attn.qkv.weight"].id.get_chunk_info(0).byte_offset
    with open(path, "r+b") as f:
        f.seek(offset + 100)
        b = f.read(1)
        f.seek(offset + 100)
        f.write(bytes([b[0] ^ 0x40]))
elif kind == "truncate":
    os.truncate(path, os.path.getsize(path) // 2)
elif kind == "missing":
    with h5py.File(path, "r+") as f:
        del f["optimizer/exp_avg_sq/student/dino_head/mlp.0.weight"]
PY
}

for kind in flip truncate missing; do
    name=fallback_$kind
    pt_run 2 "$T/$kind-1.log" "${base[@]}" pretrain.max_steps=6 pretrain.output_dir="$T/$kind"
    damage "$kind" "$(ck "$kind" 6)"
    if ! pt_run 2 "$T/$kind-2.log" "${base[@]}" pretrain.max_steps=8 pretrain.output_dir="$T/$kind"; then
        rd_fail "pretrain/$name" "resume failed: $(grep -m1 error "$T/$kind-2.log")"
    elif ! grep -q "cannot resume from .*step-0000006.h5" "$T/$kind-2.log" ||
         ! grep -q "resuming from .*step-0000004.h5" "$T/$kind-2.log"; then
        rd_fail "pretrain/$name" "no fallback to step 4: $(grep -m2 -E 'resum|warn' "$T/$kind-2.log" | tr '\n' ' ')"
    elif [ ! -e "$(ck "$kind" 6).corrupt" ]; then
        rd_fail "pretrain/$name" "the damaged checkpoint was not moved to .corrupt"
    elif ! verdict=$(pt_compare "$(ck ref 8)" "$(ck "$kind" 8)" exact); then
        rd_fail "pretrain/$name" "$verdict"
    else
        rd_pass "pretrain/$name"
    fi
done
grep -h "cannot resume" "$T"/*-2.log | sed 's/^/  message: /'

# every checkpoint damaged: stop, touch nothing
pt_run 2 "$T/all-1.log" "${base[@]}" pretrain.max_steps=4 pretrain.output_dir="$T/all"
damage truncate "$(ck all 2)"
damage truncate "$(ck all 4)"
pt_run 2 "$T/all-2.log" "${base[@]}" pretrain.max_steps=8 pretrain.output_dir="$T/all"
status=$?
if [ "$status" -eq 0 ] || ! grep -q "none of the 2 checkpoints" "$T/all-2.log" ||
   [ ! -e "$(ck all 2)" ] || [ ! -e "$(ck all 4)" ]; then
    rd_fail pretrain/all_checkpoints_damaged "exit $status: $(grep -m1 error "$T/all-2.log")"
else
    rd_pass pretrain/all_checkpoints_damaged
fi

# a NaN before step 5
RDINO_TEST_NAN_STEP=5 pt_run 2 "$T/nan.log" "${base[@]}" pretrain.max_steps=8 pretrain.output_dir="$T/nan"
status=$?
msg=$(grep -m1 "non-finite" "$T/nan.log")
if [ "$status" -ne 1 ]; then
    rd_fail pretrain/nan_stops "expected exit 1, got $status"
elif [[ "$msg" != *"step 5"*"dino_local_crops_loss"*"step-0000004.h5"* ]]; then
    rd_fail pretrain/nan_stops "message should name the step, the term and the checkpoint: $msg"
elif [ -e "$(ck nan 6)" ] || ! pt_compare "$(ck ref 4)" "$(ck nan 4)" exact >/dev/null; then
    rd_fail pretrain/nan_stops "a checkpoint after the NaN, or step 4 differs"
else
    rd_pass pretrain/nan_stops
    echo "  message: $msg"
fi

# a missing shard
rm "$T/out/shards/shard-00001.h5"
pt_run 2 "$T/shard.log" "${base[@]}" pretrain.max_steps=2 pretrain.output_dir="$T/shard" --no-resume
status=$?
if [ "$status" -ne 0 ] && grep -q "shard-00001.h5" "$T/shard.log"; then
    rd_pass pretrain/missing_shard
    echo "  message: $(grep -m1 "shard-00001.h5" "$T/shard.log")"
else
    rd_fail pretrain/missing_shard "exit $status: $(grep -m1 error "$T/shard.log")"
fi
