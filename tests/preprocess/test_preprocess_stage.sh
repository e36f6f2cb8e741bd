#!/usr/bin/env bash
# rdino-preprocess end to end: a hostile corpus with every problem in the report and counts
# that add up; identical outputs on 1, 2 and 3 ranks; a rerun is a no-op; kill -9 mid-run
# then a rerun (on another rank count) finishes without redoing journalled images; the real
# NIH subset in shared/ with every image accounted for, and its 16-bit copies giving the same
# bytes as the 8-bit files.
source "$(dirname "$0")/../lib.sh"
S=preprocess/preprocess_stage
BIN="$RDINO_BUILD/bin/rdino-preprocess"
PY=/usr/bin/python3
if [ ! -x "$BIN" ]; then rd_fail "$S" "missing $BIN (build first)"; exit 0; fi
if ! $PY -c 'import PIL' 2>/dev/null; then rd_skip "$S" "python3 PIL missing (corpus generator)"; exit 0; fi
rd_tmpdir
T=$RD_TMP

# run NP OUTDIR ARGS...: one stage run; its log goes to OUTDIR.log.
run() {
    local np=$1 out=$2; shift 2
    if [ "$np" = 1 ]; then "$BIN" data.output_dir="$out" "$@" >"$out.log" 2>&1
    else rd_mpirun "$np" "$BIN" data.output_dir="$out" "$@" >"$out.log" 2>&1; fi
}
# json FILE KEY: a top-level number from summary.json.
json() { $PY -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
# same_outputs A B: manifest, report and every image byte identical (journals and summaries
# legitimately differ: they record who did what).
same_outputs() { diff -r -x journal -x summary.json "$1/preprocessed" "$2/preprocessed" >/dev/null; }
mtimes() { (cd "$1/preprocessed/images" && find . -type f -printf '%P %T@\n' | sort); }

# ---- hostile corpus ----
$PY "$(dirname "$0")/hostile_corpus.py" "$T/hc" || { rd_fail "$S/corpus" "generator failed"; exit 0; }
HC=(data.format=nih data.metadata_csv="$T/hc/Data_Entry.csv" data.image_root="$T/hc/images"
    preprocess.size=32 preprocess.max_pixels=1000000 preprocess.views=PA,AP preprocess.chunk=2)
if ! run 1 "$T/r1" "${HC[@]}"; then
    rd_fail "$S/hostile_corpus" "stage failed: $(tail -3 "$T/r1.log")"; exit 0
fi
P="$T/r1/preprocessed"
missing=""
while IFS=, read -r file outcome reason; do
    # report.csv: row,file,outcome,reason,detail; files here have no comma or quote
    grep -q "^[0-9]*,$file,$outcome,$reason," "$P/report.csv" || missing="$missing $file:$reason"
done <"$T/hc/expected.csv"
nexpected=$(wc -l <"$T/hc/expected.csv")
nreport=$(($(wc -l <"$P/report.csv") - 1))
if [ -n "$missing" ]; then rd_fail "$S/hostile_every_case_reported" "not in report.csv:$missing"
elif [ "$nreport" -ne "$nexpected" ]; then
    rd_fail "$S/hostile_every_case_reported" "$nreport report lines, expected $nexpected"
else rd_pass "$S/hostile_every_case_reported"; fi

read -r _ rows _ orphans _ kept <"$T/hc/counts"
s="$P/summary.json"
inputs=$(json "$s" inputs) k=$(json "$s" kept) r=$(json "$s" rejected) e=$(json "$s" excluded)
nmanifest=$(($(wc -l <"$P/manifest.csv") - 1))
if [ "$inputs" -ne $((rows + orphans)) ] || [ $((k + r + e)) -ne "$inputs" ] ||
   [ "$k" -ne "$kept" ] || [ "$nmanifest" -ne "$kept" ]; then
    rd_fail "$S/hostile_counts_add_up" "inputs $inputs (want $((rows + orphans))), kept $k (want $kept, manifest $nmanifest) + rejected $r + excluded $e"
elif ! grep -q "$inputs inputs" "$T/r1.log"; then
    rd_fail "$S/hostile_counts_add_up" "summary not printed: $(tail -8 "$T/r1.log")"
else rd_pass "$S/hostile_counts_add_up"; fi

# manifest: sorted by source row, every file there, relative to the manifest
if ! awk -F, 'NR > 2 && $9 + 0 <= prev { exit 1 } NR > 1 { prev = $9 + 0 }' "$P/manifest.csv"; then
    rd_fail "$S/manifest_sorted_and_complete" "rows not in source order"
elif tail -n +2 "$P/manifest.csv" | cut -d, -f2 | while read -r f; do [ -f "$P/$f" ] || exit 1; done; then
    rd_pass "$S/manifest_sorted_and_complete"
else rd_fail "$S/manifest_sorted_and_complete" "a manifest file is missing"; fi

# ---- 1 vs 2 vs 3 ranks ----
ok=1
for np in 2 3; do
    if ! run "$np" "$T/r$np" "${HC[@]}"; then ok=0; rd_fail "$S/ranks_identical_np$np" "stage failed: $(tail -3 "$T/r$np.log")"
    elif ! same_outputs "$T/r1" "$T/r$np"; then ok=0; rd_fail "$S/ranks_identical_np$np" "outputs differ from 1 rank"
    else rd_pass "$S/ranks_identical_np$np"; fi
done

# ---- a finished run rerun is a no-op ----
before=$(mtimes "$T/r1")
cp -r "$T/r1" "$T/r1-first"
if ! run 1 "$T/r1" "${HC[@]}"; then rd_fail "$S/rerun_is_noop" "rerun failed"
elif [ "$(json "$T/r1/preprocessed/summary.json" processed_this_run)" -ne 0 ] ||
     [ "$before" != "$(mtimes "$T/r1")" ] || ! same_outputs "$T/r1" "$T/r1-first"; then
    rd_fail "$S/rerun_is_noop" "rerun processed images again or changed outputs"
else rd_pass "$S/rerun_is_noop"; fi

# ---- the Slurm script, with a stand-in srun, and the same settings from a YAML file ----
mkdir -p "$T/fakebin"
printf '#!/bin/sh\nexec "$@"\n' >"$T/fakebin/srun"
chmod +x "$T/fakebin/srun"
cat >"$T/hc.yaml" <<EOF
data:
  format: nih
  metadata_csv: $T/hc/Data_Entry.csv
  image_root: $T/hc/images
  output_dir: $T/slurm
preprocess:
  size: 32
  max_pixels: 1000000
  views: "PA,AP"
  chunk: 2
EOF
SBATCH_SCRIPT="$(dirname "$0")/../../jobs/preprocess.sbatch"
if ! PATH="$T/fakebin:$PATH" RDINO_BIN="$RDINO_BUILD/bin" bash "$SBATCH_SCRIPT" "$T/hc.yaml" >"$T/slurm.log" 2>&1; then
    rd_fail "$S/sbatch_script" "script failed: $(tail -3 "$T/slurm.log")"
elif ! same_outputs "$T/r1" "$T/slurm"; then rd_fail "$S/sbatch_script" "outputs differ from the command-line run"
elif bash "$SBATCH_SCRIPT" >/dev/null 2>&1; then rd_fail "$S/sbatch_script" "accepted a missing config argument"
else rd_pass "$S/sbatch_script"; fi

# ---- kill -9 mid-run, then resume on 2 ranks ----
mkdir -p "$T/big/images"
$PY - "$T/big" <<'EOF'
import sys
from PIL import Image
d = sys.argv[1]
rows = ["path,patient,age,sex,view"]
for i in range(160):
    noise = Image.effect_noise((640, 512), 40 + i % 20)
    grad = Image.linear_gradient("L").resize((640, 512)).rotate(i * 7)
    Image.blend(noise, grad, 0.6).save(f"{d}/images/img{i:03d}.png")
    rows.append(f"images/img{i:03d}.png,P{i // 3},{20 + i % 60},{'MF'[i % 2]},PA")
open(f"{d}/meta.csv", "w").write("\n".join(rows) + "\n")
EOF
BIG=(data.format=generic data.metadata_csv="$T/big/meta.csv" data.image_root="$T/big"
     data.columns.image=path data.columns.patient=patient data.columns.age=age
     data.columns.sex=sex data.columns.view=view preprocess.size=256 preprocess.chunk=2)
run 1 "$T/ref" "${BIG[@]}" || rd_fail "$S/kill_and_resume" "reference run failed"
"$BIN" data.output_dir="$T/killed" "${BIG[@]}" >"$T/killed.log" 2>&1 &
pid=$!
journal="$T/killed/preprocessed/journal/rank-00000.tsv"
for _ in $(seq 1 1000); do
    [ -f "$journal" ] && [ "$(wc -l <"$journal")" -ge 6 ] && break
    sleep 0.01
done
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
done_before=$(wc -l <"$journal")
# images the journal says are finished, and their mtimes: the rerun must not touch them
cut -f6 "$journal" | sort >"$T/journalled"
pre=$(mtimes "$T/killed" | grep -F -f "$T/journalled")
if [ -f "$T/killed/preprocessed/manifest.csv" ]; then
    rd_skip "$S/kill_and_resume" "the run finished before the kill (machine too fast for 160 images)"
elif ! run 2 "$T/killed" "${BIG[@]}"; then
    rd_fail "$S/kill_and_resume" "resume failed: $(tail -3 "$T/killed.log")"
else
    s="$T/killed/preprocessed/summary.json"
    reused=$(json "$s" reused_from_journal) processed=$(json "$s" processed_this_run)
    post=$(mtimes "$T/killed" | grep -F -f "$T/journalled")
    if ! same_outputs "$T/ref" "$T/killed"; then rd_fail "$S/kill_and_resume" "outputs differ from an uninterrupted run"
    elif [ "$reused" -lt "$done_before" ] || [ "$processed" -lt 1 ] || [ $((reused + processed)) -ne 160 ]; then
        rd_fail "$S/kill_and_resume" "reused $reused (journal had $done_before), processed $processed, of 160"
    elif [ "$pre" != "$post" ]; then rd_fail "$S/kill_and_resume" "journalled images were rewritten"
    else rd_pass "$S/kill_and_resume"; fi
fi
# no temporary or half-written file is left in the outputs after the resumed run
if find "$T/killed/preprocessed" -name '*.tmp*' | grep -q .; then
    rd_fail "$S/no_half_written_outputs" "temporary files left: $(find "$T/killed/preprocessed" -name '*.tmp*')"
else rd_pass "$S/no_half_written_outputs"; fi

# ---- the real NIH subset ----
SH=$(rd_shared_dir)
NIH="$SH/data/cxr_small"
if [ -z "$SH" ] || [ ! -f "$NIH/metadata.csv" ]; then
    rd_skip "$S/nih_cxr_small" "shared data absent (set RDINO_SHARED to the shared/ folder)"
    rd_skip "$S/nih_16bit_same_bytes" "shared data absent"
    exit 0
fi
run 1 "$T/nih8" data.format=nih data.metadata_csv="$NIH/metadata.csv" \
    data.image_root="$NIH/images" preprocess.size=96 || rd_fail "$S/nih_cxr_small" "stage failed"
P="$T/nih8/preprocessed"
nrows=$(($(wc -l <"$NIH/metadata.csv") - 1))
nimages=$(find "$NIH/images" -name '*.png' | wc -l)
nkept=$(($(wc -l <"$P/manifest.csv") - 1))
if [ "$nkept" -ne "$nrows" ] || [ "$nkept" -ne "$nimages" ] ||
   [ "$(json "$P/summary.json" inputs)" -ne "$nrows" ] || [ "$(wc -l <"$P/report.csv")" -ne 1 ]; then
    rd_fail "$S/nih_cxr_small" "$nrows rows, $nimages images, $nkept kept; report: $(head -3 "$P/report.csv")"
elif ! diff <(tail -n +2 "$NIH/metadata.csv" | cut -d, -f1,4,5,6,7) \
            <(tail -n +2 "$P/manifest.csv" | awk -F, '{ print $1 "," $3 "," $4 "," $5 "," $6 }') >/dev/null; then
    rd_fail "$S/nih_cxr_small" "manifest ids/patients/ages/sexes/views differ from metadata.csv"
else rd_pass "$S/nih_cxr_small"; fi

run 1 "$T/nih16" data.format=nih data.metadata_csv="$NIH/metadata.csv" \
    data.image_root="$NIH/images16" preprocess.size=96 || rd_fail "$S/nih_16bit_same_bytes" "stage failed"
P16="$T/nih16/preprocessed"
n16=$(find "$NIH/images16" -name '*.png' | wc -l)
bad=0
for f in "$NIH"/images16/*.png; do cmp -s "$P16/images/${f##*/}" "$P/images/${f##*/}" || bad=$((bad + 1)); done
if [ "$(($(wc -l <"$P16/manifest.csv") - 1))" -ne "$n16" ] || [ "$bad" -ne 0 ] ||
   [ "$(json "$P16/summary.json" inputs)" -ne "$nrows" ]; then
    rd_fail "$S/nih_16bit_same_bytes" "$bad of $n16 outputs differ, or not every row accounted for"
else rd_pass "$S/nih_16bit_same_bytes"; fi
