#!/usr/bin/env bash
# rdino-embed end to end on shards made here (tests/shard/make_shard_input.py + rdino-shard) with a
# tiny random-init ViT: the layout read back with h5py against the shards
# (tests/embed/check_embeddings.py) and h5dump, bit-identical output on 1, 2 and 3 ranks, a
# split subset and another resolution, and failures (missing or damaged checkpoint, damaged
# shard on 3 ranks) that name the file and leave no output behind.
cd "$(dirname "$0")/../.." || exit 1
source tests/lib.sh
suite=embed/embed_app
bin=$RDINO_BIN/rdino-embed
py=/usr/bin/python3
check=tests/embed/check_embeddings.py

for b in "$bin" "$RDINO_BIN/rdino-shard"; do
    if [ ! -x "$b" ]; then
        rd_skip "$suite" "$b not built"
        exit 0
    fi
done
if ! $py -c 'import h5py, PIL, numpy' 2>/dev/null; then
    rd_skip "$suite" "/usr/bin/python3 lacks h5py, PIL or numpy (scripts/install-deps.sh)"
    exit 0
fi
rd_tmpdir
T=$RD_TMP
export OMP_NUM_THREADS=1

# 40 patients, 79 images of 16x16, in 3 shards.
$py tests/shard/make_shard_input.py "$T/pre" 40 16 8 >/dev/null
if ! rd_mpirun 1 "$RDINO_BIN/rdino-shard" data.output_dir="$T" shard.input_dir="$T/pre" \
    shard.num_shards=3 shard.val_fraction=0.2 shard.test_fraction=0.2 >"$T/shard.log" 2>&1; then
    rd_fail "$suite/shards" "$(tail -3 "$T/shard.log")"
    exit 0
fi

# A tiny ViT (D = 40, so BLAS's size-dependent kernels make the batch grid matter), batch 4.
model=(student.arch=vit_custom student.embed_dim=40 student.depth=2 student.num_heads=4
    student.patch_size=4 crops.global_crops_size=16 student.num_register_tokens=1
    student.layerscale=1.0 embed.batch=4)
# run NP LOG [args...]: rdino-embed with random init on the shards of $T.
run() {
    local np=$1 log=$2
    shift 2
    rd_mpirun "$np" "$bin" data.output_dir="$T" --init random "${model[@]}" "$@" >"$log" 2>&1
}

out=$T/embeddings/random-init.h5
if run 1 "$T/r1.log" && $py $check layout "$out" "$T/shards" train,val,test 40 16 >"$T/l1.txt" 2>&1; then
    rd_pass "$suite/layout_and_meta_match_shards"
else
    rd_fail "$suite/layout_and_meta_match_shards" "$(tail -3 "$T/r1.log" "$T/l1.txt")"
fi
if grep -q "summary: 79 images" "$T/r1.log" && grep -q "img/s" "$T/r1.log" &&
    grep -q "peak RSS" "$T/r1.log"; then
    rd_pass "$suite/summary_line"
else
    rd_fail "$suite/summary_line" "$(grep summary "$T/r1.log")"
fi
if h5dump -H "$out" >"$T/dump.txt" 2>&1 && grep -q 'DATASET "cls"' "$T/dump.txt" &&
    grep -q 'ATTRIBUTE "model_config"' "$T/dump.txt"; then
    rd_pass "$suite/h5dump_reads_header"
else
    rd_fail "$suite/h5dump_reads_header" "$(head -3 "$T/dump.txt")"
fi
mv "$out" "$T/r1.h5"

# 2 and 3 ranks write the same path (so even the config attribute matches).
ok=1 why=""
for np in 2 3; do
    if ! run "$np" "$T/r$np.log"; then
        ok=0 why="$np ranks: $(tail -3 "$T/r$np.log")"
    elif ! $py $check same "$T/r1.h5" "$out" >"$T/same.txt" 2>&1; then
        ok=0 why="$np ranks: $(cat "$T/same.txt")"
    fi
    mv "$out" "$T/r$np.h5" 2>/dev/null
done
if [ $ok = 1 ]; then rd_pass "$suite/bit_identical_on_1_2_3_ranks"; else rd_fail "$suite/bit_identical_on_1_2_3_ranks" "$why"; fi

# A split subset and another resolution (24 px: images resampled, pos-embed interpolated).
if run 2 "$T/sub.log" embed.splits=val,test embed.resolution=24 embed.name=sub &&
    $py $check layout "$T/embeddings/sub.h5" "$T/shards" val,test 40 24 >"$T/lsub.txt" 2>&1; then
    rd_pass "$suite/split_subset_at_24px"
else
    rd_fail "$suite/split_subset_at_24px" "$(tail -3 "$T/sub.log" "$T/lsub.txt")"
fi

# A checkpoint written from PyTorch (tests/embed/torch_oracle.py: DINOv2 names, its own config
# with pretrain.augment.mean/std 0.45/0.3) on 24 px shards, so the positional embedding is
# interpolated from the native 16 px: rdino-embed on 2 ranks against PyTorch in float64.
# Tolerance 1e-5 absolute on LayerNorm outputs of size ~1 (measured: about 1e-6).
torch_ok=1
$py -c 'import torch' 2>/dev/null || torch_ok=0
$py tests/shard/make_shard_input.py "$T/pre24" 8 24 8 >/dev/null
rd_mpirun 1 "$RDINO_BIN/rdino-shard" shard.input_dir="$T/pre24" shard.output_dir="$T/s24" \
    shard.num_shards=2 >"$T/s24.log" 2>&1
# embed24 LOG [args...]: rdino-embed on the 24 px shards with the oracle's checkpoint.
embed24() {
    local log=$1
    shift
    rd_mpirun 2 "$bin" data.output_dir="$T" embed.shards_dir="$T/s24" embed.batch=3 "$@" >"$log" 2>&1
}
if [ $torch_ok = 0 ]; then
    for c in trained_teacher_matches_pytorch student_matches_pytorch; do
        rd_skip "$suite/$c" "no torch in /usr/bin/python3"
    done
elif ! $py tests/embed/torch_oracle.py make "$T/ck.h5" "$T/expected.h5" "$T/s24" >"$T/oracle.txt" 2>&1; then
    rd_fail "$suite/trained_teacher_matches_pytorch" "oracle failed: $(tail -3 "$T/oracle.txt")"
else
    if embed24 "$T/t.log" embed.checkpoint="$T/ck.h5" &&
        $py tests/embed/torch_oracle.py compare "$T/embeddings/trained.h5" "$T/expected.h5" teacher 1e-5 >"$T/cmp.txt" 2>&1; then
        rd_pass "$suite/trained_teacher_matches_pytorch"
    else
        rd_fail "$suite/trained_teacher_matches_pytorch" "$(tail -2 "$T/t.log"; cat "$T/cmp.txt")"
    fi
    cat "$T/cmp.txt" >&2
    if embed24 "$T/st.log" embed.checkpoint="$T/ck.h5" embed.model=student embed.name=student &&
        $py tests/embed/torch_oracle.py compare "$T/embeddings/student.h5" "$T/expected.h5" student 1e-5 >"$T/cmp.txt" 2>&1; then
        rd_pass "$suite/student_matches_pytorch"
    else
        rd_fail "$suite/student_matches_pytorch" "$(tail -2 "$T/st.log"; cat "$T/cmp.txt")"
    fi
fi

# The checkpoint's settings are overridable on the command line (here the normalisation); the
# newest checkpoint of <data.output_dir>/pretrain/checkpoints is the default.
if [ $torch_ok = 1 ]; then
    mkdir -p "$T/pretrain/checkpoints"
    cp "$T/ck.h5" "$T/pretrain/checkpoints/step-0000010.h5"
    if embed24 "$T/ov.log" pretrain.augment.mean=0.5 embed.name=override &&
        $py - "$T/embeddings/override.h5" "$T/pretrain/checkpoints/step-0000010.h5" <<'PY' >"$T/ov.txt" 2>&1
import sys, h5py
a = h5py.File(sys.argv[1], "r").attrs
assert abs(a["mean"] - 0.5) < 1e-12 and abs(a["std"] - 0.3) < 1e-12, (a["mean"], a["std"])
assert a["checkpoint"] == sys.argv[2] and a["init"] == "checkpoint", a["checkpoint"]
assert "mean: 0.5" in a["model_config"] and "embed_dim: 40" in a["model_config"], a["model_config"]
PY
    then
        rd_pass "$suite/checkpoint_config_overridable_and_latest_found"
    else
        rd_fail "$suite/checkpoint_config_overridable_and_latest_found" "$(tail -2 "$T/ov.log" "$T/ov.txt")"
    fi
    # damaged checkpoints: cut short, and a tensor missing
    head -c 3000 "$T/ck.h5" >"$T/cut.h5"
    $py -c 'import sys, h5py, shutil; shutil.copy(sys.argv[1], sys.argv[2]); del h5py.File(sys.argv[2], "a")["teacher/backbone/norm.weight"]' "$T/ck.h5" "$T/partial.h5"
    if ! embed24 "$T/cut.log" embed.checkpoint="$T/cut.h5" && grep -q "cut.h5" "$T/cut.log" &&
        ! embed24 "$T/partial.log" embed.checkpoint="$T/partial.h5" &&
        grep "partial.h5" "$T/partial.log" | grep -q "norm.weight"; then
        rd_pass "$suite/damaged_checkpoint_named"
    else
        rd_fail "$suite/damaged_checkpoint_named" "$(tail -1 "$T/cut.log" "$T/partial.log")"
    fi
fi

# The pipeline: rdino-pretrain (tests/pretrain/pretrain_lib.sh's tiny model, 2 steps) on the
# same shards, then rdino-embed with no checkpoint named: the newest checkpoint's teacher, its
# architecture from the checkpoint (32 px native, so 16 px images interpolate the pos-embed).
if [ -x "$RDINO_BIN/rdino-pretrain" ]; then
    source tests/pretrain/pretrain_lib.sh
    pt_tiny_yaml "$T/tiny.yaml"
    ckpt=$T/pipe/pretrain/checkpoints/step-0000002.h5
    if pt_run 1 "$T/pt.log" --config "$T/tiny.yaml" data.output_dir="$T/pipe" \
        pretrain.data.shards_dir="$T/shards" pretrain.max_steps=2 &&
        rd_mpirun 2 "$bin" data.output_dir="$T/pipe" embed.shards_dir="$T/shards" >"$T/pipe.log" 2>&1 &&
        $py $check layout "$T/pipe/embeddings/trained.h5" "$T/shards" train,val,test 32 16 >"$T/lp.txt" 2>&1 &&
        $py - "$T/pipe/embeddings/trained.h5" "$ckpt" <<'PY' >>"$T/lp.txt" 2>&1
import sys, h5py
a = h5py.File(sys.argv[1], "r").attrs
assert a["checkpoint"] == sys.argv[2] and a["encoder"] == "trained", (a["checkpoint"], a["encoder"])
assert "qkv_bias: false" in a["model_config"] and "global_crops_size: 32" in a["model_config"]
PY
    then
        rd_pass "$suite/after_rdino_pretrain_newest_checkpoint"
    else
        rd_fail "$suite/after_rdino_pretrain_newest_checkpoint" "$(tail -2 "$T/pt.log" "$T/pipe.log" "$T/lp.txt" 2>&1)"
    fi
    # That checkpoint with one byte flipped inside a teacher tensor: its Fletcher32 fails, and
    # the error names the file and the tensor (no embeddings written).
    cp "$ckpt" "$T/flipped.h5"
    tensor=teacher/backbone/blocks.0.attn.qkv.weight
    $py - "$T/flipped.h5" "$tensor" <<'PY' >"$T/flip.txt" 2>&1
import sys, h5py
path, name = sys.argv[1], sys.argv[2]
with h5py.File(path, "r") as f:
    offset = f[name].id.get_chunk_info(0).byte_offset
with open(path, "r+b") as f:
    f.seek(offset + 100)
    b = f.read(1)
    f.seek(offset + 100)
    f.write(bytes([b[0] ^ 0x40]))
PY
    if ! rd_mpirun 2 "$bin" data.output_dir="$T/flip" embed.shards_dir="$T/shards" \
        embed.checkpoint="$T/flipped.h5" >"$T/flipped.log" 2>&1 &&
        grep "flipped.h5" "$T/flipped.log" | grep -q "blocks.0.attn.qkv.weight" &&
        [ ! -e "$T/flip/embeddings/trained.h5" ]; then
        rd_pass "$suite/flipped_byte_in_checkpoint_tensor_named"
    else
        rd_fail "$suite/flipped_byte_in_checkpoint_tensor_named" "$(tail -2 "$T/flip.txt" "$T/flipped.log" 2>&1)"
    fi
else
    rd_skip "$suite/after_rdino_pretrain_newest_checkpoint" "$RDINO_BIN/rdino-pretrain not built"
    rd_skip "$suite/flipped_byte_in_checkpoint_tensor_named" "$RDINO_BIN/rdino-pretrain not built"
fi

# Checkpoint errors name the file (or the key).
if ! rd_mpirun 1 "$bin" data.output_dir="$T" embed.checkpoint="$T/no-such.h5" >"$T/ck.log" 2>&1 &&
    grep -q "no-such.h5" "$T/ck.log"; then
    rd_pass "$suite/missing_checkpoint_named"
else
    rd_fail "$suite/missing_checkpoint_named" "$(tail -2 "$T/ck.log")"
fi
if ! rd_mpirun 1 "$bin" data.output_dir="$T/elsewhere" >"$T/ck0.log" 2>&1 &&
    grep -q "embed.checkpoint" "$T/ck0.log"; then
    rd_pass "$suite/no_checkpoint_configured"
else
    rd_fail "$suite/no_checkpoint_configured" "$(tail -2 "$T/ck0.log")"
fi

# jobs/embed.sbatch with a config file (srun replaced by a stand-in that drops its options):
# the same datasets as the command-line run; a missing config argument is refused.
mkdir -p "$T/fakebin"
printf '#!/bin/sh\nwhile [ "${1#-}" != "$1" ]; do shift; done\nexec "$@"\n' >"$T/fakebin/srun"
chmod +x "$T/fakebin/srun"
{
    echo "data: {output_dir: $T}"
    echo "embed: {batch: 4, name: slurm}"
    echo "crops: {global_crops_size: 16}"
    echo "student: {arch: vit_custom, embed_dim: 40, depth: 2, num_heads: 4, patch_size: 4,"
    echo "          num_register_tokens: 1, layerscale: 1.0}"
} >"$T/embed.yaml"
SBATCH_SCRIPT=jobs/embed.sbatch
if ! PATH="$T/fakebin:$PATH" RDINO_BIN="$RDINO_BIN" bash "$SBATCH_SCRIPT" "$T/embed.yaml" --init random \
    >"$T/slurm.log" 2>&1; then
    rd_fail "$suite/sbatch_script" "script failed: $(tail -3 "$T/slurm.log")"
elif ! $py $check same "$T/r1.h5" "$T/embeddings/slurm.h5" --data-only >"$T/same.txt" 2>&1; then
    rd_fail "$suite/sbatch_script" "$(cat "$T/same.txt")"
elif bash "$SBATCH_SCRIPT" >/dev/null 2>&1; then
    rd_fail "$suite/sbatch_script" "accepted a missing config argument"
else
    rd_pass "$suite/sbatch_script"
fi

# A damaged image chunk in shard 2, read by rank 2 of 3: every rank stops, the error names the
# shard, and no output file (final or temporary) is left.
$py tests/shard/check_shards.py flip "$T/shards/shard-00002.h5" 5
if ! run 3 "$T/bad.log" embed.name=bad && grep -q "shard-00002.h5" "$T/bad.log" &&
    [ ! -e "$T/embeddings/bad.h5" ] && [ ! -e "$T/embeddings/.bad.h5.tmp" ]; then
    rd_pass "$suite/damaged_shard_named_no_output"
else
    rd_fail "$suite/damaged_shard_named_no_output" "$(tail -3 "$T/bad.log"; ls -a "$T/embeddings")"
fi
