#!/usr/bin/env bash
# What `make test` runs: starts the local Slurm cluster (testing/slurm/start.sh)
# and a local S3-compatible server (testing/s3/start.sh), installs chromium for the report page's test when missing (testing/chromium.sh),
# runs the workspace's tests, prints the Slurm jobs the tests submitted, and
# stops the daemons and the server it started, by process id, however the
# tests end.
set -uo pipefail
cd "$(dirname "$0")/.."
export TESSERA_SLURM_STATE=${TESSERA_SLURM_STATE:-$HOME/.cache/tessera/slurm}
mkdir -p "$TESSERA_SLURM_STATE"
: >"$TESSERA_SLURM_STATE/test-jobs.log"
export TESSERA_S3_STATE=${TESSERA_S3_STATE:-$HOME/.cache/tessera/s3}
trap 'testing/slurm/stop.sh; testing/s3/stop.sh' EXIT
if testing/slurm/start.sh; then
  # shellcheck disable=SC1091
  . "$TESSERA_SLURM_STATE/env"
else
  echo "slurm: no local cluster; the Slurm tests say why they skip (on CI they fail)"
fi
if testing/s3/start.sh; then
  # shellcheck disable=SC1091
  . "$TESSERA_S3_STATE/env"
else
  echo "s3: no local server; the object-storage tests say why they skip (on CI they fail)"
fi
testing/chromium.sh
cargo test --release --workspace "$@"
code=$?
if [ -s "$TESSERA_SLURM_STATE/test-jobs.log" ]; then
  echo "Slurm jobs the tests submitted (array job, its units, collect job):"
  cat "$TESSERA_SLURM_STATE/test-jobs.log"
fi
exit $code
