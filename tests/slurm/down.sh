#!/usr/bin/env bash
# Stop the daemons tests/slurm/up.sh started (only those, by the PIDs it recorded), newest first.
set -uo pipefail
STATE=$(realpath -m "${1:-/tmp/mlmm-slurm}")
[[ -f $STATE/pids ]] || { echo "no $STATE/pids: nothing to stop" >&2; exit 0; }
mapfile -t entries < <(tac "$STATE/pids")
for entry in "${entries[@]}"; do
  read -r name pid <<<"$entry"
  if kill -0 "$pid" 2>/dev/null && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "${name:0:15}" ]]; then
    kill -TERM "$pid"
    for ((i = 0; i < 40 && $(kill -0 "$pid" 2>/dev/null && echo 1 || echo 0); i++)); do sleep 0.25; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  fi
done
rm -f "$STATE/pids"
# the /run/slurm/conf link up.sh made for srun inside jobs, if it is still ours
[[ -L /run/slurm/conf && $(readlink /run/slurm/conf) == "$STATE" ]] && rm -f /run/slurm/conf
exit 0
