#!/usr/bin/env bash
# The work queue test program on 1, 2 and 3 ranks: every rank's cases must pass.
source "$(dirname "$0")/../lib.sh"
prog="$RDINO_BUILD/tests/parallel/test_workqueue"
if [ ! -x "$prog" ]; then rd_fail parallel/workqueue_mpi "missing $prog (build first)"; exit 0; fi
for np in 1 2 3; do
    out=$(rd_mpirun "$np" "$prog" 2>&1)
    npass=$(grep -c '^PASS ' <<<"$out")
    if grep -q '^FAIL ' <<<"$out"; then
        rd_fail "parallel/workqueue_mpi_np$np" "$(grep '^FAIL ' <<<"$out" | head -3 | tr '\n' ' ')"
    elif [ "$npass" -ne $((7 * np)) ]; then
        rd_fail "parallel/workqueue_mpi_np$np" "expected $((7 * np)) PASS lines, got $npass: $out"
    else
        rd_pass "parallel/workqueue_mpi_np$np"
    fi
done
