#!/usr/bin/env bash
# Submits the rdino pipeline as a chain of Slurm jobs, one per stage (jobs/<stage>.sbatch):
#
#   synth -> preprocess -> shard -> pretrain -> embed (trained) ------> analyze
#                                            \-> embed (random init) -/
#
# Each job waits for the ones before it to succeed (--dependency=afterok); when one fails, Slurm
# cancels every job waiting for it (--kill-on-invalid-dep=yes) and the failed job's log ends
# with a line naming it, its log and the command that submits the rest again. A pretraining
# job that requeues itself (time limit) keeps its id: the later stages wait for its final end.
#
#   jobs/submit_pipeline.sh CONFIG.yaml [options] [key.sub=value ...]
#
#   --from STAGE, --to STAGE  first and last stage to submit: synth preprocess shard pretrain
#                             embed analyze (default: all). Stages are restartable: --from
#                             reruns a stage that failed, --from embed re-embeds, and so on.
#   --synth | --no-synth      make the phantom data set with rdino-synth first and use it, or
#                             not. Default: yes when data.metadata_csv is empty or is
#                             rdino-synth's own output (<synth.output_dir>/metadata.csv).
#   -p, --partition P  -A, --account A  -q, --qos Q  -t, --time T
#                             for every stage (otherwise the #SBATCH headers, or Slurm's
#                             SBATCH_PARTITION / SBATCH_ACCOUNT / SBATCH_QOS / SBATCH_TIMELIMIT)
#   --log-dir DIR             where the job logs go (default <data.output_dir>/logs)
#   --dry-run                 check everything and print the sbatch commands; submit nothing
#   key.sub=value             configuration overrides, passed to every stage
#
# Environment:
#   RDINO_BIN                 the programs (default: build/bin of this checkout)
#   RDINO_SBATCH_ARGS         more sbatch options for every stage, e.g. "--mail-type=FAIL"
#   RDINO_SBATCH_ARGS_<STAGE> for one stage (STAGE: SYNTH PREPROCESS SHARD PRETRAIN EMBED
#                             ANALYZE), e.g. RDINO_SBATCH_ARGS_PRETRAIN="--nodes=8 --time=2-00"
#   RDINO_LAUNCHER[_<STAGE>]  what starts the ranks inside the jobs (default srun; mpirun works)
# Options given here override the #SBATCH headers; per-stage options override global ones.
# Jobs inherit this shell's environment (load the modules before submitting) and run in this
# folder, so relative paths in the config mean the same as here. docs/CLUSTER.md has the rest.
set -euo pipefail

stages=(synth preprocess shard pretrain embed analyze)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

die() {
    echo "submit_pipeline: $*" >&2
    exit 2
}
usage() { # the comment block above, from the command line on
    awk 'NR > 1 && !/^#/ { exit } /^#   jobs/ { on = 1 } on { sub(/^# ?/, ""); print }' \
        "${BASH_SOURCE[0]}"
    exit "${1:-2}"
}
stage_index() { # prints nothing for an unknown stage
    local i
    for i in "${!stages[@]}"; do [ "${stages[$i]}" != "$1" ] || echo "$i"; done
}
abspath() { # an absolute path without symbolic links resolved; empty stays empty
    [ -z "$1" ] || realpath -ms "$1"
}

# ---- command line ----
config="" from=synth to=analyze synth_mode=auto dry_run=0 log_dir=""
common=() overrides=() resubmit=()
while [ $# -gt 0 ]; do
    case $1 in
        -h | --help) usage 0 ;;
        --from) from=${2:?--from needs a stage}; shift ;;
        --to) to=${2:?--to needs a stage}; resubmit+=("$1" "$2"); shift ;;
        --synth) synth_mode=yes; resubmit+=("$1") ;;
        --no-synth) synth_mode=no; resubmit+=("$1") ;;
        --dry-run) dry_run=1 ;;
        --log-dir) log_dir=${2:?--log-dir needs a folder}; resubmit+=("$1" "$2"); shift ;;
        -p | --partition | -A | --account | -q | --qos | -t | --time)
            [ $# -ge 2 ] || die "$1 needs a value"
            case $1 in
                -p | --partition) common+=("--partition=$2") ;;
                -A | --account) common+=("--account=$2") ;;
                -q | --qos) common+=("--qos=$2") ;;
                *) common+=("--time=$2") ;;
            esac
            resubmit+=("$1" "$2")
            shift ;;
        -*) die "unknown option '$1' (--help lists them)" ;;
        *=*) overrides+=("$1"); resubmit+=("$1") ;;
        *) [ -z "$config" ] || die "two configs given: '$config' and '$1'"; config=$1 ;;
    esac
    shift
done
[ -n "$config" ] || usage
[ -f "$config" ] || die "config $config: no such file"
first=$(stage_index "$from") last=$(stage_index "$to")
[ -n "$first" ] || die "unknown stage '$from' (stages: ${stages[*]})"
[ -n "$last" ] || die "unknown stage '$to' (stages: ${stages[*]})"
[ "$first" -le "$last" ] || die "--from $from comes after --to $to"
resubmit=("$0" "$config" "${resubmit[@]}")
config=$(abspath "$config")
RDINO_BIN=$(abspath "${RDINO_BIN:-$here/build/bin}")
export RDINO_BIN

# ---- the configuration, as the stages will resolve it ----
for i in $(seq "$first" "$last"); do
    [ -x "$RDINO_BIN/rdino-${stages[$i]}" ] ||
        die "$RDINO_BIN/rdino-${stages[$i]} not found: build with 'make apps' or set RDINO_BIN"
done
resolved=$("$RDINO_BIN/rdino-${stages[$last]}" --config "$config" "${overrides[@]}" --print-config 2>&1) ||
    die "the configuration does not load:"$'\n'"$resolved"
# the pipeline's folders as the programs resolve them (src/core/paths.c owns the layout)
layout=$("$RDINO_BIN/rdino-${stages[$last]}" --config "$config" "${overrides[@]}" --print-paths 2>&1) ||
    die "the pipeline's folders do not resolve:"$'\n'"$layout"
folder() { sed -n "s/^$1=//p" <<<"$layout"; }
# cfg KEY: the value of a dotted key in the resolved configuration (YAML as --print-config
# writes it: two spaces per level, strings quoted with \" and \\ escapes when needed).
cfg() {
    awk -v want="$1" '
        { ind = match($0, /[^ ]/) - 1; s = substr($0, ind + 1); k = index(s, ":") }
        k == 0 { next }
        { depth = int(ind / 2); path[depth] = substr(s, 1, k - 1); key = path[0]
          for (i = 1; i <= depth; i++) key = key "." path[i] }
        key != want { next }
        { v = substr(s, k + 2)
          if (substr(v, 1, 1) == "\"") {
              out = ""
              for (i = 2; i <= length(v); i++) {
                  c = substr(v, i, 1)
                  if (c == "\"") break
                  if (c == "\\") { i++; c = substr(v, i, 1); if (c == "n") c = "\n" }
                  out = out c
              }
              v = out
          } else sub(/  # (from file|override)$/, "", v)
          print v; exit }' <<<"$resolved"
}
out=$(abspath "$(cfg data.output_dir)")
synth_dir=$(abspath "$(folder synth)")
metadata=$(cfg data.metadata_csv)
if [ "$synth_mode" = auto ]; then
    synth_mode=no
    if [ -z "$metadata" ] || [ "$(abspath "$metadata")" = "$synth_dir/metadata.csv" ]; then
        synth_mode=yes
    fi
fi
if [ "$synth_mode" = yes ]; then
    # the phantoms are the input (every stage gets the same data.* keys)
    [ "$(cfg data.format)" = nih ] || overrides+=(data.format=nih)
    [ "$(abspath "$metadata")" = "$synth_dir/metadata.csv" ] ||
        overrides+=("data.metadata_csv=$synth_dir/metadata.csv")
    [ "$(abspath "$(cfg data.image_root)")" = "$synth_dir/images" ] ||
        overrides+=("data.image_root=$synth_dir/images")
else
    [ "$first" -gt 0 ] || first=1 # nothing to synthesise
    [ "$last" -gt 0 ] || die "--to synth, but the config does not use synthetic data (--synth)"
    if [ "$first" -le 1 ]; then
        [ -n "$metadata" ] || die "data.metadata_csv is empty: name your metadata CSV, or use --synth"
        [ -f "$metadata" ] || die "data.metadata_csv: $metadata: no such file"
        root=$(cfg data.image_root)
        [ -z "$root" ] || [ -d "$root" ] || die "data.image_root: $root: no such folder"
        patients=$(cfg data.patients_csv)
        [ -z "$patients" ] || [ -f "$patients" ] || die "data.patients_csv: $patients: no such file"
        findings=$(cfg data.findings_csv)
        [ -z "$findings" ] || [ -f "$findings" ] || die "data.findings_csv: $findings: no such file"
    fi
fi
report_dir=$(abspath "$(folder report)")
log_dir=$(abspath "${log_dir:-$out/logs}")

# ---- submission ----
read -ra global_args <<<"${RDINO_SBATCH_ARGS:-}"
names=() ids=() waits=() logs=()
declare -A stage_ids # stage -> its job ids (two for embed)

cancel_submitted() {
    [ "${#ids[@]}" -eq 0 ] || scancel "${ids[@]}" 2>/dev/null || true
    echo "submit_pipeline: cancelled the jobs already submitted (${ids[*]:-none})" >&2
}

# submit NAME STAGE [stage arguments...]: one job, waiting for the previous stage's jobs.
submit() {
    local name=$1 stage=$2
    shift 2
    local upper=${stage^^} idx dep=""
    idx=$(stage_index "$stage")
    if [ "$idx" -gt "$first" ]; then
        dep=${stage_ids[${stages[$((idx - 1))]}]}
    fi
    local stage_args_var=RDINO_SBATCH_ARGS_$upper launcher_var=RDINO_LAUNCHER_$upper
    local stage_args
    read -ra stage_args <<<"${!stage_args_var:-}"
    local later=() s
    for s in "${stages[@]:$((idx + 1)):$((last - idx))}"; do
        [ "$s" = embed ] && later+=(embed-trained embed-random) || later+=("$s")
    done
    # (a % in the folder name would be a Slurm filename pattern: %% is a literal one)
    local args=(--parsable --job-name="rdino-$name" --output="${log_dir//%/%%}/$name-%j.log"
                --kill-on-invalid-dep=yes)
    [ -z "$dep" ] || args+=(--dependency="afterok:${dep// /:}")
    args+=("${common[@]}" "${global_args[@]}" "${stage_args[@]}"
           "$here/jobs/$stage.sbatch" "$config" "$@" "${overrides[@]}")
    local on_failure="Log: $log_dir/$name-%j.log."
    [ "${#later[@]}" -eq 0 ] ||
        on_failure+=" Slurm cancels the jobs waiting for it (${later[*]})."
    on_failure+=" After fixing the cause, submit the rest again with:$(printf ' %q' \
        "${resubmit[@]}" --from "$stage")"
    local launcher=${!launcher_var:-${RDINO_LAUNCHER:-}} id said
    if [ "$dry_run" = 1 ]; then
        id="<$name>"
        echo "${launcher:+RDINO_LAUNCHER=$(printf '%q' "$launcher") }sbatch$(printf ' %q' "${args[@]}")"
    else
        if ! said=$(RDINO_ON_FAILURE=$on_failure RDINO_LAUNCHER=$launcher sbatch "${args[@]}" 2>&1); then
            echo "submit_pipeline: sbatch refused $name: $said" >&2
            cancel_submitted
            exit 1
        fi
        # --parsable prints "id" or "id;cluster"; anything else is a warning of sbatch's
        id=$(sed -n 's/^\([0-9][0-9]*\)\(;.*\)\{0,1\}$/\1/p' <<<"$said" | tail -n 1)
        grep -v '^[0-9][0-9]*\(;.*\)\{0,1\}$' <<<"$said" >&2 || true
        if [ -z "$id" ]; then
            echo "submit_pipeline: no job id from sbatch for $name: $said" >&2
            cancel_submitted
            exit 1
        fi
    fi
    names+=("$name") ids+=("$id") waits+=("${dep:--}") logs+=("$log_dir/$name-${id}.log")
    stage_ids[$stage]="${stage_ids[$stage]:+${stage_ids[$stage]} }$id"
}

[ "$dry_run" = 1 ] || mkdir -p "$log_dir"
for i in $(seq "$first" "$last"); do
    case ${stages[$i]} in
        embed)
            submit embed-trained embed
            submit embed-random embed --init random ;;
        *) submit "${stages[$i]}" "${stages[$i]}" ;;
    esac
done

# ---- what was submitted ----
summary() {
    echo "rdino pipeline: $config"
    echo "  outputs under $out$([ "$synth_mode" = yes ] && echo " (synthetic data: $synth_dir)")"
    printf '  %-14s %-12s %-14s %s\n' stage job "waits for" log
    for i in "${!names[@]}"; do
        printf '  %-14s %-12s %-14s %s\n' "${names[$i]}" "${ids[$i]}" "${waits[$i]// /,}" "${logs[$i]}"
    done
    local list
    list=$(IFS=,; echo "${ids[*]}")
    echo "  queue:   squeue -j $list   (reason Dependency: waiting for an earlier stage)"
    echo "  states:  sacct -X -j $list -o JobID,JobName%20,State,ExitCode,Elapsed"
    echo "  cancel:  scancel ${ids[*]}"
    if [ "$last" -eq $((${#stages[@]} - 1)) ]; then echo "  report:  $report_dir/report.md"; fi
}
if [ "$dry_run" = 1 ]; then
    echo "dry run: nothing submitted (<name> stands for the job id sbatch would print)"
else
    summary | tee "$log_dir/pipeline-${ids[0]}.txt"
fi
