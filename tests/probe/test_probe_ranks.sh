#!/usr/bin/env bash
# The probe study gives byte-identical results on 1 and 3 MPI ranks (every number of
# test_probe_ranks --dump in hex floats: predictions, penalties, intervals, p-values,
# paired comparisons, and the error a failing unit reports on every rank).
set -u
source tests/lib.sh
name=probe/ranks/results_identical_on_1_and_3_ranks
bin=$RDINO_BUILD/tests/probe/test_probe_ranks
if [ ! -x "$bin" ]; then
    rd_fail "$name" "$bin is not built (make all)"
    exit 0
fi
rd_tmpdir
# Under the sanitizers: Open MPI's communication components leak into modules unloaded before
# the leak check, where no suppression can name them. Memory errors are still caught here, and
# the same library code is leak-checked by the serial tests.
if [ "${RDINO_SANITIZE:-0}" = 1 ]; then export ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0"; fi
for np in 1 3; do
    if ! rd_mpirun "$np" "$bin" --dump "$RD_TMP/ranks$np.txt" >"$RD_TMP/log$np" 2>&1; then
        rd_fail "$name" "run on $np ranks failed: $(tail -n 3 "$RD_TMP/log$np" | tr '\n' ' ')"
        exit 0
    fi
done
if cmp -s "$RD_TMP/ranks1.txt" "$RD_TMP/ranks3.txt"; then
    rd_pass "$name"
else
    rd_fail "$name" "outputs differ: $(diff "$RD_TMP/ranks1.txt" "$RD_TMP/ranks3.txt" | head -n 4 | tr '\n' ' ')"
fi
