#!/usr/bin/env bash
# bf16 linear products (src/nn/gemm_bf16.c) on the ViT-B/14 linears at 518 and 224 px, on 1 and 2
# threads: GFLOP/s against rd_sgemm (fp32, same binary, alternating) and, in the same run,
# against PyTorch 1.13's bf16 matmul (bench/peers/gemm_bf16_torch.py; oneDNN inside) on the same
# threads; when Debian's libdnnl-dev is installed, also against oneDNN's matmul primitive called
# directly (bench/peers/gemm_bf16_onednn.c, compiled here; rdino does not link it), which also
# reports how many allocations one call makes. Ratios are ours/peer, higher is better:
#   RESULT gemm_bf16_<shape><img>_t<threads> ratio_vs_sgemm: X     (forward, inference)
#   RESULT gemm_bf16_<shape><img>_train_t<threads> ratio_vs_sgemm: X  (forward + both backward)
#   RESULT gemm_bf16_<shape><img>[_train]_t<threads> ratio_vs_torch: X
#   bench/bench_gemm_bf16.sh [BUILD]    env: RDINO_BENCH_ITERS (3), RDINO_BENCH_THREADS ("1 2"),
#                                            RDINO_BENCH_IMG (all | 518 | 224)
set -u
cd "$(dirname "$0")/.."
BUILD=${1:-${RDINO_BUILD:-build}}
ITERS=${RDINO_BENCH_ITERS:-3}
THREADS=${RDINO_BENCH_THREADS:-1 2}
IMG=${RDINO_BENCH_IMG:-all}
bin=$BUILD/bench/bench_gemm_bf16
if [ ! -x "$bin" ]; then
    echo "bench_gemm_bf16: $bin not built (make benches)" >&2
    exit 1
fi
torch_ok=1
/usr/bin/python3 -c "import torch" 2>/dev/null || torch_ok=0
onednn=
if [ -f /usr/include/oneapi/dnnl/dnnl.h ]; then
    onednn=$BUILD/bench/peers/gemm_bf16_onednn
    mkdir -p "$(dirname "$onednn")"
    cc -O2 -fopenmp bench/peers/gemm_bf16_onednn.c -o "$onednn" -ldnnl || onednn=
fi
status=0
echo "conditions: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
# the sgemm baseline depends on OpenBLAS's kernels: an OPENBLAS_CORETYPE in the environment
# overrides its CPU detection (Haswell's AVX2 kernels run at half the AVX-512 ones' rate)
echo "conditions: OpenBLAS core type ${OPENBLAS_CORETYPE:-detected by OpenBLAS}"
# "<tag> <kind> <GFLOP/s>" lines from "... <tag> fwd|train GFLOP/s: <x>"
rates() { awk '/ (fwd|train) GFLOP\/s: / { for (i = 1; i < NF; i++) if ($(i+1) ~ /^(fwd|train)$/) print $i, $(i+1), $(i+3) }'; }
ratio_lines() { # ours peers name
    awk -v name="$3" 'NR == FNR { ours[$1 " " $2] = $3; next }
        ($1 " " $2) in ours && $3 > 0 {
            tag = $1; if ($2 == "train") sub(/_t[0-9]+$/, "_train&", tag)
            printf "RESULT %s ratio_vs_%s: %.2f\n", tag, name, ours[$1 " " $2] / $3 }' "$1" "$2"
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for t in $THREADS; do
    if ! OMP_NUM_THREADS=$t "$bin" --iters "$ITERS" --img "$IMG" >"$tmp/ours"; then
        echo "RESULT gemm_bf16 t$t: FAILED"
        status=1
        continue
    fi
    cat "$tmp/ours"
    # the C side prints the train GFLOP/s under <tag>_train_t<n>: key it like the peers
    sed -n 's/^RESULT \(gemm_bf16_[a-z0-9]*\)_train\(_t[0-9]*\) GFLOP\/s: \([0-9.]*\).*/\1\2 train \3/p;
            s/^RESULT \(gemm_bf16_[a-z0-9]*_t[0-9]*\) fwd GFLOP\/s: \([0-9.]*\).*/\1 fwd \2/p' \
        "$tmp/ours" >"$tmp/ours.rates"
    if [ "$torch_ok" = 1 ]; then
        OMP_NUM_THREADS=$t /usr/bin/python3 bench/peers/gemm_bf16_torch.py --threads "$t" \
            --iters "$ITERS" --img "$IMG" >"$tmp/torch" || status=1
        cat "$tmp/torch"
        rates <"$tmp/torch" >"$tmp/torch.rates"
        ratio_lines "$tmp/ours.rates" "$tmp/torch.rates" torch
    else
        echo "RESULT gemm_bf16 torch peer t$t: SKIPPED (no torch in /usr/bin/python3)"
    fi
    if [ -n "$onednn" ]; then
        OMP_NUM_THREADS=$t "$onednn" --iters "$ITERS" --img "$IMG" >"$tmp/onednn" || status=1
        cat "$tmp/onednn"
        rates <"$tmp/onednn" >"$tmp/onednn.rates"
        ratio_lines "$tmp/ours.rates" "$tmp/onednn.rates" onednn
    fi
done
echo "conditions: load average $(cut -d' ' -f1-3 /proc/loadavg) at end"
exit $status
