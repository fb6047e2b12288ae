#!/usr/bin/env bash
# A single-node Slurm on localhost for the cluster tests: munge + slurmctld + slurmd.
#
#   tests/cluster/slurm.sh start    install (Debian packages, as root), configure, start, wait
#                                   until the node is idle; does nothing if already running
#   tests/cluster/slurm.sh status   exit 0 when the node answers and is usable
#   tests/cluster/slurm.sh stop     stop the daemons this script started, by their PIDs
#
# No systemd: the daemons are started directly. State, logs, spool and PID files live under
# $NIPYPE_MASKERS_CLUSTER_DIR/slurm (default /tmp/nipype-maskers-cluster/slurm); the
# configuration is there too, linked from /etc/slurm/slurm.conf so that sbatch/squeue find it.
# When the machine cannot run Slurm (not root, no apt-get, a failure), the reason is printed
# and the exit code is 1. Every wait is bounded.
set -uo pipefail
SCHEDULER=slurm
. "$(dirname "$0")/common.sh"
DIR=$CLUSTER_ROOT/slurm
CONF=/etc/slurm/slurm.conf
HOST=$(hostname -s)
MARK="# written by nipype-maskers tests/cluster/slurm.sh"

node_state() { sinfo -h -n "$HOST" -o %T 2>/dev/null | head -n 1; }
node_ready() { case "$(node_state)" in idle*|mixed*|alloc*|completing*) return 0;; esac; return 1; }

status() {
    command -v sinfo >/dev/null || { not_running "not installed"; return 1; }
    pidfile_alive "$DIR/slurmctld.pid" || { not_running "slurmctld is not running"; return 1; }
    pidfile_alive "$DIR/slurmd.pid" || { not_running "slurmd is not running"; return 1; }
    node_ready || { not_running "node $HOST is '$(node_state)', not idle"; return 1; }
    echo "slurm: running, node $HOST $(node_state) ($(sinfo -h -o '%c CPUs, %m MB'))"
}

write_config() {
    local hw cpus mem
    hw=$(slurmd -C | head -n 1) || fail "slurmd -C failed"
    cpus=$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$hw")
    mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$hw")
    mem=$(( mem * 9 / 10 ))
    # the node's topology as slurmd sees it, with 90% of its memory
    local node
    node=$(sed -e "s/^NodeName=[^ ]*/NodeName=$HOST/" -e "s/RealMemory=[0-9]*/RealMemory=$mem/" \
        <<<"$hw")
    mkdir -p "$DIR/state" "$DIR/spool"
    cat > "$DIR/slurm.conf" <<EOF
$MARK
ClusterName=nipypemaskers
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
ReturnToService=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=512
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
DependencyParameters=kill_invalid_depend
MinJobAge=600
InactiveLimit=0
KillWait=5
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/jobcomp.txt
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
    if [ -L $CONF ] || [ ! -e $CONF ]; then
        mkdir -p /etc/slurm && ln -sfn "$DIR/slurm.conf" $CONF
    elif ! grep -qF "$MARK" $CONF; then
        fail "$CONF exists and was not written by this script: not replacing it"
    else
        ln -sfn "$DIR/slurm.conf" $CONF
    fi
    say "$cpus CPUs, RealMemory=${mem} MB; config $DIR/slurm.conf"
}

start_munge() {
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then return 0; fi
    [ -r /etc/munge/munge.key ] || fail "no /etc/munge/munge.key (the munge package creates it)"
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null
    runuser -u munge -- munged --force 9>&- || fail "munged did not start"
    cp /run/munge/munged.pid "$DIR/munged.pid" 2>/dev/null
    wait_until 10 sh -c 'munge -n | unmunge' || fail "munge does not answer (munge -n | unmunge)"
}

start() {
    require_machine
    take_lock
    if status >/dev/null 2>&1; then started; status; return 0; fi
    install_packages slurmctld slurmd sbatch squeue munged -- \
        slurmctld slurmd slurm-client munge
    mkdir -p "$DIR"
    stop_daemons quiet
    write_config
    start_munge
    slurmctld -c -f "$DIR/slurm.conf" 9>&- || fail "slurmctld did not start; see $DIR/slurmctld.log"
    wait_until 15 pidfile_alive "$DIR/slurmctld.pid" \
        || fail "slurmctld exited; see $DIR/slurmctld.log: $(tail -n 3 "$DIR/slurmctld.log")"
    slurmd -N "$HOST" -f "$DIR/slurm.conf" 9>&- || fail "slurmd did not start; see $DIR/slurmd.log"
    if ! wait_until 30 node_ready; then
        fail "node $HOST not idle after 30 s (state '$(node_state)'); see $DIR/slurmd.log: $(tail -n 3 "$DIR/slurmd.log" 2>/dev/null)"
    fi
    started
    status
}

stop_daemons() {
    local quiet=${1:-}
    stop_pidfile "$DIR/slurmd.pid" slurmd
    stop_pidfile "$DIR/slurmctld.pid" slurmctld
    [ -n "$quiet" ] || stop_pidfile "$DIR/munged.pid" munged
}

case "${1:-}" in
    start) start ;;
    stop) take_lock; stop_daemons ;;
    status) status ;;
    *) echo "usage: $0 {start|stop|status}" >&2; exit 2 ;;
esac
