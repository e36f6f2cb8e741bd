#!/usr/bin/env bash
# make demo's script (scripts/demo.sh) end to end, shortened: fewer phantoms, 30 pretraining
# steps, fewer bootstrap replicates and permutations (RDINO_DEMO_ARGS). Checks that every stage
# ran, both reports exist, the study finds the planted sex signal on the strength-1 phantoms
# (some representation carries it; at this size raw pixels do, the encoders are weaker),
# and finds nothing (no Holm-adjusted permutation test rejects, every interval covers chance)
# on the strength-0 null control, and that the study on bf16 embeddings lands inside the fp32
# intervals. Whether the trained encoder beats the baselines is the full demo's question, not this
# test's (30 steps train nothing): the full demo checks it itself and exits with status 3 if not;
# here the checks it prints must agree with the reports.
cd "$(dirname "$0")/../.." || exit 1
source tests/lib.sh
suite=demo
if ! command -v /usr/bin/python3 >/dev/null || ! /usr/bin/python3 -c 'import json' 2>/dev/null; then
    rd_skip "$suite" "/usr/bin/python3 is needed to read report.json"; exit 0
fi
for b in synth preprocess shard pretrain embed analyze; do
    if [ ! -x "$RDINO_BIN/rdino-$b" ]; then rd_skip "$suite" "$RDINO_BIN/rdino-$b not built"; exit 0; fi
done
rd_tmpdir
T=$RD_TMP
trap 'rm -rf "$T"' EXIT
out=$T/out
# CLS only: 3 representations x 2 targets = 6 tests, so 119 permutations let Holm reject.
args="analyze.features=cls synth.n_patients=120 pretrain.max_steps=30 analyze.bootstrap=100 analyze.permutations=119"
if [ "${RDINO_SANITIZE:-0}" = 1 ]; then # the instrumented build: the pipeline only, small
    args="analyze.features=cls synth.n_patients=40 pretrain.max_steps=4 analyze.bootstrap=20 analyze.permutations=19"
fi
RDINO_DEMO_OUT=$out RDINO_DEMO_ARGS="$args" scripts/demo.sh "$RDINO_BUILD" >"$T/demo.log" 2>&1
status=$?
if [ $status != 0 ] || ! grep -q "^demo finished" "$T/demo.log"; then
    rd_fail "$suite/runs" "scripts/demo.sh exited with $status; last lines:"
    tail -n 20 "$T/demo.log" >&2
    exit 0
fi
rd_pass "$suite/runs"
sed -n '/^demo finished/,$p' "$T/demo.log"

# The demo's own checks (enforced by the full demo, printed by this shortened one): three lines,
# each agreeing with the report: the sex and age lines with the report's paired comparisons (as
# report.json states them), the null line with the null report's permutation tests.
checks=$(sed -n '/^demo checks:/,$p' "$T/demo.log")
v=$(/usr/bin/python3 - "$out/report/report.json" "$out/null/report/report.json" "$checks" <<'PY'
import json, sys
main, null, checks = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), sys.argv[3]
def shown(target, baselines):
    better = {(c["a"], c["b"]) for c in main["comparisons"]
              if c["target"] == target and c["significant"] and c["better"] == c["a"]}
    return any(all(("trained" + f, b.format(f)) in better for b in baselines)
               for f in (" (cls)", " (patch_mean)", ""))
expect = {"sex:": shown("sex", ["random-init{}"]),
          "age:": shown("age", ["random-init{}", "raw-pixels"]),
          "null control:": all(r["permutation"]["p_holm"] > 0.05 for r in null["results"])}
problems = []
lines = [l.split(None, 1) for l in checks.splitlines()[1:] if l.strip() and "(not checked)" not in l]
for start, want in expect.items():
    got = [l[0] for l in lines if len(l) == 2 and l[1].startswith(start)]
    if got != ["yes" if want else "NO"]:
        problems.append("%s printed %s, the report says %s" % (start, got, want))
print("; ".join(problems))
PY
)
if [ -z "$v" ]; then rd_pass "$suite/checks_agree_with_the_reports"; else rd_fail "$suite/checks_agree_with_the_reports" "$v"; fi

missing=""
for f in synth/metadata.csv shards/index.json pretrain/metrics.jsonl embeddings/trained.h5 \
    embeddings/random-init.h5 report/report.md report/report.json report/loss.png \
    null/shards/index.json null/embeddings/trained.h5 null/embeddings/random-init.h5 \
    null/report/report.md null/report/report.json; do
    [ -s "$out/$f" ] || missing+=" $f"
done
if [ -z "$missing" ]; then rd_pass "$suite/outputs"; else rd_fail "$suite/outputs" "missing:$missing"; fi

# report.json: results[] hold {target, representation, permutation.p, metrics.<m>.{lo,hi}}
verdict() { # verdict signal|null REPORT_JSON: prints what is wrong, nothing if all is well
    /usr/bin/python3 - "$1" "$2" <<'PY'
import json, sys
mode, path = sys.argv[1], sys.argv[2]
results = json.load(open(path))["results"]
reps = {r["representation"].split(" ")[0] for r in results}
problems = []
if not {"trained", "random-init", "raw-pixels"} <= reps:
    problems.append("encoders in the report: %s" % sorted(reps))
for r in results:
    name = "%s/%s" % (r["representation"], r["target"])
    p = r["permutation"]["p_holm"]  # the report's verdicts use Holm over all its tests
    m = r["metrics"]["auroc" if r["target"] == "sex" else "r2"]
    chance = 0.5 if r["target"] == "sex" else 0.0
    if mode == "null" and (p <= 0.05 or not m["lo"] <= chance <= m["hi"]):
        problems.append("%s: p %.3f, [%.3f, %.3f] excludes chance %.1f" % (name, p, m["lo"], m["hi"], chance))
found = [r["representation"] for r in results if r["target"] == "sex" and r["permutation"]["p_holm"] <= 0.05]
if mode == "signal" and not found:
    problems.append("no representation carries sex: Holm p %s" % [r["permutation"]["p_holm"] for r in results if r["target"] == "sex"])
print("; ".join(problems))
PY
}
if [ "${RDINO_SANITIZE:-0}" = 1 ]; then
    for c in signal_found null_shows_nothing; do
        rd_skip "$suite/$c" "the ASan build runs a 40-patient demo, too small for the study's verdicts (checked in the normal build)"
    done
    exit 0
fi
v=$(verdict signal "$out/report/report.json")
if [ -z "$v" ]; then rd_pass "$suite/signal_found"; else rd_fail "$suite/signal_found" "$v"; fi
v=$(verdict null "$out/null/report/report.json")
if [ -z "$v" ]; then rd_pass "$suite/null_shows_nothing"; else rd_fail "$suite/null_shows_nothing" "$v"; fi

# The study with bf16 embeddings (embed.precision: bf16, docs/BF16.md): both encoders embedded
# again in bf16 from the same checkpoint and shards, the same study run on them; every effect
# (AUROC, R²) must fall inside the fp32 report's interval. On a CPU without AVX512-BF16 the
# emulated path (RDINO_BF16=emulate: the same roundings in software) stands in.
B=$T/bf16
mkdir -p "$B"
for d in synth preprocessed shards; do ln -s "$out/$d" "$B/$d"; done
grep -qw avx512_bf16 /proc/cpuinfo || export RDINO_BF16=${RDINO_BF16:-emulate}
bf16_run() { # STAGE [ARGS...]: as scripts/demo.sh runs it, on the bf16 folder
    local name=$1
    shift
    # shellcheck disable=SC2086 # $args holds several overrides
    OMP_NUM_THREADS=1 rd_mpirun 2 "$RDINO_BIN/rdino-$name" --config configs/demo.yaml \
        data.output_dir="$B" data.metadata_csv="$B/synth/metadata.csv" \
        data.image_root="$B/synth/images" pretrain.output_dir="$out/pretrain" \
        analyze.metrics_jsonl="$out/pretrain/metrics.jsonl" embed.precision=bf16 $args "$@" \
        >>"$T/bf16.log" 2>&1
}
if ! bf16_run embed || ! bf16_run embed --init random || ! bf16_run analyze; then
    rd_fail "$suite/bf16_study_inside_fp32_intervals" "a bf16 stage failed: $(grep -m1 error "$T/bf16.log")"
else
    v=$(/usr/bin/python3 - "$out/report/report.json" "$B/report/report.json" <<'PY'
import json, sys
key = lambda r: (r["target"], r["adjusted_for"], r["representation"], r["model"])
fp32 = {key(r): r for r in json.load(open(sys.argv[1]))["results"]}
bf16 = json.load(open(sys.argv[2]))["results"]
problems, worst, n = [], 0.0, 0
for r in bf16:
    f = fp32.get(key(r))
    if f is None:
        problems.append("%s: not in the fp32 report" % (key(r),))
        continue
    for m in ("auroc", "r2"):
        if m not in r["metrics"]:
            continue
        e, i = r["metrics"][m]["estimate"], f["metrics"][m]
        n += 1
        worst = max(worst, abs(e - i["estimate"]))
        if not i["lo"] <= e <= i["hi"]:
            problems.append("%s/%s %s: bf16 %.4f outside fp32 [%.4f, %.4f]" % (r["representation"], r["target"], m, e, i["lo"], i["hi"]))
if n == 0 or len(bf16) != len(fp32):
    problems.append("%d bf16 results, %d fp32" % (len(bf16), len(fp32)))
print("; ".join(problems) if problems else "OK %d effects, largest difference %.4f" % (n, worst))
PY
)
    if [[ $v == OK* ]]; then
        rd_pass "$suite/bf16_study_inside_fp32_intervals"
        echo "  bf16 study: ${v#OK }" >&2
    else
        rd_fail "$suite/bf16_study_inside_fp32_intervals" "$v"
    fi
fi
