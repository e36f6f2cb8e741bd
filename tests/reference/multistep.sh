#!/usr/bin/env bash
# Many DINOv2 iterations in rdino and in the PyTorch oracle on the same batches (README.md,
# "Multi-step"). Needs a build (make all) and /usr/bin/python3 with torch, h5py, numpy.
#
#   tests/reference/multistep.sh fixture [BUILD]    rewrites fixtures/multistep_centering.h5
#   tests/reference/multistep.sh learning [BUILD]   the 200 iterations of test_pretrain_learning:
#       rdino's trajectory against the oracle in fp64 and fp32, the collapse diagnostics, and a
#       check that the recording is what rdino-pretrain itself computes (~8 minutes)
# Work files go to $RDINO_MULTISTEP_DIR (default a temporary folder, kept).
set -euo pipefail
cd "$(dirname "$0")/../.."
MODE=${1:?usage: tests/reference/multistep.sh fixture|learning [BUILD]}
BUILD=${2:-build}
PY=/usr/bin/python3
DIR=${RDINO_MULTISTEP_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/rdino-multistep-XXXXXX")}
mkdir -p "$DIR"
echo "work files: $DIR"

# Phantom shards (32 px), as tests/pretrain/test_pretrain_learning.c makes them.
cat >"$DIR/data.yaml" <<EOF
data:
  format: nih
  output_dir: $DIR/out
  metadata_csv: $DIR/out/synth/metadata.csv
  image_root: $DIR/out/synth/images
synth:
  n_patients: 200
  images_per_patient: [1, 2]
  size_range: [96, 128]
  strength: 1.0
  seed: 1
preprocess:
  size: 32
  resample: bspline
shard:
  images_per_shard: 256
pretrain:
  output_dir: $DIR/pretrain
EOF
for stage in synth preprocess shard; do
    "$BUILD/bin/rdino-$stage" --config "$DIR/data.yaml" >"$DIR/$stage.log" 2>&1
done

case "$MODE" in
fixture)
    cat "$DIR/data.yaml" tests/reference/multistep_centering.yaml >"$DIR/run.yaml"
    OMP_NUM_THREADS=1 "$BUILD/tests/train/test_multistep" --record "$DIR/run.yaml" "$DIR/rec.h5"
    $PY tests/reference/multistep.py fixture "$DIR/rec.h5" \
        tests/reference/fixtures/multistep_centering.h5
    echo "wrote tests/reference/fixtures/multistep_centering.h5"
    ;;
learning)
    cat "$DIR/data.yaml" tests/reference/multistep_learning.yaml >"$DIR/run.yaml"
    export OMP_NUM_THREADS=2
    "$BUILD/tests/train/test_multistep" --record "$DIR/run.yaml" "$DIR/rec.h5" 20
    # the recording is rdino-pretrain's own computation: same loss terms, bit for bit
    "$BUILD/bin/rdino-pretrain" --config "$DIR/run.yaml" --no-resume >"$DIR/pretrain.log" 2>&1
    $PY - "$DIR/rec.h5" "$DIR/pretrain/metrics.jsonl" <<'EOF'
import json, sys
import h5py, numpy as np
rec = h5py.File(sys.argv[1], "r")["rdino/loss"][()]
lines = [json.loads(l) for l in open(sys.argv[2])]
got = np.array([[l["backprop"][k] for k in ("dino_local", "dino_global", "koleo", "ibot")]
                for l in lines])
d = np.abs(got - rec[:, :4]).max() / np.abs(rec[:, :4]).max()
print(f"recording vs rdino-pretrain's metrics.jsonl: {len(lines)} iterations, largest relative "
      f"difference of a loss term {d:.1e} (metrics are printed to 8 digits)")
sys.exit(0 if d < 1e-6 else 1)
EOF
    $PY tests/reference/multistep.py oracle "$DIR/rec.h5" "$DIR/oracle64.h5" &
    fp64=$!
    $PY tests/reference/multistep.py oracle "$DIR/rec.h5" "$DIR/oracle32.h5" --dtype float32
    wait $fp64
    $PY tests/reference/multistep.py compare "$DIR/rec.h5" "$DIR/oracle64.h5" "$DIR/oracle32.h5"
    ;;
*)
    echo "unknown mode $MODE (fixture | learning)" >&2
    exit 2
    ;;
esac
