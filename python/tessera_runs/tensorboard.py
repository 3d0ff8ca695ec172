"""A run folder as TensorBoard event files, written in pure Python (the
TFRecord framing with CRC-32C, and the few ``Event`` / ``Summary`` protocol
buffer fields TensorBoard's scalar dashboard reads), so that TensorBoard
need not be installed to export, only to look.

Each variant run gets its own folder, ``LOGDIR/<run>/<variant>``, which is
how TensorBoard lists runs side by side. Each curve is the tag
``<role>/<series>`` at its step (from the engine's checkpoints when x is an
epoch or examples seen; the point's index otherwise); each final scalar is
the tag ``final/<role>/<scalar>`` at the last step.
"""

from __future__ import annotations

import math
import os
import socket
import struct
import time
from pathlib import Path
from typing import Any, Dict, List

from .frames import X_COLUMNS, Checkpoints


def _crc32c_table() -> List[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), as TFRecord frames use."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _masked(crc: int) -> int:
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, wire: int, payload: bytes) -> bytes:
    return _varint((number << 3) | wire) + payload


def _bytes_field(number: int, data: bytes) -> bytes:
    return _field(number, 2, _varint(len(data)) + data)


def _event(wall_time: float, step: int, body: bytes) -> bytes:
    return _field(1, 1, struct.pack("<d", wall_time)) + _field(2, 0, _varint(step)) + body


def _scalar_event(wall_time: float, step: int, tag: str, value: float) -> bytes:
    summary_value = _bytes_field(1, tag.encode()) + _field(2, 5, struct.pack("<f", value))
    summary = _bytes_field(1, summary_value)
    return _event(wall_time, step, _bytes_field(5, summary))


def _record(data: bytes) -> bytes:
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", _masked(crc32c(length))) + data + struct.pack("<I", _masked(crc32c(data)))


class EventWriter:
    """One ``events.out.tfevents.*`` file."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.tessera"
        self.path = folder / name
        self._file = open(self.path, "xb")
        self._file.write(_record(_field(1, 1, struct.pack("<d", time.time())) + _bytes_field(3, b"brain.Event:2")))

    def scalar(self, tag: str, step: int, value: float, wall_time: float) -> None:
        """Writes ``value`` of ``tag`` at ``step``."""
        self._file.write(_record(_scalar_event(wall_time, int(step), tag, float(value))))

    def close(self) -> None:
        """Flushes and closes the file."""
        self._file.close()


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.=@[]" else "_" for c in name)


def _write_variant(writer: EventWriter, v: Dict[str, Any], wall_time: float) -> int:
    """Every curve and final scalar of variant entry ``v``; the points written."""
    checkpoints = Checkpoints(v)
    last_step, written = 0, 0
    for role, report in v.get("results", {}).items():
        for s in report.get("series", []):
            column = X_COLUMNS.get(s["x_label"])
            for i, (x, y) in enumerate(zip(s["x"], s["y"])):
                step = checkpoints.where(column, x)["step"]
                step = i if step is None or (isinstance(step, float) and math.isnan(step)) else int(step)
                if y is not None:
                    writer.scalar(f"{role}/{s['name']}", step, y, wall_time)
                    written += 1
                last_step = max(last_step, step)
    for role, report in v.get("results", {}).items():
        for name, value in report.get("scalars", {}).items():
            if value is not None:
                writer.scalar(f"final/{role}/{name}", last_step, value, wall_time)
                written += 1
    return written


def to_tensorboard(run: Any, logdir: os.PathLike | str) -> List[Path]:
    """Writes ``run`` (a :class:`~tessera_runs.Run`, or several from
    :func:`~tessera_runs.load`) under ``logdir`` as TensorBoard event files:
    ``tensorboard --logdir LOGDIR`` shows them. The files written."""
    runs = getattr(run, "runs", [run])
    files = []
    for r in runs:
        for v in r.finished():
            writer = EventWriter(Path(logdir) / _safe(r.label) / _safe(v["name"]))
            _write_variant(writer, v, time.time())
            writer.close()
            files.append(writer.path)
    return files
