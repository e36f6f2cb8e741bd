#!/usr/bin/env bash
# The pretraining data path (shards -> crops, masks, drop-path subsets) against a Pillow peer of
# DINOv2's DataAugmentationDINO in the same run, and its overlap with compute.
#  1. Throughput on one core, prefetch off: build/bench/bench_loader rate (read + 2 x 224 + 8 x 96
#     crops per image, B = 8) vs bench/peers/dinov2_augment.py (h5py + Pillow + torch blur, one
#     thread); ratio = ours / peer (batches/s).
#  2. Data wait with prefetch: each step followed by RDINO_BENCH_LOADER_COMPUTE seconds (default 6,
#     a ViT-B step on a node) of busy compute on every OpenMP thread; the training program's goal
#     is a wait below 5 % of the step time. B = 8 and B = 64.
# Knobs: RDINO_BENCH_DIR (default BUILD/bench-loader), RDINO_BENCH_LOADER_IMAGES (512),
# RDINO_BENCH_LOADER_SIZE (518), RDINO_BENCH_LOADER_STEPS (20), RDINO_BENCH_LOADER_COMPUTE (6),
# RDINO_BENCH_LOADER_OVERLAP_STEPS (4).
set -euo pipefail
cd "$(dirname "$0")/.."
source tests/lib.sh
BUILD=${RDINO_BUILD:-build}
n=${RDINO_BENCH_LOADER_IMAGES:-512}
size=${RDINO_BENCH_LOADER_SIZE:-518}
steps=${RDINO_BENCH_LOADER_STEPS:-20}
compute=${RDINO_BENCH_LOADER_COMPUTE:-6}
overlap_steps=${RDINO_BENCH_LOADER_OVERLAP_STEPS:-4}
dir=${RDINO_BENCH_DIR:-$BUILD/bench-loader}
rm -rf "$dir"
mkdir -p "$dir"
trap 'rm -rf "$dir"' EXIT

"$BUILD/bench/bench_loader" make "$dir/shards" "$n" "$size"
echo "loader: $n images ${size}x${size} uint8 in $dir, $(nproc) cores; load:$(uptime | sed "s/.*load average://")"

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ours_runs=() peer_runs=()
for _ in 1 2 3; do
    out=$(OMP_NUM_THREADS=1 "$BUILD/bench/bench_loader" rate "$dir/shards" 8 "$steps")
    echo "$out"
    ours_runs+=("$(echo "$out" | awk '{ print $3 }')")
    peer=$(OMP_NUM_THREADS=1 /usr/bin/python3 bench/peers/dinov2_augment.py "$dir/shards" 8 "$steps")
    peer_runs+=("$(echo "$peer" | awk '{ print $2 }')")
done
ours=$(printf '%s\n' "${ours_runs[@]}" | median)
peer=$(printf '%s\n' "${peer_runs[@]}" | median)
echo "RESULT loader_rate_B8: $ours batches/s (median of ${ours_runs[*]}; one thread, prefetch off)"
echo "RESULT pillow_dinov2_augment_B8: $peer batches/s (median of ${peer_runs[*]}; per CPU second)"
awk -v o="$ours" -v p="$peer" 'BEGIN { printf "RESULT loader_rate_B8 ratio: %.2f (ours/Pillow peer)\n", o / p }'

for b in 8 64; do
    "$BUILD/bench/bench_loader" overlap "$dir/shards" "$b" "$overlap_steps" "$compute"
done
