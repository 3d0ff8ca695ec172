"""Run folders made by the real `tessera` binary (``TESSERA_BIN``, default:
the Makefile's build in the cache), once per test session: two quickstart
runs that differ only in ``train.lr`` (seeds 7, 8, 9), a population run,
a graph run and a train run whose seeds a metric pooled."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


def tessera_bin() -> str:
    default = Path.home() / ".cache/tessera/target/release/tessera"
    path = os.environ.get("TESSERA_BIN", str(default))
    if not Path(path).exists():
        pytest.fail(f"no tessera binary at {path}: `make build` first, or set TESSERA_BIN")
    return path


def tessera(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    done = subprocess.run([tessera_bin(), "-q", *args], cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, f"tessera {' '.join(args)}: {done.stderr}"
    return done


@pytest.fixture(scope="session")
def folders(tmp_path_factory) -> Path:
    """The folder holding the run folders `lr-0.05`, `lr-0.01`, `population`, `graph` and `pooled`."""
    root = tmp_path_factory.mktemp("runs")
    small = ["--set", "data.examples=900", "--set", "train.epochs=2"]
    quickstart = str(EXAMPLES / "quickstart.toml")
    tessera("run", quickstart, *small, "--out", "runs/lr-0.05", cwd=root)
    tessera("run", quickstart, *small, "--set", "train.lr=0.01", "--out", "runs/lr-0.01", cwd=root)
    population = ["population.seeds=[1,2]", "population.epochs=[1,2]", "population.widths=[0.25]"]
    args = ["run", str(EXAMPLES / "pointwise-profiles.toml"), "--variant", "digits", "--out", "runs/population"]
    for s in population:
        args += ["--set", s]
    tessera(*args, cwd=root)
    graph = (
        '[experiment]\nname = "graph"\nkind = "graph"\nseeds = [1, 2]\n\n[graph]\nnodes = 300\nedges = 1500\n'
        'probability_model = "weighted-cascade"\nbudget = 5\nbudgets = [2, 5]\nsimulations = 50\n\n'
        '[[variant]]\nname = "degree"\nobjective = { use = "baselines.degree" }\n\n'
        '[[variant]]\nname = "random"\nobjective = { use = "baselines.random" }\n'
    )
    (root / "graph.toml").write_text(graph)
    tessera("run", "graph.toml", "--out", "runs/graph", cwd=root)
    pooled = (
        '[experiment]\nname = "pooled"\nseeds = [4, 2]\n\n[data]\nsource = "blobs"\nexamples = 300\nseed = 0\n\n'
        '[sampler]\nuse = "baselines.full-shuffle"\n\n[[metric]]\nuse = "pointwise-profiles.profile"\npool = "seeds"\n\n'
        '[[variant]]\nname = "mlp"\n'
    )
    (root / "pooled.toml").write_text(pooled)
    tessera("run", "pooled.toml", "--out", "runs/pooled", cwd=root)
    return root
