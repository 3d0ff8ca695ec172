#!/usr/bin/env bash
# Stops the processes listed in FOLDER/pids ("name pid" lines, written by a
# start script of testing/), by process id, waits (up to 10 s each) until
# they have exited, and removes the list. LABEL prefixes what it prints.
# Usage: testing/stop-pids.sh FOLDER LABEL
set -uo pipefail
STATE=$1
LABEL=$2
[ -f "$STATE/pids" ] || exit 0
while read -r name pid; do
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || continue
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  echo "$LABEL: stopped $name ($pid)"
done <"$STATE/pids"
rm -f "$STATE/pids"
