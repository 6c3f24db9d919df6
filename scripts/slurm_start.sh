#!/usr/bin/env bash
# A single-node Slurm (slurmctld + slurmd on this machine) for seedlab's Slurm tests and
# for trying `seedlab runs submit --executor slurm` without a cluster.
#
# Idempotent: if slurmctld already answers, it does nothing. Otherwise (as root) it
# installs Debian's slurm-wlm and munge when missing, writes a random munge key and a
# slurm.conf for this host (unless one exists), and starts munged, slurmctld and slurmd
# directly (no systemd). It never stops a daemon.
#
#   bash scripts/slurm_start.sh          exit 0 when `squeue` answers at the end
#
# Without slurmdbd there is no accounting: `sacct` fails, which seedlab does not use.
set -euo pipefail

answers() { command -v squeue >/dev/null 2>&1 && timeout 10 squeue -h >/dev/null 2>&1; }

if answers; then
    echo "slurm_start: slurmctld already answers; nothing to do"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "slurm_start: slurmctld does not answer and this is not root: cannot start it" >&2
    exit 3
fi

if ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
    echo "slurm_start: installing slurm-wlm and munge"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq slurm-wlm munge >/dev/null
fi

host=$(hostname -s)

# munge: a random key readable only by the munge user, then the daemon as that user.
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key
chmod 400 /etc/munge/munge.key
if ! pgrep -x munged >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged
fi

# slurm.conf: one node with this machine's cores and a little less than its memory.
conf=/etc/slurm/slurm.conf
if [ ! -s "$conf" ]; then
    cpus=$(nproc)
    mem_mib=$(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo)
    real_mem=$(( mem_mib * 9 / 10 ))
    install -d /etc/slurm
    cat >"$conf" <<EOF
# Written by seedlab scripts/slurm_start.sh: a single-node cluster on $host.
ClusterName=seedlab
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/linux
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ReturnToService=2
# Finished jobs stay visible to squeue/scontrol for an hour (there is no accounting).
MinJobAge=3600
KillWait=5
InactiveLimit=0
SchedulerType=sched/backfill
NodeName=$host CPUs=$cpus RealMemory=$real_mem State=UNKNOWN
PartitionName=main Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
fi
install -d /var/spool/slurmctld /var/spool/slurmd /var/log/slurm

pgrep -x slurmctld >/dev/null 2>&1 || /usr/sbin/slurmctld
pgrep -x slurmd >/dev/null 2>&1 || /usr/sbin/slurmd

for _ in $(seq 1 30); do
    if answers; then
        # A node that was down in an earlier life comes back.
        scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true
        echo "slurm_start: slurmctld and slurmd are up on $host"
        exit 0
    fi
    sleep 1
done
echo "slurm_start: slurmctld did not answer within 30 s; see /var/log/slurm/" >&2
exit 1
