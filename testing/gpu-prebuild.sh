#!/usr/bin/env bash
# testing/gpu-prebuild.sh: builds here, for a GPU machine that has no Rust
# and no package registry, the `tessera` binary with CUDA and its plugins,
# against the libtorch that machine's Python has (its torch version, e.g.
# 2.11.0), into .gpu/ (ignored by git; carry it). There:
#   TL=$(python3 -c "import torch,os;print(os.path.dirname(torch.__file__))")/lib
#   LD_LIBRARY_PATH=$TL BIN=$PWD/.gpu/tessera testing/gpu-check.sh
# tch follows libtorch's minor version (tch 0.24 is libtorch 2.11, 0.26 is
# 2.13), so a scratch copy of the workspace is pinned to the matching tch.
#   testing/gpu-prebuild.sh 2.11.0 0.24.0
set -euo pipefail
cd "$(dirname "$0")/.."
torch=${1:?the torch version of the GPU machine, e.g. 2.11.0}
tch=${2:?the tch version that matches it, e.g. 0.24.0}
CACHE=${CACHE:-$HOME/.cache/tessera}
python=$(ls "$CACHE"/torch-*/bin/python | head -1)
wheels=$CACHE/torch-wheels/$torch
if [ ! -d "$wheels/torch/lib" ]; then
  mkdir -p "$wheels"
  "$python" -m pip download -q --no-deps "torch==$torch" -d "$wheels"
  unzip -q -o "$wheels"/torch-*.whl 'torch/include/*' 'torch/lib/*' 'torch/share/*' 'torch/version.py' -d "$wheels"
fi
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
git archive HEAD | tar -x -C "$scratch"
sed -i "s/^tch = \".*\"/tch = \"=$tch\"/" "$scratch/Cargo.toml"
# Every crate that names torch-sys (its own line, plain or with features).
find "$scratch" -name Cargo.toml -exec sed -i -e "s/^torch-sys = \"[^\"]*\"/torch-sys = \"=$tch\"/" \
  -e "s/^torch-sys = { version = \"[^\"]*\"/torch-sys = { version = \"=$tch\"/" {} +
target=$CACHE/target-cuda-$torch
(cd "$scratch" && LIBTORCH=$wheels/torch LIBTORCH_BYPASS_VERSION_CHECK=1 CARGO_TARGET_DIR=$target \
  RUSTFLAGS="-C link-arg=-Wl,--allow-shlib-undefined" \
  cargo build --release --workspace --features tessera-cli/cuda -q)
mkdir -p .gpu
cp "$target"/release/tessera "$target"/release/libtessera_*.so .gpu/
strip .gpu/tessera .gpu/*.so
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
du -sh .gpu
