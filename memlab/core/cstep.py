"""How a fast decode step runs: each matmul's kernel, and torch's operators or one C call between them
(labs 01 and 04, `memlab bench`).

A batch-1 decode step is its matmuls (the weights' bytes over a kernel's rate: `core.kernels`) plus
the rest: per layer a few dozen small operations (norms, RoPE, the cache write, attention, SiLU,
residual adds), each of which costs torch microseconds of Python and dispatch whatever its size. On
a fast CPU the rest is small beside the matmuls; on a slow one it can match them. `memlab/data/step.c`
does the whole step (the same arithmetic, B sequences at once) in one call over the same weights and cache, with
memlab's C kernels (`core.ckernels`) for the matmuls, so its rest costs what its bytes and FLOPs cost.
Its activations are fp32 (a bf16 model's weights, norms and cache stay bf16, widened as they are read),
so a bf16 model's logits differ from torch's bf16 step, which rounds every activation to bf16.

`install` picks for a `FastLlama`: each role's fastest kernel and torch thread count (`kernels.choose`,
`kernels.settle`, the rest timed by the engine), and, where the C step can run, the C step when its
matmuls (the C kernels' own times) + its rest (the step with its matmuls left out, timed here)
predict a shorter step. The choice says which (`KernelChoice.step`, `c_options`).
"""

from __future__ import annotations

import ctypes
from dataclasses import replace

import torch

from memlab.core import ckernels, held
from memlab.core import kernels as kernel_choice
from memlab.core.errors import InvalidArgumentError
from memlab.core.measure import release_freed_memory, repeat

STEPS = ("auto", "torch", "c")
P, I, Fl = ctypes.c_void_p, ctypes.c_int, ctypes.c_float


class _Layer(ctypes.Structure):
    _fields_ = [("qkv", ckernels.Mat), ("o", ckernels.Mat), ("gate_up", ckernels.Mat), ("down", ckernels.Mat),
                ("ln1", P), ("ln2", P), ("eps1", Fl), ("eps2", Fl), ("kc", P), ("vc", P)]


class _Model(ctypes.Structure):
    _fields_ = [("L", I), ("d", I), ("H", I), ("KV", I), ("D", I), ("F", I), ("C", I), ("embed", P), ("norm", P),
                ("cos", P), ("sin", P), ("erow", ctypes.c_int64), ("ecol", ctypes.c_int64), ("eps", Fl),
                ("layers", ctypes.POINTER(_Layer)), ("head", ckernels.Mat), ("half", I)]


def reason(fast) -> str:
    """Why the C step cannot run this FastLlama ("" when it can)."""
    if fast.device.type != "cpu" or fast.dtype not in (torch.float32, torch.bfloat16):
        return "the C step runs fp32 or bf16 models on a CPU only"
    if any(b is not None for w in fast.layers for b in w["bias"].values()):
        return "the C step adds no linear biases (this model's q/k/v have them)"
    mats = [w[r] for w in fast.layers for r in ("qkv", "o", "gate_up", "down")] + [fast.lm_head]
    if any("c" not in kernel_choice.candidates(m) for m in mats):
        return "memlab's C kernels cannot run every matrix here: " + (ckernels.reason() or "a quantized layer offers no C layout")
    return ""


def _shape(m) -> tuple:
    return tuple(m.shape) if isinstance(m, torch.Tensor) else (m.out_features, m.in_features)


class CStep:
    """One FastLlama's decode step as one call of `step_f32` (memlab/data/step.c). `bare=True`: the
    matrices' shapes only, to time the step with its matmuls left out (`rest_seconds`). Built where
    `reason(fast)` found nothing against it; with `bare=False`, after each matrix is held for "c"."""

    def __init__(self, fast, bare: bool = False):
        self.lib, self.fast = ckernels.library(), fast
        self.lib.step_f32.argtypes = [ctypes.POINTER(_Model), P, I, I, P, I, I, I]
        self.lib.step_f32.restype = I

        def mat(m):
            return ckernels.mat(shape=_shape(m)) if bare else ckernels.mat(m)
        self.layers = (_Layer * len(fast.layers))(*[
            _Layer(mat(w["qkv"]), mat(w["o"]), mat(w["gate_up"]), mat(w["down"]), w["ln1"].data_ptr(),
                   w["ln2"].data_ptr(), w["eps1"], w["eps2"], kc.data_ptr(), vc.data_ptr())
            for w, kc, vc in zip(fast.layers, fast.k, fast.v)])
        for t in (fast.cos, fast.sin, fast.cache_k, fast.cache_v):
            if not t.is_contiguous():
                raise InvalidArgumentError("the C step needs contiguous RoPE tables and cache")
        self.model = _Model(len(fast.layers), fast.embed.shape[1], fast.num_heads, fast.num_kv_heads, fast.head_dim,
                            fast.layers[0]["ffn"], fast.max_len, fast.embed.data_ptr(), fast.final_norm.data_ptr(),
                            fast.cos.data_ptr(), fast.sin.data_ptr(), *fast.embed.stride(), fast.eps, self.layers,
                            mat(fast.lm_head), int(fast.dtype == torch.bfloat16))
        self.vocab = _shape(fast.lm_head)[0]

    def __call__(self, ids: torch.Tensor, position: int, threads: int = 0, skip_matmuls: bool = False,
                 verify: bool = False) -> torch.Tensor:
        """Logits (B, V), fp32, of the token ids (B, 1) at `position`; their k and v are written into the cache.
        `verify`: ids (1, T) are T tokens of sequence 0 at positions position .. position + T - 1 (logits (T, V))."""
        tokens = ids.reshape(-1).to(torch.int64).contiguous()
        last = position + len(tokens) - 1 if verify else position
        if position < 0 or last >= self.fast.max_len:
            raise InvalidArgumentError(f"position {last} is outside the cache's {self.fast.max_len} positions")
        if verify and ids.dim() == 2 and ids.shape[0] != 1:
            raise InvalidArgumentError(f"a verify feeds one sequence's tokens (1, T), got {tuple(ids.shape)}")
        if not len(tokens) or (not verify and len(tokens) > self.fast.batch_size):
            raise InvalidArgumentError(f"{len(tokens)} sequences, the cache holds {self.fast.batch_size}")
        if tokens.min() < 0 or tokens.max() >= self.fast.embed.shape[0]:  # C would read outside the embedding
            raise InvalidArgumentError(f"token ids must lie in 0..{self.fast.embed.shape[0] - 1}")
        logits = torch.empty(len(tokens), self.vocab)
        rc = self.lib.step_f32(ctypes.byref(self.model), tokens.data_ptr(), len(tokens), position, logits.data_ptr(),
                               threads or torch.get_num_threads(), int(skip_matmuls), int(verify))
        if rc:
            raise MemoryError("the C step could not allocate its scratch space")
        return logits


def rest_seconds(fast, threads: int, repeats: int = 7) -> float:
    """The C step's time with its matmuls left out, on `threads` threads, halfway through the cache."""
    step, ids = CStep(fast, bare=True), torch.zeros(fast.batch_size, 1, dtype=torch.long)
    return repeat(lambda: step(ids, fast.max_len // 2, threads, skip_matmuls=True), repeats).median


def consider(choice: kernel_choice.KernelChoice, rest_s: dict[int, float],
             force: bool = False) -> kernel_choice.KernelChoice:
    """The choice with the C step where its matmuls (every role's "c" kernel at a thread count) + its
    rest (`rest_s` per count) are faster than the torch step's (or always: `force`), at its fastest
    count; `c_options` records each count as (threads, matmul_s, rest_s)."""
    options = []
    for n, rest in rest_s.items():
        c = {t.role: t for t in choice.times if t.kernel == "c" and t.threads == n}
        if {r for r, _ in choice.kernels} <= set(c):
            options.append((n, sum(t.seconds for t in c.values()), rest))
    choice = replace(choice, c_options=tuple(options))
    if not options:
        return choice
    n, mm, rest = min(options, key=lambda o: o[1] + o[2])
    torch_s = choice.matmul_s + (choice.rest_s if choice.rest_s == choice.rest_s else 0.0)
    if mm + rest >= torch_s and not force:
        return choice
    return replace(choice, step="c", kernels=tuple((r, "c") for r, _ in choice.kernels), step_threads=n,
                   matmul_s=mm, rest_s=rest)


def plans(choice: kernel_choice.KernelChoice, roles: dict[str, list]) -> dict[str, kernel_choice.KernelChoice]:
    """The whole-step plans `weigh` times: "parts" (each role's fastest kernel, from the parts), "linear"
    (torch's F.linear on every float matrix, its own kernel on a quantized one) at its fastest thread
    count, and "c" (the whole step in C) where it can run; the same plan twice is timed once."""
    out, torch_step = {}, choice
    if choice.step == "c":  # the parts' torch step, as `kernel_choice.settle` left it before the C step
        torch_step = kernel_choice.settle(replace(choice, step="torch"), {n: r for n, _, r in choice.options})
    out["parts"] = torch_step
    linear = {r: "linear" if isinstance(ms[0], torch.Tensor) else "aten" for r, ms in roles.items()}
    at = {}
    for n, _, rest in choice.options:
        times = {t.role: t.seconds for t in choice.times if t.threads == n and linear.get(t.role) == t.kernel}
        if set(times) == set(roles):
            at[n] = (sum(times.values()), rest)
    if at:
        n, (mm, rest) = min(at.items(), key=lambda kv: kv[1][0] + (kv[1][1] if kv[1][1] == kv[1][1] else 0.0))
        out["linear"] = replace(torch_step, kernels=tuple(linear.items()), step_threads=n, matmul_s=mm, rest_s=rest)
    if choice.c_options:
        n, mm, rest = min(choice.c_options, key=lambda o: o[1] + o[2])
        out["c"] = replace(choice, step="c", kernels=tuple((r, "c") for r in roles), step_threads=n, matmul_s=mm,
                           rest_s=rest)
    seen, unique = set(), {}
    for name, plan in out.items():
        key = (plan.kernels, plan.step, plan.step_threads)
        if key not in seen:
            seen.add(key)
            unique[name] = plan
    return unique


def _apply(fast, model, roles: dict[str, list], pairs, threads: int, step: str) -> None:
    """Hold each role's matrices for its kernel (from the matrices `roles` holds as the model had them:
    a plan tried before leaves nothing behind) and run the step through torch or in C."""
    for role, kernel in pairs:  # one matrix at a time: the layout it replaces is freed before the next is made
        slots = [(fast, "lm_head", [model.lm_head])] if role == "head" else [(w, role, w["mods"][role]) for w in fast.layers]
        for (owner, key, mods), m in zip(slots, roles[role]):
            if kernel != "aten":
                m = kernel_choice.bind([m], kernel, [mods])[0]
            elif isinstance(m, torch.Tensor):
                held.point(mods, m)  # the modules leave the layout a plan tried before
            if key == "lm_head":
                fast.lm_head = m
            else:
                owner[key] = m
    fast.threads = 0 if threads == torch.get_num_threads() else threads
    fast.cstep = CStep(fast) if step == "c" else None


def weigh(fast, model, choice: kernel_choice.KernelChoice, roles: dict[str, list],
          repeats: int = 7) -> kernel_choice.KernelChoice:
    """The plan (`plans`) whose whole decode step, timed here halfway through the cache, is fastest: parts
    timed apart do not always add up to a step (on an AVX-512 Xeon with a 260 MiB L3, F.linear everywhere
    decoded at 1.1-1.3x the step built from each role's fastest part). `steps` records every plan's time."""
    options, ids = plans(choice, roles), torch.zeros(fast.batch_size, 1, dtype=torch.long, device=fast.device)
    timed = []
    for name, plan in options.items():
        _apply(fast, model, roles, plan.kernels, plan.step_threads, plan.step)
        fast.step(ids, fast.max_len // 2)  # first call: the C step's scratch, torch's pools
        timed.append((name, plan.step_threads, repeat(lambda: fast.step(ids, fast.max_len // 2), repeats).median))
    best = min(timed, key=lambda t: t[2])[0]
    return replace(options[best], steps=tuple(timed))


def install(fast, model, kernels: str, step: str, torch_only: bool, refresh: bool) -> None:
    """Measure (or read from the cache) each role's fastest kernel, or take `kernels` for all; weigh the
    whole steps those parts suggest (`weigh`) and keep the fastest; hold the float matrices in its
    layout, pointing the model's own modules at views of those bytes (no byte held twice); and run the
    step in C where `step` asks for it or ("auto") where it measures faster.
    `torch_only`: a compiled step (torch's kernels at torch's thread count, no C, nothing weighed)."""
    if step not in STEPS:
        raise InvalidArgumentError(f"step must be one of {', '.join(STEPS)}, got {step!r}")
    why = "a compiled step runs torch's kernels only" if torch_only else reason(fast)
    if step == "c" and (why or kernels not in ("auto", "c")):
        raise InvalidArgumentError(f"step='c': {why or 'its matmuls run memlab C kernels: kernels=auto or c'}")
    def own(m):  # a float matrix as a tensor of its own over the same bytes: `bind` re-points the model's
        return m.detach() if isinstance(m, torch.Tensor) else m  # Parameters, and a plan tried leaves them moved
    roles = {r: [own(w[r]) for w in fast.layers] for r in ("qkv", "o", "gate_up", "down")}
    roles["head"] = [own(fast.lm_head)]
    if kernels != "auto":
        pairs = kernel_choice.fixed(roles, kernels)
        _apply(fast, model, roles, pairs, 1 if kernels == "blas" else torch.get_num_threads(), "c" if step == "c" else "torch")
        del roles
        release_freed_memory()  # the heap pages freed while matrices were laid out (160 MB for the 135M model)
        return
    choice = kernel_choice.choose(roles, torch_only=torch_only, refresh=refresh)
    if not torch_only:  # the rest of a step, timed at each thread count (even one: labs predict a step from it)
        choice = kernel_choice.settle(choice, {n: fast.rest_seconds(n) for n, _, _ in choice.options})
        if not why and step != "torch":
            choice = consider(choice, {n: rest_seconds(fast, n) for n, _, _ in choice.options}, step == "c")
        if step == "auto":
            choice = weigh(fast, model, choice, roles)
    choice = kernel_choice.retime(choice, roles)
    fast.kernels = choice
    _apply(fast, model, roles, choice.kernels, choice.step_threads, choice.step)
    del roles
    release_freed_memory()
