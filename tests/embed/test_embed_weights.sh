#!/usr/bin/env bash
# rdino-embed --weights: released DINOv2 weights on PNG files against transformers, with the
# shared fixture ../shared/fixtures/hf_dinov2_tiny (README.md there: a Dinov2Model of D 48, its
# snapshot folder, three PNGs and transformers' pooler_output / patch_mean for them):
#   - the snapshot folder (model.safetensors, config.json, preprocessor_config.json: hf
#     preprocessing chosen by itself) reproduces pooler_output (/cls) and patch_mean within 1e-5,
#     and the one 16-bit PNG is reported once as clipped;
#   - 1, 2 and 3 ranks write bit-identical files;
#   - dinov2_original_names.safetensors given as a bare file (facebookresearch/dinov2 names, its
#     folder's config.json and preprocessor_config.json) gives the same numbers bit for bit;
#   - damaged weights (tests/embed/check_weights.py broken) and a preprocessor_config.json with an
#     unknown key stop the program with exit status 1 and a message naming the file and the
#     tensor or key (run under ASan by tests/run.sh build-asan);
#   - hf preprocessing of shards, and two encoders at once, are refused with the reason.
# Tolerance 1e-5 absolute: the fixture's README measures a float32 reimplementation within about
# 1e-5 of last_hidden_state (values of size ~1 after LayerNorm); rdino lands within 2e-6 here,
# while a tanh GELU already moves the outputs by 2e-5.
cd "$(dirname "$0")/../.." || exit 1
source tests/lib.sh
suite=embed/weights
bin=$RDINO_BIN/rdino-embed
py=/usr/bin/python3
check=tests/embed/check_weights.py
shared=$(rd_shared_dir)
F=$shared/fixtures/hf_dinov2_tiny

if [ ! -x "$bin" ]; then
    rd_skip "$suite" "$bin not built"
    exit 0
fi
if [ -z "$shared" ] || [ ! -f "$F/model.safetensors" ]; then
    rd_skip "$suite" "../shared/fixtures/hf_dinov2_tiny is absent (set RDINO_SHARED)"
    exit 0
fi
if ! $py -c 'import h5py, numpy' 2>/dev/null; then
    rd_skip "$suite" "/usr/bin/python3 lacks h5py or numpy (scripts/install-deps.sh)"
    exit 0
fi
rd_tmpdir
T=$RD_TMP
export OMP_NUM_THREADS=1
mkdir -p "$T/png"
for f in png_grey16_700x900 png_grey8_1024x1024 png_grey8_600x500; do
    ln -s "$F/$f.png" "$T/png/$f.png"
done

# run NP LOG ARGS...: rdino-embed on NP ranks; batches of 2, so 3 images make 2 batches.
run() {
    local np=$1 log=$2
    shift 2
    rd_mpirun "$np" "$bin" data.output_dir="$T" embed.batch=2 "$@" >"$log" 2>&1
}

out=$T/embeddings/hf.h5
if run 1 "$T/a1.log" --weights "$F" --images "$T/png" embed.name=hf &&
    $py $check hf "$out" "$F" 1e-5 >"$T/a1.txt" 2>&1; then
    rd_pass "$suite/snapshot_folder_matches_transformers"
else
    rd_fail "$suite/snapshot_folder_matches_transformers" "$(tail -n 3 "$T/a1.log" "$T/a1.txt")"
fi
cat "$T/a1.txt" >&2
if [ "$(grep -c "1 of 3 images were 16-bit grey with samples clipped at 255" "$T/a1.log")" = 1 ]; then
    rd_pass "$suite/clipped_16_bit_warned_once"
else
    rd_fail "$suite/clipped_16_bit_warned_once" "$(grep -i "16-bit" "$T/a1.log")"
fi
mv "$out" "$T/a1.h5"

# 2 and 3 ranks write the same path (so even the config attribute matches).
ok=1 why=""
for np in 2 3; do
    if ! run "$np" "$T/a$np.log" --weights "$F" --images "$T/png" embed.name=hf; then
        ok=0 why="$np ranks: $(tail -n 3 "$T/a$np.log")"
    elif ! $py tests/embed/check_embeddings.py same "$T/a1.h5" "$out" >"$T/same.txt" 2>&1; then
        ok=0 why="$np ranks: $(cat "$T/same.txt")"
    fi
    if [ "$np" = 2 ] && [ "$(grep -c "16-bit grey with samples clipped" "$T/a$np.log")" != 1 ]; then
        ok=0 why="2 ranks: the clipping warning is not printed exactly once"
    fi
    mv "$out" "$T/a$np.h5" 2>/dev/null
done
if [ $ok = 1 ]; then rd_pass "$suite/bit_identical_on_1_2_3_ranks"; else rd_fail "$suite/bit_identical_on_1_2_3_ranks" "$why"; fi

# facebookresearch/dinov2's names, one file (its folder's config.json gives the head count).
if run 2 "$T/o.log" --weights "$F/dinov2_original_names.safetensors" --images "$T/png" \
    --output "$T/orig.h5" && $py $check hf "$T/orig.h5" "$F" 1e-5 >"$T/o.txt" 2>&1 &&
    $py tests/embed/check_embeddings.py same "$T/a1.h5" "$T/orig.h5" --data-only >>"$T/o.txt" 2>&1; then
    rd_pass "$suite/original_names_file_gives_the_same"
else
    rd_fail "$suite/original_names_file_gives_the_same" "$(tail -n 3 "$T/o.log" "$T/o.txt")"
fi

# Damaged weights: exit status 1 (an error, not a crash) naming the file and the tensor or key.
$py $check broken "$F" "$T/bad" >"$T/broken.txt" 2>&1 || rd_fail "$suite/broken_weights" "$(cat "$T/broken.txt")"
expect_error() { # NAME WEIGHTS WORD...: the run fails with status 1 and names WEIGHTS and WORDs
    local name=$1 weights=$2 status
    shift 2
    run 1 "$T/$name.log" --weights "$weights" --images "$T/png" --output "$T/$name.h5"
    status=$?
    if [ $status != 1 ]; then
        echo "$name: exit status $status, 1 expected"
        return
    fi
    for word in "$weights" "$@"; do
        grep -q -- "$word" "$T/$name.log" || echo "$name: no '$word' in: $(grep -i error "$T/$name.log" | head -2)"
    done
    [ ! -e "$T/$name.h5" ] || echo "$name: an output file was left"
}
{
    expect_error shape "$T/bad/shape" "encoder.layer.1.mlp.fc1.weight" "100"
    expect_error nan "$T/bad/nan" "encoder.layer.0.attention.attention.query.weight"
    expect_error unknown "$T/bad/unknown" "encoder.layer.0.mlp.fc3.weight"
    expect_error missing "$T/bad/missing" "encoder.layer.1.norm2.bias"
    expect_error truncated "$T/bad/truncated" "model.safetensors"
    expect_error bare "$T/bad/bare/dinov2_original_names.safetensors" "config.json"
    expect_error badproc "$T/bad/badproc" "preprocessor_config.json" "do_pad"
    expect_error absent "$T/bad/no-such-folder" "No such file"
} >"$T/errors.txt"
if [ ! -s "$T/errors.txt" ]; then
    rd_pass "$suite/damaged_weights_named_exit_1"
else
    rd_fail "$suite/damaged_weights_named_exit_1" "$(head -c 1500 "$T/errors.txt")"
fi

# hf preprocessing is transformers' pipeline on PNG files; shards are refused with the reason.
if ! run 1 "$T/hfshards.log" --weights "$F" embed.preprocess=hf &&
    grep -q "embed.images" "$T/hfshards.log" && grep -q "shards" "$T/hfshards.log"; then
    rd_pass "$suite/hf_on_shards_refused"
else
    rd_fail "$suite/hf_on_shards_refused" "$(tail -n 2 "$T/hfshards.log")"
fi
if ! run 1 "$T/two.log" --weights "$F" --init random --images "$T/png" &&
    grep -q "embed.weights" "$T/two.log" && grep -q "embed.init: random" "$T/two.log"; then
    rd_pass "$suite/two_encoders_refused"
else
    rd_fail "$suite/two_encoders_refused" "$(tail -n 2 "$T/two.log")"
fi
