"""Reference runs: what a full-mode run of each lab measured on a named machine (every lab).

Each lab ends with `ml.reference.compare("03", {...its headline numbers...})`, which shows this
run's numbers beside those of the shipped reference run whose machine is closest to this one (the
same GPU, else the same CPU vendor and extensions, else the same vendor: `closest` says which and
why) and their ratio: a learner sees how their machine differs, an instructor sees what a good run
looks like. A reference run is package data,
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
import re
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


def machine_class(c: dict) -> str:
    """A reference run's default name, from a hardware card (as a dict): the GPU, else the CPU family, its
    widest vector and matrix extensions and its cores: "epyc-avx2-2core", "xeon-avx512-amx-2core"."""
    slug = lambda text: re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")  # noqa: E731
    if c.get("gpu_name"):
        return slug(c["gpu_name"])
    model = re.sub(r"\((r|tm)\)|processor|cpu|@.*", " ", str(c.get("cpu_model", "")).lower())
    words = [w for w in slug(model).split("-") if w not in ("amd", "intel", "genuine", "")]
    feats = set(str(c.get("cpu_features", "")).split())
    ext = ["avx512"] * ("avx512f" in feats) + ["amx"] * any(f.startswith("amx") for f in feats) \
        or ["avx2"] * ("avx2" in feats) or ["neon"] * ("neon" in feats or "asimd" in feats)
    return "-".join([words[0] if words else "cpu", *ext, f"{c.get('num_cores', 0)}core"])


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


UNITS = (("_gflop_per_s", "GFLOP/s"), ("_gb_per_s", "GB/s"), ("_tok_per_s", "tok/s"), ("_s_per_token", "s/token"),
         ("_s", "s"))  # headline-name suffix -> unit, longest first
WORDS = {"ttft": "TTFT", "tpot": "TPOT", "ram": "RAM", "rag": "RAG", "kv": "KV", "rel": "relative", "r2": "2 ranks"}


def label(key: str, values: list[float]) -> tuple[str, float]:
    """A headline name as a reader wants it, with its unit, and the factor its values are shown in:
    ("decode (tok/s)", 1.0); seconds go to ms or µs when every value is below 1 s or 1 ms."""
    unit, scale, stem = "", 1.0, key
    for suffix, name in UNITS:
        if key.endswith(suffix):
            unit, stem = name, key[: -len(suffix)]
            break
    finite = [abs(v) for v in values if v is not None and math.isfinite(v) and v != 0]
    if unit.startswith("s") and finite and max(finite) < 1:
        unit, scale = ("µ" if max(finite) < 1e-3 else "m") + unit, (1e6 if max(finite) < 1e-3 else 1e3)
    words = " ".join(WORDS.get(w, w) for w in stem.split("_"))
    return (f"{words} ({unit})" if unit else words), scale


def fmt(value: float) -> str:
    """About three significant digits, no exponent below a million: 0.00123, 12.3, 1,234."""
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:,.0f}" if 1000 <= abs(value) < 1e6 else f"{value:.3g}"


def closest(refs: list[ReferenceRun], mine: dict) -> tuple[ReferenceRun | None, str]:
    """The reference run whose machine is closest to `mine` (a hardware card as a dict), and why, in words:
    the same GPU > the same CPU vendor and vector/matrix extensions > the same vendor > any."""
    if not refs:
        return None, "no reference run is shipped with this memlab"
    vendor = lambda c: next((v for v in ("AMD", "Intel", "Apple", "ARM") if v.lower() in  # noqa: E731
                             str(c.get("cpu_model", "")).lower()), "?")
    feats = lambda c: set(str(c.get("cpu_features", "")).split()) - {"-", "unknown"}  # noqa: E731

    def score(ref: ReferenceRun) -> tuple:
        c = ref.card
        same_gpu = bool(mine.get("gpu_name")) and c.get("gpu_name") == mine.get("gpu_name")
        same_vendor = vendor(c) == vendor(mine) != "?"
        return (same_gpu, bool(c.get("gpu_name")) == bool(mine.get("gpu_name")),
                same_vendor and feats(c) == feats(mine), same_vendor, len(feats(c) & feats(mine)))

    best = max(sorted(refs, key=lambda r: r.name), key=score)  # a tie: the first by name
    s, c = score(best), best.card
    why = (f"the same GPU ({c['gpu_name']})" if s[0]
           else f"a GPU run ({c['gpu_name']}), none with yours ({mine['gpu_name']})" if mine.get("gpu_name") and s[1]
           else f"the same CPU vendor ({vendor(c)}) and extensions ({c.get('cpu_features')})" if s[2]
           else f"the same CPU vendor ({vendor(c)}), other extensions (it: {c.get('cpu_features')}; "
                f"you: {mine.get('cpu_features')})" if s[3]
           else f"no shipped run shares your GPU or CPU vendor ({mine.get('cpu_model', '?')}): the nearest by extensions")
    return best, f"compared with the reference run {best.name}: {why}"


def comparison(lab: str, numbers: dict, reference: ReferenceRun | None) -> pd.DataFrame:
    """This run's headline numbers beside the reference's and their ratio, as numbers: one row per name,
    columns "you", "reference" and "you / reference"."""
    mine = _numbers(lab, numbers)
    theirs = reference.labs.get(lab, {}) if reference is not None else {}
    table = pd.DataFrame({"you": mine})
    table["reference"] = [theirs.get(k) if theirs.get(k) is not None else math.nan for k in mine]
    table["you / reference"] = table["you"] / table["reference"]
    return table


def compare(lab: str, numbers: dict, references: list[ReferenceRun] | None = None) -> pd.DataFrame:
    """This run's headline numbers beside the reference run closest to this machine (`closest`, said in
    one line) and their ratio, for reading: names with units, about three significant digits.
    Records them too when MEMLAB_RECORD is set."""
    mine = _numbers(lab, numbers)
    if os.environ.get("MEMLAB_RECORD"):
        record(lab, mine, os.environ["MEMLAB_RECORD"])
    refs = runs() if references is None else references
    ref, why = closest(refs, asdict(card()))
    print(why)
    if ref is not None:
        print("reference", ref.describe())
    if mode() == "quick":
        print("this run is quick mode (shorter prompts, fewer repeats): compare in full mode for like with like")
    table = comparison(lab, mine, ref)
    rows = {}
    for key, row in table.iterrows():
        name, scale = label(key, [row["you"], row["reference"]])
        rows[name] = [fmt(row["you"] * scale), fmt(row["reference"] * scale), fmt(row["you / reference"])]
    shown = pd.DataFrame.from_dict(rows, orient="index", columns=["you", "reference", "you / reference"])
    shown.index.name = f"lab {lab}"  # the reference's name is in the line printed above
    return shown


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
