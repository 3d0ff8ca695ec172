#!/usr/bin/env bash
# Starts a single-node Slurm cluster on this machine, as a user would on a
# workstation, for the Slurm tests of `make test`: installs slurm-wlm and
# munge when missing (apt-get; needs root), writes slurm.conf for this host
# (its cores and memory) into a state folder outside the clone, starts
# munged, slurmctld and slurmd, and waits until `sinfo` shows the node idle.
#
# It writes "$STATE/env" (SLURM_CONF for the tests) and "$STATE/pids" (the
# daemons it started, which testing/slurm/stop.sh stops by process id).
# Exits 0 with the cluster up, 3 with a line saying why it cannot start.
set -uo pipefail
STATE=${TESSERA_SLURM_STATE:-$HOME/.cache/tessera/slurm}
cannot() { echo "slurm: cannot start a local cluster: $*" >&2; exit 3; }

install_packages() {
  command -v slurmctld >/dev/null && command -v munged >/dev/null && return 0
  [ "$(id -u)" = 0 ] || cannot "slurm-wlm and munge are not installed and this is not root (apt-get install slurm-wlm munge)"
  command -v apt-get >/dev/null || cannot "slurm-wlm and munge are not installed and there is no apt-get"
  echo "slurm: installing slurm-wlm and munge (apt-get)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >"$STATE/apt.log" 2>&1 \
    || { DEBIAN_FRONTEND=noninteractive apt-get update -q >>"$STATE/apt.log" 2>&1 &&
         DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >>"$STATE/apt.log" 2>&1; } \
    || cannot "apt-get install slurm-wlm munge failed (see $STATE/apt.log)"
}

start_munge() {
  if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
  fi
  chown munge:munge /etc/munge /etc/munge/munge.key && chmod 700 /etc/munge && chmod 400 /etc/munge/munge.key
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then return 0; fi
  runuser -u munge -- /usr/sbin/munged --force || cannot "munged did not start"
  for _ in $(seq 50); do [ -s /run/munge/munged.pid ] && break; sleep 0.1; done
  echo "munged $(cat /run/munge/munged.pid)" >>"$STATE/pids"
}

write_conf() {
  local host cpus mem
  host=$(hostname -s)
  cpus=$(nproc)
  mem=$(( $(free -m | awk '/^Mem:/ {print $2}') * 9 / 10 ))
  mkdir -p "$STATE/ctld" "$STATE/spool"
  cat >"$STATE/slurm.conf" <<CONF
# Written by testing/slurm/start.sh: one node, this machine.
ClusterName=tessera
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# A requeued job waits cred_expire seconds before it may start again (Slurm's
# default 120); lowered so the requeue test's task comes back in seconds.
AuthInfo=cred_expire=10
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
# Lowered from Slurm's 1001 so that the tests' plans need several arrays.
MaxArraySize=4
SlurmctldPort=${TESSERA_SLURMCTLD_PORT:-6817}
SlurmdPort=${TESSERA_SLURMD_PORT:-6818}
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
  echo "export SLURM_CONF=$STATE/slurm.conf" >"$STATE/env"
}

wait_idle() {
  for _ in $(seq 100); do
    state=$(SLURM_CONF=$STATE/slurm.conf sinfo -h -o %t 2>/dev/null | head -1)
    case "$state" in idle*|mix*|alloc*) echo "slurm: node $(hostname -s) is $state"; return 0 ;; esac
    sleep 0.2
  done
  cannot "the node did not become idle (sinfo: ${state:-no answer}); see $STATE/slurmctld.log and slurmd.log"
}

mkdir -p "$STATE"
if [ -f "$STATE/pids" ] && SLURM_CONF=$STATE/slurm.conf sinfo -h >/dev/null 2>&1; then
  echo "slurm: already running (see $STATE/pids)"; exit 0
fi
[ "$(id -u)" = 0 ] || cannot "the daemons run as root here (SlurmUser=root); run make test as root, as CI does"
install_packages
: >"$STATE/pids"
start_munge
write_conf
export SLURM_CONF=$STATE/slurm.conf
/usr/sbin/slurmctld -f "$SLURM_CONF" || cannot "slurmctld did not start (see $STATE/slurmctld.log)"
/usr/sbin/slurmd -f "$SLURM_CONF" -N "$(hostname -s)" || cannot "slurmd did not start (see $STATE/slurmd.log)"
for _ in $(seq 50); do [ -s "$STATE/slurmctld.pid" ] && [ -s "$STATE/slurmd.pid" ] && break; sleep 0.1; done
echo "slurmctld $(cat "$STATE/slurmctld.pid")" >>"$STATE/pids"
echo "slurmd $(cat "$STATE/slurmd.pid")" >>"$STATE/pids"
wait_idle
