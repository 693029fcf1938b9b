"""The device table: spec sheets of machines that are not here (labs 01, 04, 05, 07, 08).

`memlab/data/hardware.csv` has one row per device or link, each with its source URL: peak FLOP/s
per dtype (dense, TFLOP/s), memory bandwidth (GB/s), capacity (GB) and the year. This module is
its one reader; measured numbers of this machine come from `memlab.core.ceilings` instead.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from memlab.core.errors import MemlabError
from memlab.core.paths import data_path

MEMORY_KINDS = ("cpu", "gpu", "soc", "fpga")  # rows that hold weights (links have no capacity)
COLUMNS = ("name", "kind")                     # what every reader of the table needs (quantization.fits: capacity_gb)
FORMAT = ("a device table is a CSV with a header row naming at least name, kind and capacity_gb, "
          "like memlab/data/hardware.csv")


def table(path: str | Path | None = None):
    """The device table as a DataFrame, one row per device or link (units in the column names)."""
    import pandas as pd
    path = Path(path) if path is not None else data_path("hardware.csv")
    if not path.is_file():
        raise MemlabError(f"device table {path} not found")
    try:
        t = pd.read_csv(path)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        reason = "not text" if isinstance(e, UnicodeDecodeError) else str(e).strip().splitlines()[0]
        raise MemlabError(f"device table {path} is not a CSV file ({reason}): {FORMAT}") from None
    missing = [c for c in COLUMNS if c not in t.columns]
    if missing:
        raise MemlabError(f"device table {path} has no column {', '.join(missing)}: {FORMAT}")
    return t


def row(name: str, path: str | Path | None = None) -> dict[str, Any]:
    """One device's row as a dict; empty cells are None. Unknown names list the known ones."""
    t = table(path)
    hit = t[t["name"] == name]
    if hit.empty:
        raise MemlabError(f"{name!r} is not in the device table; known: {', '.join(t['name'])}")
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in hit.iloc[0].items()}


def names(path: str | Path | None = None) -> list[str]:
    """Every device and link name in the table."""
    return list(table(path)["name"])
