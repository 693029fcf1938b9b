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
COLUMNS = ("name", "kind")                     # what every reader of the table needs (capacities: capacity_gb)
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


def capacities(table_or_path: Any = None, include_this_machine: bool = True):
    """Devices that hold weights, with their memory capacity: DataFrame name, kind, capacity_bytes.

    `include_this_machine` adds this machine's RAM (and GPU memory) from the hardware card first.
    """
    import pandas as pd
    t = table_or_path if isinstance(table_or_path, pd.DataFrame) else table(table_or_path)
    if "capacity_gb" not in t.columns:
        raise MemlabError(f"the device table has no column capacity_gb: {FORMAT}")
    rows = t[t["kind"].isin(MEMORY_KINDS) & t["capacity_gb"].notna()]
    out = pd.DataFrame({"name": rows["name"], "kind": rows["kind"],
                        "capacity_bytes": (rows["capacity_gb"].astype(float) * 1e9).astype("int64")})
    if include_this_machine:
        from memlab.core.hardware import card
        hw = card()
        mine = [("this machine (RAM)", "host", hw.ram_total_bytes)]
        if hw.gpu_vram_bytes:
            mine.append((f"this machine ({hw.gpu_name})", "host-gpu", hw.gpu_vram_bytes))
        out = pd.concat([pd.DataFrame(mine, columns=out.columns), out], ignore_index=True)
    return out.reset_index(drop=True)
