#!/usr/bin/env python3
"""`make lint`: the workspace's crates depend one way, down the layers.

Each crate of the host has a layer; a crate may depend only on crates of
lower layers (never on one of its own layer, never upwards). Plugins and the
test fixtures depend on the SDK alone among the workspace's crates. Prints
the layers and every edge that breaks the order, and exits 1 on any.
"""
import json
import subprocess
import sys

LAYERS = [
    ["tessera-sdk"],
    ["tessera-util"],
    ["tessera-config", "tessera-store"],
    ["tessera-data", "tessera-report"],
    ["tessera-host"],
    ["tessera-torch"],
    ["tessera-engine"],
    ["tessera-cli"],
]
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}


def main():
    meta = json.loads(subprocess.check_output(["cargo", "metadata", "--format-version", "1", "--no-deps"]))
    members = {p["name"]: p for p in meta["packages"]}
    broken = []
    for name, package in sorted(members.items()):
        inside = sorted({d["name"] for d in package["dependencies"] if d["name"] in members and d["kind"] is None})
        if name not in LAYER:
            broken += [f"{name} -> {d} (a plugin or fixture depends on the SDK only)" for d in inside if d != "tessera-sdk"]
            continue
        broken += [f"{name} (layer {LAYER[name]}) -> {d} (layer {LAYER.get(d)})"
                   for d in inside if LAYER.get(d, 99) >= LAYER[name]]
    for i, names in enumerate(LAYERS):
        print(f"layer {i}: {', '.join(names)}")
    missing = [n for names in LAYERS for n in names if n not in members]
    if missing:
        broken.append(f"no such crates: {', '.join(missing)}")
    if broken:
        print("dependencies against the layer order:\n  " + "\n  ".join(broken))
        sys.exit(1)
    print("layers: every dependency points down")


main()
