"""Reference runs: what a full-mode run of each lab measured on a named machine (every lab).

Each lab ends with `ml.reference.compare("03", {...its headline numbers...})`, which shows this
run's numbers beside every shipped reference run's and their ratio: a learner sees how their
machine differs, an instructor sees what a good run looks like. A reference run is package data,
`memlab/data/reference/<machine>.json`: the hardware card, each lab's headline numbers from one
full-mode run of every lab, and each lab's peak memory and time, quick and full. The same call records it: with
`MEMLAB_RECORD=<folder>` set, `compare` also writes the lab's numbers to `<folder>/<lab>.json`;
`make reference` runs every lab that way and `build` gathers the files into one.

Headline names carry their unit (`ttft_s`, `decode_tok_per_s`, `read_gb_per_s`), as records do.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from memlab.core.errors import InvalidArgumentError
from memlab.core.guard import available_bytes
from memlab.core.hardware import card
from memlab.core.paths import package_root, write_atomic
from memlab.core.units import fmt_bytes

REFERENCE_DIR = package_root() / "memlab" / "data" / "reference"  # package data, installed or not


def mode() -> str:
    """"quick" under MEMLAB_QUICK=1 (as every lab's parameter cell reads it), else "full"."""
    return "quick" if os.environ.get("MEMLAB_QUICK", "0") == "1" else "full"


@dataclass(frozen=True, slots=True)
class ReferenceRun:
    name: str                  # the machine, e.g. "xeon-8480-avx512-amx-2core"
    card: dict                 # its hardware card (memlab.core.hardware.HardwareCard fields)
    mode: str                  # "full": the labs' default parameters
    recorded_at: str           # ISO timestamp (UTC)
    labs: dict                 # lab -> {headline name: value}
    lab_runs: dict = field(default_factory=dict)  # lab -> {"quick_peak_bytes", "full_peak_bytes", "quick_wall_s",
    #                                              "full_wall_s"}: each whole lab under nbval, kernel + children

    def describe(self) -> str:
        c = self.card
        llc = c.get("last_level_cache_bytes", 0)
        gpu = f", GPU {c['gpu_name']}" if c.get("gpu_name") else ", no GPU"
        return (f"{self.name}: {c.get('cpu_model', '?')} ({c.get('cpu_features', '-')}), {c.get('num_cores', '?')} cores, "
                f"last-level cache {llc / 2**20:.0f} MiB{gpu}; {self.mode} mode, {self.recorded_at[:10]}")


def runs(folder: str | Path | None = None) -> list[ReferenceRun]:
    """Every reference run shipped (or in `folder`), by name."""
    folder = Path(folder) if folder is not None else REFERENCE_DIR
    return [ReferenceRun(**json.loads(p.read_text())) for p in sorted(folder.glob("*.json"))]


def _numbers(lab: str, numbers: dict) -> dict[str, float]:
    if not numbers:
        raise InvalidArgumentError(f"reference.compare({lab!r}): give at least one headline number")
    out = {}
    for key, value in numbers.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise InvalidArgumentError(f"reference.compare({lab!r}): {key} must be a number, got {value!r}")
        out[key] = float(value)
    return out


def record(lab: str, numbers: dict, folder: str | Path) -> Path:
    """Write one lab's headline numbers, with this machine's card and mode, to `<folder>/<lab>.json`."""

    data = {"lab": lab, "mode": mode(), "card": asdict(card()),
            "numbers": {k: (None if math.isnan(v) else v) for k, v in _numbers(lab, numbers).items()}}
    return write_atomic(Path(folder) / f"{lab}.json", json.dumps(data, indent=1) + "\n")


def compare(lab: str, numbers: dict, references: list[ReferenceRun] | None = None) -> pd.DataFrame:
    """This run's headline numbers beside each reference run's: one row per number, a column per
    machine and the ratio this run / reference. Records them too when MEMLAB_RECORD is set."""
    mine = _numbers(lab, numbers)
    if os.environ.get("MEMLAB_RECORD"):
        record(lab, mine, os.environ["MEMLAB_RECORD"])
    refs = runs() if references is None else references
    table = pd.DataFrame({"this run": mine})
    for ref in refs:
        theirs = ref.labs.get(lab, {})
        table[ref.name] = [theirs.get(k) if theirs.get(k) is not None else math.nan for k in mine]
        table[f"this / {ref.name}"] = table["this run"] / table[ref.name]
    table.index.name = f"lab {lab}"
    for ref in refs:
        print("reference", ref.describe())
    if not refs:
        print("no reference run is shipped with this memlab")
    if mode() == "quick":
        print("this run is quick mode (shorter prompts, fewer repeats): compare in full mode for like with like")
    return table


def build(folder: str | Path, name: str, lab_runs: dict | None = None, out_dir: str | Path | None = None) -> Path:
    """Gather `<folder>/<lab>.json` (written by `record` in one full-mode run) into one reference file."""
    files = sorted(Path(folder).glob("*.json"))
    if not files:
        raise InvalidArgumentError(f"no lab records in {folder}: run the labs with MEMLAB_RECORD={folder} first")
    recs = [json.loads(p.read_text()) for p in files]
    modes = {r["mode"] for r in recs}
    if modes != {"full"}:
        raise InvalidArgumentError(f"a reference run is a full-mode run; {folder} holds {sorted(modes)} records")
    ref = ReferenceRun(name=name, card=recs[-1]["card"], mode="full",
                       recorded_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                       labs={r["lab"]: r["numbers"] for r in recs}, lab_runs=lab_runs or {})
    out = Path(out_dir) if out_dir is not None else REFERENCE_DIR
    return write_atomic(out / f"{name}.json", json.dumps(asdict(ref), indent=1) + "\n")


def cost(run: dict) -> str:
    """One lab's time and peak memory, quick and full mode, as the README's course table shows them."""
    return "; ".join(f"{m} {run[f'{m}_wall_s']:.0f} s, {run[f'{m}_peak_bytes'] / 2**30:.1f} GiB"
                     for m in ("quick", "full") if f"{m}_wall_s" in run)


def plan(lab: str, references: list[ReferenceRun] | None = None) -> None:
    """What this lab took on each reference machine (time and peak memory, quick and full mode,
    kernel and children) and whether this machine has the memory the mode it runs in needs."""

    this_mode = mode()
    need = 0
    for ref in runs() if references is None else references:
        r = ref.lab_runs.get(lab)
        if not r:
            print(f"{ref.name}: no record of lab {lab}")
            continue
        print(f"on {ref.name} this lab took (time under nbval, peak memory of the kernel and its children): {cost(r)}")
        need = max(need, r.get(f"{this_mode}_peak_bytes", 0))
    free = available_bytes()
    if need and free < need:
        print(f"warning: this machine has {fmt_bytes(free)} of memory available, less than this lab's {this_mode}-mode "
              f"peak on the reference machine ({fmt_bytes(need)}): close other programs"
              + (", or run it in quick mode (MEMLAB_QUICK=1)" if this_mode == "full" else ""))
    else:
        print(f"this run is {this_mode} mode; this machine has {fmt_bytes(free)} of memory available")
