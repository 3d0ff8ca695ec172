"""Tidy DataFrames over one or several run folders. Every frame starts
with the columns that say which run a row is of: ``run`` (the folder's
name), ``variant`` (``base[key=value]@seed``), ``base`` (without the seed),
``seed``, then one column per setting that differs between the variants
of all the runs read together (a sweep's key among them), e.g.
``train.lr`` or ``sampler.use``.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Iterable, List, Optional

import pandas as pd

from .settings import differing

#: What a series' ``x_label`` says its x is, as a ``curves()`` column.
X_COLUMNS = {"step": "step", "epoch": "epoch", "examples seen": "examples_seen"}


def differing_keys(runs: List[Any]) -> List[str]:
    """The settings that differ between the finished variants of ``runs``."""
    settings = []
    for run in runs:
        names = {v["name"] for v in run.finished()}
        settings.extend(s for name, s in run.settings().items() if name in names)
    return differing(settings)


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def _frame(rows: List[Dict[str, Any]], first: List[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=first)
    return frame


def _each_variant(runs: List[Any], keys: List[str]) -> Iterable[tuple]:
    for run in runs:
        for v in run.finished():
            yield run, v, run.variant_columns(v["name"], keys)


def scalars(runs: List[Any]) -> pd.DataFrame:
    """A row per finished variant run × role × scalar: the identifying
    columns, ``role``, ``scalar``, ``value`` (``null`` in JSON as NaN)."""
    keys = differing_keys(runs)
    rows = []
    for _, v, ids in _each_variant(runs, keys):
        for role, report in v.get("results", {}).items():
            for name, value in report.get("scalars", {}).items():
                rows.append({**ids, "role": role, "scalar": name, "value": _number(value)})
    return _frame(rows, ["run", "variant", "base", "seed", *keys, "role", "scalar", "value"])


class Checkpoints:
    """The engine's ``checkpoints`` table of one variant run, indexed once
    by step, epoch and examples seen (the first checkpoint of each value)."""

    def __init__(self, v: Dict[str, Any]):
        self.by: Dict[str, Dict[float, Dict[str, Any]]] = {c: {} for c in X_COLUMNS.values()}
        for table in v.get("results", {}).get("engine", {}).get("tables", []):
            if table["name"] != "checkpoints":
                continue
            for row in table["rows"]:
                point = dict(zip(table["columns"], row))
                where = {c: point.get(c) for c in X_COLUMNS.values()}
                for column, index in self.by.items():
                    index.setdefault(where[column], where)

    def where(self, column: Optional[str], x: float) -> Dict[str, Any]:
        """Step, epoch and examples seen of the checkpoint whose ``column``
        is ``x`` (NaN where unknown; ``column`` itself is ``x``)."""
        out = {"step": math.nan, "epoch": math.nan, "examples_seen": math.nan}
        if column is None:
            return out
        out.update(self.by[column].get(x, {}))
        out[column] = x
        return out


def curves(runs: List[Any], role: Optional[str] = None, series: Optional[str] = None) -> pd.DataFrame:
    """A row per point of every curve (or of ``role`` / ``series`` only):
    the identifying columns, ``role``, ``series``, ``x_label``, ``y_label``,
    ``x``, ``value``, and where training stood at that point (``step``,
    ``epoch``, ``examples_seen``), from the engine's checkpoints table when
    x is one of them."""
    keys = differing_keys(runs)
    rows = []
    for _, v, ids in _each_variant(runs, keys):
        checkpoints = Checkpoints(v)
        for r, report in v.get("results", {}).items():
            if role is not None and r != role:
                continue
            for s in report.get("series", []):
                if series is not None and s["name"] != series:
                    continue
                column = X_COLUMNS.get(s["x_label"])
                for x, y in zip(s["x"], s["y"]):
                    where = checkpoints.where(column, x)
                    rows.append({**ids, "role": r, "series": s["name"], "x_label": s["x_label"],
                                 "y_label": s["y_label"], "x": x, "value": _number(y), **where})
    first = ["run", "variant", "base", "seed", *keys, "role", "series", "x_label", "y_label", "x", "value",
             "step", "epoch", "examples_seen"]
    frame = _frame(rows, first)
    if rows:
        return frame
    asked = f" role={role!r}" if role else ""
    asked += f" series={series!r}" if series else ""
    if asked:
        known = sorted({f"{r}/{s['name']}" for run in runs for v in run.finished() for r, rep in v.get("results", {}).items() for s in rep.get("series", [])})
        raise KeyError(f"no curve with{asked}; the runs have {', '.join(known[:12]) or 'none'}")
    return frame


def tables(runs: List[Any], name: str, role: Optional[str] = None) -> pd.DataFrame:
    """Every component table called ``name`` (of ``role`` only, if given),
    stacked: the identifying columns, ``role``, then the table's columns."""
    keys = differing_keys(runs)
    frames = []
    for _, v, ids in _each_variant(runs, keys):
        for r, report in v.get("results", {}).items():
            for t in report.get("tables", []):
                if t["name"] == name and (role is None or r == role):
                    frame = pd.DataFrame(t["rows"], columns=t["columns"])
                    for i, (k, value) in enumerate({**ids, "role": r}.items()):
                        frame.insert(i, k, [value] * len(frame))
                    frames.append(frame)
    if not frames:
        known = sorted({t["name"] for run in runs for v in run.finished() for rep in v.get("results", {}).values() for t in rep.get("tables", [])})
        raise KeyError(f"no table {name!r}; the runs have {', '.join(known) or 'none'}")
    return pd.concat(frames, ignore_index=True)


def config(runs: List[Any]) -> pd.DataFrame:
    """A row per variant run (finished or not): ``run``, ``variant``,
    ``base``, ``seed``, ``status``, then every resolved setting, flattened
    (``train.lr``, ``sampler.use``, ``metric[0].use``, ...)."""
    rows = []
    for run in runs:
        status = {v["name"]: v.get("status") for v in run.results.get("variants", [])}
        for name, settings in run.settings().items():
            ids = run.variant_columns(name, [])
            rows.append({**ids, "status": status.get(name, "not run"), **settings})
    return _frame(rows, ["run", "variant", "base", "seed", "status"])
