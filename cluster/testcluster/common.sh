# shellcheck shell=bash
# Settings shared by start.sh and stop.sh (sourced, not run).
HINQS_SLURM_DIR="${HINQS_SLURM_DIR:-/tmp/hinqs-slurm}"
HINQS_SLURM_NODE="${HINQS_SLURM_NODE:-$(hostname -s 2>/dev/null || uname -n | cut -d. -f1)}"
HINQS_SLURM_CPUS="${HINQS_SLURM_CPUS:-8}"
HINQS_SLURM_MEM_MB="${HINQS_SLURM_MEM_MB:-16000}"
HINQS_SLURM_CTLD_PORT="${HINQS_SLURM_CTLD_PORT:-6817}"
HINQS_SLURM_SLURMD_PORT="${HINQS_SLURM_SLURMD_PORT:-6818}"
# The Debian binaries (daemons and clients) read /etc/slurm/slurm.conf unless SLURM_CONF
# says otherwise; start.sh links it to the generated copy so sbatch/squeue/sinfo (and
# Snakemake calling them) need no environment variable.
# shellcheck disable=SC2034  # used by start.sh / stop.sh
SLURM_ETC=/etc/slurm
# shellcheck disable=SC2034
MARKER="hinqs one-node SLURM test cluster"

# pid_alive PIDFILE NAME: true when PIDFILE names a live (not zombie) process called NAME.
pid_alive() {
    local pidfile=$1 name=$2 pid stat
    pid=$(cat "$pidfile" 2>/dev/null) || return 1
    case "$pid" in '' | *[!0-9]*) return 1 ;; esac
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] || return 1
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [ "${stat%% *}" != Z ]
}

munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }
