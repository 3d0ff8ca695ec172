"""The book's notebook example (docs/book/src/python.md) runs as written,
in a folder holding the run folders it names, and draws its figure."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def notebook_example() -> str:
    page = (REPO / "docs/book/src/python.md").read_text()
    block = re.search(r"<!-- example: notebook.*?-->\n```python\n(.*?)```", page, re.S)
    assert block, "the page has its notebook example"
    return block.group(1)


def test_the_books_notebook_example_runs_as_written(folders):
    code = notebook_example()
    assert len([l for l in code.splitlines() if l.strip()]) < 10, "under 10 lines"
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": str(REPO / "python")}
    done = subprocess.run([sys.executable, "-c", code], cwd=folders, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    figure = folders / "accuracy.png"
    assert figure.stat().st_size > 10_000, "a figure with lines and bands"
