# shellcheck shell=bash
# Shared by tests/analyze/test_posthoc.sh and tests/slurm/test_posthoc_slurm.sh (sourced, after
# tests/lib.sh and tests/pretrain/pretrain_lib.sh).
# posthoc_pipeline DIR: tiny phantoms -> shards -> a tiny pretraining keeping its checkpoints of
# steps 3, 6 and 9 -> the random-init embeddings, under DIR/out; the study's overrides (small
# bootstrap, no permutations, no pixel baseline) in the array posthoc_args, the config in
# DIR/tiny.yaml. Returns nonzero with the log in DIR/pipeline.log on failure.
posthoc_pipeline() {
    local d=$1 B=$RDINO_BIN
    pt_tiny_yaml "$d/tiny.yaml"
    posthoc_args=(data.output_dir="$d/out" data.metadata_csv="$d/out/synth/metadata.csv"
        data.image_root="$d/out/synth/images" synth.n_patients=40 synth.images_per_patient=[1,2]
        synth.size_range=[48,64] preprocess.size=32 shard.images_per_shard=32
        pretrain.max_steps=9 pretrain.checkpoint_every=3 pretrain.keep_checkpoints=10
        analyze.bootstrap=50 analyze.permutations=0 analyze.lambda_range=[0.1,1000]
        analyze.lambdas_per_decade=1 analyze.pixels.enabled=false)
    {
        "$B/rdino-synth" --config "$d/tiny.yaml" "${posthoc_args[@]}" &&
            "$B/rdino-preprocess" --config "$d/tiny.yaml" "${posthoc_args[@]}" &&
            "$B/rdino-shard" --config "$d/tiny.yaml" "${posthoc_args[@]}" &&
            "$B/rdino-pretrain" --config "$d/tiny.yaml" "${posthoc_args[@]}" &&
            "$B/rdino-embed" --config "$d/tiny.yaml" "${posthoc_args[@]}" --init random
    } >"$d/pipeline.log" 2>&1
}

# posthoc_check OUT: the three checkpoints' reports and the trajectory report under OUT/posthoc
# are there; prints what is wrong and returns nonzero otherwise.
posthoc_check() {
    local out=$1/posthoc s
    for s in 0000003 0000006 0000009; do
        [ -f "$out/step-$s/report/report.json" ] || { echo "no report for step $s"; return 1; }
    done
    if [ ! -f "$out/trajectory/trajectory_sex.png" ] ||
        ! grep -q '^| step-0000009 | 9 | trained | ' "$out/trajectory/compare.md" ||
        ! grep -q '^| step-0000003 | 3 | random-init | ' "$out/trajectory/compare.md"; then
        echo "trajectory report: $(grep '^| step' "$out/trajectory/compare.md" 2>&1 | head -3 | tr '\n' ' ')"
        return 1
    fi
}
