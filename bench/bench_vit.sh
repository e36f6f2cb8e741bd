#!/usr/bin/env bash
# ViT-S/16 forward + backward images/s against PyTorch 1.13 (bench/peers/vit_torch.py) on the
# same number of threads, in the same run: 224 px at batch 8 and 96 px (local crops, resampled
# pos-embed) at batch 32, on 1 and 2 threads. Our BLAS runs single-threaded inside OpenMP; the
# peer gets torch.set_num_threads(n), OMP_NUM_THREADS=n and OpenBLAS on n threads or on 1
# (the faster counts). Each side reports its best iteration (the machine is shared). With RDINO_BENCH_PROFILE=1 (default) the 224 px runs also
# print the per-layer profile and a 2048^3 SGEMM rate.
#   bench/bench_vit.sh [BUILD]         env: RDINO_BENCH_ITERS (3), RDINO_BENCH_THREADS ("1 2")
set -u
cd "$(dirname "$0")/.."
BUILD=${1:-${RDINO_BUILD:-build}}
ITERS=${RDINO_BENCH_ITERS:-3}
THREADS=${RDINO_BENCH_THREADS:-1 2}
PROFILE=${RDINO_BENCH_PROFILE:-1}
bin=$BUILD/bench/bench_vit
if [ ! -x "$bin" ]; then
    echo "bench_vit: $bin not built (make benches)" >&2
    exit 1
fi
peer_ok=1
/usr/bin/python3 -c "import torch" 2>/dev/null || peer_ok=0
status=0
echo "conditions: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
for case in "224 8" "96 32"; do
    set -- $case
    img=$1 batch=$2
    for t in $THREADS; do
        s=$([ "$t" -gt 1 ] && echo s)
        extra=()
        [ "$PROFILE" = 1 ] && [ "$img" = 224 ] && extra=(--profile)
        ours=$(OMP_NUM_THREADS=$t "$bin" --label vit-s16 --img "$img" --batch "$batch" --iters "$ITERS" "${extra[@]}") || status=1
        echo "$ours"
        rate=$(echo "$ours" | awk '/^RESULT .* fwd\+bwd img\/s/ {print $(NF-1)}')
        if [ "$peer_ok" = 0 ]; then
            echo "RESULT torch vit-s16 $img fwd+bwd img/s ($t thread$s): SKIPPED (no torch in /usr/bin/python3)"
            continue
        fi
        # torch's GEMMs use OpenBLAS's own threads next to its OpenMP pool; with t > 1 also try
        # OpenBLAS on one thread and compare against the faster of the two set-ups
        peer=
        for ob in $( [ "$t" -gt 1 ] && echo "$t 1" || echo 1); do
            p=$(OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$ob /usr/bin/python3 bench/peers/vit_torch.py \
                    --threads "$t" --img "$img" --batch "$batch" --iters "$ITERS" |
                awk '/^PEER/ {print $(NF-1)}')
            [ "$t" -gt 1 ] && echo "torch with OPENBLAS_NUM_THREADS=$ob: ${p:-failed} img/s"
            if [ -n "$p" ] && { [ -z "$peer" ] || awk -v a="$p" -v b="$peer" 'BEGIN { exit !(a > b) }'; }; then
                peer=$p
            fi
        done
        if [ -z "$rate" ] || [ -z "$peer" ]; then
            echo "RESULT vit-s16 $img fwd+bwd ratio ($t thread$s): FAILED"
            status=1
            continue
        fi
        echo "RESULT torch vit-s16 $img fwd+bwd img/s ($t thread$s): $peer img/s"
        echo "RESULT vit-s16 $img fwd+bwd ratio ($t thread$s, rdino/torch): $(awk -v a="$rate" -v b="$peer" 'BEGIN { printf "%.2f", a / b }')"
    done
done
echo "conditions: load average $(cut -d' ' -f1-3 /proc/loadavg) at end"
exit $status
