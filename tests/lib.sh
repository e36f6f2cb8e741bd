# Shared helpers for shell tests (sourced). A shell test prints one line per case:
#   PASS suite/case | FAIL suite/case: reason | SKIP suite/case: reason
# and is run by tests/run.sh with RDINO_BUILD set to the build directory.

RDINO_BUILD=${RDINO_BUILD:-build}
RDINO_BIN="$RDINO_BUILD/bin"

# Tests run as root in CI; Open MPI refuses that unless told, and CMA single-copy needs ptrace
# rights that containers often lack.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
export OMPI_MCA_rmaps_base_oversubscribe=1
# The suite runs as on a lone machine even when started inside a Slurm job: Open MPI's mpirun
# would launch through the caller's allocation (SLURM_JOB_ID, SLURM_NODELIST), and sbatch/srun of
# tests/slurm/cluster.sh would inherit its sizes. Tests that need a SLURM_ variable set it
# themselves. OMP_NUM_THREADS and OPENBLAS_NUM_THREADS are kept: the suite must pass with them.
while read -r var; do unset "$var"; done < <(compgen -e | grep -E '^(SLURM|SBATCH|SRUN|SALLOC)_')
export RDINO_PROGRESS_INTERVAL=${RDINO_PROGRESS_INTERVAL:-5}

rd_pass() { echo "PASS $1"; }
rd_fail() { echo "FAIL $1: $2"; }
rd_skip() { echo "SKIP $1: $2"; }

# rd_check NAME CONDITION-COMMAND... : PASS if the command succeeds, FAIL otherwise.
rd_check() {
    local name=$1; shift
    if "$@"; then rd_pass "$name"; else rd_fail "$name" "command failed: $*"; fi
}

# rd_mpirun NP PROGRAM ARGS... : oversubscribed local MPI launch.
rd_mpirun() {
    local np=$1; shift
    mpirun -np "$np" --oversubscribe --bind-to none "$@"
}

# The shared test data directory, or empty when absent (tests then SKIP with the reason).
rd_shared_dir() {
    local d=${RDINO_SHARED:-../shared}
    if [ -d "$d" ]; then (cd "$d" && pwd); fi
}

# A temporary directory removed when the test script exits (kept with RDINO_KEEP_TMP=1).
rd_tmpdir() {
    RD_TMP=$(mktemp -d "${TMPDIR:-/tmp}/rdino-test-XXXXXX")
    if [ "${RDINO_KEEP_TMP:-0}" != 1 ]; then trap 'rm -rf "$RD_TMP"' EXIT; fi
    echo "$RD_TMP" >/dev/null
}
