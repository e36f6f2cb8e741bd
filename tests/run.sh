#!/usr/bin/env bash
# Runs the test suite: every C test binary in BUILD/tests and every tests/*/test_*.sh.
#   tests/run.sh [BUILD] [FILTER]     FILTER selects tests whose path contains it (e.g. core/)
# Ends with "N passed, N failed"; exit status 1 if anything failed.
set -u
cd "$(dirname "$0")/.."
BUILD=${1:-build}
FILTER=${2:-}
export RDINO_BUILD=$BUILD
source tests/lib.sh
if [ "${RDINO_SANITIZE:-0}" = 1 ]; then
    # Slow unwinding and no dlclose let LeakSanitizer attribute Open MPI's own leaks to its
    # libraries, where tests/lsan.supp suppresses them.
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:fast_unwind_on_malloc=0}
    export OMPI_MCA_mca_base_component_disable_dlclose=1
    export LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp:print_suppressions=0
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
fi
# Under the sanitizers these long runs of whole programs are left out (each counted as
# skipped, with this reason): they check behaviour over many steps, ranks, Slurm jobs or the
# whole pipeline, where the sanitizers add minutes and nothing else; the code they run stays
# covered there by the C tests, the fuzz replays and the stage tests of hostile inputs
# (preprocess, shard, embed, embed_weights, embed_images) and checkpoint tests.
NOT_UNDER_SANITIZERS=" demo/test_demo.sh pipeline/test_cxr_small.sh pretrain/test_pretrain_learning
 pretrain/test_pretrain_ranks.sh pretrain/test_pretrain_resume.sh pretrain/test_pretrain_slurm.sh
 slurm/test_pipeline_slurm.sh slurm/test_posthoc_slurm.sh analyze/test_posthoc.sh
 analyze/test_analyze.sh embed/test_embed_bf16.sh pretrain/test_pretrain_faults.sh "
TIMEOUT=${RDINO_TEST_TIMEOUT:-1200}
LOGDIR=$BUILD/test-logs
mkdir -p "$LOGDIR"

mapfile -t programs < <( (find "$BUILD/tests" -type f -name 'test_*' -perm -u+x 2>/dev/null;
                          ls tests/*/test_*.sh 2>/dev/null) | sort)
passed=0 failed=0 skipped=0
failures=() skips=()
for prog in "${programs[@]}"; do
    case "$prog" in *"$FILTER"*) ;; *) continue ;; esac
    name=${prog#"$BUILD/tests/"}; name=${name#tests/}
    log="$LOGDIR/${name//\//_}.log"
    if [ "${RDINO_SANITIZE:-0}" = 1 ] && [[ $NOT_UNDER_SANITIZERS == *[[:space:]]$name[[:space:]]* ]]; then
        line="SKIP $name: run by make test, not under the sanitizers (tests/run.sh)"
        echo "$line"; skipped=$((skipped + 1)); skips+=("$line")
        continue
    fi
    start=$EPOCHREALTIME
    timeout "$TIMEOUT" "$prog" >"$log.out" 2>"$log.err"
    status=$?
    secs=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
    results=0
    while IFS= read -r line; do
        case "$line" in
            PASS\ *) passed=$((passed + 1)); results=$((results + 1)); echo "$line" ;;
            FAIL\ *) failed=$((failed + 1)); results=$((results + 1)); echo "$line"; failures+=("$line") ;;
            SKIP\ *) skipped=$((skipped + 1)); results=$((results + 1)); echo "$line"; skips+=("$line") ;;
        esac
    done <"$log.out"
    nfail_lines=$(grep -c '^FAIL ' "$log.out")
    if [ "$status" -ne 0 ] && [ "$nfail_lines" -eq 0 ]; then
        why="exited with status $status"; [ "$status" -eq 124 ] && why="timed out after ${TIMEOUT}s"
        line="FAIL $name: $why (log: $log.err)"
        echo "$line"; failed=$((failed + 1)); failures+=("$line")
    elif [ "$results" -eq 0 ]; then
        line="FAIL $name: printed no result (log: $log.err)"
        echo "$line"; failed=$((failed + 1)); failures+=("$line")
    fi
    if [ "$nfail_lines" -gt 0 ] || [ "$status" -ne 0 ]; then
        echo "---- stderr of $name (last 30 lines) ----"; tail -n 30 "$log.err"; echo "----"
    fi
    echo "  ($name: $secs s)"
done

echo
if [ "${#skips[@]}" -gt 0 ]; then
    echo "Skipped (${#skips[@]}), with reasons:"; printf '  %s\n' "${skips[@]}"
fi
if [ "${#failures[@]}" -gt 0 ]; then
    echo "Failed (${#failures[@]}):"; printf '  %s\n' "${failures[@]}"
fi
echo "$skipped skipped"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
