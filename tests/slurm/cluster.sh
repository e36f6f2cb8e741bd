# A throwaway single-node Slurm cluster for tests (sourced). Needs root and Debian's slurm-wlm
# and munge. slurm_cluster_start DIR creates DIR/slurm.conf, starts munged (unless one runs),
# slurmctld and slurmd with state, spool, logs and pid files inside DIR, and exports SLURM_CONF.
# slurm_cluster_stop stops exactly the daemons it started, by pid.

SLURM_TEST_PIDS=()

slurm_cluster_start() {
    local dir=$1
    mkdir -p "$dir"/{state,spool,log,run}
    local host cpus mem_mb
    host=$(hostname -s)
    cpus=$(nproc)
    mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
    cat >"$dir/slurm.conf" <<CONF
ClusterName=rdinotest
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
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
    if ! pgrep -x munged >/dev/null; then
        mkdir -p /run/munge /var/log/munge /var/lib/munge /etc/munge
        chown munge:munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
        if [ ! -s /etc/munge/munge.key ]; then
            dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
            chown munge:munge /etc/munge/munge.key 2>/dev/null || true
            chmod 400 /etc/munge/munge.key
        fi
        munged --force --num-threads=10 || return 1
        SLURM_TEST_PIDS+=("$(cat /run/munge/munged.pid)")
    fi
    slurmctld -f "$SLURM_CONF" || return 1
    slurmd -f "$SLURM_CONF" || return 1
    local i
    for i in $(seq 1 60); do
        [ -s "$dir/run/slurmctld.pid" ] && [ -s "$dir/run/slurmd.pid" ] && break
        sleep 0.5
    done
    SLURM_TEST_PIDS+=("$(cat "$dir/run/slurmctld.pid")" "$(cat "$dir/run/slurmd.pid")")
    for i in $(seq 1 60); do
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

slurm_cluster_stop() {
    local pid
    for pid in "${SLURM_TEST_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${SLURM_TEST_PIDS[@]}"; do
        for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        kill -9 "$pid" 2>/dev/null || true
    done
    SLURM_TEST_PIDS=()
}
