#!/usr/bin/env bash
# Embedding forward of ViT-B/14 in bf16 (embed.precision: bf16, docs/BF16.md) against rdino's fp32
# forward and PyTorch 1.13's bf16 autocast (bench/peers/vit_torch.py --infer --bf16), at 224 px
# (batch 8) and 518 px (batch 2), native size = input size, on 1 and 2 threads, in the same run.
# All three time the forward of an inference context on random images (bench/bench_vit --infer),
# best of RDINO_BENCH_ITERS after a warm-up. rdino fp32 runs twice: with the environment as given
# (this machine's sessions set OPENBLAS_CORETYPE=Haswell: AVX2 kernels) and with OpenBLAS's own
# CPU detection (OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset: AVX-512 kernels where present);
# the bf16/fp32 ratio is printed against both. Goals (issue 17): bf16 >= 1.8x rdino fp32 at 518,
# >= 1.2x PyTorch bf16 at 518 and >= 1.0x at 224, at 1 and 2 threads.
#   bench/bench_vit_bf16.sh [BUILD]    env: RDINO_BENCH_ITERS (2), RDINO_BENCH_THREADS ("1 2"),
#                                           RDINO_BENCH_CASES ("224:8 518:2")
set -u
cd "$(dirname "$0")/.."
BUILD=${1:-${RDINO_BUILD:-build}}
ITERS=${RDINO_BENCH_ITERS:-2}
THREADS=${RDINO_BENCH_THREADS:-1 2}
CASES=${RDINO_BENCH_CASES:-224:8 518:2}
bin=$BUILD/bench/bench_vit
if [ ! -x "$bin" ]; then
    echo "bench_vit_bf16: $bin not built (make benches)" >&2
    exit 1
fi
peer_ok=1
/usr/bin/python3 -c "import torch" 2>/dev/null || peer_ok=0
rate() { awk '/^(RESULT|PEER) .* fwd img\/s/ { print $(NF - 1) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "") print "FAILED"; else printf "%.2f", a / b }'; }
status=0
echo "conditions: $(nproc) cores, $(grep -c avx512_bf16 /proc/cpuinfo) with avx512_bf16, OpenBLAS core type ${OPENBLAS_CORETYPE:-detected by OpenBLAS}, load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
for case in $CASES; do
    IFS=: read -r img batch <<<"$case"
    common=(--arch vit_base --patch 14 --native "$img" --img "$img" --batch "$batch" --iters "$ITERS" --infer)
    for t in $THREADS; do
        s=$([ "$t" -gt 1 ] && echo s)
        label="vit-b14 $img"
        bf=$(OMP_NUM_THREADS=$t "$bin" "${common[@]}" --bf16 --label rdino-vit-b14) || status=1
        echo "$bf" | grep -E '^(RESULT|bf16 copies)'
        fp=$(OMP_NUM_THREADS=$t "$bin" "${common[@]}" --label rdino-vit-b14) || status=1
        echo "$fp" | grep '^RESULT' | sed "s/ fwd / fwd (OpenBLAS ${OPENBLAS_CORETYPE:-detected}) /"
        fd=$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_NUM_THREADS=$t "$bin" "${common[@]}" --label rdino-vit-b14) || status=1
        echo "$fd" | grep '^RESULT' | sed "s/ fwd / fwd (OpenBLAS detected) /"
        r16=$(echo "$bf" | rate) r32=$(echo "$fp" | rate) r32d=$(echo "$fd" | rate)
        echo "RESULT $label bf16/fp32 ratio ($t thread$s, fp32 on OpenBLAS ${OPENBLAS_CORETYPE:-detected}): $(ratio "$r16" "$r32")"
        echo "RESULT $label bf16/fp32 ratio ($t thread$s, fp32 on OpenBLAS detected): $(ratio "$r16" "$r32d")"
        if [ "$peer_ok" = 0 ]; then
            echo "RESULT torch $label bf16 fwd img/s ($t thread$s): SKIPPED (no torch in /usr/bin/python3)"
            continue
        fi
        pt=$(OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/peers/vit_torch.py \
            --threads "$t" --arch vit_base --patch 14 --native "$img" --img "$img" --batch "$batch" \
            --iters "$ITERS" --infer --bf16 --label vit-b14) || status=1
        echo "$pt" | sed 's/^PEER /RESULT /'
        echo "RESULT $label bf16 rdino/torch ratio ($t thread$s): $(ratio "$r16" "$(echo "$pt" | rate)")"
    done
done
echo "conditions: load average $(cut -d' ' -f1-3 /proc/loadavg) at end"
exit $status
