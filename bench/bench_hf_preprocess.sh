#!/usr/bin/env bash
# Hugging Face preprocessing (microsoft/rad-dino's BitImageProcessor: PNG -> convert("RGB") ->
# bicubic shorter side 518 -> centre crop 518 -> rescale, normalise; float32 [3, 518, 518]) by
# rdino (bench/bench_hf_preprocess.c: rd_png_read_stored + rd_hf_preprocess_png) against the same
# steps in Pillow + numpy (bench/peers/hf_preprocess_pillow.py, which equals transformers bit for
# bit), one core each, on the same files in the same run. Both print a CRC-32 of all outputs; the
# run fails unless they agree, so the two compute the same pixels.
# Images: RDINO_BENCH_IMAGES (default 64) 1024x1024 grey PNGs of each kind: 8-bit, and 16-bit
# holding 12-bit data (0..4095, as PNGs converted from DICOM often do; Pillow clips them at 255).
# Rates are per CPU second of each (single-threaded) process, so time-slicing on a shared node
# does not count; both programs alternate twice and the better run of each counts.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${RDINO_BUILD:-build}
N=${RDINO_BENCH_IMAGES:-64}
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/rdino-bench-XXXXXX")
trap 'rm -rf "$tmp"' EXIT

/usr/bin/python3 - "$tmp" "$N" <<'PY'
import sys
import numpy as np
from PIL import Image
out, n, size = sys.argv[1], int(sys.argv[2]), 1024
rng = np.random.default_rng(1)
yy, xx = np.mgrid[0:size, 0:size] / size
for i in range(n):
    img = 0.55 + 0.25 * yy + 0.05 * np.sin(6.28 * xx * (2 + i % 3))
    for cx, cy, s, a in ((0.32, 0.45, 0.13, -0.35), (0.68, 0.45, 0.13, -0.35), (0.5, 0.55, 0.05, 0.2)):
        cx, cy = cx + rng.normal(0, 0.02), cy + rng.normal(0, 0.02)
        img += a * np.exp(-(((xx - cx) / s) ** 2 + ((yy - cy) / (1.8 * s)) ** 2) / 2)
    img = np.clip(img + rng.normal(0, 0.012, img.shape), 0, 1)
    Image.fromarray((img * 255).astype(np.uint8), "L").save(f"{out}/grey8_{i:03d}.png")
    im16 = Image.new("I;16", (size, size))
    im16.frombytes((img * 4095).astype("<u2").tobytes())
    im16.save(f"{out}/grey16_{i:03d}.png")
PY
echo "images: $N x 1024x1024 grey PNGs each of 8 bits ($(du -cm "$tmp"/grey8_* | tail -1 | cut -f1) MiB) and 16 bits ($(du -cm "$tmp"/grey16_* | tail -1 | cut -f1) MiB); $(getconf _NPROCESSORS_ONLN) cores, load $(cut -d' ' -f1 /proc/loadavg)"

value() { sed -n "s|^$1: \([0-9a-f.]*\).*|\1|p"; }
ratios=()
for kind in grey8 grey16; do
    files=("$tmp"/${kind}_*.png)
    best_ours=0 best_pillow=0 ours_out="" crc_ours="" crc_pillow=""
    for round in 1 2; do
        out=$("$BUILD/bench/bench_hf_preprocess" "${files[@]}")
        echo "$kind round $round rdino:  $(echo "$out" | tr '\n' ';')"
        rate=$(echo "$out" | value "images/s") crc_ours=$(echo "$out" | value crc32)
        if awk -v a="$rate" -v b="$best_ours" 'BEGIN { exit !(a > b) }'; then best_ours=$rate ours_out=$out; fi
        out=$(/usr/bin/python3 bench/peers/hf_preprocess_pillow.py "${files[@]}")
        echo "$kind round $round pillow: $(echo "$out" | tr '\n' ';')"
        rate=$(echo "$out" | value "images/s") crc_pillow=$(echo "$out" | value crc32)
        if awk -v a="$rate" -v b="$best_pillow" 'BEGIN { exit !(a > b) }'; then best_pillow=$rate; fi
    done
    if [ "$crc_ours" != "$crc_pillow" ]; then
        echo "RESULT hf_preprocess $kind: FAILED (crc32 rdino $crc_ours, pillow $crc_pillow)"
        exit 1
    fi
    ratio=$(awk -v a="$best_ours" -v b="$best_pillow" 'BEGIN { printf "%.2f", a / b }')
    ratios+=("$ratio")
    echo "RESULT hf_preprocess $kind images/s per core: $best_ours images/s (pillow $best_pillow; outputs identical, crc32 $crc_ours)"
    echo "RESULT hf_preprocess $kind ratio: $ratio"
    echo "RESULT hf_preprocess $kind time split: $(echo "$ours_out" | sed -n 's/^ms per image: //p') ms per image"
done
echo "RESULT hf_preprocess ratio: $(awk -v a="${ratios[0]}" -v b="${ratios[1]}" 'BEGIN { printf "%.2f", sqrt(a * b) }') (geometric mean of 8 and 16 bits)"
