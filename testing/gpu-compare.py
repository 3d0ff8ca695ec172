"""Compares a CPU run folder with a CUDA one (testing/gpu-check.sh): every
accuracy and loss within 0.05, every other figure of a graph experiment equal."""
import json
import sys

TOLERANCE = 0.05
WALL = ("seconds", "per_second", "peak_memory", "speedup")


def figures(run):
    results = json.load(open(f"{run}/results.json"))
    out = {}
    for v in results["variants"]:
        if v["status"] != "ok":
            sys.exit(f"{run}: variant {v['name']} failed: {v.get('error')}")
        for role, report in v["results"].items():
            for key, value in report.get("scalars", {}).items():
                if not any(w in key for w in WALL) or "modeled" in key:
                    out[f"{v['name']}/{role}/{key}"] = value
    return out


def main(name, cpu_run, gpu_run):
    cpu, gpu = figures(cpu_run), figures(gpu_run)
    compared, off = 0, []
    for key, a in cpu.items():
        b = gpu.get(key)
        if b is None or a is None:
            continue
        trained = any(w in key for w in ("accuracy", "loss"))
        graph = "/objective/" in key
        if not (trained or graph):
            continue
        compared += 1
        if (trained and abs(a - b) > TOLERANCE) or (graph and not trained and a != b):
            off.append(f"{key}: cpu {a:.4f}, cuda {b:.4f}")
    status = "ok" if not off else "DIFFERS"
    print(f"{name}: {status}: {compared} figures compared, {len(off)} outside the tolerance")
    for line in off[:10]:
        print(f"  {line}")
    return 0 if not off else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
