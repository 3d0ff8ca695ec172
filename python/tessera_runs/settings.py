"""Each variant's settings as ``manifest.resolved.toml`` has them (every
default filled in), flattened to ``section.key`` columns, and which of them
differ between variants. The same rules as Tessera's own
(``crates/report/src/settings.rs``): a variant's name, its seed and where
it runs (``executor.*``, ``experiment.executor``, ``experiment.jobs``) do
not count as differences.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Iterable, List

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - older Pythons
    import tomli as tomllib  # type: ignore

WHERE_IT_RUNS = ("executor.", "experiment.executor", "experiment.jobs", "experiment.plugin_paths")


def changes_figures(key: str) -> bool:
    """Whether ``key`` can change a variant's figures."""
    return key not in ("name", "experiment.seed") and not key.startswith(WHERE_IT_RUNS)


def flatten(value: Any, prefix: str = "", out: Dict[str, Any] | None = None) -> Dict[str, Any]:
    """``value`` as ``section.key`` pairs; arrays of tables as ``key[i].sub``;
    other arrays as their JSON text (so that a column stays hashable)."""
    out = {} if out is None else out
    join = (lambda k: f"{prefix}.{k}") if prefix else (lambda k: k)
    if isinstance(value, dict):
        for key, item in value.items():
            flatten(item, join(key), out)
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for i, item in enumerate(value):
            flatten(item, f"{prefix}[{i}]", out)
    elif isinstance(value, list):
        out[prefix] = json.dumps(value)
    else:
        out[prefix] = value
    return out


def read_resolved(text: str) -> Dict[str, Dict[str, Any]]:
    """The ``[[variant]]`` tables of a resolved manifest, flattened, by name."""
    table = tomllib.loads(text)
    return {v.get("name", ""): flatten(v) for v in table.get("variant", [])}


def differing(settings: Iterable[Dict[str, Any]]) -> List[str]:
    """The keys (that change figures) whose values are not the same in all
    of ``settings``; a key one lacks differs."""
    settings = list(settings)
    keys = sorted({k for s in settings for k in s})
    missing = object()
    out = []
    for key in filter(changes_figures, keys):
        values = [s.get(key, missing) for s in settings]
        if any(v is missing or v != values[0] for v in values):
            out.append(key)
    return out
