#!/usr/bin/env bash
# Starts real S3-compatible servers on this machine for the object-storage
# tests of `make test`: moto's server mode (PyPI `moto[server]`, installed
# into the cache's Python environment by the Makefile), on free loopback
# ports, with the buckets the tests use. Two servers:
# - the open one (any key is accepted), with its request log;
# - the checking one, which enforces IAM: only the key of the user this
#   script creates there is let in; any other key, or a wrong secret, is
#   refused (403), as S3 refuses them;
# and in front of the open one, testing/s3/flaky_proxy.py: every 5th block
# read answered 503 or held past a timeout, for the retry test.
#
# Writes "$STATE/env" (AWS_ENDPOINT_URL, test keys, TESSERA_S3_BUCKET,
# TESSERA_S3_LOG, TESSERA_S3_AUTH_* for the checking server,
# TESSERA_S3_FLAKY_* for the proxy) and "$STATE/pids" (the servers and the
# proxy, which testing/s3/stop.sh stops by process id). Exits 0 with both up, 3 with a line saying why they cannot start.
set -uo pipefail
STATE=${TESSERA_S3_STATE:-$HOME/.cache/tessera/s3}
VENV=${TESSERA_VENV:-}
cannot() { echo "s3: cannot start a local server: $*" >&2; exit 3; }

[ -n "$VENV" ] && [ -x "$VENV/bin/moto_server" ] || cannot "moto_server is not in TESSERA_VENV ($VENV); run through make test"
mkdir -p "$STATE"
"$(dirname "$0")/stop.sh" >/dev/null 2>&1
free_port() { "$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
AUTH_PORT=$(free_port)
[ "$PORT" != "$AUTH_PORT" ] || AUTH_PORT=$(free_port)
FLAKY_PORT=$(free_port)
: >"$STATE/moto.log"
: >"$STATE/moto-auth.log"
: >"$STATE/faults.log"
"$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" >>"$STATE/moto.log" 2>&1 &
echo "moto_server $!" >"$STATE/pids"
"$VENV/bin/moto_server" -H 127.0.0.1 -p "$AUTH_PORT" >>"$STATE/moto-auth.log" 2>&1 &
echo "moto_server $!" >>"$STATE/pids"
"$VENV/bin/python" "$(dirname "$0")/flaky_proxy.py" "$FLAKY_PORT" "$PORT" 5 2 "$STATE/faults.log" >>"$STATE/moto.log" 2>&1 &
echo "flaky_proxy $!" >>"$STATE/pids"

# Both answer (their ports take connections); then the open server's
# bucket; on the checking one a user allowed s3:*, its key, the bucket, and
# IAM enforced for every request from then on.
answering() {
  "$VENV/bin/python" - "$PORT" "$AUTH_PORT" "$FLAKY_PORT" <<'PY' 2>/dev/null
import socket, sys
for port in sys.argv[1:]:
    socket.create_connection(("127.0.0.1", int(port)), timeout=1).close()
PY
}
set_up() {
  "$VENV/bin/python" - "$PORT" "$AUTH_PORT" "$STATE/auth" <<'PY'
import json, sys, urllib.request
import boto3
port, auth_port, out = sys.argv[1:]
boot = dict(region_name="us-east-1", aws_access_key_id="tessera-boot", aws_secret_access_key="tessera-boot")
boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", **boot).create_bucket(Bucket="tessera-test")
auth = f"http://127.0.0.1:{auth_port}"
iam = boto3.client("iam", endpoint_url=auth, **boot)
iam.create_user(UserName="tessera-reader")
policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
iam.put_user_policy(UserName="tessera-reader", PolicyName="s3", PolicyDocument=json.dumps(policy))
key = iam.create_access_key(UserName="tessera-reader")["AccessKey"]
boto3.client("s3", endpoint_url=auth, **boot).create_bucket(Bucket="tessera-auth")
urllib.request.urlopen(urllib.request.Request(f"{auth}/moto-api/reset-auth", data=b"0", method="POST", headers={"Content-Type": "text/plain"}))
with open(out, "w") as f:
    f.write(f"export TESSERA_S3_AUTH_KEY={key['AccessKeyId']}\nexport TESSERA_S3_AUTH_SECRET={key['SecretAccessKey']}\n")
PY
}
for _ in $(seq 100); do answering && break; sleep 0.2; done
answering || cannot "moto_server or the proxy did not answer on ports $PORT, $AUTH_PORT, $FLAKY_PORT (see $STATE/moto.log, $STATE/moto-auth.log)"
set_up || cannot "setting up the buckets and the checking server's user failed (see $STATE/moto-auth.log)"
cat >"$STATE/env" <<ENV
export AWS_ENDPOINT_URL=http://127.0.0.1:$PORT
export AWS_ACCESS_KEY_ID=tessera-test
export AWS_SECRET_ACCESS_KEY=tessera-test-secret
export AWS_REGION=us-east-1
export TESSERA_S3_BUCKET=tessera-test
export TESSERA_S3_LOG=$STATE/moto.log
export TESSERA_S3_AUTH_ENDPOINT=http://127.0.0.1:$AUTH_PORT
export TESSERA_S3_AUTH_BUCKET=tessera-auth
export TESSERA_S3_FLAKY_ENDPOINT=http://127.0.0.1:$FLAKY_PORT
export TESSERA_S3_FLAKY_LOG=$STATE/faults.log
ENV
cat "$STATE/auth" >>"$STATE/env"
rm -f "$STATE/auth"
echo "s3: moto_server on 127.0.0.1:$PORT (bucket tessera-test), checking keys on 127.0.0.1:$AUTH_PORT (bucket tessera-auth), failing on 127.0.0.1:$FLAKY_PORT"
