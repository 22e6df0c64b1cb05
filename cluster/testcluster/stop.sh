#!/usr/bin/env bash
# Stop the one-node SLURM test cluster started by start.sh. Running jobs are killed.
# Stops munged only when start.sh started it. With --purge also removes the state dir.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/common.sh
. "$here/common.sh"
PATH="$PATH:/usr/sbin:/sbin"

log() { echo "stop.sh: $*"; }
run=$HINQS_SLURM_DIR/run

# proc_alive PID NAME: PID is a live (not zombie) process called NAME.
proc_alive() {
    local stat
    [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ] || return 1
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [ "${stat%% *}" != Z ]
}

# stop_daemon PIDFILE NAME: TERM, wait up to 20 s for the process to end, then KILL.
stop_daemon() {
    local pidfile=$1 name=$2 pid
    if ! pid_alive "$pidfile" "$name"; then
        log "$name not running"
        return 0
    fi
    pid=$(cat "$pidfile")
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    # Wait on the process, not the pid file: daemons remove that before they finish.
    for _ in $(seq 100); do proc_alive "$pid" "$name" || return 0; sleep 0.2; done
    log "$name did not stop; killing it"
    kill -KILL "$pid" 2>/dev/null || true
}

if pid_alive "$run/slurmctld.pid" slurmctld || pid_alive "$run/slurmd.pid" slurmd; then
    scancel --state=PENDING 2>/dev/null || true
fi
stop_daemon "$run/slurmd.pid" slurmd
stop_daemon "$run/slurmctld.pid" slurmctld

if [ -e "$run/munged.started-by-hinqs" ]; then
    stop_daemon /run/munge/munged.pid munged
    rm -f "$run/munged.started-by-hinqs"
fi

if [ "${1:-}" = "--purge" ]; then
    for f in slurm.conf cgroup.conf; do
        if [ -L "$SLURM_ETC/$f" ] && [ "$(readlink "$SLURM_ETC/$f")" = "$HINQS_SLURM_DIR/etc/$f" ]; then
            rm -f "$SLURM_ETC/$f"
        fi
    done
    rm -rf "$HINQS_SLURM_DIR"
    log "removed $HINQS_SLURM_DIR"
fi
log "stopped"
