"""A model from spec sheets, not a measurement: the four steps on a GPU vs an FPGA (lab 08).

arXiv 2603.29002 runs Prepare Memory and Apply on the GPU and the irregular, memory-bound Compute
Relevancy + Retrieval on an FPGA. Nothing here runs on either device; every number comes from the
spec table `SPECS` (PAPER.md sections 2.7, 2.8), and each step's time is a roofline

    t = max(bytes / (bandwidth * efficiency), flops / peak) + launch latency

per layer, times the number of layers. The workload is one LServe-style decode step at batch 1
(page min/max index, top-k pages, block-sparse attention) for a model shape, e.g. Llama-3.1-8B.
Rules, after the authors' modelling code: an output stays on the device that made it and crosses
PCIe (section 2.8's fitted curve, smoothed) when the next step runs elsewhere; consecutive FPGA
kernels are fused (one launch, the intermediate read from on-chip memory); the persistent state
of a step (the index for comp, the KV cache for apply) lives on that step's device and must fit
there; the FPGA reads it from on-chip SRAM when everything it holds fits in SRAM. All 2^4
GPU/FPGA assignments are searched; the rest of the model (weights streamed once) stays on the GPU.

`evaluate` and `search` also take, in place of a `Shape`, a `measured.MeasuredSteps` (step times
timed on real devices, lab 08 section 5); the PCIe charges are the same (`transfer_s`), and each
`Assignment` says where its times came from (`source`: "roofline" or "measured").
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace

from memlab.core.errors import InvalidArgumentError

STEPS = ("prep", "comp", "ret", "apply")


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    name: str
    mem_bytes_per_s: float        # off-chip (HBM) bandwidth
    peak_flop_per_s: float
    memory_bytes: float           # capacity
    irregular_efficiency: float   # fraction of bandwidth reached on comp/ret
    regular_efficiency: float     # fraction reached on prep/apply and the dense model
    launch_s: float               # per kernel launch (assumed)
    sram_bytes: float = 0.0       # on-chip memory a kernel can stream from (FPGA)
    sram_bytes_per_s: float = 0.0
    source: str = ""


SPECS = {
    "gpu": DeviceSpec("AMD MI210", 1.6e12, 181e12, 64e9, 0.30, 0.80, 10e-6,
                      source="MI210 data sheet (PAPER 2.7); <30% HBM use on comp/ret [S2]; "
                             "0.8 regular efficiency and 10 us launch are assumptions"),
    "fpga": DeviceSpec("AMD Alveo U55C", 460e9, 3.85 * 460e9 * 0.85, 16e9, 0.85, 0.85, 2e-6,
                       sram_bytes=40e6, sram_bytes_per_s=10.4e12,
                       source="UG1393 460 GB/s; 0.85 derate and 3.85 FLOP/B ridge from the authors' "
                              "code; 40 MB SRAM at 10.4 TB/s (URAM, PAPER 2.7); 2 us pipeline latency assumed"),
}


def pcie_bytes_per_s(num_bytes: float, to_gpu: bool) -> float:
    """Fitted P2P bandwidth (PAPER 2.8), made continuous: min of the linear pieces and the plateau."""
    kb = num_bytes / 1e3
    if to_gpu:
        return 1e9 * min(0.0403 * kb + 0.264, 3.57e-5 * kb + 4.135, 6.09)
    return 1e9 * min(0.0572 * kb + 0.147, 4.0)


def pcie_s(num_bytes: float, to_gpu: bool, latency_s: float = 5e-6, bandwidth_scale: float = 1.0) -> float:
    """Time to move `num_bytes` between GPU and FPGA (0 for nothing); latency assumed;
    `bandwidth_scale` multiplies the fitted bandwidth (a what-if for a faster or slower link)."""
    if num_bytes <= 0:
        return 0.0
    return num_bytes / (bandwidth_scale * pcie_bytes_per_s(num_bytes, to_gpu)) + latency_s


@dataclass(frozen=True, slots=True)
class Shape:
    """A decoder's shape and the sparse-attention settings; bytes per element of weights and KV."""
    name: str
    num_layers: int
    num_q_heads: int
    num_kv_heads: int
    head_dim: int
    weights_bytes: float
    elem_bytes: int = 2           # bf16
    page_tokens: int = 16
    budget_tokens: int = 2048
    batch_size: int = 1           # sequences per step; each has its own KV cache and index


LLAMA31_8B = Shape("Llama-3.1-8B", 32, 32, 8, 128, 16.06e9)


@dataclass(frozen=True, slots=True)
class StepCost:
    """One step, per layer: work, traffic, what it hands on, and what it keeps."""
    name: str
    flops: float
    bytes_moved: float
    out_bytes: float              # handed to the next step
    state_bytes: float            # persistent state on this step's device (all layers)
    needs_query: bool             # reads the new query (made on the GPU)
    is_irregular: bool


def step_costs(shape: Shape, context_tokens: int) -> list[StepCost]:
    """Per-layer FLOPs and bytes of prep/comp/ret/apply for one decode step (P = T / page pages)."""
    b, hq, hkv, d, L = shape.elem_bytes, shape.num_q_heads, shape.num_kv_heads, shape.head_dim, shape.num_layers
    pages = math.ceil(context_tokens / shape.page_tokens)
    k = min(pages, shape.budget_tokens // shape.page_tokens)
    row = 2 * hkv * d * b  # one page's min and max, all KV heads
    costs = [
        StepCost("prep", 2 * hkv * d, hkv * d * b + 2 * row, row, 0.0, False, False),
        StepCost("comp", 4 * hq * pages * d, pages * row + hq * d * b, 4 * pages * hkv,
                 L * pages * row, True, True),
        StepCost("ret", 2 * pages * hkv, 4 * pages * hkv + 4 * k * hkv, 4 * k * hkv, 0.0, False, True),
        StepCost("apply", 4 * hq * k * shape.page_tokens * d,
                 2 * k * shape.page_tokens * hkv * d * b + hq * d * b, hq * d * b,
                 L * 2 * context_tokens * hkv * d * b, True, False),
    ]
    n = shape.batch_size  # memory processing is private per sequence: it scales with the batch
    return [StepCost(c.name, n * c.flops, n * c.bytes_moved, n * c.out_bytes, n * c.state_bytes,
                     c.needs_query, c.is_irregular) for c in costs]


@dataclass(frozen=True, slots=True)
class Assignment:
    devices: tuple                # "gpu"/"fpga" per step, in STEPS order
    step_s: tuple                 # modelled seconds per step, all layers
    transfer_s: float             # PCIe time, all layers
    rest_s: float                 # the rest of the model on the GPU
    total_s: float                # inf when some state does not fit
    is_feasible: bool
    source: str = "roofline"      # where the step times come from: "roofline" (spec sheets) or "measured"

    @property
    def memory_share(self) -> float:
        """Share of the step in the four memory-processing steps and their transfers."""
        return (sum(self.step_s) + self.transfer_s) / self.total_s


def transfer_s(devices: tuple, shape: Shape, context_tokens: int, home: str = "gpu",
               bandwidth_scale: float = 1.0) -> float:
    """PCIe seconds of one decode step (all layers) for an assignment, the paper's P2P model (2.8).

    The new token's key and query start on `home`; a step on another device than the previous one
    receives the previous step's output; a step away from `home` that reads the query (comp, apply)
    receives it, and apply there also receives the new key and value; the last output returns home.
    Each transfer is charged once per layer.
    """
    costs, L, transfer, prev = step_costs(shape, context_tokens), shape.num_layers, 0.0, home
    vec = shape.batch_size * shape.head_dim * shape.elem_bytes  # one head's vector, every sequence
    for i, (c, dev) in enumerate(zip(costs, devices)):
        handed = costs[i - 1].out_bytes if i else shape.num_kv_heads * vec  # prep takes the new key
        extra = shape.num_q_heads * vec if c.needs_query else 0
        if c.name == "apply":
            extra += 2 * shape.num_kv_heads * vec  # the new key and value join the KV cache it holds
        if dev != prev:
            transfer += L * pcie_s(handed, to_gpu=dev == home, bandwidth_scale=bandwidth_scale)
        if dev != home and extra:
            transfer += L * pcie_s(extra, to_gpu=False, bandwidth_scale=bandwidth_scale)
        prev = dev
    if prev != home:
        transfer += L * pcie_s(costs[-1].out_bytes, to_gpu=True, bandwidth_scale=bandwidth_scale)
    return transfer


def evaluate(devices: tuple, shape, context_tokens: int | None = None, specs: dict = SPECS) -> Assignment:
    """Modelled time of one decode step with each step on the named device.

    `shape` is a `Shape` (roofline times from `specs` at `context_tokens`) or a
    `measured.MeasuredSteps` (measured times at its own context; `context_tokens` and `specs` unused).
    The returned `Assignment.source` says which.
    """
    if hasattr(shape, "assignment"):  # measured step times (memlab.memory_processing.measured)
        return shape.assignment(tuple(devices))
    if context_tokens is None:
        raise InvalidArgumentError("evaluate: a roofline Shape needs context_tokens")
    costs, L = step_costs(shape, context_tokens), shape.num_layers
    held = {dev: sum(c.state_bytes for c, d in zip(costs, devices) if d == dev) for dev in specs}
    fits = held["gpu"] + shape.weights_bytes <= specs["gpu"].memory_bytes and \
        held["fpga"] <= specs["fpga"].memory_bytes
    step_s, prev = [], "gpu"
    for i, (c, dev) in enumerate(zip(costs, devices)):
        s = specs[dev]
        bw = s.mem_bytes_per_s * (s.irregular_efficiency if c.is_irregular else s.regular_efficiency)
        moved = c.bytes_moved
        fused = dev == "fpga" and prev == "fpga" and i > 0
        if fused:
            moved -= costs[i - 1].out_bytes  # the intermediate stays on chip
        # state is placed in SRAM first, the rest in HBM: that share of the traffic runs at SRAM speed
        on_chip = min(1.0, s.sram_bytes / held[dev]) if held[dev] and s.sram_bytes_per_s else 0.0
        mem_s = moved * (on_chip / s.sram_bytes_per_s if on_chip else 0.0) + moved * (1 - on_chip) / bw
        t = max(mem_s, c.flops / s.peak_flop_per_s) + (0.0 if fused else s.launch_s)
        step_s.append(L * t)
        prev = dev
    transfer = transfer_s(tuple(devices), shape, context_tokens)
    g = specs["gpu"]
    # the dense model streams its weights once per step, whatever the batch
    rest_s = shape.weights_bytes / (g.mem_bytes_per_s * g.regular_efficiency)
    total = sum(step_s) + transfer + rest_s if fits else math.inf
    return Assignment(tuple(devices), tuple(step_s), transfer, rest_s, total, fits)


@dataclass(frozen=True, slots=True)
class OffloadResult:
    shape_name: str
    batch_size: int
    context_tokens: int
    gpu_only: Assignment
    best: Assignment

    @property
    def speedup(self) -> float:
        return self.gpu_only.total_s / self.best.total_s

    @property
    def source(self) -> str:
        """"roofline" (spec sheets) or "measured" (per-step times timed on real devices)."""
        return self.best.source


def search(shape, context_tokens: int | None = None, specs: dict = SPECS) -> OffloadResult:
    """Try every assignment of the four steps; keep the all-home one (`gpu_only`) and the fastest
    feasible one (ties go to fewer steps away from home). `shape`: a `Shape` (roofline, 2^4 GPU/FPGA
    assignments) or a `measured.MeasuredSteps` (its devices; home = the device that ran the rest)."""
    measured = hasattr(shape, "assignment")
    names, home = (shape.devices, shape.home) if measured else (("gpu", "fpga"), "gpu")
    options = [evaluate(devs, shape, context_tokens, specs) for devs in itertools.product(names, repeat=len(STEPS))]
    only_home = next(a for a in options if set(a.devices) == {home})
    best = min(options, key=lambda a: (a.total_s, len(a.devices) - a.devices.count(home)))
    n = shape.context_tokens if measured else context_tokens
    s = shape.shape if measured else shape
    return OffloadResult(s.name, s.batch_size, n, only_home, best)


def sweep(shape: Shape = LLAMA31_8B, contexts=(4096, 16384, 65536, 262144), batch_sizes=(1,),
          specs: dict = SPECS) -> list[OffloadResult]:
    """`search` at each batch size and context length."""
    return [search(replace(shape, batch_size=b), n, specs) for b in batch_sizes for n in contexts]
