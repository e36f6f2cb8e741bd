#!/usr/bin/env bash
# RAD-DINO's real scale: ViT-B/14 at 518 px (1,370 tokens; issue 18, docs/PERFORMANCE.md).
# 1. rdino-embed (random init, end to end on one rank: shards in, HDF5 out; img/s of its summary
#    line) against the same ViT forward in PyTorch fp32 and under bf16 autocast
#    (bench/peers/vit_forward_torch.py, images already in memory) and ONNX Runtime (the npm
#    package onnxruntime-node, installed with --ignore-scripts into BUILD/peers when missing and
#    npm can reach its registry; the model exported by bench/peers/export_vit_onnx.py;
#    bench/peers/vit_forward_ort.js), each peer skipped with a line saying so when absent, at
#    RDINO_BENCH_SIZES px on 1 and 2 threads, batch 4; runs alternate, the best of 2 counts;
#    peak RSS of each process.
# 2. The training step of configs/nih.yaml at 518 (bench_train_config: grey crops 2 x 518 +
#    8 x 98, K = 65536, Sinkhorn, iBOT, KoLeo, AdamW, EMA) at batch RDINO_BENCH_TRAIN_BATCH, with
#    and without student.activation_checkpointing: s/img, the student's activations per image,
#    peak RSS against the memory plan.
#   bench/bench_realscale.sh [BUILD]
# Knobs: RDINO_BENCH_SIZES ("224 518"), RDINO_BENCH_THREADS ("1 2"), RDINO_BENCH_BATCH (4),
#        RDINO_BENCH_TRAIN_BATCH (1), RDINO_BENCH_TRAIN_THREADS (2), RDINO_BENCH_REPEAT (2),
#        RDINO_BENCH_TRAIN_STEPS (2: the fastest counts, the first warms up),
#        RDINO_BENCH_TRAIN_ARGS (more overrides of configs/nih.yaml, e.g. for a quick try).
set -u
cd "$(dirname "$0")/.."
source tests/lib.sh
BUILD=${1:-${RDINO_BUILD:-build}}
SIZES=${RDINO_BENCH_SIZES:-224 518}
THREADS=${RDINO_BENCH_THREADS:-1 2}
BATCH=${RDINO_BENCH_BATCH:-4}
TRAIN_BATCH=${RDINO_BENCH_TRAIN_BATCH:-1}
TRAIN_THREADS=${RDINO_BENCH_TRAIN_THREADS:-2}
REPEAT=${RDINO_BENCH_REPEAT:-2}
TRAIN_STEPS=${RDINO_BENCH_TRAIN_STEPS:-2}
read -r -a TRAIN_ARGS <<<"${RDINO_BENCH_TRAIN_ARGS:-}"
py=/usr/bin/python3
for b in "$BUILD/bin/rdino-embed" "$BUILD/bin/rdino-shard" "$BUILD/bench/bench_train_config"; do
    if [ ! -x "$b" ]; then
        echo "bench_realscale: $b not built (make all)" >&2
        exit 1
    fi
done
torch_ok=1
$py -c "import torch" 2>/dev/null || torch_ok=0
dir=$(mktemp -d "${TMPDIR:-/tmp}/rdino-bench-realscale-XXXXXX")
trap 'rm -rf "$dir"' EXIT
# ONNX Runtime: onnxruntime-node under RDINO_ORT_NODE_MODULES (default BUILD/peers/node_modules)
ort_modules=${RDINO_ORT_NODE_MODULES:-$BUILD/peers/node_modules}
ort_why=""
if ! command -v node >/dev/null; then
    ort_why="node is not installed"
elif [ "$torch_ok" = 0 ]; then
    ort_why="the model is exported with torch, which $py lacks"
elif [ ! -d "$ort_modules/onnxruntime-node" ]; then
    if command -v npm >/dev/null && mkdir -p "$BUILD/peers" &&
        npm install --ignore-scripts --no-audit --no-fund --prefix "$BUILD/peers" \
            onnxruntime-node >"$dir/npm.log" 2>&1 && [ -d "$ort_modules/onnxruntime-node" ]; then
        echo "installed onnxruntime-node into $BUILD/peers (npm install --ignore-scripts)"
    else
        ort_why="onnxruntime-node is not installed and npm could not install it"
    fi
fi
[ -z "$ort_why" ] && echo "onnxruntime-node $(node -p "require('$(realpath "$ort_modules")/onnxruntime-node/package.json').version")"
faster() { awk -v a="$1" -v b="$2" 'BEGIN { print (b == "" || a + 0 > b + 0) ? a : b }'; }
field() { awk -v key="$2" '{ for (i = 1; i < NF; i++) if ($(i + 1) == key) { print $i; exit } }' <<<"$1"; }
status=0
echo "conditions: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at start"

for size in $SIZES; do
    # one batch of images (make_shard_input.py: 2 per patient on average) in one shard
    $py tests/shard/make_shard_input.py "$dir/pre$size" $(((BATCH + 1) / 2)) "$size" 8 >/dev/null
    rd_mpirun 1 "$BUILD/bin/rdino-shard" shard.input_dir="$dir/pre$size" \
        shard.output_dir="$dir/shards$size" shard.num_shards=1 >"$dir/shard.log" 2>&1 ||
        { tail -3 "$dir/shard.log"; exit 1; }
    ort_size_why=$ort_why
    if [ -z "$ort_size_why" ] && ! $py bench/peers/export_vit_onnx.py --arch vit_base --patch 14 \
        --img "$size" "$dir/vit$size.onnx" >"$dir/export.log" 2>&1; then
        ort_size_why="the ONNX export failed: $(tail -1 "$dir/export.log")"
    fi
    for t in $THREADS; do
        s=$([ "$t" -gt 1 ] && echo s)
        declare -A rate=() rss=()
        for _ in $(seq "$REPEAT"); do
            log=$(OMP_NUM_THREADS=$t rd_mpirun 1 "$BUILD/bin/rdino-embed" --init random \
                student.arch=vit_base student.patch_size=14 crops.global_crops_size="$size" \
                embed.batch="$BATCH" embed.shards_dir="$dir/shards$size" \
                embed.output="$dir/emb.h5" 2>&1) || { tail -3 <<<"$log"; status=1; }
            summary=$(grep '^summary: ' <<<"$log")
            r=$(field "$summary" img/s)
            [ "$(faster "$r" "${rate[rdino]:-}")" = "$r" ] && rss[rdino]=$(awk '{ for (i = 1; i < NF; i++) if ($i == "RSS") { print $(i + 1); exit } }' <<<"$summary")
            rate[rdino]=$(faster "$r" "${rate[rdino]:-}")
            if [ -z "$ort_size_why" ]; then
                out=$(NODE_PATH="$ort_modules" node bench/peers/vit_forward_ort.js \
                    "$dir/vit$size.onnx" "$size" "$BATCH" "$t" 2>&1)
                r=$(awk '/forward img\/s/ { print $(NF - 1) }' <<<"$out")
                [ "$(faster "$r" "${rate[ort]:-}")" = "$r" ] && rss[ort]=$(awk '/peak RSS/ { print $(NF - 1) }' <<<"$out")
                rate[ort]=$(faster "$r" "${rate[ort]:-}")
            fi
            [ "$torch_ok" = 1 ] || continue
            for prec in fp32 bf16; do
                out=$(OMP_NUM_THREADS=$t $py bench/peers/vit_forward_torch.py --arch vit_base \
                    --patch 14 --img "$size" --batch "$BATCH" --threads "$t" \
                    $([ $prec = bf16 ] && echo --bf16) 2>&1)
                r=$(awk '/forward img\/s/ { print $(NF - 1) }' <<<"$out")
                [ "$(faster "$r" "${rate[$prec]:-}")" = "$r" ] && rss[$prec]=$(awk '/peak RSS/ { print $(NF - 1) }' <<<"$out")
                rate[$prec]=$(faster "$r" "${rate[$prec]:-}")
            done
        done
        echo "RESULT rdino-embed vit-b14 $size img/s ($t thread$s): ${rate[rdino]:-FAILED} img/s (end to end, batch $BATCH; peak RSS ${rss[rdino]:-?} MiB)"
        if [ "$torch_ok" = 0 ]; then
            echo "RESULT torch vit-b14 $size forward img/s ($t thread$s): SKIPPED (no torch in $py)"
        else
            for prec in fp32 bf16; do
                echo "RESULT torch $prec vit-b14 $size forward img/s ($t thread$s): ${rate[$prec]:-FAILED} img/s (peak RSS ${rss[$prec]:-?} MiB)"
                [ -n "${rate[rdino]:-}" ] && [ -n "${rate[$prec]:-}" ] &&
                    echo "RESULT rdino-embed vit-b14 $size ratio to torch $prec ($t thread$s): $(awk -v a="${rate[rdino]}" -v b="${rate[$prec]}" 'BEGIN { printf "%.2f", a / b }')"
            done
        fi
        if [ -n "$ort_size_why" ]; then
            echo "RESULT onnxruntime vit-b14 $size forward img/s ($t thread$s): SKIPPED ($ort_size_why)"
        else
            echo "RESULT onnxruntime vit-b14 $size forward img/s ($t thread$s): ${rate[ort]:-FAILED} img/s (peak RSS ${rss[ort]:-?} MiB)"
            [ -n "${rate[rdino]:-}" ] && [ -n "${rate[ort]:-}" ] &&
                echo "RESULT rdino-embed vit-b14 $size ratio to onnxruntime ($t thread$s): $(awk -v a="${rate[rdino]}" -v b="${rate[ort]}" 'BEGIN { printf "%.2f", a / b }')"
        fi
        unset rate rss
    done
done

# the training step at 518, with and without activation checkpointing
declare -A step_s
for ck in false true; do
    out=$(OMP_NUM_THREADS=$TRAIN_THREADS "$BUILD/bench/bench_train_config" nih-518 "$TRAIN_STEPS" \
        configs/nih.yaml train.batch_size_per_gpu="$TRAIN_BATCH" \
        student.activation_checkpointing=$ck "${TRAIN_ARGS[@]}" 2>&1) || { tail -3 <<<"$out"; status=1; continue; }
    grep '^trainer memory:' <<<"$out"
    grep '^RESULT' <<<"$out" | sed "s/ (B = /, $TRAIN_THREADS threads (B = /"
    step_s[$ck]=$(awk '/^RESULT pretrain step .* s\/img:/ { print $(NF - 4) }' <<<"$out")
done
# The PyTorch oracle of the same step (tests/reference/dinov2_oracle.py, fp32, no drop path, 3
# channels: rdino's grey crops go through the channel-summed patch weight), same threads and
# batch; the first step warms up. Skipped under RDINO_BENCH_TRAIN_ARGS (a different config).
if [ "$torch_ok" = 0 ]; then
    echo "RESULT torch pretrain step nih-518: SKIPPED (no torch in $py)"
elif [ "${#TRAIN_ARGS[@]}" -gt 0 ]; then
    echo "RESULT torch pretrain step nih-518: SKIPPED (RDINO_BENCH_TRAIN_ARGS changes the config)"
else
    peer=$(OMP_NUM_THREADS=$TRAIN_THREADS $py bench/bench_step_peer.py tests/reference "$TRAIN_BATCH" \
        1 65536 8 "$TRAIN_THREADS" embed_dim=768 depth=12 num_heads=12 patch_size=14 \
        global_size=518 local_size=98 2>&1) || { tail -3 <<<"$peer"; status=1; }
    peer_s=$(awk '/^RESULT peer s\/img:/ { print $4 }' <<<"$peer")
    echo "RESULT torch pretrain step nih-518 s/img: ${peer_s:-FAILED} s/img ($TRAIN_THREADS threads, B = $TRAIN_BATCH, fp32, peak RSS $(awk '/peak RSS/ { print $3 }' <<<"$peer") MiB)"
    if [ -n "$peer_s" ] && [ -n "${step_s[false]:-}" ]; then
        echo "RESULT pretrain step nih-518 ratio to torch ($TRAIN_THREADS threads): $(awk -v a="${step_s[false]}" -v b="$peer_s" 'BEGIN { printf "%.2f", b / a }') (PyTorch s/img over rdino's, no checkpointing; goal >= 2)"
    fi
fi
echo "conditions: load average $(cut -d' ' -f1-3 /proc/loadavg) at end"
exit $status
