"""Records in, tables and files out (every lab): DataFrames, JSON and CSV that keep the hardware card.

A record is a frozen dataclass. `to_frame` flattens a list of them into a pandas DataFrame
(the nested `HardwareCard` becomes a `host` column, or `hw_*` columns with `hardware="full"`);
`save` writes JSON (records + the card of the machine they came from) or CSV (card as columns).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from memlab.core.errors import InvalidArgumentError
from memlab.core.hardware import card
from memlab.core.paths import write_atomic

if TYPE_CHECKING:
    import pandas as pd


def as_dict(record: Any) -> dict:
    """A record (dataclass, possibly nested) as a JSON-ready dict; tuples become lists, NaN None."""
    def clean(v):
        if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
            return None
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, Path):
            return str(v)
        return v
    if dataclasses.is_dataclass(record):
        return clean(dataclasses.asdict(record))
    if isinstance(record, dict):
        return clean(record)
    raise TypeError(f"expected a dataclass record or a dict, got {type(record).__name__}")


def _flat(record: Any, hardware: str) -> dict:
    row = as_dict(record)
    hw = row.pop("hardware", None)
    if isinstance(hw, dict):
        if hardware == "full":
            row.update({f"hw_{k}": v for k, v in hw.items()})
        else:
            row.setdefault("host", hw.get("host"))
    return row


def to_frame(records: Any | Iterable[Any], hardware: str = "host") -> pd.DataFrame:
    """One row per record; `hardware="host"` keeps just the host name, `"full"` every card field."""
    if dataclasses.is_dataclass(records) or isinstance(records, dict):
        records = [records]
    import pandas as pd  # here, not at the top: `memlab info --json` needs as_dict, not pandas' 0.5 s
    return pd.DataFrame([_flat(r, hardware) for r in records])


def save(records: Any | Iterable[Any], path: str | Path) -> Path:
    """Write records to .json (with the hardware card) or .csv (card fields as hw_* columns)."""
    path = Path(path)
    if dataclasses.is_dataclass(records) or isinstance(records, dict):
        records = [records]
    records = list(records)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".json":
        rows = [as_dict(r) for r in records]
        cards = [r.pop("hardware") for r in rows if isinstance(r.get("hardware"), dict)]
        doc = {"hardware": cards[0] if cards else as_dict(card()), "records": rows}
        write_atomic(path, json.dumps(doc, indent=1))
    elif path.suffix == ".csv":
        frame = to_frame(records, hardware="full")
        if not any(c.startswith("hw_") for c in frame.columns):
            for k, v in as_dict(card()).items():
                frame[f"hw_{k}"] = v
        # every text field quoted: a generated reply may hold a bare \r, which read_csv takes for a line end
        write_atomic(path, frame.to_csv(index=False, quoting=csv.QUOTE_NONNUMERIC))
    else:
        raise InvalidArgumentError(f"save() writes .json or .csv, not {path.suffix!r}")
    return path


def load(path: str | Path) -> pd.DataFrame:
    """Read what `save` wrote back as a DataFrame (JSON: card fields as hw_* columns)."""
    import pandas as pd  # here, not at the top: see to_frame
    path = Path(path)
    if path.suffix == ".json":
        doc = json.loads(path.read_text())
        frame = pd.DataFrame(doc["records"])
        for k, v in doc.get("hardware", {}).items():
            frame[f"hw_{k}"] = v
        return frame
    if path.suffix == ".csv":
        return pd.read_csv(path)
    raise InvalidArgumentError(f"load() reads .json or .csv, not {path.suffix!r}")
