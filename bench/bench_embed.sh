#!/usr/bin/env bash
# rdino-embed images/s against PyTorch inference of the same ViT (bench/peers/embed_torch.py) on
# the same threads, in the same run: ViT-S/16 (and ViT-B/14 with RDINO_BENCH_ARCHS) at 224 px,
# 1 and 2 threads, on N images of 224 x 224 in shards made here. Ours is the whole program on
# one rank (reading shards, preparing inputs, forwards, writing the HDF5 file; the summary
# line's img/s), the peer only prepares and forwards images already in memory. Each side runs
# twice, alternating (the machine is shared), and its best run counts; the peer also tries
# OpenBLAS on 1 thread next to n (the faster counts), as in bench_vit.sh. Goal: ratio >= 1.2.
# Peak RSS of both is reported (ours: the program; the peer: the Python process).
#   bench/bench_embed.sh [BUILD]
# Knobs: RDINO_BENCH_IMAGES (64), RDINO_BENCH_THREADS ("1 2"), RDINO_BENCH_BATCH (16),
#        RDINO_BENCH_ARCHS ("vit_small:16:vit-s16"; add "vit_base:14:vit-b14")
set -u
cd "$(dirname "$0")/.."
source tests/lib.sh
BUILD=${1:-${RDINO_BUILD:-build}}
N=${RDINO_BENCH_IMAGES:-64}
THREADS=${RDINO_BENCH_THREADS:-1 2}
BATCH=${RDINO_BENCH_BATCH:-16}
ARCHS=${RDINO_BENCH_ARCHS:-vit_small:16:vit-s16}
py=/usr/bin/python3
bin=$BUILD/bin/rdino-embed
for b in "$bin" "$BUILD/bin/rdino-shard"; do
    if [ ! -x "$b" ]; then
        echo "bench_embed: $b not built (make apps)" >&2
        exit 1
    fi
done
peer_ok=1
$py -c "import torch, h5py" 2>/dev/null || peer_ok=0
dir=$(mktemp -d "${TMPDIR:-/tmp}/rdino-bench-embed-XXXXXX")
trap 'rm -rf "$dir"' EXIT

# N images (make_shard_input.py gives 1-3 per patient, 2 on average) in 2 shards
$py tests/shard/make_shard_input.py "$dir/pre" $(((N + 1) / 2)) 224 8 >/dev/null
rd_mpirun 1 "$BUILD/bin/rdino-shard" shard.input_dir="$dir/pre" shard.output_dir="$dir/shards" \
    shard.num_shards=2 >"$dir/shard.log" 2>&1 || { tail -3 "$dir/shard.log"; exit 1; }
images=$(awk -F'"num_images": ' 'NF > 1 { split($2, a, ","); print a[1]; exit }' "$dir/shards/index.json")

faster() { awk -v a="$1" -v b="$2" 'BEGIN { print (b == "" || a + 0 > b + 0) ? a : b }'; }
status=0
echo "conditions: $(nproc) cores, $images images 224x224 in batches of $BATCH, load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
for spec in $ARCHS; do
    IFS=: read -r arch patch label <<<"$spec"
    for t in $THREADS; do
        s=$([ "$t" -gt 1 ] && echo s)
        ours="" peer="" our_rss="" peer_rss="" fwd=""
        for _ in 1 2; do
            log="$dir/ours.log"
            OMP_NUM_THREADS=$t rd_mpirun 1 "$bin" --init random student.arch="$arch" \
                student.patch_size="$patch" crops.global_crops_size=224 embed.batch="$BATCH" \
                embed.shards_dir="$dir/shards" embed.output="$dir/emb.h5" >"$log" 2>&1 || {
                tail -3 "$log"
                status=1
            }
            rate=$(awk '/^summary: .* img\/s on/ { for (i = 1; i < NF; i++) if ($(i + 1) == "img/s") { print $i; exit } }' "$log")
            rss=$(awk '/^summary: .*peak RSS/ { for (i = 1; i < NF; i++) if ($i == "RSS") { print $(i + 1); exit } }' "$log")
            f=$(awk '/ViT forwards/ { for (i = 1; i < NF; i++) if ($i == "forwards") { print $(i + 1); exit } }' "$log")
            [ "$(faster "$rate" "$ours")" = "$rate" ] && fwd=$f our_rss=$rss
            ours=$(faster "$rate" "$ours")
            [ "$peer_ok" = 1 ] || continue
            for ob in $([ "$t" -gt 1 ] && echo "$t 1" || echo 1); do
                out=$(OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$ob $py bench/peers/embed_torch.py \
                    --shards "$dir/shards" --threads "$t" --arch "$arch" --patch "$patch" \
                    --label "$label" --batch "$BATCH" --iters 1)
                p=$(echo "$out" | awk '/embed img\/s/ { print $(NF - 1) }')
                [ "$(faster "$p" "$peer")" = "$p" ] && peer_rss=$(echo "$out" | awk '/peak RSS/ { print $(NF - 1) }')
                peer=$(faster "$p" "$peer")
            done
        done
        echo "RESULT rdino-embed $label 224 img/s ($t thread$s): ${ours:-FAILED} img/s (end to end; ViT forwards ${fwd:-?} s of it)"
        echo "RESULT rdino-embed $label 224 peak RSS ($t thread$s): ${our_rss:-?} MiB"
        if [ "$peer_ok" = 0 ]; then
            echo "RESULT torch $label 224 embed img/s ($t thread$s): SKIPPED (no torch/h5py in $py)"
            continue
        fi
        echo "RESULT torch $label 224 embed img/s ($t thread$s): ${peer:-FAILED} img/s"
        echo "RESULT torch $label 224 peak RSS ($t thread$s): ${peer_rss:-?} MiB"
        if [ -z "$ours" ] || [ -z "$peer" ]; then
            echo "RESULT rdino-embed $label 224 ratio ($t thread$s): FAILED"
            status=1
            continue
        fi
        echo "RESULT rdino-embed $label 224 ratio ($t thread$s, rdino/torch): $(awk -v a="$ours" -v b="$peer" 'BEGIN { printf "%.2f", a / b }')"
    done
done
echo "conditions: load average $(cut -d' ' -f1-3 /proc/loadavg) at end"
exit $status
