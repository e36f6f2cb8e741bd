#!/usr/bin/env bash
# The whole pipeline on real data: the 535 NIH chest X-rays of shared/data/cxr_small through
# configs/cxr_small.yaml (outputs in a temporary folder), every stage on 2 ranks: rdino-preprocess
# -> rdino-shard -> rdino-pretrain (a tiny ViT) -> rdino-embed of the trained checkpoint and of a
# random initialisation -> rdino-analyze. Checks what each stage hands on: every input accounted
# for, every kept image in the shards, a finite logged loss for every step, one embedding row per
# image, NIH's finding labels unchanged in the manifest, the shards and the embeddings, a report
# with plots and results for every encoder, and the finding labels study (analysis/findings.yaml).
# It does not ask the trained encoder to beat the baselines (at 64 px and a few dozen steps it
# does not); it prints the report's summary lines so that a reader of the log sees them. Under
# the sanitizers pretraining runs fewer steps.
cd "$(dirname "$0")/../.." || exit 1
source tests/lib.sh
suite=pipeline/cxr_small
config=configs/cxr_small.yaml
py=/usr/bin/python3

for b in preprocess shard pretrain embed analyze; do
    if [ ! -x "$RDINO_BIN/rdino-$b" ]; then
        rd_fail "$suite" "$RDINO_BIN/rdino-$b is not built (make all)"
        exit 0
    fi
done
shared=$(rd_shared_dir)
nih=$shared/data/cxr_small
if [ -z "$shared" ] || [ ! -f "$nih/metadata.csv" ] || [ ! -d "$nih/images" ]; then
    rd_skip "$suite" "shared data absent (set RDINO_SHARED to the shared/ folder holding data/cxr_small)"
    exit 0
fi
if ! command -v h5ls >/dev/null || ! $py -c 'import json, math' 2>/dev/null; then
    rd_skip "$suite" "needs h5ls (hdf5-tools) and /usr/bin/python3 (scripts/install-deps.sh)"
    exit 0
fi
rd_tmpdir
T=$RD_TMP
out=$T/out
# 2 ranks of one thread each: the machine's 2 cores, and BLAS sums in a fixed order.
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
# The shared sample wherever it is (the config's relative paths assume the repository root).
common=(data.output_dir="$out" data.metadata_csv="$nih/metadata.csv" data.image_root="$nih/images")
if [ "${RDINO_SANITIZE:-0}" = 1 ]; then common+=(pretrain.max_steps=20); fi

# stage LABEL PROGRAM [ARGS...]: rdino-PROGRAM on 2 ranks with the config, log in $T/LABEL.log.
# On failure prints a FAIL line with the log's error lines and exits: later stages need its files.
stage() {
    local label=$1 bin=$RDINO_BIN/rdino-$2 start=$EPOCHREALTIME
    shift 2
    if ! rd_mpirun 2 timeout 300 "$bin" --config "$config" "${common[@]}" "$@" >"$T/$label.log" 2>&1; then
        local why
        why=$(grep -m 3 -E '^error|Sanitizer|runtime error' "$T/$label.log" || tail -n 5 "$T/$label.log")
        rd_fail "$suite/$label" "${bin##*/}${*:+ $*} failed (log $T/$label.log): $(echo "$why" | tr '\n' ' ')"
        exit 0
    fi
    awk -v a="$start" -v b="$EPOCHREALTIME" -v n="$label" 'BEGIN { printf "%s: %.1f s\n", n, b - a }'
}
# json FILE EXPRESSION...: Python expressions of the parsed file d, printed on one line.
json() { $py -c 'import json, sys; d = json.load(open(sys.argv[1])); print(*map(eval, sys.argv[2:]))' "$@"; }
# rows FILE DATASET: the first dimension of an HDF5 dataset; dims FILE DATASET: all of them.
dims() { h5ls "$1/$2" | sed -n 's/.*Dataset {\([^}]*\)}.*/\1/p' | tr -d ' '; }
rows() { dims "$1" "$2" | cut -d, -f1; }
# py_check NAME ARGS...: the Python check on stdin, run with ARGS, prints its problems (nothing
# when all is well): PASS or FAIL NAME.
py_check() {
    local name=$1 problems status
    shift
    problems=$($py - "$@" 2>&1)
    status=$?
    if [ $status != 0 ] || [ -n "$problems" ]; then
        rd_fail "$name" "$(echo "$problems" | tail -n 3 | tr '\n' ' ')"
    else rd_pass "$name"; fi
}
# resolved KEY: a key's value in the resolved configuration (last path component, unique).
resolved() {
    "$RDINO_BIN/rdino-pretrain" --config "$config" "${common[@]}" --print-config 2>/dev/null |
        sed -n "s/^ *$1: \([^ #]*\).*/\1/p" | head -n 1
}

# ---- rdino-preprocess: every metadata row and every image file accounted for ----
stage preprocess preprocess
P=$out/preprocessed
S=$P/summary.json
# The truth, from the inputs themselves: rows naming no file, files no row names.
nrows=$(($(wc -l <"$nih/metadata.csv") - 1))
tail -n +2 "$nih/metadata.csv" | cut -d, -f1 | sort -u >"$T/csv-names"
find "$nih/images" -name '*.png' -printf '%f\n' | sort -u >"$T/disk-names"
no_file=$(comm -23 "$T/csv-names" "$T/disk-names" | wc -l)
no_row=$(comm -13 "$T/csv-names" "$T/disk-names" | wc -l)
read -r inputs rows_read orphans kept rejected excluded missing by_reason < <(json "$S" \
    'd["inputs"]' 'd["metadata_rows"]' 'd["orphan_images"]' 'd["kept"]' 'd["rejected"]' \
    'd["excluded"]' 'd["rejected_by_reason"].get("missing", 0)' 'sum(d["rejected_by_reason"].values())')
nmanifest=$(($(wc -l <"$P/manifest.csv") - 1))
nreport=$(tail -n +2 "$P/report.csv" | grep -c ',\(rejected\|excluded\),')
npng=$(find "$P/images" -name '*.png' | wc -l)
echo "preprocess: $inputs inputs ($nrows metadata rows, $no_row image files without a row): kept $kept," \
    "rejected $rejected $(json "$S" 'd["rejected_by_reason"]'), excluded $excluded," \
    "warnings $(json "$S" 'd["warnings_by_reason"]')"
why=""
[ "$rows_read" = "$nrows" ] || why+="metadata_rows $rows_read, the CSV has $nrows; "
[ "$orphans" = "$no_row" ] || why+="orphan_images $orphans, $no_row files have no row; "
[ "$inputs" = $((nrows + no_row)) ] || why+="inputs $inputs != $nrows rows + $no_row orphans; "
[ $((kept + rejected + excluded)) = "$inputs" ] ||
    why+="kept $kept + rejected $rejected + excluded $excluded != inputs $inputs; "
[ "$by_reason" = "$rejected" ] || why+="rejected_by_reason adds up to $by_reason, not $rejected; "
[ "$missing" = "$no_file" ] || why+="$missing rejected as missing, $no_file rows name no file; "
[ "$nmanifest" = "$kept" ] || why+="manifest has $nmanifest rows, kept $kept; "
[ "$nreport" = $((rejected + excluded)) ] || why+="report.csv has $nreport rejected/excluded lines; "
[ "$npng" = "$kept" ] || why+="$npng PNGs written for $kept kept images; "
[ "$kept" -gt 0 ] || why+="nothing kept; "
if [ -z "$why" ]; then rd_pass "$suite/preprocess_every_input_accounted_for"
else rd_fail "$suite/preprocess_every_input_accounted_for" "$why"; fi

# ---- rdino-shard: every kept image in exactly one shard row ----
stage shard shard
I=$out/shards/index.json
nshard_rows=0
for f in "$out"/shards/shard-*.h5; do nshard_rows=$((nshard_rows + $(rows "$f" images))); done
read -r nimages nshards split_sum image_size < <(json "$I" 'd["num_images"]' 'd["num_shards"]' \
    'sum(d["splits"].values())' 'd["image_size"]')
echo "shard: $nimages images in $nshards shards; images per split $(json "$I" 'd["splits"]')," \
    "patients $(json "$I" 'd["patients"]')"
size=$(tail -n +2 "$P/manifest.csv" | cut -d, -f7 | sort -u)
why=""
[ "$nshard_rows" = "$kept" ] || why+="$nshard_rows image rows in the shard files, $kept kept; "
[ "$nimages" = "$kept" ] || why+="index.json says $nimages images, $kept kept; "
[ "$split_sum" = "$nimages" ] || why+="the splits hold $split_sum images; "
[ "$image_size" = "$size" ] || why+="image size $image_size, manifest widths $size; "
if [ -z "$why" ]; then rd_pass "$suite/shard_rows_equal_kept_images"
else rd_fail "$suite/shard_rows_equal_kept_images" "$why"; fi

# ---- rdino-pretrain: a finite loss logged for every step ----
stage pretrain pretrain
steps=$(resolved max_steps)
M=$out/pretrain/metrics.jsonl
loss=$($py - "$M" "$steps" 2>&1 <<'EOF'
import json, math, sys
path, steps = sys.argv[1], int(sys.argv[2])
lines = [json.loads(line) for line in open(path)]
if [line["step"] for line in lines] != list(range(steps)):
    sys.exit(f"steps logged {[line['step'] for line in lines]}, want 0..{steps - 1}")
for line in lines:
    bad = [k for k, v in line.items() if "loss" in k and not math.isfinite(v)]
    if bad or not math.isfinite(line["total_loss"]):
        sys.exit(f"step {line['step']}: non-finite {bad or 'total_loss'}")
print(f"total_loss {lines[0]['total_loss']:.3f} at step 0, {lines[-1]['total_loss']:.3f} at step {steps - 1}")
EOF
)
status=$?
checkpoint=$(printf '%s/pretrain/checkpoints/step-%07d.h5' "$out" "$steps")
echo "pretrain: $steps steps, $loss"
if [ $status != 0 ] || [ -z "$steps" ]; then
    rd_fail "$suite/pretrain_loss_finite_every_step" "$M: $(echo "$loss" | tail -n 3 | tr '\n' ' ')"
elif [ ! -s "$checkpoint" ]; then
    rd_fail "$suite/pretrain_loss_finite_every_step" "no final checkpoint $checkpoint"
else rd_pass "$suite/pretrain_loss_finite_every_step"; fi

# ---- rdino-embed: the trained checkpoint and a random initialisation, a row per image ----
stage embed-trained embed
stage embed-random embed --init random
dim=$(resolved embed_dim)
for name in trained random-init; do
    E=$out/embeddings/$name.h5
    why=""
    for d in cls patch_mean; do
        [ "$(dims "$E" $d)" = "$nimages,$dim" ] || why+="/$d is {$(dims "$E" $d)}, want {$nimages,$dim}; "
    done
    n=$(rows "$E" meta/image_id)
    [ "$n" = "$nimages" ] || why+="/meta/image_id has $n rows; "
    if [ -z "$why" ]; then rd_pass "$suite/embed_${name}_one_row_per_image"
    else rd_fail "$suite/embed_${name}_one_row_per_image" "$E: $why"; fi
done

# ---- the finding labels: metadata CSV -> manifest -> shards -> both embedding files ----
# The truth from the CSV itself (NIH's "Finding Labels", pipe-separated; "No Finding" lists
# none), against every copy the stages make, row by row and by image id.
name=$suite/finding_labels_through_manifest_shards_embeddings
if ! $py -c 'import h5py, numpy' 2>/dev/null; then
    rd_skip "$name" "/usr/bin/python3 lacks h5py or numpy (scripts/install-deps.sh)"
else
    py_check "$name" "$nih/metadata.csv" "$P/manifest.csv" "$out/shards" "$out/embeddings" <<'EOF'
import csv, json, os, sys
import h5py, numpy as np
meta, manifest, shards, embeddings = sys.argv[1:]
NIH = ["Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
       "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening",
       "Hernia"]
names = ["finding_" + x.lower() for x in NIH]
with open(meta) as fh:
    truth = {line.split(",")[0]: [int(x in line.split(",")[1].split("|")) for x in NIH]
             for line in fh.read().splitlines()[1:]}
problems = []
rows = list(csv.DictReader(open(manifest, newline="")))
if [c for c in rows[0] if c.startswith("finding_")] != names:
    problems.append(f"manifest finding columns {list(rows[0])}")
bad = [r["image_id"] for r in rows if [int(r[c]) for c in names] != truth[r["image_id"]]]
if bad:
    problems.append(f"manifest labels differ for {len(bad)} images, e.g. {bad[:3]}")
def labels(f, what):
    ids = f["meta/image_id"].asstr()[:]
    cols = np.stack([f["meta/" + c][:] for c in names], axis=1)
    for c in names:
        if f["meta/" + c].dtype != np.int8 or "meaning" not in f["meta/" + c].attrs:
            problems.append(f"{what}: meta/{c} is not int8 with a meaning")
    wrong = [i for i, row in zip(ids, cols) if list(row) != truth[i]]
    if wrong:
        problems.append(f"{what}: labels differ for {len(wrong)} images, e.g. {wrong[:3]}")
    return len(ids)
index = json.load(open(os.path.join(shards, "index.json")))
n = sum(labels(h5py.File(os.path.join(shards, s["file"]), "r"), s["file"]) for s in index["shards"])
for e in ("trained.h5", "random-init.h5"):
    if labels(h5py.File(os.path.join(embeddings, e), "r"), e) != n:
        problems.append(f"{e}: not one row per shard row")
print("; ".join(problems))
EOF
fi

# ---- rdino-analyze: the report, its plots, results for every encoder and target ----
stage analyze analyze
R=$out/report
echo "analyze: the report's summary lines:"
grep '^summary: ' "$T/analyze.log"
problems=$($py - "$R" "$nimages" "$checkpoint" 2>&1 <<'EOF'
import json, math, os, sys
folder, nimages, checkpoint = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rep = json.load(open(os.path.join(folder, "report.json")))
problems = []
if rep["data"]["images"] != nimages:
    problems.append(f"{rep['data']['images']} images in the study, {nimages} in the shards")
encoder = {r["name"]: r["encoder"] for r in rep["representations"]}
for r in rep["representations"]:
    if r["encoder"] == "trained" and r["checkpoint"] != checkpoint:
        problems.append(f"{r['name']} embedded {r['checkpoint']}, not {checkpoint}")
for target in ["sex", "age"]:
    for enc in ["trained", "random-init", "raw-pixels"]:
        found = [r for r in rep["results"]
                 if r["target"] == target and encoder.get(r["representation"]) == enc]
        if not found:
            problems.append(f"no {target} result for {enc}")
        for r in found:
            bad = [m for m, v in r["metrics"].items()
                   if v["estimate"] is None or not math.isfinite(v["estimate"])]
            p = r["permutation"]["p"]
            if bad or not 0 < p <= 1:
                problems.append(f"{target} / {r['representation']}: metrics {bad}, p {p}")
print("; ".join(problems))
EOF
)
status=$?
if [ $status != 0 ] || [ -n "$problems" ] || [ ! -s "$R/report.md" ]; then
    rd_fail "$suite/report_has_trained_random_pixels_for_sex_and_age" \
        "$(echo "${problems:-no report.md}" | tail -n 3 | tr '\n' ' ')"
else rd_pass "$suite/report_has_trained_random_pixels_for_sex_and_age"; fi

# ---- the finding labels study (analysis/findings.yaml, fewer resamples): a result for every
# estimable label and probe, Hernia (one positive image) not estimable, the macro AUROC ----
stage analyze-findings analyze --study analysis/findings.yaml analyze.output_dir="$out/findings" \
    analyze.bootstrap=200 analyze.lambdas_per_decade=1
py_check "$suite/findings_study" "$out/findings/report.json" <<'EOF'
import json, math, sys
rep = json.load(open(sys.argv[1]))
fl = rep["finding_labels"]
labels = [x["label"] for x in fl["labels"]]
skipped = {x["label"]: x["reason"] for x in fl["not_estimable"]}
problems = []
if len(labels) + len(skipped) != 14 or "finding_hernia" not in skipped:
    problems.append(f"labels {labels}, not estimable {skipped}")
if not skipped.get("finding_hernia", "").startswith("not estimable: 1 positive and"):
    problems.append(f"hernia: {skipped.get('finding_hernia')}")
reps = [r["name"] for r in rep["representations"]]
for lab in labels:
    for r in reps:
        got = [x for x in rep["results"] if x["target"] == lab and x["representation"] == r]
        if not got or not math.isfinite(got[0]["metrics"]["auroc"]["estimate"]):
            problems.append(f"no AUROC for {lab} / {r}")
macro = {m["representation"]: m["auroc"] for m in fl["macro"]}
if sorted(macro) != sorted(reps) or not all(m["lo"] <= m["estimate"] <= m["hi"] for m in macro.values()):
    problems.append(f"macro {macro}")
print("; ".join(problems))
EOF
grep '^summary: macro AUROC' "$T/analyze-findings.log"

if ! command -v gnuplot >/dev/null; then
    rd_skip "$suite/report_plots" "gnuplot is not installed (gnuplot-nox): no plots"
    exit 0
fi
plots=$(json "$R/report.json" '" ".join(d["plots"])')
why=""
for p in $plots; do
    signature=$(head -c 8 "$R/$p" 2>/dev/null | od -An -tx1 | tr -d ' \n')
    [ "$signature" = 89504e470d0a1a0a ] || why+="$p is not a PNG; "
    grep -q "($p)" "$R/report.md" || why+="report.md does not link $p; "
done
for p in roc_sex scatter_age embedding_sex embedding_age loss; do
    case " $plots " in *" $p"[._]*) ;; *) why+="no $p plot; " ;; esac
done
problem=$(json "$R/report.json" 'd["plot_problem"]')
[ -z "$problem" ] || why+="plot problem: $problem; "
if [ -z "$why" ]; then rd_pass "$suite/report_plots"; else rd_fail "$suite/report_plots" "$why"; fi
