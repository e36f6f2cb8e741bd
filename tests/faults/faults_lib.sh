# Shared by the fault-matrix tests (sourced after tests/lib.sh and tests/pretrain/pretrain_lib.sh;
# docs/TESTING.md, "Fault matrix").

# The stages, in pipeline order, and the output folder each one writes under data.output_dir.
fault_stages=(synth preprocess shard pretrain embed analyze)
declare -A fault_folder=([synth]=synth [preprocess]=preprocessed [shard]=shards [pretrain]=pretrain
                         [embed]=embeddings [analyze]=report)

# fault_requirements SUITE [h5py]: prints the SKIP line and fails when a program is not built,
# under the sanitizers (these tests are about processes and files, not memory: the instrumented
# build would only add time), or, with h5py, when /usr/bin/python3 cannot compare HDF5 files.
fault_requirements() {
    local s
    for s in "${fault_stages[@]}"; do
        if [ ! -x "$RDINO_BIN/rdino-$s" ]; then rd_skip "$1" "$RDINO_BIN/rdino-$s not built"; return 1; fi
    done
    if [ "${RDINO_SANITIZE:-0}" = 1 ]; then rd_skip "$1" "run by make test, not under the sanitizers"; return 1; fi
    if [ "${2:-}" = h5py ] && ! /usr/bin/python3 -c 'import h5py' 2>/dev/null; then
        rd_skip "$1" "/usr/bin/python3 with h5py is needed"
        return 1
    fi
}

# fault_pipeline_args CONFIG OUT: sets args, the overrides of a pipeline whose every stage runs
# for a few seconds on 2 ranks (so that a kill or a signal can land mid-stage) into OUT.
fault_pipeline_args() {
    local out=$2
    args=(--config "$1" data.output_dir="$out" synth.n_patients=240
          synth.images_per_patient=[1,2] synth.size_range=[192,256] preprocess.size=32
          shard.images_per_shard=32 pretrain.max_steps=40 pretrain.checkpoint_every=10
          pretrain.keep_checkpoints=10
          analyze.bootstrap=200 analyze.permutations=99 analyze.lambda_range=[0.1,10000]
          analyze.lambdas_per_decade=1 data.format=nih data.metadata_csv="$out/synth/metadata.csv"
          data.image_root="$out/synth" embed.checkpoint="$out/pretrain/checkpoints/step-0000040.h5"
          embed.resolution=96 embed.batch=4)
}

# rank_of PID: the MPI rank of an rdino process (Open MPI puts it in the environment)
rank_of() {
    tr '\0' '\n' <"/proc/$1/environ" 2>/dev/null | sed -n 's/^OMPI_COMM_WORLD_RANK=//p'
}
