#!/usr/bin/env bash
# rdino-synth throughput, single rank: square phantoms at 512 and 1024 px written as 8-bit PNGs
# (zlib level 1, the default), and the stage's peak RSS. No peer: nothing else makes these
# images; the PNG share can be judged from bench_preprocess's Pillow numbers.
#   bench/bench_synth.sh            (RDINO_BUILD selects the build directory)
source "$(dirname "$0")/../tests/lib.sh"
BIN="$RDINO_BUILD/bin/rdino-synth"
[ -x "$BIN" ] || { echo "missing $BIN (build first)"; exit 1; }
T=$(mktemp -d "${TMPDIR:-/tmp}/rdino-bench-synth-XXXXXX")
trap 'rm -rf "$T"' EXIT
for case in "512 48" "1024 16"; do
    set -- $case
    size=$1 n=$2
    start=$EPOCHREALTIME
    "$BIN" synth.output_dir="$T/s$size" synth.n_patients="$n" synth.images_per_patient=[1,1] \
        synth.size_range="[$size,$size]" synth.aspect_range=[1,1] >"$T/log$size" 2>&1 ||
        { echo "rdino-synth failed: $(tail -3 "$T/log$size")"; exit 1; }
    end=$EPOCHREALTIME
    rate=$(awk -v n="$n" -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", n / (b - a) }')
    rss=$(sed -n 's/.*peak RSS \([0-9.]*\) MiB.*/\1/p' "$T/log$size" | tail -1)
    bytes=$(du -sb "$T/s$size/images" | cut -f1)
    echo "RESULT synth ${size}px: $rate images/s (1 rank, $n images, whole run incl. start-up and PNG writing)"
    echo "RESULT synth ${size}px peak RSS: $rss MiB"
    echo "RESULT synth ${size}px PNG size: $((bytes / n / 1024)) KiB/image"
done
