#!/usr/bin/env bash
# Attention core, tiled (src/nn/attention.c) against the materialised [T, T] form it replaced:
# ViT-B (D 768, 12 heads of 64), 4 images, at 224 px (T = 257) and 518 px (T = 1370) with
# patch 14, on 1 and 2 threads; best of alternating rounds (the machine is shared).
#   bench/bench_attention.sh [BUILD]   env: RDINO_BENCH_ROUNDS (5), RDINO_BENCH_THREADS ("1 2"),
#                                       RDINO_BENCH_T ("257 1370")
set -u
cd "$(dirname "$0")/.."
BUILD=${1:-${RDINO_BUILD:-build}}
ROUNDS=${RDINO_BENCH_ROUNDS:-5}
THREADS=${RDINO_BENCH_THREADS:-1 2}
bin=$BUILD/bench/bench_attention
if [ ! -x "$bin" ]; then
    echo "bench_attention: $bin not built (make benches)" >&2
    exit 1
fi
status=0
echo "conditions: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
for T in ${RDINO_BENCH_T:-257 1370}; do
    for t in $THREADS; do
        out=$(OMP_NUM_THREADS=$t "$bin" --T "$T" --b 4 --D 768 --H 12 --rounds "$ROUNDS") || status=1
        echo "$out"
        for pass in fwd fwd+bwd; do
            ms() { echo "$out" | awk -v k="$1" -v p="$pass" '$0 ~ k && $(NF-4) == p {print $(NF-1)}'; }
            tiled=$(ms " tiled ") materialised=$(ms " materialised ")
            s=$([ "$t" -gt 1 ] && echo s)
            if [ -z "$tiled" ] || [ -z "$materialised" ]; then
                echo "RESULT attention T=$T $pass ratio ($t thread$s): FAILED"; status=1; continue
            fi
            echo "RESULT attention T=$T $pass ratio ($t thread$s, materialised/tiled time): $(
                awk -v a="$materialised" -v b="$tiled" 'BEGIN { printf "%.2f", a / b }')"
        done
    done
done
echo "conditions: load average $(cut -d' ' -f1-3 /proc/loadavg) at end"
exit $status
