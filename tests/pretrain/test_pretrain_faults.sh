#!/usr/bin/env bash
# rdino-pretrain when things break (2 ranks, checkpoints every 2 steps):
#   - the newest checkpoint damaged (a flipped byte in a tensor: Fletcher32; truncated; a
#     dataset missing): resume falls back to the previous one with a warning naming the file,
#     moves the damaged one to *.corrupt, and ends bit-identical to an undisturbed run;
#   - every checkpoint damaged: a clear error, and nothing renamed or deleted;
#   - a NaN injected before step 5 (test hook RDINO_TEST_NAN_STEP): exit 1, the message names
#     the step and the loss term and the last good checkpoint, and no checkpoint after step 4;
#   - corrupt images (a pixel changed through h5py): exit 1 naming shard, row and image id; with
#     pretrain.on_corrupt: skip the same model on 1 and 2 ranks, the skips counted;
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

# corrupt images: every training image of shard 0 gets one pixel changed through h5py (HDF5's
# metadata stay valid, only the CRC32C can tell)
cp -r "$T/out/shards" "$T/corrupt"
"$PT_PY" - "$T/corrupt/shard-00000.h5" <<'PY'
import sys
import h5py
with h5py.File(sys.argv[1], "r+") as f:
    for row in (f["meta/split"][:] == 0).nonzero()[0]:
        image = f["images"][row]
        image[0, 0] ^= 1
        f["images"][row] = image
PY
# on_corrupt: error (the default): exit 1 before a step uses the image, naming shard, row, image
pt_run 2 "$T/corrupt.log" "${base[@]}" pretrain.max_steps=4 pretrain.output_dir="$T/cerr" \
    pretrain.data.shards_dir="$T/corrupt"
status=$?
if [ "$status" -eq 1 ] && grep -q "corrupt/shard-00000.h5: row [0-9]* (row [0-9]* of the shards), image id '[^']*'.*CRC32C" "$T/corrupt.log" &&
    [ ! -e "$(ck cerr 2)" ]; then
    rd_pass pretrain/corrupt_image_stops
    echo "  message: $(grep -m1 "CRC32C" "$T/corrupt.log" | cut -c1-300)"
else
    rd_fail pretrain/corrupt_image_stops "exit $status: $(grep -m1 error "$T/corrupt.log")"
fi
# on_corrupt: skip: the same model on 1 and 2 ranks, the skips counted in metrics.jsonl and the
# summary
ok=1 why=""
for np in 1 2; do
    if ! pt_run "$np" "$T/skip$np.log" "${base[@]}" pretrain.max_steps=4 pretrain.output_dir="$T/skip$np" \
        pretrain.data.shards_dir="$T/corrupt" pretrain.on_corrupt=skip pretrain.global_batch=8; then
        ok=0 why="$np ranks: $(grep -m1 error "$T/skip$np.log")"
    fi
done
count() { "$PT_PY" -c 'import json, sys; print(json.loads(open(sys.argv[1]).readlines()[-1])["corrupt_skipped"])' "$1"; }
if [ $ok = 1 ]; then
    c1=$(count "$T/skip1/metrics.jsonl") c2=$(count "$T/skip2/metrics.jsonl")
    # 1e-5: the rank-count tolerance of test_pretrain_ranks.sh (all-reduce rounding); another
    # substitute image would move the weights far more
    if ! verdict=$(pt_compare "$(ck skip1 4)" "$(ck skip2 4)" 1e-5); then
        ok=0 why="1 and 2 ranks differ: $verdict"
    elif [ "$c1" -lt 1 ] || [ "$c1" != "$c2" ]; then
        ok=0 why="corrupt_skipped $c1 on 1 rank, $c2 on 2"
    elif ! grep -q "summary: $c1 samples read another image in place of a corrupt one" "$T/skip2.log" ||
        ! grep -q "skipping a corrupt image.*shard-00000.h5: row" "$T/skip2.log"; then
        ok=0 why="no summary line or warning: $(grep -m1 summary "$T/skip2.log")"
    fi
fi
if [ $ok = 1 ]; then
    rd_pass pretrain/corrupt_image_skipped_same_model_on_1_2_ranks
    echo "  $c1 samples skipped in 4 steps on 1 and on 2 ranks"
else
    rd_fail pretrain/corrupt_image_skipped_same_model_on_1_2_ranks "$why"
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
