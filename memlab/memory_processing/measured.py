"""Per-step times measured on real devices, for the GPU/FPGA offload model (lab 08).

`offload` models each step from spec sheets (a roofline). Here the four steps' seconds come from
`mempipe.profile_decode`, the paper's pipeline run for real inside a decode step of the real model,
timed on this CPU and on a CUDA GPU when there is one. Nothing else is timed: one implementation
per measured quantity. What no machine here has, an FPGA, enters as a device derived from the
measured one: its time for a step is the measured time divided by a speed-up, e.g. the spec sheets'
effective-bandwidth ratio (`spec_speedups`), which is how lab 08 asks "under which step times does
moving comp + ret win, and by how much". Transfers between devices use the paper's PCIe model
(`offload.transfer_s`, PAPER 2.8) on the measured model's tensor sizes.

  MeasuredSteps      (device, step) -> seconds of one decode step (all layers), at one context
  measure            time the steps at each context on each device (cpu, and cuda when present)
  spec_speedups      FPGA-vs-GPU speed-up per step from SPECS (HBM or on-chip SRAM)
  break_even_speedup the speed-up of the offloaded steps at which offloading ties staying home
  energy_j           E = sum over devices of active power x busy time + idle power x the rest
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch

from memlab.core import limits
from memlab.core.errors import InvalidArgumentError
from memlab.memory_processing import mempipe, offload
from memlab.memory_processing.offload import STEPS

MEMORY_BOUND = ("comp", "ret")  # the steps the paper moves to the FPGA (PAPER 2.9, general setup)


@dataclass(frozen=True, slots=True)
class MeasuredSteps:
    """Seconds per step of one decode step (all layers) on each device, at one context length.

    `home` is the device that ran the rest of the model (`rest_s`); the new token starts and the
    step ends there. `shape` is the measured model's shape (its dtype's bytes) for the PCIe sizes.
    `origin[device]` says how that device's times were obtained ("measured", or how derived).
    """
    shape: offload.Shape
    context_tokens: int
    home: str
    times: dict                     # device -> {step: seconds}
    rest_s: float                   # norms, projections, MLP, LM head on `home`, seconds
    origin: dict = field(default_factory=dict)
    bandwidth_scale: float = 1.0    # multiplies the paper's fitted PCIe bandwidth (a what-if)

    def __post_init__(self):
        if not self.bandwidth_scale > 0:
            raise InvalidArgumentError(f"bandwidth_scale must be > 0, got {self.bandwidth_scale}")
        if self.home not in self.times:
            raise InvalidArgumentError(f"home device {self.home!r} has no times; devices: {list(self.times)}")
        for dev, t in self.times.items():
            if set(t) != set(STEPS) or any(not (v >= 0 and math.isfinite(v)) for v in t.values()):
                raise InvalidArgumentError(f"{dev}: need finite seconds >= 0 for each of {STEPS}, got {t}")

    @property
    def devices(self) -> tuple:
        return tuple(self.times)

    def assignment(self, devices: tuple) -> offload.Assignment:
        """The decode step with step i on devices[i]: measured step times + PCIe + the rest on home.
        No capacity check: the measured model's index and KV cache are far below any device's memory."""
        if len(devices) != len(STEPS) or any(d not in self.times for d in devices):
            raise InvalidArgumentError(f"devices must name one of {self.devices} per step {STEPS}, got {devices}")
        step_s = tuple(self.times[d][s] for d, s in zip(devices, STEPS))
        pcie = offload.transfer_s(tuple(devices), self.shape, self.context_tokens, self.home, self.bandwidth_scale)
        return offload.Assignment(tuple(devices), step_s, pcie, self.rest_s, sum(step_s) + pcie + self.rest_s,
                                  True, source="measured")

    def with_device(self, name: str, speedups: dict, origin: str = "") -> "MeasuredSteps":
        """Add device `name` whose time for each step is home's measured time / speedups[step]."""
        if name in self.times:
            raise InvalidArgumentError(f"device {name!r} already has times")
        if set(speedups) != set(STEPS) or any(not v > 0 for v in speedups.values()):
            raise InvalidArgumentError(f"speedups need a positive number for each of {STEPS}, got {speedups}")
        home = self.times[self.home]
        times = {**self.times, name: {s: home[s] / speedups[s] for s in STEPS}}
        note = origin or f"{self.home} times / " + ", ".join(f"{s} {speedups[s]:.3g}" for s in STEPS)
        return replace(self, times=times, origin={**self.origin, name: note})

    def batched(self, batch_size: int) -> "MeasuredSteps":
        """An extrapolation, not a measurement: B sequences, each with its own index and KV cache,
        so every device's step times grow B-fold; the rest (weights read once) stays as measured;
        the PCIe sizes grow B-fold (the paper's explanation of its batch trend, PAPER 2.5)."""
        limits.count(batch_size, "batch_size")
        times = {d: {s: batch_size * v for s, v in t.items()} for d, t in self.times.items()}
        return replace(self, times=times, shape=replace(self.shape, batch_size=batch_size))


def shape_of(config, page_tokens: int, budget_tokens: int, elem_bytes: int, name: str = "model") -> offload.Shape:
    """The offload `Shape` of a transformers Llama config (weights counted as 0: they do not cross PCIe)."""
    hq, hkv = config.num_attention_heads, config.num_key_value_heads
    d = getattr(config, "head_dim", None) or config.hidden_size // hq
    return offload.Shape(name, config.num_hidden_layers, hq, hkv, d, 0.0, elem_bytes=elem_bytes,
                         page_tokens=page_tokens, budget_tokens=budget_tokens)


def available_devices() -> tuple:
    """The devices this machine can time the steps on: cpu, then cuda when there is a GPU."""
    return ("cpu", "cuda") if torch.cuda.is_available() else ("cpu",)


def measure(loaded, contexts=(512, 1024, 2048), cfg: mempipe.PipeConfig = mempipe.PipeConfig(),
            devices: tuple | None = None, reuse: dict | None = None) -> list[MeasuredSteps]:
    """Time the four steps with `mempipe.profile_contexts` at each context on each device.

    The model is moved to each device in turn and back to where it was. `reuse` = {device: the
    `PipeProfile`s already timed at `contexts` with `cfg`} skips timing that device again. home = the
    last device (cuda when present, else cpu). Returns one `MeasuredSteps` per context, shortest first.
    """
    devices = tuple(devices or available_devices())
    model = loaded.model
    was = next(model.parameters()).device
    profiles = {d: sorted(p, key=lambda x: x.context_tokens) for d, p in (reuse or {}).items() if d in devices}
    if any([p.context_tokens for p in ps] != sorted(contexts) for ps in profiles.values()):
        raise InvalidArgumentError(f"reused profiles must be at the contexts {sorted(contexts)}")
    try:
        for dev in (d for d in devices if d not in profiles):
            if dev == "cuda" and not torch.cuda.is_available():
                raise InvalidArgumentError("device 'cuda' asked for, but torch sees no CUDA GPU")
            model.to(dev)
            profiles[dev] = mempipe.profile_contexts(loaded, contexts, cfg)
    finally:
        model.to(was)
    elem = next(model.parameters()).element_size()
    shape = shape_of(model.config, cfg.page_tokens, cfg.budget_tokens, elem, getattr(loaded, "name", "model"))
    home = devices[-1]
    out = []
    for i, n in enumerate(sorted(contexts)):
        times = {d: {s: getattr(profiles[d][i], f"{s}_s") for s in STEPS} for d in devices}
        out.append(MeasuredSteps(shape, n, home, times, profiles[home][i].other_s,
                                 origin={d: "measured" for d in devices}))
    return out


def spec_speedups(specs: dict = offload.SPECS, memory: str = "sram") -> dict:
    """FPGA-vs-GPU speed-up per step from the spec sheets: ratio of effective bandwidths.

    comp, ret (irregular): FPGA bandwidth x its efficiency / (GPU HBM x irregular efficiency), with
    the FPGA reading its state from on-chip SRAM (`memory="sram"`) or from HBM ("hbm"); prep, apply
    (regular, and apply's KV cache is far larger than SRAM): FPGA HBM x eff / (GPU HBM x regular eff).
    """
    if memory not in ("sram", "hbm"):
        raise InvalidArgumentError(f"memory must be 'sram' or 'hbm', got {memory!r}")
    g, f = specs["gpu"], specs["fpga"]
    fast = f.sram_bytes_per_s if memory == "sram" else f.mem_bytes_per_s * f.irregular_efficiency
    irregular = fast / (g.mem_bytes_per_s * g.irregular_efficiency)
    regular = f.mem_bytes_per_s * f.regular_efficiency / (g.mem_bytes_per_s * g.regular_efficiency)
    return {s: irregular if s in MEMORY_BOUND else regular for s in STEPS}


def with_fpga(steps: MeasuredSteps, memory_bound_speedup: float, specs: dict = offload.SPECS) -> MeasuredSteps:
    """`steps` plus an "fpga" that runs comp and ret `memory_bound_speedup` times faster than home, and
    prep and apply at the spec sheets' regular-bandwidth ratio."""
    regular = spec_speedups(specs)["prep"]
    ups = {s: memory_bound_speedup if s in MEMORY_BOUND else regular for s in STEPS}
    return steps.with_device("fpga", ups, f"{steps.home} times; comp, ret / {memory_bound_speedup:.3g}; "
                                          f"prep, apply / {regular:.3g} (spec sheets)")


def break_even_speedup(steps: MeasuredSteps, offloaded=MEMORY_BOUND) -> float:
    """Speed-up r of the `offloaded` steps at which running them away from home ties staying home.

    home-only: S + rest; offloaded: S / r + PCIe + rest, where S = their measured home seconds and
    PCIe = the transfers that assignment needs. Tie: r* = S / (S - PCIe); inf when PCIe >= S.
    """
    away = next((d for d in steps.devices if d != steps.home), "away")
    devices = tuple(away if s in offloaded else steps.home for s in STEPS)
    work = sum(steps.times[steps.home][s] for s in offloaded)
    pcie = offload.transfer_s(devices, steps.shape, steps.context_tokens, steps.home, steps.bandwidth_scale)
    return work / (work - pcie) if work > pcie else math.inf


def speedup_map(steps: MeasuredSteps, speedups, bandwidth_scales) -> list[list[float]]:
    """Best end-to-end speed-up (`offload.search`) per (PCIe bandwidth scale, comp/ret speed-up):
    rows follow `bandwidth_scales`, columns `speedups`."""
    return [[offload.search(with_fpga(replace(steps, bandwidth_scale=b), r)).speedup for r in speedups]
            for b in bandwidth_scales]


# Board power while running and while waiting: [S3]'s ranges (PAPER 2.6, "unsure"): GPU 45-106 W,
# FPGA 25-45 W; the top of each range is taken as active, the bottom as idle (an assumption).
POWER_W = {"gpu": (106.0, 45.0), "fpga": (45.0, 25.0)}


def energy_j(a: offload.Assignment, home: str, power_w: dict = POWER_W) -> float:
    """Joules of one decode step: per device in the system, active W x busy s + idle W x (total - busy).

    home plays the GPU (it runs the rest of the model and its steps); any other device the FPGA,
    which is in the system only when the assignment uses it; PCIe time is idle time for both.
    """
    busy = {home: a.rest_s}
    for dev, t in zip(a.devices, a.step_s):
        busy[dev] = busy.get(dev, 0.0) + t
    total = 0.0
    for dev, b in busy.items():
        active, idle = power_w["gpu" if dev == home else "fpga"]
        total += active * b + idle * (a.total_s - b)
    return total


def energy_ratio(r: offload.OffloadResult, home: str, power_w: dict = POWER_W) -> float:
    """Energy of the home-only step / energy of the best assignment's step (> 1: the offload saves)."""
    return energy_j(r.gpu_only, home, power_w) / energy_j(r.best, home, power_w)


def at_ratio(steps: MeasuredSteps, memory_bound_speedup: float) -> tuple[offload.OffloadResult, float]:
    """`offload.search` with an FPGA `memory_bound_speedup` times faster on comp/ret; and its energy ratio."""
    r = offload.search(with_fpga(steps, memory_bound_speedup))
    return r, energy_ratio(r, steps.home)
