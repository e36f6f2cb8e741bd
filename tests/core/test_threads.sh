#!/usr/bin/env bash
# Threads against the affinity mask: a program bound to one CPU with OMP_NUM_THREADS=2 warns
# (naming the counts and the launcher fix); with OMP_NUM_THREADS unset it runs the mask's one
# thread, without a warning; bound to two CPUs with 2 threads it does not warn.
source "$(dirname "$0")/../lib.sh"
name=core/threads/affinity_mask
prog="$RDINO_BIN/rdino-shard"
if [ ! -x "$prog" ]; then rd_fail "$name" "missing $prog (build first)"; exit 0; fi
if ! command -v taskset >/dev/null; then rd_skip "$name" "no taskset"; exit 0; fi
if [ "$(nproc --all)" -lt 2 ]; then rd_skip "$name" "needs 2 CPUs"; exit 0; fi
rd_tmpdir
trap 'rm -rf "$RD_TMP"' EXIT
# The run fails right after the start (no preprocessed images there): only its start matters.
args=(data.output_dir="$RD_TMP/none")
over=$(OMP_NUM_THREADS=2 taskset -c 0 "$prog" "${args[@]}" 2>&1)
auto=$(env -u OMP_NUM_THREADS taskset -c 0 "$prog" "${args[@]}" 2>&1)
fits=$(OMP_NUM_THREADS=2 taskset -c 0,1 "$prog" "${args[@]}" 2>&1)
if ! grep -q "2 OpenMP threads (OMP_NUM_THREADS=2) but only 1 CPU in this rank's affinity mask" \
    <<<"$over"; then
    rd_fail "$name" "no warning for 2 threads on 1 CPU: $(head -3 <<<"$over")"
elif ! grep -q -- "--bind-to none" <<<"$over" || ! grep -q -- "--cpus-per-task=2" <<<"$over"; then
    rd_fail "$name" "the warning names no fix: $(grep warning <<<"$over")"
elif ! grep -q "1 rank x 1 OpenMP thread;" <<<"$auto"; then
    rd_fail "$name" "threads left unset on 1 CPU did not use 1: $(head -2 <<<"$auto")"
elif grep -q "affinity mask" <<<"$auto$fits"; then
    rd_fail "$name" "warned where the threads fit the mask"
elif ! grep -q "1 rank x 2 OpenMP threads;" <<<"$fits"; then
    rd_fail "$name" "OMP_NUM_THREADS=2 on 2 CPUs did not use 2: $(head -2 <<<"$fits")"
else
    rd_pass "$name"
fi
