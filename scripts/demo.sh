#!/usr/bin/env bash
# make demo: runs the pipeline on the built-in synthetic data with mpirun on this machine.
#   scripts/demo.sh [BUILD]      outputs go to demo-out/ (data.output_dir in configs/demo.yaml)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
NP=${RDINO_DEMO_RANKS:-2}
CONFIG=configs/demo.yaml
# Open MPI refuses root unless told; containers often lack the ptrace rights of CMA.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
run() {
    echo
    echo "=== $1"
    shift
    mpirun -np "$NP" --oversubscribe --bind-to none "$@"
}
start=$SECONDS
run "1/3 rdino-synth: phantom chest X-rays with age and sex effects" \
    "$BUILD/bin/rdino-synth" --config "$CONFIG"
run "2/3 rdino-preprocess: decode, resize, normalise" \
    "$BUILD/bin/rdino-preprocess" --config "$CONFIG"
run "3/3 rdino-shard: parallel HDF5 shards with a patient-level split" \
    "$BUILD/bin/rdino-shard" --config "$CONFIG"
echo
echo "demo finished in $((SECONDS - start)) s; outputs in demo-out/ (synth/, preprocessed/, shards/)"
echo "not yet part of the demo: rdino-pretrain, rdino-embed, rdino-analyze (not implemented yet)"
