#!/usr/bin/env bash
# rdino-embed with embed.precision: bf16 (docs/BF16.md) against the same run in fp32:
#   - the HF fixture weights (../shared/fixtures/hf_dinov2_tiny, its three PNGs, hf
#     preprocessing) and a ViT trained for 40 steps on ../shared/data/cxr_small
#     (configs/cxr_small.yaml, its shards at 64 px), plus the random initialisation of that ViT:
#     cosine >= 0.999 to fp32 for /cls and /patch_mean of every image, on the emulated path
#     (RDINO_BF16=emulate, any CPU) and on RDINO_BF16=force (AVX512-BF16 where the CPU has it);
#   - the two paths write bit-identical datasets (where both run: else force is emulated too);
#   - RDINO_BF16=off: one warning, then exactly the fp32 file's datasets.
# Each part SKIPs when its shared input is absent.
cd "$(dirname "$0")/../.." || exit 1
source tests/lib.sh
suite=embed/bf16
bin=$RDINO_BIN/rdino-embed
py=/usr/bin/python3
check=tests/embed/check_embeddings.py
MIN=0.999
shared=$(rd_shared_dir)

if [ ! -x "$bin" ]; then
    rd_skip "$suite" "$bin not built"
    exit 0
fi
if ! $py -c 'import h5py, numpy' 2>/dev/null; then
    rd_skip "$suite" "/usr/bin/python3 lacks h5py or numpy (scripts/install-deps.sh)"
    exit 0
fi
rd_tmpdir
T=$RD_TMP
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1

# compare NAME LABEL EMBED-ARGS...: rdino-embed in fp32, in bf16 emulated, in bf16 forced and in
# bf16 with RDINO_BF16=off (1 rank; logs and files under $T/NAME.*), then the checks above.
compare() {
    local name=$1 label=$2 ok=1 why=""
    shift 2
    for run in fp32:auto:fp32 emu:emulate:bf16 force:force:bf16 off:off:bf16; do
        IFS=: read -r tag mode precision <<<"$run"
        if ! RDINO_BF16=$mode rd_mpirun 1 "$bin" "$@" embed.precision="$precision" \
            --output "$T/$name.$tag.h5" >"$T/$name.$tag.log" 2>&1; then
            rd_fail "$suite/$label" "$tag run: $(tail -n 3 "$T/$name.$tag.log")"
            return
        fi
    done
    for tag in emu force; do
        if $py $check cosine "$T/$name.fp32.h5" "$T/$name.$tag.h5" $MIN >"$T/$name.$tag.txt" 2>&1; then
            echo "$label, RDINO_BF16=$tag: $(cat "$T/$name.$tag.txt")" >&2
        else
            ok=0 why="$why $tag: $(cat "$T/$name.$tag.txt")"
        fi
    done
    if ! grep -q "on the emulated-bf16 path" "$T/$name.emu.log"; then
        ok=0 why="$why emulate did not run the emulated path;"
    fi
    [ $ok = 1 ] && rd_pass "$suite/$label/cosine_to_fp32_at_least_$MIN" ||
        rd_fail "$suite/$label/cosine_to_fp32_at_least_$MIN" "$why"
    if $py $check same "$T/$name.emu.h5" "$T/$name.force.h5" --data-only >"$T/$name.same.txt" 2>&1; then
        rd_pass "$suite/$label/emulated_equals_$(grep -o 'on the [a-z0-9-]* path' "$T/$name.force.log" | cut -d' ' -f3)"
    else
        rd_fail "$suite/$label/emulated_equals_hardware" "$(cat "$T/$name.same.txt")"
    fi
    if [ "$(grep -c "embed.precision: bf16 computes in fp32 here: RDINO_BF16=off" "$T/$name.off.log")" = 1 ] &&
        $py $check same "$T/$name.fp32.h5" "$T/$name.off.h5" --data-only >"$T/$name.off.txt" 2>&1; then
        rd_pass "$suite/$label/off_warns_once_and_is_fp32"
    else
        rd_fail "$suite/$label/off_warns_once_and_is_fp32" "$(grep -i precision "$T/$name.off.log") $(cat "$T/$name.off.txt" 2>/dev/null)"
    fi
}

F=$shared/fixtures/hf_dinov2_tiny
if [ -n "$shared" ] && [ -f "$F/model.safetensors" ]; then
    mkdir -p "$T/png"
    for f in png_grey16_700x900 png_grey8_1024x1024 png_grey8_600x500; do
        ln -s "$F/$f.png" "$T/png/$f.png"
    done
    compare hf hf_fixture data.output_dir="$T" embed.batch=2 --weights "$F" --images "$T/png"
else
    rd_skip "$suite/hf_fixture" "../shared/fixtures/hf_dinov2_tiny is absent (set RDINO_SHARED)"
fi

C=$shared/data/cxr_small
if [ -z "$shared" ] || [ ! -f "$C/metadata.csv" ]; then
    rd_skip "$suite/cxr_small" "../shared/data/cxr_small is absent (set RDINO_SHARED)"
    exit 0
fi
data=(--config configs/cxr_small.yaml data.output_dir="$T/cxr" data.metadata_csv="$C/metadata.csv"
    data.image_root="$C/images")
for stage in preprocess shard pretrain; do
    if ! rd_mpirun 2 "$RDINO_BIN/rdino-$stage" "${data[@]}" >"$T/$stage.log" 2>&1; then
        rd_fail "$suite/cxr_small" "rdino-$stage: $(tail -n 3 "$T/$stage.log")"
        exit 0
    fi
done
compare trained cxr_small_trained "${data[@]}"
compare random cxr_small_random "${data[@]}" --init random
