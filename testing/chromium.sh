#!/usr/bin/env bash
# Installs Debian's chromium (apt-get; needs root) when missing: the report
# page's test (crates/cli/tests/report_page.rs) opens report.html in it, headless.
# Where it cannot install, it says why; the test then fails naming it.
set -uo pipefail
command -v chromium >/dev/null && exit 0
log=${TMPDIR:-/tmp}/tessera-chromium-apt.log
[ "$(id -u)" = 0 ] || { echo "chromium: not installed and this is not root (apt-get install chromium)"; exit 0; }
command -v apt-get >/dev/null || { echo "chromium: not installed and there is no apt-get"; exit 0; }
echo "chromium: installing Debian's chromium for the report page's test (apt-get)"
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >"$log" 2>&1 \
  || { DEBIAN_FRONTEND=noninteractive apt-get update -q >>"$log" 2>&1 &&
       DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >>"$log" 2>&1; } \
  || echo "chromium: apt-get install chromium failed (see $log)"
exit 0
