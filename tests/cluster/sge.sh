#!/usr/bin/env bash
# A single-node (Son of) Grid Engine on localhost for the cluster tests: sge_qmaster + sge_execd.
#
#   tests/cluster/sge.sh start    install (Debian's gridengine packages, as root), configure
#                                 (queue all.q, parallel environment smp, root may submit,
#                                 1 s scheduling), start, wait until the queue is available
#   tests/cluster/sge.sh status   exit 0 when the queue answers and is usable
#   tests/cluster/sge.sh stop     stop both daemons by their PIDs
#
# Clients need SGE_ROOT=/var/lib/gridengine and SGE_CELL=default in their environment.
# The spool is the package's (/var/spool/gridengine); the configuration files this script
# loads and its log are under $NIPYPE_MASKERS_CLUSTER_DIR/sge (default
# /tmp/nipype-maskers-cluster/sge). When the machine cannot run Grid Engine (not root, no
# apt-get, a failure), the reason is printed and the exit code is 1. Every wait is bounded.
set -uo pipefail
SCHEDULER=sge
. "$(dirname "$0")/common.sh"
DIR=$CLUSTER_ROOT/sge
export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
COMMON=$SGE_ROOT/$SGE_CELL/common
SPOOL=/var/spool/gridengine
HOST=$(hostname -s)
QMASTER_PID=$SPOOL/qmaster/qmaster.pid
# sge_execd names its spool folder after the name it resolves for itself ('localhost' here)
execd_pidfile() { ls "$SPOOL"/execd/*/execd.pid 2>/dev/null | head -n 1; }
CPUS=$(nproc)

# the queue instance's line of `qstat -f`: name, type, slots, load, arch[, state flags]
queue_line() { qstat -f -q all.q 2>/dev/null | grep "^all.q@"; }
queue_ready() {
    local line
    line=$(queue_line) || return 1
    # no state flags (a: alarm, u: unknown, d: disabled, E: error) and a reported load
    [ "$(wc -w <<<"$line")" -eq 5 ] && ! grep -q -- "-NA-" <<<"$line"
}

status() {
    command -v qstat >/dev/null || { not_running "not installed"; return 1; }
    pidfile_alive $QMASTER_PID || { not_running "sge_qmaster is not running"; return 1; }
    pidfile_alive "$(execd_pidfile)" || { not_running "sge_execd is not running"; return 1; }
    queue_ready || { not_running "queue all.q not available: '$(queue_line)'"; return 1; }
    echo "sge: running, queue $(queue_line | awk '{print $1 " " $3 " slots (used/total)"}')"
}

# load CONFIG_FILE with `qconf -A<kind>` when it is new, `qconf -M<kind>` when it exists
qconf_load() {
    local kind=$1 show=$2 name=$3 file=$4
    if qconf "$show" "$name" >/dev/null 2>&1; then
        qconf -M"$kind" "$file" >>"$DIR/qconf.log" 2>&1
    else
        qconf -A"$kind" "$file" >>"$DIR/qconf.log" 2>&1
    fi || fail "qconf -A$kind/-M$kind $file failed: $(tail -n 2 "$DIR/qconf.log")"
}

configure() {
    local conf=$DIR/conf
    mkdir -p "$conf"
    qconf -as "$HOST" >>"$DIR/qconf.log" 2>&1
    # jobs run as root here: Grid Engine refuses uids/gids below min_uid/min_gid; the
    # accounting file (qacct) is written as soon as a job ends
    qconf -sconf global > "$conf/global" || fail "qconf -sconf failed"
    sed -i -e 's/^min_uid .*/min_uid 0/' -e 's/^min_gid .*/min_gid 0/' \
        -e 's/^load_report_time .*/load_report_time 00:00:05/' \
        -e 's/\bflush_time=[0-9:]*/flush_time=00:00:01 accounting_flush_time=00:00:00/' \
        "$conf/global"
    qconf -Mconf "$conf/global" >>"$DIR/qconf.log" 2>&1 || fail "qconf -Mconf failed"
    # the scheduler runs every second (the default 15 s makes every job wait)
    qconf -ssconf > "$conf/sched" || fail "qconf -ssconf failed"
    sed -i -e 's/^schedule_interval .*/schedule_interval 0:0:1/' \
        -e 's/^flush_submit_sec .*/flush_submit_sec 1/' \
        -e 's/^flush_finish_sec .*/flush_finish_sec 1/' "$conf/sched"
    qconf -Msconf "$conf/sched" >>"$DIR/qconf.log" 2>&1 || fail "qconf -Msconf failed"
    printf '%s\n' "hostname $HOST" "load_scaling NONE" "complex_values NONE" \
        "user_lists NONE" "xuser_lists NONE" "projects NONE" "xprojects NONE" \
        "usage_scaling NONE" "report_variables NONE" > "$conf/$HOST"
    qconf_load e -se "$HOST" "$conf/$HOST"
    printf '%s\n' "pe_name smp" "slots 9999" "user_lists NONE" "xuser_lists NONE" \
        "start_proc_args NONE" "stop_proc_args NONE" 'allocation_rule $pe_slots' \
        "control_slaves FALSE" "job_is_first_task TRUE" "urgency_slots min" \
        "accounting_summary FALSE" "qsort_args NONE" > "$conf/smp"
    qconf_load p -sp smp "$conf/smp"
    # a busy 2-core machine must not put the queue in alarm: no load threshold
    cat > "$conf/all.q" <<EOF
qname                 all.q
hostlist              $HOST
seq_no                0
load_thresholds       NONE
suspend_thresholds    NONE
nsuspend              1
suspend_interval      00:05:00
priority              0
min_cpu_interval      00:05:00
processors            UNDEFINED
qtype                 BATCH INTERACTIVE
ckpt_list             NONE
pe_list               smp
rerun                 FALSE
slots                 $CPUS
tmpdir                /tmp
shell                 /bin/bash
prolog                NONE
epilog                NONE
shell_start_mode      posix_compliant
starter_method        NONE
suspend_method        NONE
resume_method         NONE
terminate_method      NONE
notify                00:00:60
owner_list            NONE
user_lists            NONE
xuser_lists           NONE
subordinate_list      NONE
complex_values        NONE
projects              NONE
xprojects             NONE
calendar              NONE
initial_state         default
s_rt                  INFINITY
h_rt                  INFINITY
s_cpu                 INFINITY
h_cpu                 INFINITY
s_fsize               INFINITY
h_fsize               INFINITY
s_data                INFINITY
h_data                INFINITY
s_stack               INFINITY
h_stack               INFINITY
s_core                INFINITY
h_core                INFINITY
s_rss                 INFINITY
h_rss                 INFINITY
s_vmem                INFINITY
h_vmem                INFINITY
EOF
    qconf_load q -sq all.q "$conf/all.q"
}

start() {
    require_machine
    take_lock
    mkdir -p "$DIR"
    if status >/dev/null 2>&1; then started; status; return 0; fi
    install_packages sge_qmaster sge_execd qsub qstat qconf qacct -- \
        gridengine-master gridengine-exec gridengine-client
    [ -d "$SPOOL/spooldb" ] || fail "no $SPOOL/spooldb: the gridengine-master package did not initialize the cell"
    getent hosts "$HOST" >/dev/null || echo "127.0.0.1 $HOST" >> /etc/hosts
    # 127.0.0.1 resolves back to 'localhost': without the alias the master rejects its own
    # client requests
    echo "$HOST" > "$COMMON/act_qmaster"
    echo "$HOST localhost" > "$COMMON/host_aliases"
    mkdir -p /var/run/gridengine "$SPOOL/execd" && chown sgeadmin:sgeadmin "$SPOOL/execd"
    if ! pidfile_alive $QMASTER_PID; then
        sge_qmaster 9>&- || fail "sge_qmaster did not start; see $SPOOL/qmaster/messages"
    fi
    wait_until 20 qconf -sh \
        || fail "sge_qmaster does not answer; see $SPOOL/qmaster/messages: $(tail -n 3 $SPOOL/qmaster/messages 2>/dev/null)"
    configure
    # (re)start the execution daemon so that it reads the new global configuration
    stop_pidfile "$(execd_pidfile)" sge_execd
    sge_execd 9>&- || fail "sge_execd did not start; see $SPOOL/execd/*/messages"
    if ! wait_until 40 queue_ready; then
        fail "queue all.q not available after 40 s: '$(queue_line)'; see $SPOOL/execd/*/messages: $(tail -q -n 3 "$SPOOL"/execd/*/messages 2>/dev/null)"
    fi
    started
    status
}

stop() {
    take_lock
    stop_pidfile "$(execd_pidfile)" sge_execd
    stop_pidfile $QMASTER_PID sge_qmaster
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 {start|stop|status}" >&2; exit 2 ;;
esac
