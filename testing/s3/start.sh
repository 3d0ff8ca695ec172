#!/usr/bin/env bash
# Starts a real S3-compatible server on this machine for the object-storage
# tests of `make test`: moto's server mode (PyPI `moto[server]`, installed
# into the cache's Python environment by the Makefile), on a free loopback
# port, with the bucket the tests use.
#
# Writes "$STATE/env" (AWS_ENDPOINT_URL, test keys, TESSERA_S3_BUCKET and
# TESSERA_S3_LOG, the server's request log) and "$STATE/pids" (the server,
# which testing/s3/stop.sh stops by process id). Exits 0 with the server up,
# 3 with a line saying why it cannot start.
set -uo pipefail
STATE=${TESSERA_S3_STATE:-$HOME/.cache/tessera/s3}
VENV=${TESSERA_VENV:-}
cannot() { echo "s3: cannot start a local server: $*" >&2; exit 3; }

[ -n "$VENV" ] && [ -x "$VENV/bin/moto_server" ] || cannot "moto_server is not in TESSERA_VENV ($VENV); run through make test"
mkdir -p "$STATE"
"$(dirname "$0")/stop.sh" >/dev/null 2>&1
PORT=$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
: >"$STATE/moto.log"
"$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" >>"$STATE/moto.log" 2>&1 &
echo "moto_server $!" >"$STATE/pids"
cat >"$STATE/env" <<ENV
export AWS_ENDPOINT_URL=http://127.0.0.1:$PORT
export AWS_ACCESS_KEY_ID=tessera-test
export AWS_SECRET_ACCESS_KEY=tessera-test-secret
export AWS_REGION=us-east-1
export TESSERA_S3_BUCKET=tessera-test
export TESSERA_S3_LOG=$STATE/moto.log
ENV
# shellcheck disable=SC1091
. "$STATE/env"
for _ in $(seq 100); do
  "$VENV/bin/python" - <<'PY' 2>/dev/null && { echo "s3: moto_server on 127.0.0.1:$PORT, bucket $TESSERA_S3_BUCKET"; exit 0; }
import os, boto3
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
s3.create_bucket(Bucket=os.environ["TESSERA_S3_BUCKET"])
PY
  sleep 0.2
done
cannot "moto_server did not answer on port $PORT (see $STATE/moto.log)"
