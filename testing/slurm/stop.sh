#!/usr/bin/env bash
# Stops the daemons testing/slurm/start.sh started, by their process ids, and
# waits (up to 10 s each) until they have exited.
exec "$(dirname "$0")/../stop-pids.sh" "${TESSERA_SLURM_STATE:-$HOME/.cache/tessera/slurm}" slurm
