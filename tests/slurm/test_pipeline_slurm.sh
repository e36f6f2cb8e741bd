#!/usr/bin/env bash
# jobs/submit_pipeline.sh on a throwaway one-node Slurm cluster (tests/slurm/cluster.sh; root and
# Debian's slurm-wlm + munge, else SKIP). First a pipeline whose preprocess stage fails: the
# later jobs are cancelled and the failed job's log ends with the message. Then the whole
# pipeline on tiny phantoms and a tiny ViT, 2 ranks per stage, started by srun over PMIx except
# shard and both embeds (mpirun inside the job); pretraining is sent SIGUSR1 after its first
# checkpoint and requeues itself, and the chain must wait for its final success. Without a
# cluster, only the command-line checks (dry run, refused configs) and a submission against
# stand-ins for sbatch and scancel run.
cd "$(dirname "$0")/../.." || exit 1
source tests/lib.sh
source tests/pretrain/pretrain_lib.sh
source tests/slurm/cluster.sh
suite=slurm/pipeline
submit=jobs/submit_pipeline.sh

for b in synth preprocess shard pretrain embed analyze; do
    if [ ! -x "$RDINO_BIN/rdino-$b" ]; then rd_skip "$suite" "$RDINO_BIN/rdino-$b not built"; exit 0; fi
done
rd_tmpdir
T=$RD_TMP
cleanup() {
    slurm_cluster_stop
    if [ "${RDINO_KEEP_TMP:-0}" != 1 ]; then rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM # so that cleanup runs when the test is interrupted or timed out
export RDINO_BIN=$PWD/$RDINO_BIN

# The tiny pretraining model of tests/pretrain plus the data and study settings as overrides
# (passed to every stage): 40 patients, 32 px, 12 steps with a checkpoint every 3.
pt_tiny_yaml "$T/tiny.yaml"
tiny=(data.output_dir="$T/out" synth.n_patients=40 synth.images_per_patient=[1,2]
      synth.size_range=[48,64] preprocess.size=32 shard.images_per_shard=32
      pretrain.max_steps=12 pretrain.checkpoint_every=3 analyze.bootstrap=100
      analyze.permutations=19 analyze.lambda_range=[0.1,10000] analyze.lambdas_per_decade=1)
stage_names="synth preprocess shard pretrain embed-trained embed-random analyze"

# ---- command line (no cluster needed) ----
ok=1 why=""
if ! "$submit" "$T/tiny.yaml" "${tiny[@]}" --dry-run >"$T/dry.txt" 2>&1; then
    ok=0 why="dry run failed: $(tail -2 "$T/dry.txt")"
elif [ "$(grep -c '^sbatch ' "$T/dry.txt")" != 7 ] ||
    ! grep -q 'job-name=rdino-analyze .*dependency=afterok:\\<embed-trained\\>:\\<embed-random\\>' "$T/dry.txt" ||
    ! grep -q 'jobs/embed.sbatch .* --init random' "$T/dry.txt" ||
    grep 'job-name=rdino-synth' "$T/dry.txt" | grep -q dependency; then
    ok=0 why="unexpected dry run: $(head -c 600 "$T/dry.txt")"
elif ! "$submit" "$T/tiny.yaml" "${tiny[@]}" --dry-run --from pretrain >"$T/dry2.txt" 2>&1 ||
    [ "$(grep -c '^sbatch ' "$T/dry2.txt")" != 4 ] ||
    grep 'job-name=rdino-pretrain' "$T/dry2.txt" | grep -q dependency; then
    ok=0 why="--from pretrain: $(head -c 400 "$T/dry2.txt")"
elif "$submit" "$T/tiny.yaml" "${tiny[@]}" --dry-run --no-synth >"$T/e1.txt" 2>&1 ||
    ! grep -q "data.metadata_csv is empty" "$T/e1.txt"; then
    ok=0 why="--no-synth without a metadata CSV was not refused: $(cat "$T/e1.txt")"
elif "$submit" "$T/tiny.yaml" data.metadata_csv="$T/none.csv" --dry-run >"$T/e2.txt" 2>&1 ||
    ! grep -q "$T/none.csv: no such file" "$T/e2.txt"; then
    ok=0 why="a missing metadata CSV was not refused: $(cat "$T/e2.txt")"
elif "$submit" "$T/tiny.yaml" pretrain.no_such_key=1 --dry-run >"$T/e3.txt" 2>&1 ||
    ! grep -q "unknown key 'pretrain.no_such_key'" "$T/e3.txt"; then
    ok=0 why="an unknown key was not refused: $(cat "$T/e3.txt")"
elif "$submit" "$T/tiny.yaml" --from pretrian --dry-run >"$T/e4.txt" 2>&1 ||
    ! grep -q "unknown stage 'pretrian'" "$T/e4.txt"; then
    ok=0 why="an unknown stage was not refused: $(cat "$T/e4.txt")"
fi
if [ $ok = 1 ]; then rd_pass "$suite/command_line"; else rd_fail "$suite/command_line" "$why"; fi

# ---- submission against stand-ins for sbatch and scancel (no cluster needed) ----
# The stand-in sbatch records its environment and arguments, warns on stderr, prints ids 101,
# 102, ... as "id;cluster", and refuses the job script named by $STUB_REFUSE.
mkdir -p "$T/stub"
cat >"$T/stub/sbatch" <<'EOF'
#!/usr/bin/env bash
n=$(( $(cat "$STUB_DIR/count" 2>/dev/null || echo 100) + 1 ))
case "$*" in *"${STUB_REFUSE:-none}"*) echo "sbatch: error: invalid partition" >&2; exit 1 ;; esac
echo "$n" >"$STUB_DIR/count"
echo "$n|${RDINO_LAUNCHER:-}|${RDINO_ON_FAILURE:-}|$*" >>"$STUB_DIR/calls"
echo "sbatch: warning: a site warning" >&2
echo "$n;cluster"
EOF
printf '#!/bin/sh\necho "$*" >>"$STUB_DIR/cancelled"\n' >"$T/stub/scancel"
chmod +x "$T/stub/sbatch" "$T/stub/scancel"
stub() { PATH="$T/stub:$PATH" STUB_DIR=$T/stub RDINO_LAUNCHER_EMBED="mpirun -x" "$submit" "$@"; }
ok=1 why=""
if ! stub "$T/tiny.yaml" "${tiny[@]}" data.output_dir="$T/stubout" >"$T/stub.txt" 2>"$T/stub.err"; then
    ok=0 why="submission failed: $(cat "$T/stub.err")"
else
    calls=$T/stub/calls
    dep() { grep "job-name=rdino-$1 " "$calls" | grep -o 'dependency=[^ ]*'; }
    [ "$(wc -l <"$calls")" = 7 ] || { ok=0 why+="$(wc -l <"$calls") jobs submitted; "; }
    [ -z "$(dep synth)" ] || { ok=0 why+="synth has a dependency; "; }
    [ "$(dep preprocess)" = dependency=afterok:101 ] || { ok=0 why+="preprocess: $(dep preprocess); "; }
    [ "$(dep embed-random)" = dependency=afterok:104 ] || { ok=0 why+="embed-random: $(dep embed-random); "; }
    [ "$(dep analyze)" = dependency=afterok:105:106 ] || { ok=0 why+="analyze: $(dep analyze); "; }
    [ "$(grep -c '^10[56]|mpirun -x|' "$calls")" = 2 ] || { ok=0 why+="embed launcher not passed; "; }
    grep -q "^102||Log: $T/stubout/logs/preprocess-%j.log. Slurm cancels the jobs waiting for it (shard pretrain embed-trained embed-random analyze). After fixing the cause, submit the rest again with: $submit $T/tiny.yaml .* --from preprocess|" "$calls" ||
        { ok=0 why+="preprocess failure message: $(grep '^102' "$calls" | cut -d'|' -f3); "; }
    grep -q "^  analyze        107          105,106        $T/stubout/logs/analyze-107.log" "$T/stub.txt" ||
        { ok=0 why+="summary: $(grep analyze "$T/stub.txt"); "; }
    cmp -s <(grep -v '^$' "$T/stub.txt") "$T/stubout/logs/pipeline-101.txt" || { ok=0 why+="no pipeline-101.txt; "; }
    [ "$(grep -c 'site warning' "$T/stub.err")" = 7 ] || { ok=0 why+="sbatch warnings not shown; "; }
fi
rm -f "$T/stub/count" "$T/stub/calls"
if STUB_REFUSE=jobs/analyze.sbatch stub "$T/tiny.yaml" "${tiny[@]}" data.output_dir="$T/stubout" \
    >"$T/stub2.txt" 2>&1; then
    ok=0 why+="a refused job did not fail the submission; "
elif [ "$(cat "$T/stub/cancelled" 2>/dev/null)" != "101 102 103 104 105 106" ] ||
    ! grep -q "sbatch refused analyze: sbatch: error: invalid partition" "$T/stub2.txt"; then
    ok=0 why+="after a refusal: cancelled '$(cat "$T/stub/cancelled" 2>/dev/null)', $(tail -2 "$T/stub2.txt"); "
fi
if [ $ok = 1 ]; then rd_pass "$suite/submission_ids_dependencies_messages"
else rd_fail "$suite/submission_ids_dependencies_messages" "$why"; fi

if [ "$(id -u)" != 0 ] || ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    rd_skip "$suite/cluster" "needs root, slurm-wlm and munge (scripts/install-deps.sh)"; exit 0
fi
slurm_cluster_start "$T/cluster" >"$T/cluster.log" 2>&1 ||
    { rd_skip "$suite/cluster" "the test cluster did not start ($(tail -1 "$T/cluster.log"))"; exit 0; }

# Every stage: one node, 2 tasks of one CPU. Pretraining sleeps 200 ms a step (a test hook) so
# that the signal arrives mid-run.
export RDINO_SBATCH_ARGS="--nodes=1 --ntasks=2 --ntasks-per-node=2 --cpus-per-task=1 --mem-per-cpu=400M --time=10"
export RDINO_LAUNCHER_SHARD="mpirun --display-map"
export RDINO_LAUNCHER_EMBED="mpirun --map-by slot:PE=1 --display-map"
export RDINO_TEST_STEP_DELAY_MS=200 SLURM_WAIT=300

# job_ids SUBMIT_OUTPUT: "name id" for each job in submit_pipeline's table
job_ids() {
    awk -v names=" $stage_names " 'index(names, " " $1 " ") && $2 ~ /^[0-9]+$/ { print $1, $2 }' "$1"
}
# field JOB KEY: a field of scontrol show job (JobState, Reason, Restarts, ...)
field() {
    scontrol show job "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1
}

# ---- a failing stage stops the chain ----
printf 'foo,bar\n1,2\n' >"$T/bad.csv"
if ! "$submit" "$T/tiny.yaml" "${tiny[@]}" data.output_dir="$T/bad" data.metadata_csv="$T/bad.csv" \
    data.image_root="$T" >"$T/submit-bad.txt" 2>&1; then
    rd_fail "$suite/failed_stage_cancels_the_rest" "submission failed: $(tail -3 "$T/submit-bad.txt")"
else
    declare -A bad
    while read -r name id; do bad[$name]=$id; done < <(job_ids "$T/submit-bad.txt")
    SLURM_WAIT=60 slurm_wait_jobs "${bad[@]}"
    log=$T/bad/logs/preprocess-${bad[preprocess]}.log
    ok=1 why=""
    [ -z "${bad[synth]:-}" ] || { ok=0 why="synth was submitted for a real metadata CSV. "; }
    [ "$(field "${bad[preprocess]}" JobState)" = FAILED ] ||
        { ok=0 why+="preprocess: $(field "${bad[preprocess]}" JobState). "; }
    for name in shard pretrain embed-trained embed-random analyze; do
        state="$(field "${bad[$name]}" JobState)/$(field "${bad[$name]}" Reason)"
        [ "$state" = CANCELLED/DependencyNeverSatisfied ] || { ok=0 why+="$name: $state. "; }
    done
    last=$(tail -n 1 "$log" 2>/dev/null)
    case $last in
        "rdino: rdino-preprocess FAILED with exit status 1. Log: $log. Slurm cancels the jobs waiting for it (shard pretrain embed-trained embed-random analyze). After fixing the cause, submit the rest again with: $submit $T/tiny.yaml "*" --from preprocess") ;;
        *) ok=0 why+="the log does not end with the message: '$last'. " ;;
    esac
    grep -q "$T/bad.csv: no column 'Image Index'" "$log" || { ok=0 why+="no error naming bad.csv. "; }
    if [ $ok = 1 ]; then rd_pass "$suite/failed_stage_cancels_the_rest"
    else rd_fail "$suite/failed_stage_cancels_the_rest" "$why"; fi
fi

# ---- the whole pipeline, with a requeue of pretraining ----
if ! "$submit" "$T/tiny.yaml" "${tiny[@]}" >"$T/submit.txt" 2>&1; then
    rd_fail "$suite/submitted" "$(tail -3 "$T/submit.txt")"; exit 0
fi
declare -A job
while read -r name id; do job[$name]=$id; done < <(job_ids "$T/submit.txt")
if [ "${#job[@]}" != 7 ]; then rd_fail "$suite/submitted" "$(cat "$T/submit.txt")"; exit 0; fi
rd_pass "$suite/submitted"
logs=$T/out/logs

pre=${job[pretrain]}
for _ in $(seq 600); do [ -e "$T/out/pretrain/checkpoints/step-0000003.h5" ] && break; sleep 0.1; done
scancel --signal=USR1 --batch "$pre"
slurm_start_requeued "$pre"
waiting=$(field "${job[embed-trained]}" JobState)/$(field "${job[embed-random]}" JobState)
slurm_wait_jobs "${job[@]}" || true

bad_states=""
for name in $stage_names; do
    state=$(field "${job[$name]}" JobState)
    [ "$state" = COMPLETED ] || bad_states+="$name $state ($logs/$name-${job[$name]}.log: $(tail -n 1 "$logs/$name-${job[$name]}.log" 2>/dev/null)); "
done
if [ -z "$bad_states" ]; then rd_pass "$suite/every_stage_completed"
else rd_fail "$suite/every_stage_completed" "$bad_states"; fi

final=$T/out/pretrain/checkpoints/step-0000012.h5
if ! grep -q "requeueing job $pre" "$logs/pretrain-$pre.log"; then
    rd_fail "$suite/requeue_keeps_the_chain" "pretrain was not requeued (signal too late?)"
elif [ "$waiting" != PENDING/PENDING ]; then
    rd_fail "$suite/requeue_keeps_the_chain" "embed jobs were $waiting while pretrain was requeued"
elif ! grep -q "teacher of $final" "$logs/embed-trained-${job[embed-trained]}.log"; then
    rd_fail "$suite/requeue_keeps_the_chain" "embed did not use the final checkpoint: $(grep -m1 encoder "$logs/embed-trained-${job[embed-trained]}.log")"
else
    rd_pass "$suite/requeue_keeps_the_chain"
fi

missing=""
o=$T/out
for f in synth/metadata.csv preprocessed/manifest.csv shards/shard-00000.h5 pretrain/metrics.jsonl \
    checkpoints embeddings/trained.h5 embeddings/random-init.h5 report/report.md report/report.json; do
    [ "$f" = checkpoints ] && f=${final#"$o/"}
    [ -s "$o/$f" ] || missing+="$f "
done
[ "$(find "$o/synth/images" -name '*.png' 2>/dev/null | wc -l)" -gt 40 ] || missing+="synth/images/*.png "
[ "$(find "$o/report" -name '*.png' 2>/dev/null | wc -l)" -ge 1 ] || missing+="report/*.png "
if [ -z "$missing" ]; then rd_pass "$suite/outputs_exist"; else rd_fail "$suite/outputs_exist" "missing: $missing"; fi

# Every log: a progress line, the closing summary over 2 ranks (one MPI world, not two
# singletons), and mpirun's job map exactly for the stages it launched.
why=""
for name in $stage_names; do
    log=$logs/$name-${job[$name]}.log
    grep -qE '^[a-z ]+: [0-9]+/[0-9]+ \([0-9.]+%\)' "$log" || why+="$name: no progress line; "
    grep -q "^rdino-${name%-*}: done in .*largest rank of 2)" "$log" || why+="$name: no 2-rank summary; "
    case $name in shard | embed-*) want=1 ;; *) want=0 ;; esac
    [ "$(grep -c 'JOB MAP' "$log")" = "$want" ] || why+="$name: launched by the wrong program; "
done
grep -q "^summary: report in $o/report/report.md" "$logs/analyze-${job[analyze]}.log" ||
    why+="analyze: no report summary; "
if [ -z "$why" ]; then rd_pass "$suite/logs_show_progress_and_summaries_srun_and_mpirun"
else rd_fail "$suite/logs_show_progress_and_summaries_srun_and_mpirun" "$why"; fi
