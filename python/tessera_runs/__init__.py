"""Read Tessera run folders into pandas.

>>> import tessera_runs as tr
>>> run = tr.Run("runs/quickstart-20261205-101500")      # doctest: +SKIP
>>> run.scalars()            # a row per variant run × role × scalar  # doctest: +SKIP

:class:`Run` reads one folder, :func:`load` several as one table (the
settings that differ between all of their variants become columns), and
:func:`to_tensorboard` writes event files TensorBoard opens.
"""

from __future__ import annotations

import os
from typing import Iterable, List, Optional

import pandas as pd

from . import frames
from .folder import KNOWN_MAJORS, Population, Run, RunFolderError, SchemaError
from .names import base_name, seed_of
from .tensorboard import to_tensorboard

__version__ = "0.1.0"
__all__ = ["Run", "Runs", "load", "to_tensorboard", "Population", "SchemaError", "RunFolderError",
           "KNOWN_MAJORS", "base_name", "seed_of"]


class Runs:
    """Several run folders read as one: every frame stacks theirs, with the
    settings that differ between all of their variants as columns."""

    def __init__(self, runs: List[Run]):
        #: The runs, in the order given.
        self.runs = runs

    def __repr__(self) -> str:
        return f"Runs({', '.join(r.label for r in self.runs)})"

    def scalars(self) -> pd.DataFrame:
        """A row per variant run × role × scalar (see :func:`frames.scalars`)."""
        return frames.scalars(self.runs)

    def curves(self, role: Optional[str] = None, series: Optional[str] = None) -> pd.DataFrame:
        """A row per curve point, with step, epoch and examples seen (see :func:`frames.curves`)."""
        return frames.curves(self.runs, role, series)

    def tables(self, name: str, role: Optional[str] = None) -> pd.DataFrame:
        """Every component table ``name``, stacked (see :func:`frames.tables`)."""
        return frames.tables(self.runs, name, role)

    def config(self) -> pd.DataFrame:
        """Every resolved setting, a row per variant run (see :func:`frames.config`)."""
        return frames.config(self.runs)

    def differing(self) -> List[str]:
        """The settings that differ between the runs' finished variants."""
        return frames.differing_keys(self.runs)


def _single(method):
    def bound(self, *args, **kwargs):
        return getattr(Runs([self]), method)(*args, **kwargs)

    bound.__doc__ = getattr(Runs, method).__doc__
    bound.__name__ = method
    return bound


for _method in ("scalars", "curves", "tables", "config", "differing"):
    setattr(Run, _method, _single(_method))


def load(paths: Iterable[os.PathLike | str]) -> Runs:
    """Several run folders as one :class:`Runs`."""
    return Runs([Run(p) for p in paths])
