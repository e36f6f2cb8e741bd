# Helpers for the rdino-pretrain shell tests (sourced after tests/lib.sh).

PT_PY=/usr/bin/python3
PT_COMPARE="tests/pretrain/compare_checkpoints.py"

# pt_need_python: 0 when /usr/bin/python3 has h5py and numpy (checkpoint comparisons).
pt_need_python() {
    "$PT_PY" -c "import h5py, numpy" 2>/dev/null
}

# pt_make_shards DIR [PATIENTS] [SIZE]: phantoms -> rdino-preprocess -> rdino-shard into
# DIR/out/shards, with DIR/data.yaml describing them. Prints the failing stage's log on error.
pt_make_shards() {
    local dir=$1 patients=${2:-40} size=${3:-32}
    cat >"$dir/data.yaml" <<EOF
data:
  format: nih
  output_dir: $dir/out
  metadata_csv: $dir/out/synth/metadata.csv
  image_root: $dir/out/synth/images
synth:
  n_patients: $patients
  images_per_patient: [1, 2]
  size_range: [48, 64]
  strength: 1.0
  seed: 1
preprocess:
  size: $size
  resample: bspline
shard:
  images_per_shard: 32
EOF
    local stage
    for stage in synth preprocess shard; do
        if ! "$RDINO_BIN/rdino-$stage" --config "$dir/data.yaml" >"$dir/$stage.log" 2>&1; then
            echo "rdino-$stage failed:"; tail -5 "$dir/$stage.log"; return 1
        fi
    done
}

# pt_tiny_yaml FILE: a tiny model (D 32, 2 blocks, patch 8, 32/16 px crops, K 64 / 48, separate
# iBOT head, drop path, Sinkhorn, KoLeo), global batch 8 in groups of 2, one thread per rank.
# LayerScale 0.1 and no qkv bias: see tests/pretrain/test_pretrain_ranks.sh.
pt_tiny_yaml() {
    cat >"$1" <<'EOF'
student:
  arch: vit_custom
  embed_dim: 32
  depth: 2
  num_heads: 4
  patch_size: 8
  drop_path_rate: 0.2
  layerscale: 0.1
  qkv_bias: false
crops:
  global_crops_size: 32
  local_crops_size: 16
  local_crops_number: 2
dino:
  head_n_prototypes: 64
  head_bottleneck_dim: 16
  head_hidden_dim: 48
ibot:
  separate_head: true
  head_n_prototypes: 48
  head_bottleneck_dim: 16
  head_hidden_dim: 40
train:
  centering: sinkhorn_knopp
  OFFICIAL_EPOCH_LENGTH: 4
optim:
  epochs: 3
  warmup_epochs: 1
  freeze_last_layer_epochs: 0.5
teacher:
  warmup_teacher_temp_epochs: 1
pretrain:
  global_batch: 8
  group_size: 2
  threads: 1
  checkpoint_minutes: 0
EOF
}

# pt_run NP LOG ARGS...: rdino-pretrain on NP ranks, output in LOG; returns its exit status.
pt_run() {
    local np=$1 log=$2
    shift 2
    OMP_NUM_THREADS=1 rd_mpirun "$np" "$RDINO_BIN/rdino-pretrain" "$@" >"$log" 2>&1
}

# pt_compare A B MODE [PREFIX...]: compare_checkpoints.py; prints its verdict line.
pt_compare() {
    "$PT_PY" "$PT_COMPARE" "$@"
}

# pt_losses METRICS: the loss columns of metrics.jsonl (step, every loss term), one line a step.
pt_losses() {
    "$PT_PY" -c '
import json, sys
for line in open(sys.argv[1]):
    d = json.loads(line)
    print(d["step"], d["backprop"], d["grad_norm"], d["lr"], d["mom"], d["teacher_temp"])
' "$1"
}
