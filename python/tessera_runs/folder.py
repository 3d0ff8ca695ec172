"""One run folder: ``results.json`` (checked for a schema version this
reader knows), its settings, arrays and population matrices. Every file is
read from inside the folder: a path in ``results.json`` that leaves it
(absolute, ``..``, a symlink out) is refused.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import pandas as pd

from .names import base_name, file_stem_safe, seed_of
from .settings import read_resolved

#: The major versions of ``results.json`` this reader knows.
KNOWN_MAJORS = (1, 2)


class SchemaError(ValueError):
    """A ``results.json`` of a schema version this reader does not know."""


class RunFolderError(ValueError):
    """A run folder that is not one, or a file that leaves it."""


@dataclass
class Population:
    """A population experiment's members and prediction matrices."""

    #: A row per member × checkpoint: model, width, seed, setting, step,
    #: examples seen, and ``accuracy.<split>``.
    members: pd.DataFrame
    #: ``<split>.<matrix>`` (``test.predictions``, ``test.correct``,
    #: ``test.labels``, ...) to the matrix, memory-mapped.
    matrices: Dict[str, np.ndarray] = field(default_factory=dict)


def schema_version(results: Dict[str, Any], path: Path) -> str:
    """The ``MAJOR.MINOR`` of ``results``; a :class:`SchemaError` for an unknown major."""
    version = str(results.get("schema_version", results.get("schema", "")))
    major = version.split(".")[0]
    if not major.isdigit() or int(major) not in KNOWN_MAJORS:
        raise SchemaError(
            f"{path}: schema version {version or 'missing'}, but this tessera_runs reads major versions "
            f"{', '.join(map(str, KNOWN_MAJORS))}: install the tessera_runs of the Tessera that wrote it "
            "(pip install ./python from that checkout)"
        )
    return version if "." in version else f"{version}.0"


class Run:
    """A run folder, read.

    ``Run(path)`` reads ``results.json`` at once; settings, arrays and
    populations as they are asked for.
    """

    def __init__(self, path: os.PathLike | str):
        self.path = Path(path)
        results_path = self.path / "results.json"
        if not results_path.is_file():
            raise RunFolderError(f"{self.path}: no results.json (is it a Tessera run folder? `tessera collect` writes it)")
        with open(results_path, encoding="utf-8") as f:
            self.results: Dict[str, Any] = json.load(f)
        #: ``MAJOR.MINOR`` of its results.json.
        self.schema_version = schema_version(self.results, results_path)
        #: The folder's name: the ``run`` column of every frame.
        self.label = self.path.resolve().name
        self._settings: Optional[Dict[str, Dict[str, Any]]] = None

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}: {self.experiment}, {len(self.variants)} variants)"

    @property
    def experiment(self) -> str:
        """The experiment's name."""
        return self.results.get("experiment", "")

    @property
    def system(self) -> Dict[str, Any]:
        """The machine and build (CPU, cores, threads, host, commit, libtorch); empty for schema 1."""
        return dict(self.results.get("system") or {})

    @property
    def variants(self) -> List[str]:
        """Every variant run's name (``base[key=value]@seed``), in run order."""
        return [v["name"] for v in self.results.get("variants", [])]

    def pooled(self) -> Dict[str, List[str]]:
        """Each ``<variant>+seeds`` entry (metrics with ``pool = "seeds"``,
        schema 2.1) and the runs it pooled, in seed order; its matrices are
        ``population(name)``."""
        return {v["name"]: list(v["pooled_from"]) for v in self.results.get("variants", []) if v.get("pooled_from")}

    def finished(self) -> List[Dict[str, Any]]:
        """The entries of results.json of the variants that finished ok."""
        return [v for v in self.results.get("variants", []) if v.get("status") == "ok"]

    def settings(self) -> Dict[str, Dict[str, Any]]:
        """Each variant's resolved settings, flattened, by variant name."""
        if self._settings is None:
            text = self.file("manifest.resolved.toml").read_text(encoding="utf-8")
            self._settings = read_resolved(text)
        return self._settings

    def file(self, relative: str) -> Path:
        """``relative`` inside the folder; a :class:`RunFolderError` if it leaves it."""
        parts = Path(relative).parts
        if Path(relative).is_absolute() or ".." in parts:
            raise RunFolderError(f"{self.path}: {relative!r} leaves the run folder")
        path = self.path / relative
        root = self.path.resolve()
        if root != path.resolve() and root not in path.resolve().parents:
            raise RunFolderError(f"{self.path}: {relative!r} leads out of the run folder (a symlink)")
        return path

    def arrays(self, role: str, name: str) -> Dict[str, np.ndarray]:
        """The ``.npy`` arrays a component saved as ``name`` (``Report::array``),
        by variant, memory-mapped."""
        out = {}
        for v in self.finished():
            for rel in v.get("results", {}).get(role, {}).get("arrays", []):
                if rel.endswith(f"--{name}.npy"):
                    out[v["name"]] = np.load(self.file(rel), mmap_mode="r")
        if not out:
            known = sorted({a.rsplit("--", 1)[-1][:-4] for v in self.finished() for a in v.get("results", {}).get(role, {}).get("arrays", [])})
            hint = f"; {role} saved: {', '.join(known)}" if known else f"; roles with arrays: {', '.join(self._roles_with_arrays()) or 'none'}"
            raise KeyError(f"{self.path}: no array {name!r} of role {role!r}{hint}")
        return out

    def _roles_with_arrays(self) -> List[str]:
        return sorted({role for v in self.finished() for role, r in v.get("results", {}).items() if r.get("arrays")})

    def population(self, variant: str) -> Population:
        """A population variant's ``members.json`` (a row per member and
        checkpoint) and its prediction matrices."""
        stem = file_stem_safe(variant)
        folder = self.file(f"population/{stem}")
        if not folder.is_dir():
            have = sorted(p.name for p in (self.path / "population").glob("*")) if (self.path / "population").is_dir() else []
            raise KeyError(f"{self.path}: no population {variant!r}; it has {', '.join(have) or 'none'}")
        with open(self.file(f"population/{stem}/members.json"), encoding="utf-8") as f:
            members = pd.json_normalize(json.load(f))
        matrices = {
            p.name[: -len(".npy")]: np.load(self.file(f"population/{stem}/{p.name}"), mmap_mode="r")
            for p in sorted(folder.glob("*.npy"))
        }
        return Population(members=members, matrices=matrices)

    def variant_columns(self, name: str, keys: List[str]) -> Dict[str, Any]:
        """The columns that say which run a row is of: run, variant, base,
        seed and the value of each key of ``keys`` (settings that differ)."""
        settings = self.settings().get(name, {}) if keys else {}
        row = {"run": self.label, "variant": name, "base": base_name(name), "seed": seed_of(name)}
        row.update({k: settings.get(k) for k in keys})
        return row
