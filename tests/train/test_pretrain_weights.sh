#!/usr/bin/env bash
# rdino-pretrain from released weights and back (src/train/pretrain_weights.c), on the shared
# cxr_small sample with the shared transformers fixture hf_dinov2_tiny (D 48, 2 blocks, 3 heads,
# patch 14, a 37 x 37 position embedding for 518 px) trained on 56 px crops:
#   - starting from the snapshot folder, the student before any update is the fixture's weights
#     bit for bit (learning rate 0 for both steps, so the checkpoint after 2 steps shows step 0's
#     student), and the stored configuration keeps the weights' grid and interpolation;
#   - with a learning rate the 2 steps (on 2 ranks) train the student with finite losses, and
#     --export writes the teacher: its DINOv2-name backbone and head files equal the
#     checkpoint's teacher bit for bit;
#   - the export loads back bit-identically: as student.pretrained_weights (the folder, and its
#     original-name file alone) with dino.head_weights, and in rdino-embed, whose embeddings of
#     the shards equal those of the checkpoint;
#   - a student that does not fit the weights, and a head file of another shape, end with exit
#     status 1 naming the tensor or the head count.
cd "$(dirname "$0")/../.." || exit 1
source tests/lib.sh
suite=train/pretrain_weights
py=/usr/bin/python3
check=tests/train/check_pretrain_weights.py
shared=$(rd_shared_dir)
F=$shared/fixtures/hf_dinov2_tiny
C=$shared/data/cxr_small

for b in rdino-preprocess rdino-shard rdino-pretrain rdino-embed; do
    if [ ! -x "$RDINO_BIN/$b" ]; then
        rd_skip "$suite" "$RDINO_BIN/$b not built"
        exit 0
    fi
done
if [ -z "$shared" ] || [ ! -f "$F/model.safetensors" ] || [ ! -f "$C/metadata.csv" ]; then
    rd_skip "$suite" "../shared/fixtures/hf_dinov2_tiny or ../shared/data/cxr_small is absent (set RDINO_SHARED)"
    exit 0
fi
if ! $py -c 'import h5py, numpy' 2>/dev/null; then
    rd_skip "$suite" "/usr/bin/python3 lacks h5py or numpy (scripts/install-deps.sh)"
    exit 0
fi
rd_tmpdir
T=$RD_TMP
export OMP_NUM_THREADS=1

data=(--config configs/cxr_small.yaml data.output_dir="$T/cxr" data.metadata_csv="$C/metadata.csv"
    data.image_root="$C/images")
if ! "$RDINO_BIN/rdino-preprocess" "${data[@]}" >"$T/pre.log" 2>&1 ||
    ! "$RDINO_BIN/rdino-shard" "${data[@]}" >"$T/shard.log" 2>&1; then
    rd_fail "$suite" "shards: $(tail -n 3 "$T/pre.log" "$T/shard.log")"
    exit 0
fi
# The fixture's shape; 56 px global and 28 px local crops (4 x 4 and 2 x 2 patches).
model=(student.embed_dim=48 student.depth=2 student.num_heads=3 student.patch_size=14
    student.layerscale=1.0 crops.global_crops_size=56 crops.local_crops_size=28
    pretrain.max_steps=2 pretrain.global_batch=8 pretrain.group_size=4 pretrain.checkpoint_every=2)
frozen=(optim.base_lr=0 optim.min_lr=0) # warmup from 0 to 0: no update at all
pt() { # NP NAME ARGS...: rdino-pretrain into $T/NAME, log $T/NAME.log
    local np=$1 name=$2
    shift 2
    rd_mpirun "$np" "$RDINO_BIN/rdino-pretrain" "${data[@]}" "${model[@]}" \
        pretrain.output_dir="$T/$name" "$@" >"$T/$name.log" 2>&1
}
ckpt() { echo "$T/$1/checkpoints/step-0000002.h5"; }

if pt 1 start student.pretrained_weights="$F" "${frozen[@]}" &&
    $py $check starts_from "$F/dinov2_original_names.safetensors" "$(ckpt start)" >"$T/start.txt" 2>&1; then
    rd_pass "$suite/starts_from_the_snapshot_bit_for_bit"
else
    rd_fail "$suite/starts_from_the_snapshot_bit_for_bit" "$(tail -n 3 "$T/start.log" "$T/start.txt")"
fi

if pt 2 train student.pretrained_weights="$F" optim.warmup_epochs=0 --export "$T/exp" \
    pretrain.export_head=true pretrain.export_original_names=true &&
    $py $check trained "$F/dinov2_original_names.safetensors" "$(ckpt train)" "$T/train/metrics.jsonl" >"$T/train.txt" 2>&1 &&
    $py $check exported "$T/exp" "$(ckpt train)" >>"$T/train.txt" 2>&1; then
    rd_pass "$suite/trains_on_2_ranks_and_exports_the_teacher"
else
    rd_fail "$suite/trains_on_2_ranks_and_exports_the_teacher" "$(tail -n 3 "$T/train.log" "$T/train.txt")"
fi
cat "$T/train.txt" >&2

ok=1 why=""
for weights in "$T/exp" "$T/exp/backbone_compatible.safetensors"; do
    if ! pt 1 import student.pretrained_weights="$weights" dino.head_weights="$T/exp/dino_head.safetensors" \
        "${frozen[@]}" pretrain.resume=false ||
        ! $py $check same "$(ckpt train)" teacher "$(ckpt import)" student backbone dino_head >"$T/import.txt" 2>&1; then
        ok=0 why="$weights: $(tail -n 3 "$T/import.log" "$T/import.txt")"
    fi
done
if [ $ok = 1 ]; then rd_pass "$suite/export_imports_bit_identically"; else rd_fail "$suite/export_imports_bit_identically" "$why"; fi

# rdino-embed: the checkpoint's teacher and its export give the same embeddings of the shards.
out=$T/emb.h5
if rd_mpirun 2 "$RDINO_BIN/rdino-embed" "${data[@]}" embed.checkpoint="$(ckpt train)" --output "$out" >"$T/e1.log" 2>&1 &&
    mv "$out" "$T/from_checkpoint.h5" &&
    rd_mpirun 2 "$RDINO_BIN/rdino-embed" "${data[@]}" --weights "$T/exp" --output "$out" >"$T/e2.log" 2>&1 &&
    $py tests/embed/check_embeddings.py same "$T/from_checkpoint.h5" "$out" --data-only >"$T/e.txt" 2>&1; then
    rd_pass "$suite/export_embeds_as_the_checkpoint"
else
    rd_fail "$suite/export_embeds_as_the_checkpoint" "$(tail -n 3 "$T/e1.log" "$T/e2.log" "$T/e.txt" 2>&1)"
fi

# Weights that do not fit: status 1 and the reason.
expect_error() { # NAME WORD ARGS...
    local name=$1 word=$2 status
    shift 2
    pt 1 "$name" "$@"
    status=$?
    [ $status = 1 ] || echo "$name: exit status $status, 1 expected"
    grep "error" "$T/$name.log" | grep -q -- "$word" || echo "$name: no '$word' in: $(grep error "$T/$name.log" | tail -n 1)"
}
{
    expect_error deeper "blocks.2.norm1.weight" student.pretrained_weights="$F" student.depth=3
    expect_error heads "attention heads" student.pretrained_weights="$F" student.num_heads=6
    expect_error head "last_layer.weight_g" dino.head_weights="$T/exp/dino_head.safetensors" dino.head_n_prototypes=64
} >"$T/errors.txt"
if [ ! -s "$T/errors.txt" ]; then
    rd_pass "$suite/misfits_named_exit_1"
else
    rd_fail "$suite/misfits_named_exit_1" "$(cat "$T/errors.txt")"
fi

# The shipped recipe loads (its paths are the user's to set).
if "$RDINO_BIN/rdino-pretrain" --config configs/raddino_continue.yaml --print-config >"$T/recipe.txt" 2>&1 &&
    grep -q "pretrained_weights: /models/dinov2-base" "$T/recipe.txt" &&
    grep -q "global_crops_size: 518" "$T/recipe.txt"; then
    rd_pass "$suite/raddino_continue_config_loads"
else
    rd_fail "$suite/raddino_continue_config_loads" "$(tail -n 3 "$T/recipe.txt")"
fi
