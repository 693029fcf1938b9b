"""Lab 03's GPU column: TTFT with the weights resident in VRAM, beside the CPU's numbers.

`sweep` loads the model resident on the lab's DEVICE (`hardware.resolve_device`: "auto" is cuda,
else Apple's mps, else cpu) and runs the same `latency.prompt_sweep` as the CPU; on the CPU it
measures nothing and says why the column is absent. `beside` joins both sweeps into one table.
`first_tokens` gives the greedy first token per prompt length, so a lab can check that moving the
weights changed the speed and not the answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from memlab.core import generation, hardware, loading, models
from memlab.core.text import prompt_ids
from memlab.ttft import latency

GPU_ABSENT = ("GPU column absent: DEVICE resolved to 'cpu' (torch sees no CUDA GPU and no Apple mps here), so "
              "nothing was measured in VRAM. On a machine with one, this table shows TTFT with the weights "
              "resident in VRAM beside the CPU's.")


@dataclass(frozen=True, slots=True)
class GPUSweep:
    """TTFT against prompt length with the weights in VRAM (empty where there is no GPU)."""

    device: str                  # what DEVICE resolved to
    points: tuple                # tuple[latency.TTFTPoint, ...]; () on the CPU
    first_token_ids: tuple       # greedy first token per prompt length; () on the CPU
    absent: str = ""             # why there is no GPU column ("" when there is one)


def first_tokens(loaded, prompt_tokens) -> list[int]:
    """The greedy first token of `latency.prompt_sweep`'s prompt of each length (same ids)."""
    return [generation.generate(loaded, prompt_ids(loaded.tokenizer, T), max_new_tokens=1).token_ids[-1]
            for T in prompt_tokens]


def sweep(model: str = models.DEFAULT_MODEL, prompt_tokens=(16, 256, 1024), device: str = "auto",
          repeats: int = 3, ceilings=None, dtype: str = "fp32") -> GPUSweep:
    """Load `model` resident on `device` and sweep TTFT over `prompt_tokens` (a warm-up call per
    length, then `repeats` timed ones); the model is freed afterwards. On the CPU: an empty sweep.
    `ceilings` gives each point its FLOP floor from the GPU's roofs (CUDA records only)."""
    dev = hardware.resolve_device(device)
    if dev.type == "cpu":
        return GPUSweep(str(dev), (), (), GPU_ABSENT)
    loaded = loading.load(model, "resident", device=str(dev), dtype=dtype)
    try:
        use = ceilings if dev.type == "cuda" and ceilings is not None and ceilings.vram_gb_per_s > 0 else None
        points = latency.prompt_sweep(loaded, list(prompt_tokens), repeats=repeats, ceilings=use)
        return GPUSweep(str(dev), tuple(points), tuple(first_tokens(loaded, prompt_tokens)))
    finally:
        loaded.release()


def beside(cpu_points, gpu: GPUSweep) -> list[dict]:
    """One row per prompt length: CPU TTFT and prefill, and the GPU's where there is one (seconds)."""
    by_t = {p.prompt_tokens: p for p in gpu.points}
    rows = []
    for p in cpu_points:
        row = {"prompt_tokens": p.prompt_tokens, "cpu_ttft_s": p.ttft_s, "cpu_prefill_s": p.prefill_s}
        g = by_t.get(p.prompt_tokens)
        if g is not None:
            row |= {f"{gpu.device}_ttft_s": g.ttft_s, f"{gpu.device}_prefill_s": g.prefill_s,
                    "ttft_cpu_over_gpu": p.ttft_s / g.ttft_s}
        rows.append(row)
    return rows
