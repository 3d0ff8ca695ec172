"""Variant names as Tessera writes them: ``base[key=value]@seed``.

A sweep adds ``[key=value]`` and seeds add ``@seed``; ``base`` is the name
without its seed (the variant's family, as the report page merges it).
"""

from __future__ import annotations

from typing import Optional


def base_name(name: str) -> str:
    """The name without its ``@seed``."""
    return name.rsplit("@", 1)[0] if "@" in name else name


def seed_of(name: str) -> Optional[int]:
    """The seed of a ``name@seed`` run, or None."""
    if "@" not in name:
        return None
    tail = name.rsplit("@", 1)[1]
    return int(tail) if tail.isdigit() else None


def file_stem_safe(name: str) -> str:
    """``name`` as Tessera names its files and folders (``population/<this>``):
    ASCII letters, digits, ``-``, ``_`` and ``.`` kept, anything else ``_``,
    and ``_`` in front of an empty or hidden name."""
    stem = "".join(c if (c.isascii() and c.isalnum()) or c in "-_." else "_" for c in name)
    return f"_{stem}" if not stem or stem.startswith(".") else stem
