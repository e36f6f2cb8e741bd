#!/usr/bin/env bash
# One full DINOv2 training step (ViT-S/16, 2x224 + 8x96 crops, K = 65536, B = 8, Sinkhorn,
# iBOT, KoLeo, AdamW, EMA) in rdino vs the PyTorch oracle of the same step (fp32, same threads).
# Settings: RDINO_BENCH_THREADS (default: all cores), RDINO_BENCH_STEP="B STEPS K N_LOCAL"
# (default "8 2 65536 8"). The oracle is tests/reference/dinov2_oracle.py (or RDINO_ORACLE_DIR).
set -u
cd "$(dirname "$0")/.."
source tests/lib.sh
BUILD=${RDINO_BUILD:-build}
read -r B STEPS K NL <<<"${RDINO_BENCH_STEP:-8 2 65536 8}"
THREADS=${RDINO_BENCH_THREADS:-$(nproc)}
export OMP_NUM_THREADS=$THREADS
echo "threads: $THREADS, B=$B, steps=$STEPS (+1 warm-up), K=$K, local crops=$NL"
ours=$("$BUILD/bench/bench_step" "$B" "$STEPS" "$K" "$NL") || { echo "$ours"; exit 1; }
echo "$ours"
oracle_dir=${RDINO_ORACLE_DIR:-tests/reference}
if [ ! -f "$oracle_dir/dinov2_oracle.py" ]; then
    echo "peer skipped: $oracle_dir/dinov2_oracle.py not found"
    exit 0
fi
peer=$(/usr/bin/python3 bench/bench_step_peer.py "$oracle_dir" "$B" "$STEPS" "$K" "$NL" \
       "$THREADS") || { echo "$peer"; exit 1; }
echo "$peer"
a=$(awk '/^RESULT step images\/s/ {print $4}' <<<"$ours")
b=$(awk '/^RESULT peer images\/s/ {print $4}' <<<"$peer")
awk -v a="$a" -v b="$b" 'BEGIN { printf "RESULT step speed ratio (rdino/PyTorch): %.2f x\n", a / b }'
