#!/usr/bin/env bash
# The fault matrix's "ENOSPC" cell (docs/TESTING.md, "Fault matrix"), for every stage on 2
# ranks. The tiny pipeline runs once undisturbed (the reference); then each stage runs again with
# its output folder on a tmpfs of half the size its outputs need. It must exit 1 within 120 s
# with an error saying the disk is full and naming a file in that folder; every file it
# published under a final name must be complete (equal to the reference's); and after the file
# system grows (remount), a rerun of the same command must complete and write what the
# undisturbed run wrote (tests/faults/same_outputs.py). Needs mount (root).
cd "$(dirname "$0")/../.." || exit 1
source tests/lib.sh
source tests/pretrain/pretrain_lib.sh
source tests/faults/faults_lib.sh
suite=faults/out_of_space
fault_requirements "$suite" h5py || exit 0
rd_tmpdir
T=$RD_TMP
mkdir -p "$T/probe"
if ! mount -t tmpfs -o size=64k tmpfs "$T/probe" 2>"$T/mount.txt"; then
    rd_skip "$suite" "cannot mount a small tmpfs: $(head -n 1 "$T/mount.txt")"
    exit 0
fi
umount "$T/probe"
mounted=""
trap 'for m in $mounted; do umount "$m" 2>/dev/null; done; [ "${RDINO_KEEP_TMP:-0}" = 1 ] || rm -rf "$T"' EXIT
pt_tiny_yaml "$T/tiny.yaml"
O=$T/out
args=(--config "$T/tiny.yaml" data.output_dir="$O" synth.n_patients=40
      synth.images_per_patient=[1,2] synth.size_range=[48,64] preprocess.size=32
      shard.images_per_shard=16 pretrain.max_steps=4 pretrain.checkpoint_every=2
      pretrain.keep_checkpoints=10 analyze.bootstrap=20 analyze.permutations=9
      analyze.lambda_range=[0.1,10000] analyze.lambdas_per_decade=1 data.format=nih
      data.metadata_csv="$O/synth/metadata.csv" data.image_root="$O/synth"
      embed.checkpoint="$O/pretrain/checkpoints/step-0000004.h5")
run() { # STAGE LOG: stdout to LOG, stderr to LOG.err
    OMP_NUM_THREADS=1 timeout 120 mpirun -np 2 --oversubscribe --bind-to none \
        "$RDINO_BIN/rdino-$1" "${args[@]}" >"$2" 2>"$2.err"
}
ignore=(summary.json journal metrics.jsonl)
mkdir -p "$T/ref"
for s in "${fault_stages[@]}"; do
    f=${fault_folder[$s]} log=$T/$s-full.log
    run "$s" "$T/$s-ref.log" || { rd_fail "$suite" "the undisturbed $s failed: $(grep -m1 error "$T/$s-ref.log.err")"; exit 0; }
    need=$(du -sk "$O/$f" | cut -f1)
    size=$(( need / 2 > 8 ? need / 2 : 8 ))
    mv "$O/$f" "$T/ref/$f"
    mkdir "$O/$f"
    mount -t tmpfs -o "size=${size}k" tmpfs "$O/$f" && mounted="$mounted $O/$f"
    run "$s" "$log"
    status=$?
    published=ok
    /usr/bin/python3 tests/faults/same_outputs.py --published "$T/ref/$f" "$O/$f" "${ignore[@]}" \
        >"$T/$s-published.txt" 2>&1 || published=$(head -n 3 "$T/$s-published.txt")
    mount -o remount,size=64m "$O/$f"
    rerun=fail
    run "$s" "$T/$s-rerun.log" && rerun=ok
    echo "  $suite/$s: ${size} KiB of ${need} KiB; $(grep -m1 'error \[' "$log.err" | cut -c1-240)" >&2
    if [ "$status" = 124 ]; then
        rd_fail "$suite/$s" "still running 120 s after the disk filled"
    elif [ "$status" != 1 ]; then
        rd_fail "$suite/$s" "exit status $status, expected 1: $(grep -m1 error "$log.err")"
    elif ! grep 'error \[' "$log.err" | grep -q "No space left on device\|out of space"; then
        rd_fail "$suite/$s" "the error does not say the disk is full: $(grep -m1 error "$log.err")"
    elif ! grep 'error \[' "$log.err" | grep -q "$O/$f"; then
        rd_fail "$suite/$s" "the error names no file in $O/$f: $(grep -m1 error "$log.err")"
    elif [ "$published" != ok ]; then
        rd_fail "$suite/$s" "a file published incomplete: $published"
    elif [ "$rerun" != ok ]; then
        rd_fail "$suite/$s" "the rerun failed: $(grep -m1 error "$T/$s-rerun.log.err")"
    elif ! /usr/bin/python3 tests/faults/same_outputs.py "$T/ref/$f" "$O/$f" "${ignore[@]}" >"$T/$s-cmp.txt" 2>&1; then
        rd_fail "$suite/$s" "the rerun differs from an undisturbed run: $(head -n 3 "$T/$s-cmp.txt")"
    else
        rd_pass "$suite/$s"
    fi
    # The next stage reads the reference outputs from their usual place.
    umount "$O/$f" && rmdir "$O/$f" && mv "$T/ref/$f" "$O/$f"
done
