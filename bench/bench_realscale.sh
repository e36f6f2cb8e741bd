#!/usr/bin/env bash
# RAD-DINO's real scale: ViT-B/14 at 518 px (1,370 tokens; issue 18, docs/PERFORMANCE.md).
# 1. rdino-embed (random init, end to end on one rank: shards in, HDF5 out; img/s of its summary
#    line) against the same ViT forward in PyTorch fp32 and under bf16 autocast
#    (bench/peers/vit_forward_torch.py, images already in memory) and ONNX Runtime when it is
#    installed (else a SKIPPED line), at RDINO_BENCH_SIZES px on 1 and 2 threads, batch 4;
#    runs alternate, the best of 2 counts; peak RSS of each process.
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
ort=""
if $py -c "import onnxruntime" 2>/dev/null; then ort=python; fi
dir=$(mktemp -d "${TMPDIR:-/tmp}/rdino-bench-realscale-XXXXXX")
trap 'rm -rf "$dir"' EXIT
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
        [ -n "$ort" ] ||
            echo "RESULT onnxruntime vit-b14 $size forward img/s ($t thread$s): SKIPPED (onnxruntime is not installed)"
        unset rate rss
    done
done

# the training step at 518, with and without activation checkpointing
for ck in false true; do
    out=$(OMP_NUM_THREADS=$TRAIN_THREADS "$BUILD/bench/bench_train_config" nih-518 "$TRAIN_STEPS" \
        configs/nih.yaml train.batch_size_per_gpu="$TRAIN_BATCH" \
        student.activation_checkpointing=$ck "${TRAIN_ARGS[@]}" 2>&1) || { tail -3 <<<"$out"; status=1; continue; }
    grep '^trainer memory:' <<<"$out"
    grep '^RESULT' <<<"$out" | sed "s/ (B = /, $TRAIN_THREADS threads (B = /"
done
echo "RESULT torch pretrain step nih-518: SKIPPED (the PyTorch step oracle is timed at ViT-S/16 224 px: bench_step.sh)"
echo "conditions: load average $(cut -d' ' -f1-3 /proc/loadavg) at end"
exit $status
