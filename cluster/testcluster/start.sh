#!/usr/bin/env bash
# Start the one-node SLURM test cluster: munged, slurmctld, slurmd, started directly
# (no systemd), as root. Idempotent: when everything already runs it does nothing.
#
# Environment (all optional):
#   HINQS_SLURM_DIR      state dir: generated config, logs, spool, pid files (/tmp/hinqs-slurm)
#   HINQS_SLURM_CPUS     CPUs the node declares, may exceed the machine's (8)
#   HINQS_SLURM_MEM_MB   RealMemory the node declares, in MB (16000)
#   HINQS_SLURM_NODE     node name; must be this machine's short host name (hostname -s)
#   HINQS_SLURM_CTLD_PORT / HINQS_SLURM_SLURMD_PORT   ports (6817 / 6818)
#   HINQS_SLURM_WAIT     seconds to wait for the node to become idle (90)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/common.sh
. "$here/common.sh"

log() { echo "start.sh: $*"; }
die() { echo "start.sh: error: $*" >&2; exit 1; }

node_state() { sinfo -h -N -n "$HINQS_SLURM_NODE" -o '%T' 2>/dev/null | head -n1; }

state=$HINQS_SLURM_DIR
run=$state/run

if pid_alive "$run/slurmctld.pid" slurmctld && pid_alive "$run/slurmd.pid" slurmd && munge_ok; then
    case "$(node_state)" in
        idle | mixed | allocated | completing)
            log "already running (node $HINQS_SLURM_NODE: $(node_state)); nothing to do"
            exit 0 ;;
    esac
fi

[ "$(id -u)" -eq 0 ] || die "must run as root (slurmd and munged need it)"
for b in munged munge unmunge slurmctld slurmd sinfo scontrol; do
    command -v "$b" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin"
    command -v "$b" >/dev/null 2>&1 || die "$b not found: run cluster/testcluster/install.sh first"
done

# --- configuration --------------------------------------------------------------------------
mkdir -p "$state"/{etc,ctld,spool,run,log}
chmod 755 "$state"
gen=$state/etc/slurm.conf
sed -e "s|@NODE@|$HINQS_SLURM_NODE|g" \
    -e "s|@STATE_DIR@|$state|g" \
    -e "s|@CPUS@|$HINQS_SLURM_CPUS|g" \
    -e "s|@MEM_MB@|$HINQS_SLURM_MEM_MB|g" \
    -e "s|@CTLD_PORT@|$HINQS_SLURM_CTLD_PORT|g" \
    -e "s|@SLURMD_PORT@|$HINQS_SLURM_SLURMD_PORT|g" \
    "$here/slurm.conf.template" >"$gen.new"
mv "$gen.new" "$gen"
cp "$here/cgroup.conf.template" "$state/etc/cgroup.conf"
chmod 644 "$gen" "$state/etc/cgroup.conf"

mkdir -p "$SLURM_ETC"
for f in slurm.conf cgroup.conf; do
    target=$SLURM_ETC/$f
    if [ -e "$target" ] && [ ! -L "$target" ] && ! grep -q "$MARKER" "$target"; then
        die "$target exists and is not ours; refusing to overwrite a site's SLURM config"
    fi
    ln -sfn "$state/etc/$f" "$target"
done

# --- munge ----------------------------------------------------------------------------------
if munge_ok; then
    log "munged already answers"
else
    key=/etc/munge/munge.key
    mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge
    if [ ! -s "$key" ]; then
        log "creating $key"
        if command -v mungekey >/dev/null 2>&1; then
            mungekey --create --keyfile="$key" --force
        else
            dd if=/dev/urandom of="$key" bs=1 count=1024 status=none
        fi
    fi
    chown munge:munge /etc/munge "$key" /run/munge /var/lib/munge /var/log/munge
    chmod 700 /etc/munge
    chmod 600 "$key"
    chmod 755 /run/munge
    log "starting munged"
    runuser -u munge -- munged
    touch "$run/munged.started-by-hinqs"
    for _ in $(seq 50); do munge_ok && break; sleep 0.1; done
    munge_ok || die "munged does not answer (see /var/log/munge/munged.log)"
fi

# --- slurm daemons --------------------------------------------------------------------------
# Clean environment: the daemons (and through slurmd every job's defaults) must not inherit
# whatever virtualenv or thread settings the caller happens to have.
daemon_env=(env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
            LANG=C.UTF-8 SLURM_CONF="$gen")

if pid_alive "$run/slurmctld.pid" slurmctld; then
    log "slurmctld already running"
else
    log "starting slurmctld"
    "${daemon_env[@]}" slurmctld -f "$gen" \
        || die "slurmctld failed; see $state/log/slurmctld.log"
fi
for _ in $(seq 100); do scontrol ping 2>/dev/null | grep -q 'is UP' && break; sleep 0.2; done
scontrol ping 2>/dev/null | grep -q 'is UP' || die "slurmctld does not answer; see $state/log/slurmctld.log"

if pid_alive "$run/slurmd.pid" slurmd; then
    log "slurmd already running"
else
    log "starting slurmd"
    "${daemon_env[@]}" slurmd -f "$gen" -N "$HINQS_SLURM_NODE" \
        || die "slurmd failed; see $state/log/slurmd.log"
fi

# --- wait for the node ----------------------------------------------------------------------
deadline=$((SECONDS + ${HINQS_SLURM_WAIT:-90}))
resumed=0
while :; do
    st=$(node_state || true)
    case "$st" in
        idle | mixed | allocated | completing) break ;;
        down* | drain* | fail*)
            if [ "$resumed" -eq 0 ] && pid_alive "$run/slurmd.pid" slurmd; then
                log "node is $st; resuming it"
                scontrol update NodeName="$HINQS_SLURM_NODE" State=RESUME || true
                resumed=1
            fi ;;
    esac
    if [ "$SECONDS" -ge "$deadline" ]; then
        sinfo -N -l >&2 || true
        tail -n 20 "$state/log/slurmd.log" >&2 || true
        die "node $HINQS_SLURM_NODE not ready (state '${st:-none}')"
    fi
    sleep 0.5
done
log "cluster up: node $HINQS_SLURM_NODE is $st ($HINQS_SLURM_CPUS CPUs, $HINQS_SLURM_MEM_MB MB declared); state in $state"
sinfo
