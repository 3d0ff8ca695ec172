# Sourced by scripts/bench-im, bench-im-seeds and bench-opim-c: the 10⁶-node
# graphs they share, as SNAP files in runs/.

# bench_im_snap GRAPH OUT: runs/bench-im-GRAPH.txt (GRAPH: rmat or pa),
# written once by $NEW from examples/im-scale.toml (scratch run in OUT);
# prints its path.
bench_im_snap() {
  local file=runs/bench-im-$1.txt variant
  case $1 in
    rmat) variant=degree ;;
    pa) variant=pa-degree ;;
    *) echo "bench_im_snap: no graph $1 (rmat or pa)" >&2; return 2 ;;
  esac
  if [ ! -f "$file" ]; then
    "$NEW" -q run examples/im-scale.toml --variant "$variant" --set graph.simulations=1 \
      --set graph.write_snap=true --out "$2/$1-snapshot" >/dev/null
    mv "$2/$1-snapshot/graphs/$variant.txt" "$file"
  fi
  echo "$file"
}
