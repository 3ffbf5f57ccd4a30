#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, with the runpermit job_submit.lua plugin, for CI and
# for trying the integration. Debian 12 (Slurm 22.05), run as root; works without systemd and
# without cgroups. Idempotent: run it again (e.g. with another gate configuration) and it only
# changes what differs, then reloads the plugin.
#
#   ci-setup.sh [JOB_SUBMIT_LUA [GATE_CONFIG [RUNPERMIT_BIN [CLUSTER]]]]
#
# Each argument may also come from the environment: RUNPERMIT_JOB_SUBMIT (default: the
# job_submit.lua beside this script), RUNPERMIT_GATE_CONFIG, RUNPERMIT_BIN, RUNPERMIT_CLUSTER
# (unset: the plugin's defaults, see job_submit.lua). Also: SLURM_CONF_DIR (default /etc/slurm),
# RUNPERMIT_SLURM_GPUS (fake GPUs declared on the node, default 8).
#
# The daemons run as the `slurm` user, which must be able to read the plugin's files, execute
# RUNPERMIT_BIN, read the gate configuration and the permits, and write the gate configuration's
# directory (where `runpermit gate check` keeps the newest status list).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
job_submit=${1:-${RUNPERMIT_JOB_SUBMIT:-$here/job_submit.lua}}
gate_config=${2:-${RUNPERMIT_GATE_CONFIG:-}}
runpermit_bin=${3:-${RUNPERMIT_BIN:-}}
cluster=${4:-${RUNPERMIT_CLUSTER:-}}
conf_dir=${SLURM_CONF_DIR:-/etc/slurm}
gpus=${RUNPERMIT_SLURM_GPUS:-8}
log_dir=/var/log/slurm

say() { printf 'ci-setup.sh: %s\n' "$*"; }
die() {
  printf 'ci-setup.sh: error: %s\n' "$*" >&2
  for f in "$log_dir/slurmctld.log" "$log_dir/slurmd.log" /var/log/munge/munged.log; do
    [ -s "$f" ] && { printf -- '--- last lines of %s:\n' "$f" >&2; tail -n 15 "$f" >&2; }
  done
  exit 1
}

[ "$(id -u)" = 0 ] || die "run as root (it installs packages and starts daemons)"
[ -r "$job_submit" ] || die "job_submit.lua not readable: $job_submit"
[ -z "$gate_config" ] || [ -r "$gate_config" ] || die "gate configuration not readable: $gate_config"
[ -z "$runpermit_bin" ] || [ -x "$runpermit_bin" ] || say "warning: $runpermit_bin is not executable (the plugin will refuse GPU jobs)"
case "$gpus" in '' | 0 | *[!0-9]*) die "RUNPERMIT_SLURM_GPUS must be a number >= 1, not '$gpus'" ;; esac

# 1. Packages (Slurm 22.05, munge, the Lua 5.1 the plugin runs on).
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
  || ! command -v munged >/dev/null || ! command -v luac5.1 >/dev/null; then
  say "installing slurm-wlm, munge, lua5.1"
  apt-get update -qq || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    slurm-wlm munge lua5.1 >/dev/null || die "apt-get install slurm-wlm munge lua5.1 failed"
fi
id slurm >/dev/null 2>&1 || die "no 'slurm' user after installing slurm-wlm"
luac5.1 -p "$job_submit" || die "$job_submit is not valid Lua 5.1"

# 2. munge (authentication between the Slurm commands and daemons).
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
  say "creating /etc/munge/munge.key"
  mungekey --create --keyfile=/etc/munge/munge.key || die "mungekey failed"
fi
chown munge:munge /etc/munge/munge.key && chmod 0600 /etc/munge/munge.key
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  say "starting munged"
  runuser -u munge -- /usr/sbin/munged --force || die "munged did not start"
  for _ in $(seq 1 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
  munge -n | unmunge >/dev/null || die "munge does not work (munge -n | unmunge)"
fi

# 3. Configuration for this host: one node, one partition, fake GPUs, no cgroups, no accounting.
host=$(hostname -s)
cpus=$(nproc)
install -d -m 0755 "$conf_dir"
install -d -o slurm -g slurm -m 0755 /var/lib/slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd \
  "$log_dir" /run/slurm
changed=0
put() { # put FILE MODE: install stdin as FILE if its content differs; note the change
  local tmp
  tmp=$(mktemp)
  cat >"$tmp"
  if ! cmp -s "$tmp" "$1"; then
    install -m "$2" "$tmp" "$1"
    changed=1
  fi
  rm -f "$tmp"
}
put "$conf_dir/slurm.conf" 0644 <<EOF
# Written by runpermit integrations/slurm/ci-setup.sh: a one-node test cluster.
ClusterName=runpermit-ci
SlurmctldHost=$host(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=$log_dir/slurmctld.log
SlurmdLogFile=$log_dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
JobSubmitPlugins=lua
GresTypes=gpu
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=1000 Gres=gpu:$gpus State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
# No GPUs here. slurmd 22.05 counts a GPU only with a device file (with Count= alone it reports
# 0 and the node goes INVAL), so the fake GPUs are character devices aliasing /dev/null (plain
# files if mknod is not allowed: slurmd then logs "not a valid character or block device" but
# still counts them).
fake=/var/lib/slurm/fake-gpus
install -d -m 0755 "$fake"
for i in $(seq 0 $((gpus - 1))); do
  [ -e "$fake/gpu$i" ] || mknod -m 0666 "$fake/gpu$i" c 1 3 2>/dev/null || touch "$fake/gpu$i"
done
put "$conf_dir/gres.conf" 0644 <<EOF
# Written by runpermit integrations/slurm/ci-setup.sh: fake GPUs (aliases of /dev/null).
NodeName=$host Name=gpu File=$fake/gpu[0-$((gpus - 1))]
EOF
config_changed=$changed

# 4. The plugin, and its settings file beside it (Lua assignments; see job_submit.lua).
lua_string() { # a Lua string literal
  local s=${1//\\/\\\\}
  s=${s//\"/\\\"}
  printf '"%s"' "$s"
}
put "$conf_dir/job_submit.lua" 0644 <"$job_submit"
{
  echo "-- Written by runpermit integrations/slurm/ci-setup.sh: settings of job_submit.lua."
  [ -z "$runpermit_bin" ] || echo "RUNPERMIT_BIN = $(lua_string "$runpermit_bin")"
  [ -z "$gate_config" ] || echo "GATE_CONFIG = $(lua_string "$gate_config")"
  [ -z "$cluster" ] || echo "CLUSTER = $(lua_string "$cluster")"
} | put "$conf_dir/job_submit_runpermit.conf" 0644

# 5. The daemons: start them, or restart them for a new node configuration, or reload.
running() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
stop() { # stop PIDFILE: end the daemon it names and wait for it
  if running "$1"; then
    local pid
    pid=$(cat "$1")
    kill "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    die "daemon $pid ($1) did not stop"
  fi
}
if [ "$config_changed" = 1 ]; then
  stop /run/slurm/slurmd.pid
  stop /run/slurm/slurmctld.pid
fi
if running /run/slurm/slurmctld.pid; then
  say "reloading the configuration and job_submit.lua (scontrol reconfigure)"
  scontrol reconfigure || die "scontrol reconfigure failed"
else
  say "starting slurmctld"
  slurmctld -c || die "slurmctld did not start"
fi
for _ in $(seq 1 100); do scontrol ping 2>/dev/null | grep -q 'is UP' && break; sleep 0.2; done
scontrol ping | grep -q 'is UP' || die "slurmctld does not answer (scontrol ping)"
if ! running /run/slurm/slurmd.pid; then
  say "starting slurmd"
  slurmd || die "slurmd did not start"
fi

# 6. Wait until the node takes jobs.
state=
for i in $(seq 1 120); do
  state=$(sinfo -h -n "$host" -o %T 2>/dev/null | head -n 1)
  case "$state" in
    idle | mixed | allocated | inval*) break ;;
    down* | drain*) [ "$i" = 10 ] && scontrol update NodeName="$host" State=RESUME 2>/dev/null || true ;;
  esac
  sleep 0.5
done
case "$state" in
  idle | mixed | allocated) ;;
  *) die "node $host is '${state:-unknown}', not idle (reason: $(sinfo -h -R -o %E 2>&1 | head -n 3))" ;;
esac
say "ready: node $host $state with $gpus GPUs, plugin $conf_dir/job_submit.lua"
