#!/usr/bin/env bash
# Stops the daemons testing/slurm/start.sh started, by their process ids.
set -uo pipefail
STATE=${TESSERA_SLURM_STATE:-$HOME/.cache/tessera/slurm}
[ -f "$STATE/pids" ] || exit 0
while read -r name pid; do
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && echo "slurm: stopped $name ($pid)"
done <"$STATE/pids"
rm -f "$STATE/pids"
