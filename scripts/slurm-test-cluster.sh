#!/usr/bin/env bash
# A single-node Slurm cluster on this machine for zoo's Slurm tests (tests/test_slurm.py):
# munged, slurmctld and slurmd on localhost, one partition ("debug") with this machine's cores.
#   sudo bash scripts/slurm-test-cluster.sh          # install, configure, start (idempotent)
#   bash scripts/slurm-test-cluster.sh --status      # exit 0 when the cluster answers
#   sudo bash scripts/slurm-test-cluster.sh --stop   # stop the three daemons
# It runs in containers without systemd or cgroups: the daemons are started by hand, processes
# are tracked through /proc (proctrack/linuxproc) and no cgroup plugin is used. A second run
# with the cluster up returns at once. It never touches a slurm.conf that it did not write.
set -euo pipefail

CONF=/etc/slurm/slurm.conf
MARK="# written by zoo's scripts/slurm-test-cluster.sh"
STATE=/var/lib/zoo-slurm
LOGS=/var/log/zoo-slurm

# Up: the controller answers, this machine's slurmd answers (the controller notices a dead one
# only minutes later) and the node takes jobs.
cluster_up() {
    scontrol ping 2>/dev/null | grep -q "is UP" &&
        scontrol show slurmd >/dev/null 2>&1 &&
        sinfo -h -o "%t" 2>/dev/null | grep -qxE "(idle|mix|alloc)"
}

if [ "${1:-}" = "--status" ]; then
    cluster_up
    exit
fi
if [ "${1:-}" = "--stop" ]; then
    for pidfile in "$STATE/slurmd.pid" "$STATE/slurmctld.pid" /run/munge/munged.pid; do
        [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
    done
    exit 0
fi
if command -v scontrol >/dev/null && cluster_up; then
    echo "slurm test cluster: up ($(sinfo -h -o '%P %D node(s) %c cpus %t' | head -1))"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "slurm-test-cluster.sh: run it as root (it installs packages and starts daemons)" >&2
    exit 2
fi

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq slurm-wlm munge >/dev/null
fi

if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
    echo "slurm-test-cluster.sh: $CONF exists and is not ours; leaving this machine's Slurm alone" >&2
    exit 2
fi

# munge: the key every Slurm daemon and client authenticates with.
mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge
if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
fi
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
chmod 0700 /etc/munge && chmod 0400 /etc/munge/munge.key
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    runuser -u munge -- munged --force
    for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
fi

# slurm.conf: this host as controller and only node, its real cores and memory (slurmd -C),
# a node that comes back by itself after a restart, requeue allowed.
mkdir -p "$STATE/ctld" "$STATE/d" "$LOGS" /etc/slurm
host=$(hostname -s)
hardware=$(slurmd -C | head -1 | sed -e "s/^NodeName=[^ ]*//" -e "s/ UpTime=.*//")
cat >"$CONF" <<EOF
$MARK
ClusterName=zootest
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
JobRequeue=1
KillWait=30
MinJobAge=600
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
NodeName=$host NodeAddr=127.0.0.1 $hardware State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
alive "$STATE/slurmctld.pid" || slurmctld
alive "$STATE/slurmd.pid" || slurmd
for _ in $(seq 100); do
    if cluster_up; then
        echo "slurm test cluster: up ($(sinfo -h -o '%P %D node(s) %c cpus %t' | head -1))"
        exit 0
    fi
    # A node the controller remembers as down (from an earlier run) is taken back.
    scontrol update nodename="$host" state=resume 2>/dev/null || true
    sleep 0.2
done
echo "slurm-test-cluster.sh: the cluster did not come up; see $LOGS/slurmctld.log and $LOGS/slurmd.log" >&2
exit 1
