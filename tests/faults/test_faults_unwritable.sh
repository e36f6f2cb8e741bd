#!/usr/bin/env bash
# The fault matrix's "output folder that cannot be written" cell (docs/TESTING.md, "Fault
# matrix"), for every stage: the tiny pipeline of tests/slurm/test_pipeline_slurm.sh is made
# once (2 ranks), then each stage runs again on those inputs with its output folder taken by a
# regular file (root ignores permissions; rd_mkdir_p also refuses a folder without write
# permission). Each must exit 1 with an error naming the folder, before any work: no progress
# line, no checkpoint, no study, and nothing written beside the blocking file.
cd "$(dirname "$0")/../.." || exit 1
source tests/lib.sh
source tests/pretrain/pretrain_lib.sh
source tests/faults/faults_lib.sh
suite=faults/unwritable_output
fault_requirements "$suite" || exit 0
rd_tmpdir
T=$RD_TMP
pt_tiny_yaml "$T/tiny.yaml"
O=$T/out
args=(--config "$T/tiny.yaml" synth.n_patients=40 synth.images_per_patient=[1,2]
      synth.size_range=[48,64] preprocess.size=32 shard.images_per_shard=32 pretrain.max_steps=2
      pretrain.checkpoint_every=2 analyze.bootstrap=20 analyze.permutations=0
      analyze.lambda_range=[0.1,10000] analyze.lambdas_per_decade=1
      data.format=nih data.metadata_csv="$O/synth/metadata.csv" data.image_root="$O/synth"
      shard.input_dir="$O/preprocessed" pretrain.data.shards_dir="$O/shards"
      embed.shards_dir="$O/shards" embed.checkpoint="$O/pretrain/checkpoints/step-0000002.h5"
      analyze.embeddings="$O/embeddings" analyze.shards_dir="$O/shards"
      analyze.metrics_jsonl="$O/pretrain/metrics.jsonl")
run() { # STAGE OUTPUT_DIR LOG: stdout to LOG, stderr to LOG.err (mpirun forwards the two streams
         # separately, so one file would leave their order to chance)
    OMP_NUM_THREADS=1 rd_mpirun 2 "$RDINO_BIN/rdino-$1" "${args[@]}" data.output_dir="$2" >"$3" 2>"$3.err"
}
for s in "${fault_stages[@]}"; do
    run "$s" "$O" "$T/$s.log" || { rd_fail "$suite" "the undisturbed $s failed: $(grep -m1 'error' "$T/$s.log.err")"; exit 0; }
done

work='^(synth|preprocess|shard|pretrain|embed|reading shards): [0-9]+/[0-9]+ \(|^checkpoint .* written|^study:'
for s in "${fault_stages[@]}"; do
    B=$T/blocked-$s
    mkdir -p "$B"
    echo "not a folder" >"$B/${fault_folder[$s]}"
    run "$s" "$B" "$T/blocked-$s.log"
    status=$?
    log=$T/blocked-$s.log
    if [ "$status" != 1 ]; then
        rd_fail "$suite/$s" "exit status $status, expected 1: $(grep -m1 error "$log.err")"
    elif ! grep 'error \[rank' "$log.err" | grep -q "$B/${fault_folder[$s]}"; then
        rd_fail "$suite/$s" "the error does not name $B/${fault_folder[$s]}: $(grep -m1 error "$log.err")"
    elif grep -qE "$work" "$log" "$log.err"; then
        rd_fail "$suite/$s" "work was done before the error: $(grep -m1 -E "$work" "$log")"
    elif [ "$(ls -A "$B")" != "${fault_folder[$s]}" ]; then
        rd_fail "$suite/$s" "wrote $(ls -A "$B" | tr '\n' ' ')"
    else
        rd_pass "$suite/$s"
    fi
done
