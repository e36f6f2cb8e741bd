#!/usr/bin/env bash
# rdino-analyze end to end on synthetic inputs (tests/analyze/make_study.py): a planted encoder
# is found and a null one is not (sex and age; a finding label, analysis/findings.yaml), report.md
# agrees with report.json, the metrics recomputed from predictions.csv agree too, the plots are
# valid PNGs, 1 and 3 ranks give identical reports, a missing metrics.jsonl is reported, and bad
# inputs fail with messages naming the files.
cd "$(dirname "$0")/../.." || exit 1
source tests/lib.sh
suite=analyze/app
bin=$RDINO_BIN/rdino-analyze
py=/usr/bin/python3
check=tests/analyze/check_report.py

if [ ! -x "$bin" ]; then
    rd_skip "$suite" "$bin not built"
    exit 0
fi
if ! $py -c 'import h5py, numpy, PIL, sklearn' 2>/dev/null; then
    rd_skip "$suite" "/usr/bin/python3 lacks h5py, numpy, PIL or sklearn (scripts/install-deps.sh)"
    exit 0
fi
if ! command -v gnuplot >/dev/null; then
    rd_skip "$suite" "gnuplot is not installed (gnuplot-nox)"
    exit 0
fi
if [ "${RDINO_SANITIZE:-0}" = 1 ]; then export ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0"; fi
# Same BLAS thread count on every run, so 1 and 3 ranks sum in the same order.
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
rd_tmpdir
T=$RD_TMP
$py tests/analyze/make_study.py "$T" >/dev/null

# Small settings: seconds, not minutes. 39 permutations: the smallest p is 0.025.
small=(data.output_dir="$T" analyze.bootstrap=200 analyze.permutations=39
       analyze.lambda_range=[0.1,10000] analyze.lambdas_per_decade=1 analyze.top_dims=5)

# run NAME NP [overrides...]: report into $T/NAME, log in $T/NAME.log. One rank runs as an MPI
# singleton (no mpirun: starts in a fraction of the time).
run() {
    local name=$1 np=$2 launch=()
    shift 2
    [ "$np" -gt 1 ] && launch=(mpirun -np "$np" --oversubscribe --bind-to none)
    timeout 300 "${launch[@]}" "$bin" "${small[@]}" analyze.output_dir="$T/$name" "$@" \
        >"$T/$name.log" 2>&1
}

# Default inputs: every .h5 in <output_dir>/embeddings, shards, pretrain/metrics.jsonl.
if run r1 1 analyze.features=both && $py $check study "$T/r1" "$T/truth.json" >"$T/check.txt" 2>&1; then
    rd_pass "$suite/planted_found_null_not_report_consistent_plots_valid"
else
    rd_fail "$suite/planted_found_null_not_report_consistent_plots_valid" \
        "$(tail -3 "$T/r1.log" | tr '\n' ' ') $(head -5 "$T/check.txt" | tr '\n' ' ')"
fi
if grep -q "summary: trained (cls) predicts sex better than random-init (cls): ΔAUROC" "$T/r1.log" &&
    grep -q "summary: report in $T/r1/report.md" "$T/r1.log" && grep -q "probe permutations" "$T/r1.log"; then
    rd_pass "$suite/log_has_progress_and_summary"
else
    rd_fail "$suite/log_has_progress_and_summary" "$(grep summary "$T/r1.log" | head -3 | tr '\n' ' ')"
fi

if run r3 3 analyze.features=both; then
    same=1
    for f in report.json report.md predictions.csv; do
        cmp -s "$T/r1/$f" "$T/r3/$f" || same=0 why="$f differs: $(diff "$T/r1/$f" "$T/r3/$f" | head -3 | tr '\n' ' ')"
    done
    if [ $same = 1 ]; then rd_pass "$suite/identical_on_1_and_3_ranks"; else rd_fail "$suite/identical_on_1_and_3_ranks" "$why"; fi
else
    rd_fail "$suite/identical_on_1_and_3_ranks" "3 ranks: $(tail -3 "$T/r3.log" | tr '\n' ' ')"
fi

# The Slurm script (srun faked by exec) on a YAML config gives the same report.
mkdir -p "$T/fakebin"
printf '#!/bin/sh\nexec "$@"\n' >"$T/fakebin/srun"
chmod +x "$T/fakebin/srun"
cat >"$T/study.yaml" <<EOF
data:
  output_dir: $T
analyze:
  output_dir: $T/slurm
  features: both
  bootstrap: 200
  permutations: 39
  lambda_range: [0.1, 10000]
  lambdas_per_decade: 1
  top_dims: 5
EOF
sbatch_script=jobs/analyze.sbatch
if ! PATH="$T/fakebin:$PATH" RDINO_BIN="$RDINO_BIN" bash "$sbatch_script" "$T/study.yaml" >"$T/slurm.log" 2>&1; then
    rd_fail "$suite/sbatch_script" "script failed: $(tail -3 "$T/slurm.log" | tr '\n' ' ')"
elif ! cmp -s "$T/r1/report.json" "$T/slurm/report.json"; then
    rd_fail "$suite/sbatch_script" "report.json differs from the command-line run"
elif bash "$sbatch_script" >/dev/null 2>&1; then
    rd_fail "$suite/sbatch_script" "accepted a missing config argument"
else
    rd_pass "$suite/sbatch_script"
fi

# A study file (analysis/confounders.yaml) with the command line's small settings winning over
# it: view as a target, age and sex adjusted for the others; the planted encoder still carries
# age and sex beyond them, nothing carries the view (drawn independently of everything), and
# report.md puts raw and adjusted effects side by side. k-NN probes (analyze.knn.enabled) find
# the planted sex and not the null encoder's. The Slurm script takes the study file
# and gives the same report.
name=$suite/study_file_confounders
if ! run conf 1 --study analysis/confounders.yaml analyze.knn.enabled=true; then
    rd_fail "$name" "$(tail -3 "$T/conf.log" | tr '\n' ' ')"
elif ! $py - "$T/conf" >"$T/check.txt" 2>&1 <<'PYEOF'
import json, sys
d = sys.argv[1]
rep = json.load(open(d + "/report.json"))
md = open(d + "/report.md").read()
res = {(r["target"], r["representation"]): r for r in rep["results"]}
bad = []
targets = [r["target"] for r in rep["results"]]
for t in ("sex", "age", "view", "age_given_sex_view", "sex_given_age_view"):
    if t not in targets:
        bad.append(f"no results for {t}")
if not bad:
    if res[("age_given_sex_view", "trained")]["adjusted_for"] != "sex, view":
        bad.append("adjusted_for of age_given_sex_view")
    for t in ("age_given_sex_view", "sex_given_age_view"):
        m = res[(t, "trained")]["metrics"]["r2"]
        if not m["lo"] > 0:
            bad.append(f"trained loses {t}: {m}")
        if res[(t, "random-init")]["permutation"]["p_holm"] <= 0.05:
            bad.append(f"noise finds {t}")
    for r in ("trained", "random-init", "raw-pixels"):
        if res[("view", r)]["permutation"]["p_holm"] <= 0.05:
            bad.append(f"{r} finds the view, which nothing carries")
    knn = res[("sex", "trained kNN")]["metrics"]["auroc"]
    if not knn["lo"] > 0.6:
        bad.append(f"the k-NN probe misses the planted sex: {knn}")
    null = res[("sex", "random-init kNN")]["metrics"]["auroc"]
    if not null["lo"] < 0.5 < null["hi"]:
        bad.append(f"the k-NN probe finds sex in noise: {null}")
    if "| trained | cls, k-NN |" not in md:
        bad.append("no k-NN row in the results tables")
    if res[("sex", "trained")]["permutation"]["permutations"] != 39:
        bad.append("the command line's analyze.permutations did not win over the study file")
    if "## Confounders" not in md or "| age_given_sex_view | sex, view | trained | AUROC" in md:
        bad.append("no Confounders section, or age's raw effect shown as AUROC")
    if "| sex_given_age_view | age, view | trained | AUROC" not in md:
        bad.append("no raw sex AUROC beside its adjusted effect")
print("\n".join(bad))
sys.exit(1 if bad else 0)
PYEOF
then
    rd_fail "$name" "$(tr '\n' ' ' <"$T/check.txt")"
elif ! PATH="$T/fakebin:$PATH" RDINO_BIN="$RDINO_BIN" bash "$sbatch_script" "$T/study.yaml" \
    analysis/confounders.yaml "${small[@]}" analyze.output_dir="$T/slurm_conf" >"$T/slurm_conf.log" 2>&1; then
    rd_fail "$name" "sbatch with a study file: $(tail -3 "$T/slurm_conf.log" | tr '\n' ' ')"
elif ! grep -q '"target": "view"' "$T/slurm_conf/report.json"; then
    rd_fail "$name" "sbatch ignored the study file"
else
    rd_pass "$name"
fi

# The finding labels (analysis/findings.yaml, with the small settings): linear and k-NN probes
# of every /meta/finding_* column, the planted label found, the rare one not estimable, each
# label's AUROC recomputed from predictions.csv by brute force, the macro AUROC their mean,
# report.md and finding_labels.csv in agreement (tests/analyze/check_report.py findings).
name=$suite/study_file_findings
if ! run find 1 --study analysis/findings.yaml; then
    rd_fail "$name" "$(tail -3 "$T/find.log" | tr '\n' ' ')"
elif ! $py $check findings "$T/find" >"$T/check.txt" 2>&1; then
    rd_fail "$name" "$(head -5 "$T/check.txt" | tr '\n' ' ')"
elif ! grep -q "not analysed: finding_rare: not estimable: 3 positive" "$T/find.log" ||
    ! grep -q "summary: macro AUROC over 2 finding labels, trained " "$T/find.log"; then
    rd_fail "$name" "the log lacks the not-estimable label or the macro summary"
else
    rd_pass "$name"
fi

# Runs side by side (analyze.compare): two reports of checkpoints 1000 and 2000 (the second a
# copy relabelled) in one table, a forest plot and a trajectory plot per target; the findings
# report's macro AUROC rows equal its report.json's.
name=$suite/compare_runs_side_by_side
mkdir -p "$T/runs/ckpt1" "$T/runs/ckpt2"
cp -r "$T/conf" "$T/runs/ckpt1/report"
cp -r "$T/conf" "$T/runs/ckpt2/report"
sed -i 's/step-0001000/step-0002000/' "$T/runs/ckpt2/report/report.json"
if ! timeout 120 "$bin" analyze.compare="$T/runs/ckpt1/report, $T/runs/ckpt2/report" \
    analyze.output_dir="$T/compare" >"$T/compare.log" 2>&1; then
    rd_fail "$name" "$(tail -3 "$T/compare.log" | tr '\n' ' ')"
elif ! grep -q "^| ckpt1 | 1000 | trained | 0\.[0-9]* \[0\.[0-9]*, 0\.[0-9]*\] |" "$T/compare/compare.md" ||
    ! grep -q "^| ckpt2 | 2000 | trained kNN |" "$T/compare/compare.md" ||
    [ "$(grep -c ',"age_given_sex_view",' "$T/compare/compare.csv")" != 12 ]; then
    rd_fail "$name" "compare.md or compare.csv lacks rows: $(head -12 "$T/compare/compare.md" | tail -4 | tr '\n' ' ')"
elif ! $py -c 'import sys
from PIL import Image
for f in sys.argv[1:]:
    Image.open(f).verify()' "$T/compare/forest_sex.png" "$T/compare/trajectory_age.png" 2>"$T/check.txt"; then
    rd_fail "$name" "plots: $(tr '\n' ' ' <"$T/check.txt")"
elif ! timeout 120 "$bin" analyze.compare="$T/runs/ckpt1/report,$T/find" \
    analyze.output_dir="$T/compare_find" >"$T/compare_find.log" 2>&1 ||
    ! $py - "$T/find/report.json" "$T/compare_find/compare.csv" >"$T/check.txt" 2>&1 <<'PY'
import csv, json, sys
macro = json.load(open(sys.argv[1]))["finding_labels"]["macro"]
rows = [r for r in csv.DictReader(open(sys.argv[2])) if r["target"] == "findings_macro"]
got = {r["representation"]: (float(r["estimate"]), float(r["lo"]), float(r["hi"])) for r in rows}
want = {m["representation"]: tuple(m["auroc"][k] for k in ("estimate", "lo", "hi")) for m in macro}
assert len(rows) == len(macro) and got == want and all(r["run"] == "find" for r in rows), (got, want)
PY
then
    rd_fail "$name" "the findings report's macro AUROC: $(tail -2 "$T/check.txt" "$T/compare_find.log" | tr '\n' ' ')"
elif timeout 60 "$bin" analyze.compare="$T/runs/ckpt1/report,$T/nowhere" \
    analyze.output_dir="$T/compare_bad" >"$T/compare_bad.log" 2>&1 ||
    ! grep -q "analyze.compare.*$T/nowhere/report.json" "$T/compare_bad.log"; then
    rd_fail "$name" "a missing report: $(tail -2 "$T/compare_bad.log" | tr '\n' ' ')"
else
    rd_pass "$name"
fi

# No pretraining log: the report says so and has no loss plot (also: no pixel baseline).
if run noloss 1 analyze.metrics_jsonl="$T/nowhere/metrics.jsonl" analyze.pixels.enabled=false \
    analyze.permutations=0 analyze.bootstrap=50 && $py $check noloss "$T/noloss" >"$T/check.txt" 2>&1 &&
    ! grep -q raw-pixels "$T/noloss/report.json"; then
    rd_pass "$suite/missing_metrics_jsonl_reported"
else
    rd_fail "$suite/missing_metrics_jsonl_reported" "$(tail -3 "$T/noloss.log" | tr '\n' ' ') $(cat "$T/check.txt")"
fi

# The plots are drawn by the scripts in analyze.plots_dir (default analysis/plots): an edited
# copy is what gnuplot runs (a broken one is named in the report), and a folder without the
# scripts is a plot problem, not a failed study.
name=$suite/plots_from_analyze_plots_dir
mkdir -p "$T/myplots"
cp analysis/plots/*.gp "$T/myplots/"
echo "set this is not gnuplot" >>"$T/myplots/roc.gp"
quick=(analyze.pixels.enabled=false analyze.permutations=0 analyze.bootstrap=50)
if ! run myplots 1 "${quick[@]}" analyze.plots_dir="$T/myplots" ||
    ! run noplots 1 "${quick[@]}" analyze.plots_dir="$T/nowhere"; then
    rd_fail "$name" "$(tail -2 "$T/myplots.log" "$T/noplots.log" | tr '\n' ' ')"
elif ! grep -q "Plots missing: gnuplot failed (.*$T/myplots/roc.gp" "$T/myplots/report.md"; then
    rd_fail "$name" "the edited roc.gp was not run: $(grep -i 'plots missing' "$T/myplots/report.md")"
elif ! grep -q "Plots missing: no plot scripts in $T/nowhere" "$T/noplots/report.md"; then
    rd_fail "$name" "$(grep -i 'plots missing' "$T/noplots/report.md")"
else
    rd_pass "$name"
fi

# expect_error CASE NP PATTERN... [-- overrides]: the run fails and its log matches every pattern.
expect_error() {
    local case=$1 np=$2
    shift 2
    local patterns=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do patterns+=("$1"); shift; done
    shift
    if run "err_$case" "$np" "$@"; then
        rd_fail "$suite/error_$case" "succeeded; expected an error"
        return
    fi
    local p
    for p in "${patterns[@]}"; do
        if ! grep -q -- "$p" "$T/err_$case.log"; then
            rd_fail "$suite/error_$case" "no '$p' in: $(grep -i error "$T/err_$case.log" | head -2 | tr '\n' ' ')"
            return
        fi
    done
    rd_pass "$suite/error_$case"
}
E=$T/embeddings/trained.h5
mkdir -p "$T/bad/empty"
expect_error missing_file 1 "nowhere.h5" "No such file" -- analyze.embeddings="$E,$T/nowhere.h5"
expect_error missing_file_3_ranks 3 "nowhere.h5" -- analyze.embeddings="$E,$T/nowhere.h5"
expect_error corrupt_file 1 "corrupt.h5" -- analyze.embeddings="$E,$T/bad/corrupt.h5"
expect_error unknown_version 1 "future.h5 has format_version 2" -- analyze.embeddings="$E,$T/bad/future.h5"
expect_error different_row_count 1 "fewer_rows.h5 has 278 rows but $E has 279" \
    -- analyze.embeddings="$E,$T/bad/fewer_rows.h5"
expect_error different_ids 1 "row 5 is image" "in $E but 'renamed.png' in $T/bad/other_ids.h5" \
    -- analyze.embeddings="$E,$T/bad/other_ids.h5"
expect_error image_not_in_shards 1 "image 'renamed.png' of $T/bad/other_ids.h5 is not in the shards in $T/shards" \
    -- analyze.embeddings="$T/bad/other_ids.h5"
expect_error no_shards 1 "$T/noshards/index.json" "no shards for the raw-pixel baseline" -- analyze.shards_dir="$T/noshards"
expect_error empty_folder 1 "folder $T/bad/empty holds no .h5" -- analyze.embeddings="$T/bad/empty"
# A flipped byte in an image: its CRC32C fails the read, naming the shard, row and image.
cp -r "$T/shards" "$T/damaged"
$py tests/shard/check_shards.py flip "$T/damaged/shard-00001.h5" 3
expect_error damaged_shard 2 "damaged/shard-00001.h5: row 3 " "CRC32C" -- analyze.shards_dir="$T/damaged"

# The pipeline in front: rdino-synth phantoms (age and sex shape the anatomy) -> rdino-preprocess
# -> rdino-shard (files written by rdino itself) -> a null embedding file aligned with the
# shards -> rdino-analyze, whose raw-pixel baseline must find both age and sex.
name=$suite/pipeline_synth_preprocess_shard_analyze
P=$T/pipeline
if [ ! -x "$RDINO_BIN/rdino-synth" ] || [ ! -x "$RDINO_BIN/rdino-preprocess" ] || [ ! -x "$RDINO_BIN/rdino-shard" ]; then
    rd_skip "$name" "rdino-synth, rdino-preprocess or rdino-shard not built"
elif ! { "$RDINO_BIN/rdino-synth" data.output_dir="$P" synth.n_patients=80 synth.size_range=[64,96] \
        synth.images_per_patient=[1,3] &&
    "$RDINO_BIN/rdino-preprocess" data.output_dir="$P" data.metadata_csv="$P/synth/metadata.csv" \
        data.image_root="$P/synth/images" preprocess.size=32 &&
    "$RDINO_BIN/rdino-shard" data.output_dir="$P" shard.num_shards=2 &&
    $py tests/analyze/null_embeddings.py "$P/shards" "$P/embeddings/random-init.h5" random-init; } >"$P.log" 2>&1; then
    rd_fail "$name" "pipeline failed: $(tail -3 "$P.log" | tr '\n' ' ')"
elif ! run pipeline_report 1 data.output_dir="$P"; then
    rd_fail "$name" "rdino-analyze failed: $(tail -3 "$T/pipeline_report.log" | tr '\n' ' ')"
elif ! $py - "$T/pipeline_report/report.json" >"$T/check.txt" 2>&1 <<'PYEOF'
import json, sys
rep = json.load(open(sys.argv[1]))
res = {(r["target"], r["representation"]): r for r in rep["results"]}
bad = []
for target, metric, chance in (("sex", "auroc", 0.5), ("age", "r2", 0.0)):
    pix, null = res[(target, "raw-pixels")], res[(target, "random-init")]
    if not (pix["metrics"][metric]["lo"] > chance and pix["permutation"]["p"] <= 0.05):
        bad.append(f"raw pixels miss {target}: {pix['metrics'][metric]} p {pix['permutation']['p']}")
    if null["permutation"]["p"] <= 0.05:
        bad.append(f"noise finds {target}: p {null['permutation']['p']}")
print("\n".join(bad))
sys.exit(1 if bad else 0)
PYEOF
then
    rd_fail "$name" "$(tr '\n' ' ' <"$T/check.txt")"
else
    rd_pass "$name"
fi
