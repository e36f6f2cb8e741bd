#!/usr/bin/env bash
# Stage programs in a Slurm job: started without a launcher inside a multi-task step (one MPI
# rank, SLURM_NTASKS > 1) they warn that each task would run the whole job; on as many ranks
# as tasks they do not.
source "$(dirname "$0")/../lib.sh"
name=core/app/lone_rank_in_slurm_job
prog="$RDINO_BIN/rdino-shard"
if [ ! -x "$prog" ]; then rd_fail "$name" "missing $prog (build first)"; exit 0; fi
rd_tmpdir
trap 'rm -rf "$RD_TMP"' EXIT
# The run fails right after the start (no preprocessed images there): only its start matters.
args=(data.output_dir="$RD_TMP/none")
lone=$(SLURM_NTASKS=4 rd_mpirun 1 "$prog" "${args[@]}" 2>&1)
full=$(SLURM_NTASKS=2 rd_mpirun 2 "$prog" "${args[@]}" 2>&1)
if ! grep -q "SLURM_NTASKS=4 but MPI sees 1 rank" <<<"$lone"; then
    rd_fail "$name" "no warning on 1 rank with SLURM_NTASKS=4: $(tail -3 <<<"$lone")"
elif grep -q "but MPI sees" <<<"$full"; then
    rd_fail "$name" "warned on 2 ranks with SLURM_NTASKS=2"
else
    rd_pass "$name"
fi
