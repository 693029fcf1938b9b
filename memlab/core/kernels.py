"""The same bytes, read by different code: each decode matmul's kernel, chosen by measurement (labs 01, 04).

At batch 1 a decode step multiplies one activation row by every weight matrix (y = x W^T, W (N, K)):
its time is W's bytes over the rate a kernel streams them, and which code streams fastest depends on
the CPU (on a Zen 4 EPYC `F.linear` read fp32 weights at a third of OpenBLAS's rate; on an AMX Xeon
it was near the roof). So the fast path times the candidates here, on the model's own matrices:

1. "linear":   F.linear(x, W), W stored as the model has it (N, K): torch's default.
2. "matmul-t": x @ W_t, W stored transposed (K, N): another torch kernel over the same bytes.
3. "blas":     numpy's BLAS (OpenBLAS in numpy's wheels) on W_t; fp32 on a CPU only.
4. "c":        memlab's C kernels (`core.ckernels`, `memlab/data/gemv.c`) compiled here: fp32, bf16,
               int8/int4 codes (offered by a module's `gemv_weights()`); a prefill goes to torch's.
               Timed as the C step runs them: a role's matrices in one call (no Python between them).
Quantized matrices also run torch's own kernel for memlab's Int8Linear / Int4Linear ("aten"). A step
runs on one torch thread count, as set or one; "c" uses as many (it binds to torch's OpenMP runtime: one
pool). "blas" keeps numpy's pool, beside which torch's idle threads spin (a step fell to 4 tok/s from 30),
so it is timed and run with torch on one thread only. Each candidate is timed on all of a role's
matrices (the 30 layers' q/k/v) at each thread count, each repeat after a read of as many bytes as the rest
of the step's matrices (what a step reads between two uses of them: on a CPU whose last-level cache holds
most of a model some of a role stays cached, as in a step; where it holds a little, none does), with the
memory roof's read kernels beside them (`roof_gb_per_s`: a shared machine's bandwidth drifts, so a
kernel is held to the roof of the same minute); the engine times the rest of a step at each count
(`FastLlama.rest_seconds`), `settle` keeps the fastest matmuls + rest, and `core.cstep` weighs the
whole step in C against it.
Cached per machine (`kernels/<host>-<C code hash>.json`) unless other processes shared the cores meanwhile
(`measure.busy_reason`); `refresh=True` measures again;
a choice read from the cache times its chosen kernels again (`retime`), so a step adds up this minute's parts.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import asdict, dataclass, replace

import torch

from memlab.core import ceilings, ckernels, limits
from memlab.core.errors import InvalidArgumentError
from memlab.core.models import cache_dir
from memlab.core.paths import write_atomic
from memlab.core.tensors import tensor_bytes
from memlab.core.held import FLOAT_KERNELS, Gemv, QGemv, bind, wrap  # noqa: F401  (re-exported)
from memlab.core.measure import busy_reason, cpu_snapshot, repeat, torch_threads  # noqa: F401  (torch_threads: re-exported)

# how far above `KernelChoice.roof_gb_per_s` a kernel past the caches may read before the roof probe is called
# wrong: the two are timed seconds apart on a machine whose bandwidth moves that much (AVX2 EPYC, 2 vCPUs: the
# fastest such kernel read 0.67-0.88x the roof in four fresh choices; a probe counting half the bytes: 2x)
ROOF_SLACK = 1.25


@dataclass(frozen=True, slots=True)
class KernelTime:
    """One candidate kernel on all matrices of one role, timed."""

    role: str                 # "qkv", "o", "gate_up", "down", "head"
    weights: str              # "float32", "bfloat16", "Int8Linear", "Int4Linear"
    shape: tuple              # (N, K) of one matrix
    num_matrices: int
    kernel: str               # "linear", "matmul-t", "blas", "c", "aten"
    threads: int              # torch's threads while it ran (the C kernels use as many; numpy's BLAS its own pool)
    seconds: float            # all num_matrices applied to `rows` rows, median
    bytes: int                # what they read
    gb_per_s: float           # bytes / seconds / 1e9
    rows: int = 1             # activation rows per matrix (1: a decode step; k + 1: a verify of k drafts)


@dataclass(frozen=True, slots=True)
class KernelChoice:
    """The kernel each role runs and torch's threads for the whole step, from `times` and the rest of
    the step timed by the engine (`options`: every thread count tried, as (threads, matmul_s, rest_s))."""

    weights: str
    kernels: tuple            # (role, kernel) pairs
    step_threads: int         # torch's threads for the whole decode step
    matmul_s: float           # one token's matmuls under this choice (sum of the chosen times)
    rest_s: float             # the rest of a step (attention, norms, RoPE) at step_threads; nan: not timed
    options: tuple            # (threads, matmul_s, rest_s) of each thread count, the best kernels at each
    times: tuple              # every KernelTime measured (or read from the cache)
    from_cache: bool          # chosen from the cache (`retime` then times the chosen kernels again)
    roof_gb_per_s: float = float("nan")  # the best roof read (`ceilings.read_rates`) timed beside each role's `times`
    step: str = "torch"       # between the matmuls: torch's operators, or "c": the whole step in C (`core.cstep`)
    c_options: tuple = ()     # (threads, matmul_s, rest_s) of the C step at each count (none where it cannot run)
    steps: tuple = ()         # (plan, threads, step_s): whole decode steps timed under each plan (`cstep.weigh`)

    def rows(self) -> list[dict]:
        """One row per role and candidate: the table labs 01 and 04 show."""
        chosen = {(r, k, self.step_threads) for r, k in self.kernels}
        return [dict(role=t.role, shape=f"{t.shape[0]}x{t.shape[1]} x{t.num_matrices}", kernel=t.kernel,
                     threads=t.threads, MB=round(t.bytes / 1e6, 1), ms=round(t.seconds * 1e3, 2),
                     GB_per_s=round(t.gb_per_s, 1), chosen=(t.role, t.kernel, t.threads) in chosen)
                for t in self.times]


def check_request(kernels: str, compile: bool) -> None:
    """Refuse a `kernels=` request the fast path cannot run, in one line."""
    if kernels not in ("auto", *FLOAT_KERNELS):
        raise InvalidArgumentError(f"kernels must be 'auto' or one of {', '.join(FLOAT_KERNELS)}, got {kernels!r}")
    if kernels in ("blas", "c") and compile:
        raise InvalidArgumentError(f"a compiled step runs torch's kernels only, not {kernels!r}: kernels='auto' "
                                   "or a torch kernel")


def reason(kernel: str, device: torch.device, dtype: torch.dtype | None = None) -> str:
    """Why `kernel` cannot run matrices of `dtype` on `device` ("" when it can; dtype None: a
    quantized module, which "c" runs when it offers `gemv_weights()`)."""
    if kernel == "blas":
        if device.type != "cpu" or dtype != torch.float32:
            return "numpy's BLAS runs fp32 on a CPU only"
        try:
            import numpy  # noqa: F401
        except ImportError:
            return "numpy is not installed"
    if kernel == "c":
        if device.type != "cpu" or dtype not in (torch.float32, torch.bfloat16, None):
            return "memlab's C kernels run fp32, bf16, int8 and int4 on a CPU only"
        return ckernels.reason()
    return ""


def fixed(roles: dict[str, list], kernel: str) -> list[tuple[str, str]]:
    """(role, kernel) running `kernel` on every float role ("aten" on quantized ones that "c" cannot run)."""
    out = []
    for role, mats in roles.items():
        if isinstance(mats[0], torch.Tensor):
            why = reason(kernel, mats[0].device, mats[0].dtype)
            if why:
                raise InvalidArgumentError(f"kernels={kernel!r}: {why}")
            out.append((role, kernel))
        else:
            out.append((role, "c" if kernel == "c" and "c" in candidates(mats[0]) else "aten"))
    return out


def _device(m) -> torch.device:  # a tensor's device, or a quantized module's buffers'
    return m.device if isinstance(m, torch.Tensor) else next(iter(m.buffers())).device


@torch.inference_mode()
def time_role(role: str, mats: list, kernel: str, threads: int, repeats: int = 5,
              evict: torch.Tensor | None = None, rows: int = 1) -> KernelTime:
    """Time `kernel` with torch on `threads` threads over every matrix of `mats` (tensors, or quantized
    modules) applied to `rows` activation rows; `evict`: an array read before each repeat (untimed), so
    the matrices come from memory."""
    first, dev = mats[0], _device(mats[0])
    wrapped = [wrap(m, kernel) for m in mats]
    ops = [ckernels.Batch(wrapped)] if kernel == "c" else [w.forward for w in wrapped]
    if isinstance(first, torch.Tensor):
        weights, shape, dtype = str(first.dtype).removeprefix("torch."), tuple(first.shape), first.dtype
    else:
        weights, shape, dtype = type(first).__name__, (first.out_features, first.in_features), torch.float32
    x = torch.randn(1, limits.count(rows, "rows"), shape[1], dtype=dtype, device=dev)

    def run():
        for op in ops:
            op(x)
    with torch_threads(threads):
        s = repeat(run, repeats, device=dev, before=None if evict is None else evict.sum).median
    if kernel == "blas":  # numpy's threads spin a while after a call: let them park before the next timing
        time.sleep(ceilings.PARK_S)
    nbytes = tensor_bytes([t for w in wrapped for t in w.state_dict().values()])  # what the kernel reads
    return KernelTime(role, weights, shape, len(mats), kernel, threads, s, nbytes, nbytes / s / 1e9, rows)


def candidates(first) -> list[str]:
    """The kernels that can run a role whose first matrix is `first`."""
    if not isinstance(first, torch.Tensor):
        dev = _device(first)
        offers = getattr(first, "gemv_weights", lambda: None)() is not None
        return ["aten"] + (["c"] if offers and not reason("c", dev) else [])
    return [k for k in FLOAT_KERNELS if not reason(k, first.device, first.dtype)]


def thread_counts(kernel: str, device: torch.device) -> list[int]:
    """Torch thread counts to time `kernel` with: as set, and one (a CPU only); "blas" beside one only."""
    now = torch.get_num_threads()
    if kernel == "blas":
        return [1]
    return [now] if device.type != "cpu" or now == 1 else [now, 1]


def _key(role: str, mats: list, kernel: str, threads: int) -> str:
    first = mats[0]
    shape = tuple(first.shape) if isinstance(first, torch.Tensor) else (first.out_features, first.in_features)
    what = str(first.dtype) if isinstance(first, torch.Tensor) else type(first).__name__
    dev = _device(first).type
    return f"{dev}|{what}|{role}|{shape[0]}x{shape[1]}x{len(mats)}|{kernel}|{threads}"


def _cache_file():
    return cache_dir() / "kernels" / f"{socket.gethostname()}-{ckernels.key()[:8]}.json"  # new C code: timed again


def _held_bytes(mats: list) -> int:
    return tensor_bytes([t for m in mats for t in ([m] if isinstance(m, torch.Tensor) else m.state_dict().values())])


def _between(roles: dict[str, list], role: str, dev: torch.device) -> int:
    """Bytes a step reads between two uses of `role`'s matrices: every other role's (a CPU's caches only; 0 on
    a GPU, whose matrices are timed as they come). The old rule (evict all, or nothing, where the model passed
    twice the last-level cache) timed a 538 MB model warm beside a 260 MiB L3: a role read from the cache at
    45 GB/s, past the 30 GB/s roof, and a step that came out 1.6x slower than the choice predicted."""
    if dev.type != "cpu":
        return 0
    return sum(_held_bytes(ms) for r, ms in roles.items() if r != role)


def _evict_view(array: torch.Tensor, between: int) -> torch.Tensor | None:
    """The first `between` bytes of `array` (twice the last-level cache at least: past that, all is evicted)."""
    return array[:between // array.element_size()] if between >= 2**20 else None


def choose(roles: dict[str, list], *, torch_only: bool = False, refresh: bool = False,
           repeats: int = 5) -> KernelChoice:
    """The fastest (kernel, threads) for the matrices of each role (role -> its matrices, one shape), cached per
    machine. `torch_only`: torch's kernels at torch's thread count (a compiled step calls no numpy, no C)."""
    path = _cache_file()
    try:
        cache = {} if refresh or not path.exists() else json.loads(path.read_text())
    except ValueError:
        cache = {}  # unreadable: measure again
    first_role, first_mats = next(iter(roles.items()))
    dev, roof_key = _device(first_mats[0]), _key(first_role, first_mats, "roof", 0)
    reuse = roof_key in cache  # kernel times without their roof are timed again, with it
    times, hits, roofs, array = [], 0, [cache[roof_key]] if reuse else [], None
    start = cpu_snapshot()
    for role, mats in roles.items():
        timed, between = len(times) - hits, _between(roles, role, dev)
        for kernel in candidates(mats[0]):
            if torch_only and kernel in ("blas", "c"):
                continue
            for threads in thread_counts(kernel, dev)[:1 if torch_only else None]:
                key = _key(role, mats, kernel, threads) + f"|after{between >> 20}MiB"
                if reuse and key in cache:
                    hits, row = hits + 1, cache[key]
                    times.append(KernelTime(**{**row, "shape": tuple(row["shape"])}))
                    continue
                if array is None:  # read between repeats (`_between`), and the roof beside each role
                    array = torch.ones(ceilings.array_size(quick=True) // 4, device=dev)
                t = time_role(role, mats, kernel, threads, repeats, evict=_evict_view(array, between))
                cache[key] = asdict(t)
                times.append(t)
        if len(times) - hits > timed:  # the roof's read beside each role's timings; the best of them holds
            roofs.append(max(ceilings.read_rates(array, repeats).values()))
    cache[roof_key] = max(roofs)
    reason = busy_reason(start) if hits < len(times) else ""
    if reason:  # timed beside other work: used now, not kept
        print(f"kernels: {reason}: used now, not cached")
    elif hits < len(times):
        write_atomic(path, json.dumps(cache, indent=1))
    options = {}
    for n in sorted({t.threads for t in times}, reverse=True):
        at_n = [t for t in times if t.threads == n]
        if {t.role for t in at_n} == set(roles):
            options[n] = {role: min((t for t in at_n if t.role == role), key=lambda t: t.seconds) for role in roles}
    n, pick = min(options.items(), key=lambda kv: sum(t.seconds for t in kv[1].values()))
    return KernelChoice(weights=", ".join(sorted({t.weights for t in times})),
                        kernels=tuple((r, t.kernel) for r, t in pick.items()), step_threads=n,
                        matmul_s=sum(t.seconds for t in pick.values()), rest_s=float("nan"),
                        options=tuple((m, sum(t.seconds for t in p.values()), float("nan")) for m, p in options.items()),
                        times=tuple(times), from_cache=hits == len(times), roof_gb_per_s=cache[roof_key])


def settle(choice: KernelChoice, rest_s: dict[int, float]) -> KernelChoice:
    """The choice at the torch thread count whose matmuls + rest of the step (`rest_s`: seconds per
    count, timed by the engine) are fastest, each role's fastest kernel at that count."""
    options = tuple((n, mm, rest_s.get(n, float("nan"))) for n, mm, _ in choice.options)
    n, mm, rest = min(options, key=lambda o: o[1] + (o[2] if o[2] == o[2] else 0.0))
    best = {r: min((t for t in choice.times if t.role == r and t.threads == n), key=lambda t: t.seconds)
            for r, _ in choice.kernels}
    return replace(choice, kernels=tuple((r, best[r].kernel) for r, _ in choice.kernels),
                               step_threads=n, matmul_s=mm, rest_s=rest, options=options)


def retime(choice: KernelChoice, roles: dict[str, list], repeats: int = 5) -> KernelChoice:
    """A choice read from the cache, its chosen kernels timed again now with the roof's read beside them:
    the cache decides which code runs, but a shared machine's bandwidth drifts between minutes, and a
    step predicted from its parts should add up this minute's (a fresh choice is returned as it is)."""
    if not choice.from_cache:
        return choice
    n, dev = choice.step_threads, _device(next(iter(roles.values()))[0])
    array = torch.ones(ceilings.array_size(quick=True) // 4, device=dev)
    now = {(r, k): time_role(r, roles[r], k, n, repeats, evict=_evict_view(array, _between(roles, r, dev)))
           for r, k in choice.kernels}
    mm = sum(t.seconds for t in now.values())
    return replace(choice, times=tuple(now.get((t.role, t.kernel), t) if t.threads == n else t for t in choice.times),
                   matmul_s=mm, roof_gb_per_s=max(ceilings.read_rates(array, repeats).values()),
                   options=tuple((m, mm if m == n and choice.step == "torch" else s, r) for m, s, r in choice.options),
                   c_options=tuple((m, mm if m == n and choice.step == "c" else s, r) for m, s, r in choice.c_options))

