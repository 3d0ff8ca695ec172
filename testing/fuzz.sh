#!/usr/bin/env bash
# `make fuzz`: runs every fuzz target of fuzz/ for FUZZ_SECONDS each (300 by
# default; FUZZ_TARGETS picks some), from seed corpora that Tessera's own
# writers make (fuzz/src/bin/seeds.rs) plus the examples' manifests and the
# shipped graphs. Installs cargo-fuzz into the cache when missing; needs the
# nightly toolchain (on these machines). The corpora grow in the cache
# between runs; a crash leaves its input under $CACHE/fuzz/artifacts/ and
# fails the run. Prints executions, coverage and time per target, and
# appends them to $CACHE/fuzz/runs.tsv (two runs at once keep their logs
# apart: each is named by its process id).
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${CACHE:-$HOME/.cache/tessera}
TOOLS=$CACHE/tools
FUZZ=$CACHE/fuzz
SECONDS_EACH=${FUZZ_SECONDS:-300}
TARGETS=${FUZZ_TARGETS:-manifest npy idx csv cifar shard_set tar_shard edge_list csr_cache run_folder}
export CARGO_TARGET_DIR=$CACHE/target-fuzz

rustup toolchain list | grep -q '^nightly' || {
  echo "fuzzing needs the nightly toolchain: rustup toolchain install nightly"
  exit 1
}
if [ ! -x "$TOOLS/bin/cargo-fuzz" ]; then
  cargo install --locked --root "$TOOLS" cargo-fuzz
fi
export PATH=$TOOLS/bin:$PATH

# Seeds: made by Tessera's writers, then the examples' manifests and graphs.
mkdir -p "$FUZZ/seeds" "$FUZZ/artifacts"
(cd fuzz && cargo run --quiet --release --bin seeds -- "$FUZZ/seeds")
mkdir -p "$FUZZ/seeds/manifest" "$FUZZ/seeds/edge_list"
cp examples/*.toml "$FUZZ/seeds/manifest/"
for graph in data/graphs/*.txt; do
  { printf '\000'; head -c 4096 "$graph"; } >"$FUZZ/seeds/edge_list/$(basename "$graph")"
done

summary=()
failed=0
for target in $TARGETS; do
  corpus=$FUZZ/corpus/$target
  mkdir -p "$corpus"
  cp -n "$FUZZ/seeds/$target/"* "$corpus/" 2>/dev/null || true
  log=$FUZZ/$target-$$.log
  echo "fuzzing $target for ${SECONDS_EACH}s (log: $log)"
  started=$(date +%s)
  if cargo +nightly fuzz run --fuzz-dir fuzz "$target" "$corpus" -- \
    -max_total_time="$SECONDS_EACH" -rss_limit_mb=4096 -malloc_limit_mb=4096 -timeout=30 \
    -artifact_prefix="$FUZZ/artifacts/$target-" -print_final_stats=1 >"$log" 2>&1; then
    outcome=ok
  else
    outcome=CRASH
    failed=1
  fi
  # Wall time, the build included; the fuzzing itself is FUZZ_SECONDS.
  seconds=$(($(date +%s) - started))
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  coverage=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*')
  line="$target	$outcome	${execs:-?}	${coverage:-?}	${seconds}"
  summary+=("$line")
  printf '%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$(git rev-parse --short HEAD)" "$line" >>"$FUZZ/runs.tsv"
  [ "$outcome" = ok ] || tail -40 "$log"
done

printf '\n%-12s %-6s %12s %9s %8s\n' target result executions coverage seconds
for line in "${summary[@]}"; do
  IFS=$'\t' read -r t o e c s <<<"$line"
  printf '%-12s %-6s %12s %9s %8s\n' "$t" "$o" "$e" "$c" "$s"
done
[ "$failed" = 0 ] || echo "crash inputs: $FUZZ/artifacts/ (each becomes a regression test)"
exit "$failed"
