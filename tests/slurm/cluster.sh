# shellcheck shell=bash
# A throwaway single-node Slurm cluster for tests (sourced). Needs root and Debian's slurm-wlm
# and munge. slurm_cluster_start DIR creates DIR/slurm.conf, starts its own munged (own key and
# socket, so neither the machine's munged nor another test's cluster is touched), slurmctld and
# slurmd with state, spool, logs and pid files inside DIR, and exports SLURM_CONF.
# slurm_cluster_stop cancels the cluster's jobs and stops exactly the daemons it started, by pid.

SLURM_TEST_PIDS=()

slurm_cluster_start() {
    local dir=$1
    mkdir -p "$dir"/{state,spool,log,run,munge}
    chmod 700 "$dir/munge"
    local host cpus mem_mb
    host=$(hostname -s)
    # The machine's cores, not nproc's answer: nproc honours OMP_NUM_THREADS, and a node of 1 CPU
    # leaves every 2-task job pending for ever (PartitionConfig).
    cpus=$(nproc --all)
    mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
    cat >"$dir/slurm.conf" <<CONF
ClusterName=rdinotest
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SlurmctldPort=$((16000 + RANDOM % 2000))
SlurmdPort=$((18000 + RANDOM % 2000))
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
InactiveLimit=0
KillWait=10
MinJobAge=600
NodeName=$host CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
    export SLURM_CONF=$dir/slurm.conf
    local m=$dir/munge
    dd if=/dev/urandom of="$m/munge.key" bs=1024 count=1 status=none
    chmod 400 "$m/munge.key"
    # 10 threads: the default 2 ran out under srun's I/O forwarding on a loaded machine
    munged --force --num-threads=10 --socket="$m/munge.socket" --key-file="$m/munge.key" \
        --pid-file="$m/munged.pid" --log-file="$m/munged.log" --seed-file="$m/munged.seed" ||
        return 1
    SLURM_TEST_PIDS+=("$(cat "$m/munged.pid")")
    slurmctld -f "$SLURM_CONF" || return 1
    slurmd -f "$SLURM_CONF" || return 1
    for _ in $(seq 1 60); do
        [ -s "$dir/run/slurmctld.pid" ] && [ -s "$dir/run/slurmd.pid" ] && break
        sleep 0.5
    done
    SLURM_TEST_PIDS+=("$(cat "$dir/run/slurmctld.pid")" "$(cat "$dir/run/slurmd.pid")")
    for _ in $(seq 1 60); do
        if sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then return 0; fi
        sleep 1
    done
    echo "slurm test cluster did not become idle; see $dir/log" >&2
    return 1
}

# slurm_wait_jobs JOBID... : waits until the jobs have left the queue (timeout SLURM_WAIT seconds)
slurm_wait_jobs() {
    local deadline=$((SECONDS + ${SLURM_WAIT:-1800}))
    while [ $SECONDS -lt $deadline ]; do
        if [ -z "$(squeue -h -j "$(IFS=,; echo "$*")" 2>/dev/null)" ]; then return 0; fi
        sleep 2
    done
    return 1
}

# Final state of a job (COMPLETED, FAILED, CANCELLED, ...) from scontrol (no accounting here).
slurm_job_state() {
    scontrol show job "$1" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' | head -n 1
}

# slurm_start_requeued JOBID: once the job has been requeued (Restarts=1), moves its begin time
# (Slurm delays a requeued job by minutes) to 2 s from now, not "now": slurmd refuses a launch
# whose credential dates from the same second as the kill of the previous run ("already
# killed, do not launch batch job") and the job would end FAILED.
slurm_start_requeued() {
    local _
    for _ in $(seq 300); do
        scontrol show job "$1" 2>/dev/null | grep -q "Restarts=1" && break
        sleep 0.1
    done
    scontrol update JobId="$1" StartTime=now+2 >/dev/null 2>&1
}

slurm_cluster_stop() {
    local pid jobs
    # Jobs still queued or running (a test stopped early): cancel them so that no job step
    # outlives the daemons. Every job in this throwaway cluster is the test's own.
    if [ "${#SLURM_TEST_PIDS[@]}" -gt 0 ] && jobs=$(squeue -h -o %i 2>/dev/null) && [ -n "$jobs" ]; then
        # shellcheck disable=SC2086 # one id per word
        scancel $jobs 2>/dev/null || true
        for _ in $(seq 1 40); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.25; done
    fi
    for pid in "${SLURM_TEST_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${SLURM_TEST_PIDS[@]}"; do
        for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        kill -9 "$pid" 2>/dev/null || true
    done
    SLURM_TEST_PIDS=()
}
