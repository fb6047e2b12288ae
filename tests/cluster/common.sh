# Shared helpers of slurm.sh and sge.sh (sourced, not run).
# Every wait is bounded; every failure prints its reason on stderr and returns non-zero.

CLUSTER_ROOT=${NIPYPE_MASKERS_CLUSTER_DIR:-/tmp/nipype-maskers-cluster}

say() { echo "$SCHEDULER: $*"; }
# fail REASON: print it, keep it for `status` (and the tests' skip message), exit 1
fail() {
    echo "$SCHEDULER: cannot run: $*" >&2
    { mkdir -p "$CLUSTER_ROOT" && echo "$*" > "$CLUSTER_ROOT/$SCHEDULER.reason"; } 2>/dev/null
    exit 1
}
# not_running WHAT: status's answer, with the reason the last start failed, if it did
not_running() {
    local reason=""
    [ -r "$CLUSTER_ROOT/$SCHEDULER.reason" ] && \
        reason=" (last start failed: $(cat "$CLUSTER_ROOT/$SCHEDULER.reason"))"
    echo "$SCHEDULER: $*$reason"
    return 1
}
started() { rm -f "$CLUSTER_ROOT/$SCHEDULER.reason"; }

# The machine can host a scheduler: root, apt-get, no systemd needed.
require_machine() {
    [ "$(id -u)" = 0 ] || fail "not root (installing and starting a scheduler needs root)"
    command -v apt-get >/dev/null || fail "no apt-get (Debian/Ubuntu packages are used)"
}

# install_packages CMD... -- PKG...: apt-get install PKGs unless every CMD is already there.
# Services are kept from starting with the packages' own configuration (policy-rc.d).
install_packages() {
    local cmds=() pkgs=() seen=0 missing=0 cmd
    for arg in "$@"; do
        if [ "$arg" = -- ]; then seen=1; elif [ $seen = 0 ]; then cmds+=("$arg");
        else pkgs+=("$arg"); fi
    done
    for cmd in "${cmds[@]}"; do
        command -v "$cmd" >/dev/null || [ -x "$cmd" ] || missing=1
    done
    [ $missing = 0 ] && return 0
    say "installing ${pkgs[*]} ..."
    local policy=/usr/sbin/policy-rc.d created=0 log="$CLUSTER_ROOT/apt-$SCHEDULER.log"
    if [ ! -e $policy ]; then
        printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy && created=1
    fi
    local status=0
    export DEBIAN_FRONTEND=noninteractive
    if ! timeout 600 apt-get install -y -q --no-install-recommends "${pkgs[@]}" >"$log" 2>&1
    then
        timeout 300 apt-get update -q >>"$log" 2>&1
        timeout 600 apt-get install -y -q --no-install-recommends "${pkgs[@]}" >>"$log" 2>&1 \
            || status=$?
    fi
    [ $created = 1 ] && rm -f $policy
    [ $status = 0 ] || fail "apt-get install ${pkgs[*]} failed (exit $status); see $log: $(tail -n 2 "$log" | tr '\n' ' ')"
}

# pid_alive PID: running and not a zombie (PID 1 may reap late: kill -0 succeeds on zombies).
pid_alive() {
    local pid=$1 state
    [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
    state=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)
    [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

pidfile_alive() { [ -r "$1" ] && pid_alive "$(cat "$1" 2>/dev/null)"; }

# stop_pidfile FILE NAME: TERM the process, wait up to 10 s, then KILL it.
stop_pidfile() {
    local file=$1 name=$2 pid i
    [ -r "$file" ] || return 0
    pid=$(cat "$file" 2>/dev/null)
    if pid_alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null
        for i in $(seq 50); do pid_alive "$pid" || break; sleep 0.2; done
        if pid_alive "$pid"; then kill -KILL "$pid" 2>/dev/null; sleep 0.2; fi
        say "stopped $name (pid $pid)"
    fi
    rm -f "$file"
}

# wait_until SECONDS CMD...: run CMD every 0.5 s until it succeeds; 1 on timeout.
wait_until() {
    local deadline=$(( $(date +%s) + $1 )); shift
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -ge $deadline ] && return 1
        sleep 0.5
    done
}

# Serialize concurrent start/stop calls (bounded).
take_lock() {
    mkdir -p "$CLUSTER_ROOT"
    exec 9>"$CLUSTER_ROOT/.$SCHEDULER.lock"
    flock -w 900 9 || fail "another $SCHEDULER start/stop holds $CLUSTER_ROOT/.$SCHEDULER.lock"
}
