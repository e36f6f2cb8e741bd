#!/usr/bin/env bash
# Runs libFuzzer targets: tests/fuzz/run.sh BUILD SECONDS TARGET...  (what `make fuzz` does)
# Each target starts from its seeds (tests/fuzz/corpus/<target>) and regression inputs, grows a
# working corpus in BUILD/corpus/<target> (kept between runs), and runs SECONDS seconds. A crash,
# sanitizer report, failed check, leak or timeout is a finding: the input is saved under
# BUILD/findings/<target>/ and the exit status is 1. Prints each target's CPU time and result.
set -u
cd "$(dirname "$0")/../.."
BUILD=$1 SECONDS_EACH=$2; shift 2
# Open MPI's and HDF5's own leaks at exit are theirs (tests/lsan.supp, as tests/run.sh does for
# the ASan build); leaks of an input's run are still findings.
export ASAN_OPTIONS=${ASAN_OPTIONS:-fast_unwind_on_malloc=0}
export LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp:print_suppressions=0
export OMPI_MCA_mca_base_component_disable_dlclose=1
# The harnesses' files (tests/fuzz/fuzz_util.c) in memory: the HDF5 store fsyncs what it publishes.
if [ -z "${TMPDIR:-}" ] && [ -w /dev/shm ]; then export TMPDIR=/dev/shm; fi
failed=()
for target in "$@"; do
    corpus=$BUILD/corpus/$target findings=$BUILD/findings/$target
    mkdir -p "$corpus" "$findings"
    dirs=("$corpus" "tests/fuzz/corpus/$target")
    [ -d "tests/fuzz/regressions/$target" ] && dirs+=("tests/fuzz/regressions/$target")
    log=$BUILD/fuzz-$target.log
    TIMEFORMAT="%U %S"
    { time "$BUILD/fuzz/$target" -max_total_time="$SECONDS_EACH" -timeout=30 -rss_limit_mb=2048 \
        -max_len=8192 -print_final_stats=1 -artifact_prefix="$findings/" "${dirs[@]}" \
        >"$log" 2>&1; } 2>"$log.time"
    status=$?
    cpu=$(awk '{printf "%.0f", $1 + $2}' "$log.time")
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    if [ "$status" -ne 0 ]; then
        echo "FINDING $target: exit $status after ${cpu}s CPU; input in $findings/, log $log"
        grep -m3 -E 'ERROR|runtime error|fuzz check failed' "$log" | sed 's/^/  /'
        failed+=("$target")
    else
        echo "ok $target: ${cpu}s CPU, ${execs:-?} inputs, corpus $(ls "$corpus" | wc -l)"
    fi
done
[ "${#failed[@]}" -eq 0 ] || { echo "findings in: ${failed[*]}"; exit 1; }
