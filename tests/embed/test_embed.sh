#!/usr/bin/env bash
# rdino-embed end to end on shards made here (tests/io/make_shard_input.py + rdino-shard) with a
# tiny random-init ViT: the layout read back with h5py against the shards
# (tests/embed/check_embeddings.py) and h5dump, bit-identical output on 1, 2 and 3 ranks, a
# split subset and another resolution, and failures (missing checkpoint, damaged shard on 3
# ranks) that name the file and leave no output behind.
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
$py tests/io/make_shard_input.py "$T/pre" 40 16 8 >/dev/null
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

# Checkpoint errors name the file (or the key).
if ! rd_mpirun 1 "$bin" data.output_dir="$T" embed.checkpoint="$T/no-such.h5" >"$T/ck.log" 2>&1 &&
    grep -q "no-such.h5" "$T/ck.log"; then
    rd_pass "$suite/missing_checkpoint_named"
else
    rd_fail "$suite/missing_checkpoint_named" "$(tail -2 "$T/ck.log")"
fi
if ! rd_mpirun 1 "$bin" data.output_dir="$T" >"$T/ck0.log" 2>&1 &&
    grep -q "embed.checkpoint" "$T/ck0.log"; then
    rd_pass "$suite/no_checkpoint_configured"
else
    rd_fail "$suite/no_checkpoint_configured" "$(tail -2 "$T/ck0.log")"
fi

# A damaged image chunk in shard 2, read by rank 2 of 3: every rank stops, the error names the
# shard, and no output file (final or temporary) is left.
$py tests/io/check_shards.py flip "$T/shards/shard-00002.h5" 5
if ! run 3 "$T/bad.log" embed.name=bad && grep -q "shard-00002.h5" "$T/bad.log" &&
    [ ! -e "$T/embeddings/bad.h5" ] && [ ! -e "$T/embeddings/.bad.h5.tmp" ]; then
    rd_pass "$suite/damaged_shard_named_no_output"
else
    rd_fail "$suite/damaged_shard_named_no_output" "$(tail -3 "$T/bad.log"; ls -a "$T/embeddings")"
fi
