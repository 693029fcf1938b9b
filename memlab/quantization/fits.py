"""What fits where (lab 04, `memlab fits`): a model's footprint (weights + KV cache + activations)
at each precision against every device's memory in data/hardware.csv, one device, no offload.

Pure arithmetic on configs (core/footprint.py counts the bytes): no torch is imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from memlab.core import devices, hardware, limits
from memlab.core.errors import InvalidArgumentError
from memlab.core.footprint import activation_bytes, famous_configs, kv_cache_bytes, param_counts, resolve_config, weights_bytes_by_part
from memlab.core.results import as_dict
from memlab.core.units import fmt_bytes

PRECISIONS = ("fp32", "bf16", "int8", "int4")


@dataclass(frozen=True, slots=True)
class Footprint:
    model: str
    precision: str
    params: int                 # total
    active_params: int          # per token (MoE: routed top-k + shared)
    weights_bytes: int
    kv_bytes: int               # KV cache for `context` tokens (kept in bf16 unless fp32)
    activation_bytes: int       # one forward over `context` tokens
    total_bytes: int
    context: int


def footprint(model: Any, precision: str = "bf16", context: int = 8192, batch_size: int = 1,
              name: str | None = None) -> Footprint:
    """Weights + KV cache + activations of `model` at `precision` (`quantformat.FORMATS`) for one `context`-token
    sequence. Weights are counted tensor by tensor in that format (`weights_bytes_by_part`); KV, activations and
    what int8/int4 leave unquantized (embedding, lm_head, norms) stay bf16 (fp32 at fp32)."""
    config = resolve_config(model)
    total, active = param_counts(config)
    kv_dtype = "fp32" if precision == "fp32" else "bf16"
    w = sum(weights_bytes_by_part(config, precision, kept_dtype=kv_dtype).values())
    limits.count(context, "context")
    limits.count(batch_size, "batch_size")
    kv = kv_cache_bytes(config, context, batch_size, kv_dtype)
    act = activation_bytes(config, context, batch_size, kv_dtype)
    return Footprint(model=name or (model if isinstance(model, str) else "config"), precision=precision,
                     params=total, active_params=active, weights_bytes=w, kv_bytes=kv,
                     activation_bytes=act, total_bytes=w + kv + act, context=context)


def capacities(table_or_path: Any = None, include_this_machine: bool = True):
    """Devices that hold weights, with their memory capacity: DataFrame name, kind, capacity_bytes.

    `include_this_machine` adds this machine's RAM (and GPU memory) from the hardware card first.
    """
    t = table_or_path if isinstance(table_or_path, pd.DataFrame) else devices.table(table_or_path)
    if "capacity_gb" not in t.columns:
        raise InvalidArgumentError(f"the device table has no column capacity_gb: {devices.FORMAT}")
    rows = t[t["kind"].isin(devices.MEMORY_KINDS) & t["capacity_gb"].notna()]
    out = pd.DataFrame({"name": rows["name"], "kind": rows["kind"],
                        "capacity_bytes": (rows["capacity_gb"].astype(float) * 1e9).astype("int64")})
    if include_this_machine:
        hw = hardware.card()
        mine = [("this machine (RAM)", "host", hw.ram_total_bytes)]
        if hw.gpu_vram_bytes:
            mine.append((f"this machine ({hw.gpu_name})", "host-gpu", hw.gpu_vram_bytes))
        out = pd.concat([pd.DataFrame(mine, columns=out.columns), out], ignore_index=True)
    return out.reset_index(drop=True)


def fits_json(footprints: list[Footprint], table) -> dict:
    """The `memlab fits --json` view: {"footprints": [Footprint], "fits": [one row per device and precision]}."""
    cols = ["device", "kind", "capacity_bytes", "precision", "total_bytes", "fits"]
    return {"footprints": [as_dict(f) for f in footprints], "fits": table[cols].to_dict(orient="records")}


def fits_table(models: Any = None, precisions=PRECISIONS, context: int = 8192, table: Any = None):
    """One row per (model, precision, device): the footprint, the capacity and whether it fits.

    `models`: names, configs or a dict name -> config (default: the shipped famous configs).
    A model fits when weights + KV(context) + activations <= capacity (one device, no offload).
    """
    if models is None:
        models = famous_configs()
    if not isinstance(models, dict):
        models = {m if isinstance(m, str) else f"model{i}": m for i, m in enumerate(models)}
    devs = capacities(table)
    rows = []
    for name, cfg in models.items():
        for p in precisions:
            fp = footprint(cfg, p, context, name=name)
            for d in devs.itertuples():
                rows.append(dict(model=name, precision=p, device=d.name, kind=d.kind,
                                 capacity_bytes=int(d.capacity_bytes), weights_bytes=fp.weights_bytes,
                                 kv_bytes=fp.kv_bytes, activation_bytes=fp.activation_bytes,
                                 total_bytes=fp.total_bytes, fits=fp.total_bytes <= d.capacity_bytes))
    return pd.DataFrame(rows)


def single_device_fits(fits, kind: str = "gpu") -> list[str]:
    """One line per model of a `fits_table`: at which precisions it fits one `kind` device, and the
    smallest such device (the first to fit is the widest precision), or that none holds it."""
    label = {"gpu": "GPU", "cpu": "CPU", "fpga": "FPGA", "soc": "SoC"}.get(kind, kind)
    rows = fits[fits["kind"] == kind]
    if rows.empty:
        raise InvalidArgumentError(f"The fits table has no device of kind {kind!r}: {sorted(set(fits['kind']))}")
    lines = []
    for model, g in rows.groupby("model", sort=False):
        precisions = list(dict.fromkeys(g["precision"]))
        smallest = {p: f.nsmallest(1, "capacity_bytes").iloc[0]
                    for p, f in g[g["fits"]].groupby("precision", sort=False)}
        fitting = [p for p in precisions if p in smallest]
        if not fitting:
            lines.append(f"{model} fits no single {label} at {', '.join(precisions)}")
            continue
        shown = [(p, smallest[p]) for p in dict.fromkeys([fitting[0], fitting[-1]])]
        lines.append(f"{model} fits one {label} at {', '.join(fitting)}" + ("" if len(fitting) > 1 else " only")
                     + "; the smallest that holds it: " + "; ".join(
                         f"{d['device']} ({fmt_bytes(d['capacity_bytes'])}) at {p}" for p, d in shown))
    return lines
