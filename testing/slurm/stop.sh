#!/usr/bin/env bash
# Stops the daemons testing/slurm/start.sh started, by their process ids, and
# waits (up to 10 s each) until they have exited.
set -uo pipefail
STATE=${TESSERA_SLURM_STATE:-$HOME/.cache/tessera/slurm}
[ -f "$STATE/pids" ] || exit 0
while read -r name pid; do
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || continue
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  echo "slurm: stopped $name ($pid)"
done <"$STATE/pids"
rm -f "$STATE/pids"
