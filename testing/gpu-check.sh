#!/usr/bin/env bash
# testing/gpu-check.sh: `device = "cuda"` on one tiny manifest of each example
# family, against the same manifest on the CPU, and a population through
# `--executor processes` with one GPU per worker (the pointwise-profiles
# family trains batched: its example sets population.batch = "auto"; the
# quickstart's seeds train once more as one batched model, experiment.batch). Run it on any machine with
# a GPU; where there is none it says so and exits 0. With BIN set it uses
# that binary (and the plugins beside it) instead of building one.
#
# Tolerance: GPU kernels round differently, so a trained model drifts from
# its CPU twin; accuracies and losses must agree within 0.05 (absolute) after
# these short runs. The SubTuning backbone trains 5 epochs, not 1: after one,
# its 60 test predictions sit near ties and a 0.0007 difference in loss moved
# its accuracy by 0.08 (seen on an H200). Graph experiments do not use
# libtorch, so their figures must be equal.
set -uo pipefail
cd "$(dirname "$0")/.."
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "no GPU: nvidia-smi finds none on $(hostname); nothing to check"
  exit 0
fi
nvidia-smi -L
gpus=$(nvidia-smi -L | wc -l)
if [ -n "${BIN:-}" ]; then
  # A machine without Rust (or without the registries): a binary built
  # elsewhere with `--features tessera-cli/cuda`, its plugins beside it, and
  # LD_LIBRARY_PATH naming the libtorch it was built against.
  echo "using the prebuilt $BIN"
else
  make libtorch >/dev/null || exit 2
  CACHE=${CACHE:-$HOME/.cache/tessera}
  LIBTORCH=$(ls -d "$CACHE"/torch-*/lib/python3*/site-packages/torch | head -1)
  export LIBTORCH CARGO_TARGET_DIR=$CACHE/target-cuda
  echo "building with CUDA (libtorch_cuda linked) into $CARGO_TARGET_DIR"
  cargo build --release --workspace --features tessera-cli/cuda -q || exit 2
  BIN=$CARGO_TARGET_DIR/release/tessera
fi
out=runs/gpu-check-$(date +%Y%m%d-%H%M%S)
mkdir -p "$out"

# name | manifest | arguments (tiny settings)
families=(
  "quickstart|examples/quickstart.toml|--set train.epochs=1 --set data.examples=600"
  "quickstart-batched-seeds|examples/quickstart.toml|--set train.epochs=1 --set data.examples=600 --set experiment.batch=3"
  "corgi2|examples/corgi2.toml|--variant corgi2 --set experiment.seeds=[1] --set train.epochs=1"
  "digits-cnn|examples/digits-cnn.toml|--variant full-shuffle --set train.epochs=1"
  "increasing-complexity|examples/increasing-complexity.toml|--variant digits --set experiment.seeds=[1] --set train.epochs=1 --set reference.epochs=3"
  "pointwise-profiles|examples/pointwise-profiles.toml|--variant digits --set population.seeds=[1,2] --set population.epochs=[1,2] --set population.widths=[0.25]"
  "rrm|examples/rrm.toml|--variant digits-simclr --set pretrain.epochs=1 --set population.epochs=[2] --set population.seeds=[1,2]"
  "sgd-noise|examples/sgd-noise.toml|--variant offline --set data.examples=3000 --set train.epochs=2 --set population.seeds=[1]"
  "ssl-probe|examples/ssl-probe.toml|--variant simclr-probe --set experiment.seeds=[1] --set pretrain.epochs=1 --set train.epochs=1"
  "subtuning|examples/subtuning-backbone.toml|--set train.epochs=5"
  "robust-im|examples/robust-im.toml|--variant hiro --set experiment.seeds=[1] --set graph.nodes=300 --set graph.simulations=50 --set graph.budgets=[5] --set graph.evaluation_thetas=3"
)
failed=0
for family in "${families[@]}"; do
  IFS='|' read -r name manifest args <<<"$family"
  # shellcheck disable=SC2086
  "$BIN" -q run "$manifest" $args --set experiment.device=cpu --out "$out/$name-cpu" >/dev/null 2>"$out/$name-cpu.err" &&
  "$BIN" -q run "$manifest" $args --set experiment.device=cuda --out "$out/$name-cuda" >/dev/null 2>"$out/$name-cuda.err"
  code=$?
  if [ $code -ne 0 ]; then echo "$name: a run failed (exit $code; see $out/$name-*.err)"; failed=1; continue; fi
  python3 testing/gpu-compare.py "$name" "$out/$name-cpu" "$out/$name-cuda" || failed=1
done
# A population through worker processes, one GPU each.
name=pointwise-profiles-processes
IFS='|' read -r _ manifest args <<<"${families[4]}"
# shellcheck disable=SC2086
if "$BIN" -q run "$manifest" $args --set experiment.device=cuda --executor processes --jobs "$gpus" --out "$out/$name" >/dev/null 2>"$out/$name.err"; then
  python3 testing/gpu-compare.py "$name ($gpus workers)" "$out/pointwise-profiles-cpu" "$out/$name" || failed=1
else
  echo "$name: the run failed (see $out/$name.err)"; failed=1
fi
echo "gpu-check: $([ $failed = 0 ] && echo "every family agrees with the CPU" || echo "FAILED"); runs in $out"
# GPU_BENCH=1: then issue 39's benchmark on the GPU, batched and unbatched
# populations against torch.func (PYTHON: a Python with a CUDA torch), and
# the batched CNN's convolutions timed in each layout that could replace
# grouped channels-last ones there (the CNN reached 7-12x, the MLPs 21-28x).
if [ -n "${GPU_BENCH:-}" ]; then
  for population in "64 64" "64 256" "32 cnn"; do
    # shellcheck disable=SC2086
    DEVICE=cuda BIN=$BIN PYTHON=${PYTHON:-python3} scripts/bench-population $population 1 1 || failed=1
  done
  "${PYTHON:-python3}" scripts/lib/conv_layouts.py cuda || failed=1
fi
exit $failed
