#!/usr/bin/env bash
# pretrain.precision: bf16 (docs/BF16.md) against fp32: the demo configuration's model and
# schedule (configs/demo.yaml: D 128, 4 blocks, batch 64, 50 warm-up steps) on phantom shards at
# 64 px, 2 ranks, the same seed. Checks:
#   - the logged total_loss of every step after the warm-up (step >= 50) within 2 % of fp32's;
#   - both runs finite at every step (the step's own checks would stop a run otherwise), and
#     the bf16 run really ran bf16 (its log names the path);
#   - RDINO_BF16=off: one warning, then the fp32 run's losses exactly (first steps).
# RDINO_TEST_BF16_STEPS steps (default 100; the issue's 200-step check is
# RDINO_TEST_BF16_STEPS=200, about twice as long). Measured over 200 steps: largest difference
# 1.58 % (step 83), none over 2 %; with the teacher in bf16 too it reached 3.1 % by step 96, which
# is why the teacher stays fp32 (docs/BF16.md). The bf16 path is AVX512-BF16 where the CPU
# has it, else the emulated kernels (RDINO_BF16=force: same bits, much slower).
cd "$(dirname "$0")/../.." || exit 1
source tests/lib.sh
source tests/pretrain/pretrain_lib.sh
suite=pretrain/bf16
STEPS=${RDINO_TEST_BF16_STEPS:-100}
WARMUP=50
TOL=0.02
if ! pt_need_python; then rd_skip $suite "/usr/bin/python3 with h5py is needed"; exit 0; fi
# 2 x 100 steps of the demo model: minutes under the sanitizers, whose subject (the bf16
# kernels and the ViT's bf16 forward and backward) tests/nn/test_gemm_bf16 and
# tests/model/test_vit_bf16 cover there.
if [ "${RDINO_SANITIZE:-0}" = 1 ]; then rd_skip $suite "run by make test, not under the sanitizers"; exit 0; fi
rd_tmpdir
T=$RD_TMP
pt_make_shards "$T" 60 64 || { rd_fail $suite "could not make shards"; exit 0; }
base=(--config configs/demo.yaml data.output_dir="$T/out" data.metadata_csv="$T/out/synth/metadata.csv"
    data.image_root="$T/out/synth/images" pretrain.checkpoint_every=100000)

pt_run 2 "$T/fp32.log" "${base[@]}" pretrain.max_steps="$STEPS" pretrain.output_dir="$T/fp32" ||
    { rd_fail $suite "fp32 run failed: $(grep -m1 error "$T/fp32.log")"; exit 0; }
RDINO_BF16=force pt_run 2 "$T/bf16.log" "${base[@]}" pretrain.max_steps="$STEPS" \
    pretrain.output_dir="$T/bf16" pretrain.precision=bf16 ||
    { rd_fail $suite "bf16 run failed: $(grep -m1 error "$T/bf16.log")"; exit 0; }

if ! grep -q "pretrain.precision: bf16 block linears of the student on the [a-z0-9-]* path" "$T/bf16.log"; then
    rd_fail $suite/ran_in_bf16 "the bf16 run's log names no bf16 path"
else
    rd_pass $suite/ran_in_bf16
fi
verdict=$($PT_PY - "$T/fp32/metrics.jsonl" "$T/bf16/metrics.jsonl" "$STEPS" "$WARMUP" "$TOL" <<'EOF'
import json, math, sys
a, b = ([json.loads(l) for l in open(p)] for p in sys.argv[1:3])
steps, warmup, tol = int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
if len(a) != steps or len(b) != steps:
    print(f"FAIL {len(a)} and {len(b)} metrics lines, want {steps}"); sys.exit(1)
worst, at = 0.0, -1
for x, y in zip(a, b):
    if not (math.isfinite(x["total_loss"]) and math.isfinite(y["total_loss"])):
        print(f"FAIL step {x['step']}: a loss is not finite"); sys.exit(1)
    if x["step"] < warmup:
        continue
    rel = abs(y["total_loss"] - x["total_loss"]) / abs(x["total_loss"])
    if rel > worst:
        worst, at = rel, x["step"]
print(f"{'ok' if worst <= tol else 'FAIL'}: largest relative difference of total_loss after "
      f"step {warmup}: {worst:.4f} at step {at} (fp32 {a[at]['total_loss']:.4f}, bf16 "
      f"{b[at]['total_loss']:.4f}); step 0: fp32 {a[0]['total_loss']:.4f}, bf16 "
      f"{b[0]['total_loss']:.4f}; last: fp32 {a[-1]['total_loss']:.4f}, bf16 "
      f"{b[-1]['total_loss']:.4f}")
sys.exit(worst > tol)
EOF
)
status=$?
echo "$verdict" >&2
if [ $status = 0 ]; then
    rd_pass $suite/total_loss_within_2_percent_after_warmup
else
    rd_fail $suite/total_loss_within_2_percent_after_warmup "$verdict"
fi

# RDINO_BF16=off: fp32 with one warning (3 steps against the fp32 run's first 3)
RDINO_BF16=off pt_run 2 "$T/off.log" "${base[@]}" pretrain.max_steps=3 pretrain.output_dir="$T/off" \
    pretrain.precision=bf16
if [ "$(grep -c "pretrain.precision: bf16 computes in fp32 here: RDINO_BF16=off" "$T/off.log")" = 1 ] &&
    cmp -s <(pt_losses "$T/off/metrics.jsonl") <(pt_losses "$T/fp32/metrics.jsonl" | head -n 3); then
    rd_pass $suite/off_warns_once_and_is_fp32
else
    rd_fail $suite/off_warns_once_and_is_fp32 "$(grep -i -m2 "precision\|error" "$T/off.log")"
fi
