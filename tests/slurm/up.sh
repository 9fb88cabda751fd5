#!/usr/bin/env bash
# Bring up a single-node SLURM cluster on localhost for tests, without systemd:
# munged, MariaDB (started by hand), slurmdbd (so `sacct` works), slurmctld and slurmd,
# all with their sockets, ports, logs and state under one folder.
#
#   tests/slurm/up.sh [STATE_DIR]      # default /tmp/mlmm-slurm; prints `export SLURM_CONF=...`
#   tests/slurm/down.sh [STATE_DIR]    # stops exactly the daemons started here (PIDs in STATE_DIR/pids)
#
# Installs the Debian packages when missing and run as root (exit 3 with a reason otherwise).
# Ports: MLMM_SLURM_PORT_BASE (default 6817) for slurmctld/slurmd/slurmdbd, +10 for MariaDB.
set -euo pipefail

STATE=$(realpath -m "${1:-/tmp/mlmm-slurm}")
BASE=${MLMM_SLURM_PORT_BASE:-6817}
CTLD_PORT=$BASE; SLURMD_PORT=$((BASE + 1)); DBD_PORT=$((BASE + 2)); DB_PORT=$((BASE + 10))
CLUSTER=mlmmtest
ACCOUNT=${MLMM_SLURM_ACCOUNT:-mlmm}
PACKAGES=(munge slurmctld slurmd slurmdbd slurm-client mariadb-server)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "SKIP: Debian packages ${missing[*]} are missing and installing them needs root" >&2
    exit 3
  fi
  echo "installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "SKIP: the test cluster runs its daemons as root (SlurmUser=root); run as root" >&2
  exit 3
fi
# Snakemake's job-step executor drops SLURM_CONF before the nested srun, so srun inside a job finds
# the configuration only at a compiled-in place: /etc/slurm/slurm.conf or /run/slurm/conf/slurm.conf.
# This cluster links the latter to its state folder, which needs a machine without a SLURM of its own.
CONF_LINK=/run/slurm/conf
if [[ -e /etc/slurm/slurm.conf ]]; then
  echo "SKIP: /etc/slurm/slurm.conf exists (a real SLURM); the test cluster would clash with it" >&2
  exit 3
fi
if [[ -e $CONF_LINK || -L $CONF_LINK ]] && ! { [[ -L $CONF_LINK ]] && [[ ! -e $(readlink "$CONF_LINK")/pids ]]; }; then
  echo "SKIP: $CONF_LINK is in use (slurmd of another cluster or a running test cluster)" >&2
  exit 3
fi
if [[ -s $STATE/pids ]]; then
  echo "$STATE/pids exists: a test cluster from this folder may still run; call tests/slurm/down.sh $STATE first" >&2
  exit 2
fi

rm -rf "$STATE"
mkdir -p -m 0755 "$STATE"
mkdir -p "$STATE"/{log,run,spool/ctld,spool/d,mysql} /run/mysqld
: >"$STATE/pids"

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...: poll until COMMAND succeeds
  local limit=$1 what=$2; shift 2
  for ((i = 0; i < limit * 4; i++)); do
    if timeout 5 "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.25
  done
  echo "timed out after ${limit}s waiting for $what; logs in $STATE/log" >&2
  tail -n 20 "$STATE"/log/* >&2 || true
  exit 1
}
pid_from() {  # pid_from PIDFILE NAME: record a daemon's PID for down.sh
  wait_for 20 "$2 pid file" test -s "$1"
  echo "$2 $(cat "$1")" >>"$STATE/pids"
}

# munge: own key, socket and pid file
dd if=/dev/urandom of="$STATE/munge.key" bs=1024 count=1 status=none
chmod 0400 "$STATE/munge.key"
munged -f --key-file="$STATE/munge.key" --socket="$STATE/run/munge.socket" \
  --pid-file="$STATE/run/munged.pid" --log-file="$STATE/log/munged.log" --seed-file="$STATE/run/munge.seed"
pid_from "$STATE/run/munged.pid" munged

# MariaDB for slurmdbd (TCP on 127.0.0.1 only)
mariadb-install-db --no-defaults --user=root --datadir="$STATE/mysql" \
  --auth-root-authentication-method=normal --skip-test-db >"$STATE/log/mariadb-install.log" 2>&1
mariadbd --no-defaults --user=root --datadir="$STATE/mysql" --bind-address=127.0.0.1 --port="$DB_PORT" \
  --socket="$STATE/run/mysqld.sock" --pid-file="/run/mysqld/mlmm-$DB_PORT.pid" \
  --log-error="$STATE/log/mariadb.log" --innodb-buffer-pool-size=64M >/dev/null 2>&1 &
pid_from "/run/mysqld/mlmm-$DB_PORT.pid" mariadbd
wait_for 30 "MariaDB" mariadb --no-defaults -uroot -h127.0.0.1 -P"$DB_PORT" -e "select 1"

NODE_CPUS=$(slurmd -C | sed -n 's/.*CPUs=\([0-9]*\).*/\1/p')
NODE_MEM=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
# Memory is not a consumable here (CR_Core) but sbatch rejects --mem above RealMemory: declare at
# least the 16 GB the profile asks for (config_overrides keeps slurmd from draining the node).
((NODE_MEM < 16384)) && NODE_MEM=16384

cat >"$STATE/slurm.conf" <<CONF
ClusterName=$CLUSTER
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$STATE/run/munge.socket
CredType=cred/munge
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
StateSaveLocation=$STATE/spool/ctld
SlurmdSpoolDir=$STATE/spool/d
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
MailProg=/bin/true
MpiDefault=none
SchedulerType=sched/backfill
MinJobAge=600
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$DBD_PORT
AccountingStoragePass=$STATE/run/munge.socket
AccountingStorageEnforce=associations
AccountingStoreFlags=job_comment
JobAcctGatherType=jobacct_gather/none
NodeName=localhost CPUs=$NODE_CPUS RealMemory=$NODE_MEM State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF

cat >"$STATE/slurmdbd.conf" <<CONF
AuthType=auth/munge
AuthInfo=socket=$STATE/run/munge.socket
DbdHost=localhost
DbdPort=$DBD_PORT
SlurmUser=root
PidFile=$STATE/run/slurmdbd.pid
LogFile=$STATE/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=root
StorageLoc=slurm_acct_db_$BASE
CONF
chmod 0600 "$STATE/slurmdbd.conf"
export SLURM_CONF=$STATE/slurm.conf
mkdir -p "$(dirname "$CONF_LINK")"
ln -sfn "$STATE" "$CONF_LINK"

slurmdbd  # reads slurmdbd.conf beside $SLURM_CONF
pid_from "$STATE/run/slurmdbd.pid" slurmdbd
wait_for 30 "slurmdbd" sacctmgr -i list cluster
sacctmgr -i add cluster "$CLUSTER" >/dev/null
sacctmgr -i add account "$ACCOUNT" cluster="$CLUSTER" description=tests organization=mlmm >/dev/null
sacctmgr -i add user root account="$ACCOUNT" cluster="$CLUSTER" >/dev/null

slurmctld -f "$STATE/slurm.conf"
pid_from "$STATE/run/slurmctld.pid" slurmctld
wait_for 30 "slurmctld" scontrol ping
slurmd -N localhost -f "$STATE/slurm.conf"
pid_from "$STATE/run/slurmd.pid" slurmd
wait_for 30 "node localhost idle" bash -c "sinfo -h -n localhost -o %t | grep -q idle"

echo "export SLURM_CONF=$STATE/slurm.conf MLMM_SLURM_ACCOUNT=$ACCOUNT"
