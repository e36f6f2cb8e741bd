#!/usr/bin/env bash
# rdino-pretrain end to end (shards -> loader with prefetch -> step with the MPI hooks) at
# ViT-S/16, 2 x 224 + 8 x 96 crops, shared head K = 65536 (2048/256), Sinkhorn, iBOT, KoLeo,
# no drop path (as the peer), B images per rank, on synthetic phantoms (256 px shards):
#   1 rank x 2 threads, 2 ranks x 1 thread (B each: global 2B), 1 rank x 1 thread,
# against the PyTorch oracle step (bench/bench_step_peer.py: fp32, same threads, tensors in
# memory: no data loading) on 2 and 1 threads. Reported: images/s of the steps after the first
# (which has no prefetched batch), the ratios, the 1 -> 2 rank scaling at the same per-rank
# batch, and the fractions of step time waiting for data and inside MPI (metrics.jsonl); then
# the all-reduce microbenchmark (bench_allreduce) for docs/SCALING.md.
#   RDINO_BENCH_PRETRAIN="STEPS B" (default "3 8"), RDINO_BENCH_DIR (data; default BUILD/bench-pretrain)
set -u
cd "$(dirname "$0")/.."
source tests/lib.sh
source tests/pretrain/pretrain_lib.sh
BUILD=${RDINO_BUILD:-build}
RDINO_BIN=$BUILD/bin
read -r STEPS B <<<"${RDINO_BENCH_PRETRAIN:-3 8}"
D=${RDINO_BENCH_DIR:-$BUILD/bench-pretrain}
mkdir -p "$D"
D=$(cd "$D" && pwd)
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores; STEPS=$STEPS B=$B"

if [ ! -f "$D/out/shards/index.json" ]; then
    cat >"$D/data.yaml" <<EOF
data: {format: nih, output_dir: $D/out, metadata_csv: $D/out/synth/metadata.csv, image_root: $D/out/synth/images}
synth: {n_patients: 24, images_per_patient: [1, 2], size_range: [256, 320], seed: 1}
preprocess: {size: 256, resample: bspline}
shard: {images_per_shard: 32}
EOF
    for stage in synth preprocess shard; do
        "$RDINO_BIN/rdino-$stage" --config "$D/data.yaml" >"$D/$stage.log" 2>&1 ||
            { echo "rdino-$stage failed (see $D/$stage.log)"; exit 1; }
    done
fi
cat >"$D/vits.yaml" <<EOF
student: {arch: vit_small, patch_size: 16, drop_path_rate: 0.0}
crops: {global_crops_size: 224, local_crops_size: 96, local_crops_number: 8}
train: {batch_size_per_gpu: $B, centering: sinkhorn_knopp}
pretrain: {max_steps: $STEPS, group_size: $B, checkpoint_minutes: 0, metrics_every: 1}
EOF

# run NAME RANKS THREADS: images/s, data-wait and communication fractions of steps >= 1
run() {
    local name=$1 np=$2 threads=$3 out="$D/run-$1"
    rm -rf "$out"
    if ! OMP_NUM_THREADS=$threads rd_mpirun "$np" "$RDINO_BIN/rdino-pretrain" --config "$D/data.yaml" \
        --config "$D/vits.yaml" pretrain.threads="$threads" pretrain.output_dir="$out" --no-resume \
        >"$D/$name.log" 2>&1; then
        echo "run $name failed: $(grep -m1 error "$D/$name.log")"
        return 1
    fi
    grep -E "trainer memory|^summary" "$D/$name.log" | sed 's/^/  /'
    "$PT_PY" - "$out/metrics.jsonl" "$name" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])][1:]
step = sum(r["step_seconds"] for r in rows) / len(rows)
gb = rows[0]["images_per_second"] * rows[0]["step_seconds"]
data = sum(r["data_wait_fraction"] for r in rows) / len(rows)
comm = sum(r["comm_fraction"] for r in rows) / len(rows)
name = sys.argv[2]
print(f"RESULT pretrain {name} images/s: {gb / step:.3f} img/s ({step:.2f} s/step, global batch {gb:.0f})")
print(f"RESULT pretrain {name} data wait: {100 * data:.2f} %")
print(f"RESULT pretrain {name} communication: {100 * comm:.2f} %")
PY
    rm -rf "$out/checkpoints"
}

results=$(
    run 1x2 1 2
    run 2x1 2 1
    run 1x1 1 1
)
echo "$results"
val() { awk -v k="RESULT pretrain $1 images/s:" 'index($0, k) == 1 {print $5}' <<<"$results"; }
ours12=$(val 1x2) ours21=$(val 2x1) ours11=$(val 1x1)

oracle_dir=${RDINO_ORACLE_DIR:-tests/reference}
peer2="" peer1=""
if [ -f "$oracle_dir/dinov2_oracle.py" ]; then
    for t in 2 1; do
        p=$(OMP_NUM_THREADS=$t "$PT_PY" bench/bench_step_peer.py "$oracle_dir" "$B" $((STEPS - 1)) 65536 8 "$t") ||
            { echo "$p"; continue; }
        v=$(awk '/^RESULT peer images\/s/ {print $4}' <<<"$p")
        echo "RESULT peer PyTorch $t threads images/s: $v img/s"
        [ "$t" = 2 ] && peer2=$v || peer1=$v
    done
else
    echo "peer skipped: $oracle_dir/dinov2_oracle.py not found"
fi
ratio() { [ -n "$1" ] && [ -n "$2" ] && awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { printf "RESULT %s: %.2f x\n", n, a / b }'; }
ratio "$ours12" "$peer2" "pretrain 1 rank x 2 threads / PyTorch 2 threads ratio"
ratio "$ours21" "$peer2" "pretrain 2 ranks x 1 thread / PyTorch 2 threads ratio"
ratio "$ours11" "$peer1" "pretrain 1 rank x 1 thread / PyTorch 1 thread ratio"
ratio "$ours21" "$ours11" "pretrain scaling 1 -> 2 ranks (same per-rank batch)"

# gradient bytes of this model: from the trainer's memory line (student params + grads) / 2
grad_mib=$(awk '/trainer memory/ {for (i = 1; i <= NF; i++) if ($i == "student") {print $(i+1); exit}}' "$D/1x1.log")
bytes=$(awk -v m="$grad_mib" 'BEGIN { printf "%d", m / 2 * 1048576 }')
rd_mpirun 2 "$BUILD/bench/bench_allreduce" "$bytes" 2>/dev/null
