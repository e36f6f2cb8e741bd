#!/usr/bin/env bash
# rdino-pretrain --plan-memory prints the trainer's memory plan for configs/nih.yaml (ViT-B/14 at
# 518) without allocating it and exits 0; activation checkpointing shrinks the student's
# activations per image; a run whose plan exceeds pretrain.max_memory_gb (set, or by default 90%
# of the node's memory over its ranks, here 2) stops before allocating or creating its output,
# exits 1 and names the knobs.
set -u
source "$(dirname "$0")/../lib.sh"
name=train/plan_memory/plan_and_limit
prog="$RDINO_BIN/rdino-pretrain"
if [ ! -x "$prog" ]; then rd_fail "$name" "missing $prog (build first)"; exit 0; fi
rd_tmpdir
trap 'rm -rf "$RD_TMP"' EXIT
small=(--config configs/nih.yaml pretrain.global_batch=2 pretrain.group_size=2
       data.output_dir="$RD_TMP/out")
plan=$("$prog" "${small[@]}" --plan-memory 2>"$RD_TMP/err"); plan_rc=$?
ckpt=$("$prog" "${small[@]}" student.activation_checkpointing=true --plan-memory 2>/dev/null)
per_image() { sed -n 's/.*student activations \([0-9.]*\) MiB per image.*/\1/p' <<<"$1" | tail -1; }
a=$(per_image "$plan"); b=$(per_image "$ckpt")
over=$(rd_mpirun 2 "$prog" "${small[@]}" pretrain.global_batch=4 pretrain.max_memory_gb=1 2>&1)
over_rc=$?
node=$("$prog" "${small[@]}" pretrain.global_batch=1024 2>&1); node_rc=$?
if [ "$plan_rc" != 0 ] || ! grep -q "^trainer memory: student .* total" <<<"$plan" ||
    ! grep -q "^memory plan: .* within the limit" <<<"$plan"; then
    rd_fail "$name" "--plan-memory (status $plan_rc): $(tail -3 <<<"$plan") $(tail -2 "$RD_TMP/err")"
elif [ -z "$a" ] || [ -z "$b" ] || ! awk -v a="$a" -v b="$b" 'BEGIN { exit !(b * 3 < a) }'; then
    rd_fail "$name" "checkpointing: $b MiB of student activations per image, without $a"
elif [ "$over_rc" != 1 ] || ! grep -q "more than pretrain.max_memory_gb allows (1.00 GiB" <<<"$over" ||
    ! grep -q "nothing was allocated. Lower pretrain.global_batch (4 now, 2 images per rank" <<<"$over" ||
    ! grep -q "student.activation_checkpointing=true" <<<"$over"; then
    rd_fail "$name" "a plan over pretrain.max_memory_gb=1 (status $over_rc): $(grep -i error <<<"$over" | head -2)"
elif [ -e "$RD_TMP/out/pretrain" ]; then
    rd_fail "$name" "the refused run created its output folder"
elif [ "$node_rc" != 1 ] || ! grep -q "default 90% of the node's" <<<"$node"; then
    rd_fail "$name" "global batch 1024 on one rank (status $node_rc): $(grep -i error <<<"$node" | head -2)"
else
    rd_pass "$name"
fi
