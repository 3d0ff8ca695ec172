#!/usr/bin/env bash
# Stops the server testing/s3/start.sh started, by its process id, and waits
# (up to 10 s) until it has exited.
exec "$(dirname "$0")/../stop-pids.sh" "${TESSERA_S3_STATE:-$HOME/.cache/tessera/s3}" s3
