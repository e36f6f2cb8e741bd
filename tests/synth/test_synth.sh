#!/usr/bin/env bash
# rdino-synth end to end: byte-identical output on 1, 2 and 3 ranks; a rerun after deleting
# images regenerates exactly those; new settings replace the old images; PNGs and CSV agree
# (8-bit and 16-bit); rdino-preprocess reads the output as an NIH data set.
source "$(dirname "$0")/../lib.sh"
S=synth/stage
BIN="$RDINO_BUILD/bin/rdino-synth"
PY=/usr/bin/python3
if [ ! -x "$BIN" ]; then rd_fail "$S" "missing $BIN (build first)"; exit 0; fi
rd_tmpdir
T=$RD_TMP
SMALL=(synth.n_patients=7 synth.images_per_patient=[1,3] synth.size_range=[96,160] synth.chunk=1)

# run NP OUTDIR ARGS...: one stage run; its log goes to OUTDIR.log.
run() {
    local np=$1 out=$2; shift 2
    if [ "$np" = 1 ]; then "$BIN" synth.output_dir="$out" "$@" >"$out.log" 2>&1
    else rd_mpirun "$np" "$BIN" synth.output_dir="$out" "$@" >"$out.log" 2>&1; fi
}
nimages() { ls "$1/images" | grep -c '\.png$'; }

# ---- ranks ----
for np in 1 2 3; do
    if ! run "$np" "$T/np$np" "${SMALL[@]}"; then
        rd_fail "$S/run_np$np" "stage failed: $(tail -3 "$T/np$np.log")"; exit 0
    fi
done
rows=$(($(wc -l <"$T/np1/metadata.csv") - 1))
if [ "$rows" -lt 7 ] || [ "$(nimages "$T/np1")" -ne "$rows" ]; then
    rd_fail "$S/csv_rows_match_images" "$rows CSV rows, $(nimages "$T/np1") images"
else
    rd_pass "$S/csv_rows_match_images"
fi
for np in 2 3; do
    if diff -r "$T/np1" "$T/np$np" >/dev/null; then rd_pass "$S/identical_np1_np$np"
    else rd_fail "$S/identical_np1_np$np" "$(diff -rq "$T/np1" "$T/np$np" | head -3)"; fi
done

# ---- the Slurm script, with a stand-in srun, and the same settings from a YAML file ----
mkdir -p "$T/fakebin"
printf '#!/bin/sh\nexec "$@"\n' >"$T/fakebin/srun"
chmod +x "$T/fakebin/srun"
cat >"$T/small.yaml" <<EOF
synth:
  output_dir: $T/slurm
  n_patients: 7
  images_per_patient: [1, 3]
  size_range: [96, 160]
EOF
SBATCH_SCRIPT="$(dirname "$0")/../../jobs/synth.sbatch"
if ! PATH="$T/fakebin:$PATH" RDINO_BIN="$RDINO_BUILD/bin" bash "$SBATCH_SCRIPT" "$T/small.yaml" >"$T/slurm.log" 2>&1; then
    rd_fail "$S/sbatch_script" "script failed: $(tail -3 "$T/slurm.log")"
elif ! diff -r "$T/np1" "$T/slurm" >/dev/null; then rd_fail "$S/sbatch_script" "outputs differ from the command-line run"
elif bash "$SBATCH_SCRIPT" >/dev/null 2>&1; then rd_fail "$S/sbatch_script" "accepted a missing config argument"
else rd_pass "$S/sbatch_script"; fi

# ---- restart: deleted images come back identical, the others are kept ----
cp -r "$T/np1" "$T/ref"
victims=$(ls "$T/np1/images" | sed -n '2p;5p')
for v in $victims; do rm "$T/np1/images/$v"; done
rm "$T/np1/metadata.csv"
touch "$T/np1/images/.00000001_000.png.tmp" # a killed writer's leftover
run 2 "$T/np1" "${SMALL[@]}"
if diff -r "$T/ref" "$T/np1" >/dev/null && grep -q "(2 rendered now" "$T/np1.log"; then
    rd_pass "$S/restart_renders_only_missing"
else
    rd_fail "$S/restart_renders_only_missing" "$(grep 'rendered now' "$T/np1.log") $(diff -rq "$T/ref" "$T/np1" | head -2)"
fi

# ---- new settings replace the old images ----
run 1 "$T/np1" synth.n_patients=2 synth.images_per_patient=[1,1] synth.size_range=[96,96] synth.seed=9
if [ "$(nimages "$T/np1")" -eq 2 ] && [ "$(wc -l <"$T/np1/metadata.csv")" -eq 3 ] &&
    ! cmp -s "$T/ref/images/00000001_000.png" "$T/np1/images/00000001_000.png"; then
    rd_pass "$S/new_settings_replace_old_images"
else
    rd_fail "$S/new_settings_replace_old_images" "$(ls "$T/np1/images" | tr '\n' ' ')"
fi

# ---- PNG contents against the CSV; 16-bit ----
run 1 "$T/d16" "${SMALL[@]}" synth.bit_depth=16
if ! $PY -c 'import PIL' 2>/dev/null; then
    rd_skip "$S/png_match_csv" "python3 PIL missing"
else
    if out=$($PY - "$T/ref" "$T/d16" <<'EOF' 2>&1
import csv, sys
import numpy as np
from PIL import Image
ref, d16 = sys.argv[1], sys.argv[2]
lines = open(ref + "/metadata.csv").read().splitlines()
assert lines[0].count(",") == 10, "header"
for line in lines[1:]:
    f = line.split(",")
    assert len(f) == 11, line
    a = Image.open(f"{ref}/images/{f[0]}")
    b = Image.open(f"{d16}/images/{f[0]}")
    assert a.mode == "L" and a.size == (int(f[7]), int(f[8])), (f[0], a.mode, a.size)
    assert b.mode.startswith("I") and b.size == a.size, (f[0], b.mode, b.size)
    x = np.asarray(a, np.float64) / 255
    y = np.asarray(b, np.float64) / 65535
    assert y.max() > 0.5 and np.abs(x - y).max() <= 0.5 / 255 + 1e-9, f[0]
EOF
    ); then rd_pass "$S/png_match_csv"; else rd_fail "$S/png_match_csv" "$out"; fi
fi

# ---- the preprocess stage reads it as NIH data ----
PRE="$RDINO_BUILD/bin/rdino-preprocess"
if [ ! -x "$PRE" ]; then
    rd_skip "$S/preprocess_reads_output" "no $PRE"
elif "$PRE" data.output_dir="$T/pre" data.format=nih data.metadata_csv="$T/ref/metadata.csv" \
    data.image_root="$T/ref/images" preprocess.size=64 >"$T/pre.log" 2>&1 &&
    [ "$(($(wc -l <"$T/pre/preprocessed/manifest.csv") - 1))" -eq "$rows" ]; then
    rd_pass "$S/preprocess_reads_output"
else
    rd_fail "$S/preprocess_reads_output" "$(tail -3 "$T/pre.log")"
fi
