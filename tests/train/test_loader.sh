#!/usr/bin/env bash
# The loader gives the same global batches on 1, 2 and 4 MPI ranks (with prefetch threads):
# test_loader --dump writes shards collectively, every rank loads its part of 8 steps, and rank 0
# writes the assembled batches (crops, masks, drop-path subsets), compared byte for byte.
set -u
source tests/lib.sh
name=train/loader/batches_identical_on_1_2_4_mpi_ranks
bin=$RDINO_BUILD/tests/train/test_loader
if [ ! -x "$bin" ]; then
    rd_fail "$name" "$bin is not built (make all)"
    exit 0
fi
rd_tmpdir
# Open MPI's components leak into modules unloaded before the leak check (see
# tests/probe/test_probe_ranks.sh); memory errors are still caught.
if [ "${RDINO_SANITIZE:-0}" = 1 ]; then export ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0"; fi
for np in 1 2 4; do
    if ! rd_mpirun "$np" "$bin" --dump "$RD_TMP/shards$np" "$RD_TMP/batches$np.bin" \
        >"$RD_TMP/log$np" 2>&1; then
        rd_fail "$name" "run on $np ranks failed: $(tail -n 3 "$RD_TMP/log$np" | tr '\n' ' ')"
        exit 0
    fi
done
size=$(stat -c %s "$RD_TMP/batches1.bin")
if [ "$size" -eq 0 ]; then
    rd_fail "$name" "no batches written"
elif cmp -s "$RD_TMP/batches1.bin" "$RD_TMP/batches2.bin" &&
     cmp -s "$RD_TMP/batches1.bin" "$RD_TMP/batches4.bin"; then
    rd_pass "$name"
else
    rd_fail "$name" "batches differ: $(cmp "$RD_TMP/batches1.bin" "$RD_TMP/batches2.bin"; cmp "$RD_TMP/batches1.bin" "$RD_TMP/batches4.bin")"
fi
