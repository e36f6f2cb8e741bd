#!/usr/bin/env bash
# Runs every benchmark (bench/bench_*.sh) against its peer in the same run and prints a summary.
# Each benchmark prints "RESULT <name>: <value> <unit> [<comment>]" lines; ratios are named
# "... ratio" and are ours/peer (higher is better for throughput).
#   bench/run.sh [BUILD] [FILTER]
set -u
cd "$(dirname "$0")/.."
BUILD=${1:-build}
FILTER=${2:-}
export RDINO_BUILD=$BUILD
source tests/lib.sh
out="$BUILD/bench-results.txt"
: >"$out"
status=0
for script in bench/bench_*.sh; do
    case "$script" in *"$FILTER"*) ;; *) continue ;; esac
    echo "== $script"
    if ! "$script" | tee -a "$out.log"; then
        echo "RESULT $script: FAILED" | tee -a "$out.log"
        status=1
    fi
done
grep '^RESULT ' "$out.log" >"$out" 2>/dev/null
rm -f "$out.log"
echo
echo "Summary ($out):"
sed 's/^RESULT /  /' "$out"
exit $status
