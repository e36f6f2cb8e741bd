#!/usr/bin/env bash
# Per-image preprocessing (rd_prep_image: decode, resize shorter side to 518 with the cubic
# kernel, centre crop, min-max to uint8) against the same pipeline in Pillow + numpy
# (bench/peers/pillow_preprocess.py), one core each, on the same files in the same run.
# Images: RDINO_BENCH_IMAGES (default 50) generated 1024x1024 8-bit grey PNGs like NIH's: a smooth
# anatomy-like field plus noise, so they compress like real X-rays (~550 KB each).
# Rates are per CPU second of each (single-threaded) process, so time-slicing on a shared node
# does not count; both programs alternate twice and the better run of each counts.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${RDINO_BUILD:-build}
N=${RDINO_BENCH_IMAGES:-50}
SIZE=518
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
    img += rng.normal(0, 0.012, img.shape)
    Image.fromarray(np.clip(img * 255, 0, 255).astype(np.uint8), "L").save(f"{out}/img{i:03d}.png")
PY
files=("$tmp"/img*.png)
mib=$(du -sm "$tmp" | cut -f1)
echo "images: ${#files[@]} x 1024x1024 8-bit grey, $mib MiB; size $SIZE; $(getconf _NPROCESSORS_ONLN) cores, load $(cut -d' ' -f1 /proc/loadavg)"

value() { sed -n "s|^$1: \([0-9.]*\).*|\1|p"; }
best_ours=0 best_pillow=0 ours_out="" pillow_out=""
for round in 1 2; do
    out=$("$BUILD/bench/bench_preprocess" "$SIZE" cubic "${files[@]}")
    echo "round $round rdino:  $(echo "$out" | tr '\n' ';')"
    rate=$(echo "$out" | value "images/s")
    if awk -v a="$rate" -v b="$best_ours" 'BEGIN { exit !(a > b) }'; then best_ours=$rate ours_out=$out; fi
    out=$(/usr/bin/python3 bench/peers/pillow_preprocess.py "$SIZE" "${files[@]}")
    echo "round $round pillow: $(echo "$out" | tr '\n' ';')"
    rate=$(echo "$out" | value "images/s")
    if awk -v a="$rate" -v b="$best_pillow" 'BEGIN { exit !(a > b) }'; then best_pillow=$rate pillow_out=$out; fi
done
bspline=$("$BUILD/bench/bench_preprocess" "$SIZE" bspline "${files[@]}" | value "images/s")

echo "RESULT preprocess images/s per core: $best_ours images/s"
echo "RESULT preprocess pillow images/s: $best_pillow images/s"
echo "RESULT preprocess vs pillow ratio: $(awk -v a="$best_ours" -v b="$best_pillow" 'BEGIN { printf "%.2f", a / b }')"
echo "RESULT preprocess time split: $(echo "$ours_out" | sed -n 's/^ms per image: //p') ms per image"
echo "RESULT preprocess bspline images/s per core: $bspline images/s"
echo "RESULT preprocess peak RSS: $(echo "$ours_out" | value "peak RSS MiB") MiB (pillow $(echo "$pillow_out" | value "peak RSS MiB") MiB)"
