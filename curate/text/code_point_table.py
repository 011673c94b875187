"""A per-code-point lookup table (index = code point) expanded from the run-length form the
``curate/data/*_classes.json`` files ship: ``{"runs": [[first code point, value], ...]}``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def table_from_runs(path: Path, dtype: type) -> np.ndarray:
    """Every code point 0 .. sys.maxunicode gets the value of the run it falls in."""
    runs = json.loads(path.read_text())["runs"]
    table = np.zeros(sys.maxunicode + 1, dtype=dtype)
    bounds = [r[0] for r in runs] + [len(table)]
    for (start, value), end in zip(runs, bounds[1:]):
        table[start:end] = value
    return table
