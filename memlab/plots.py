"""Figures from result records (every lab). Functions take records, return a Figure, never measure.

Each figure makes one point and its title states the finding; axes carry units.
"""

from __future__ import annotations


import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from .units import fmt_time


def token_latency(result) -> Figure:
    """Bar per token: the first bar is TTFT (tokenize + prefill + first sample), then each ITL gap."""
    times_ms = [result.ttft_s * 1e3] + [x * 1e3 for x in result.itl_s]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.bar([0], times_ms[:1], color="tab:orange", label=f"first token (TTFT {fmt_time(result.ttft_s)})")
    ax.bar(range(1, len(times_ms)), times_ms[1:], color="tab:blue",
           label=f"decode steps (TPOT {fmt_time(result.tpot_s)})")
    ax.set_xlabel("token index")
    ax.set_ylabel("time to produce this token (ms)")
    ax.set_title(f"The first token waits for the whole prompt: TTFT {fmt_time(result.ttft_s)} vs "
                 f"{result.decode_tok_per_s:.1f} tok/s after it\n"
                 f"{result.model_name}, {result.prompt_tokens}-token prompt, {result.device} {result.dtype}",
                 fontsize=10)
    ax.legend()
    fig.tight_layout()
    return fig


# --- lab 08: memory processing (mempipe, offload) ---------------------------------------------

def step_shares(profiles) -> Figure:
    """Stacked share of one decode step per part (prep, comp, ret, apply, other) vs context length."""
    colors = {"prep": "tab:purple", "comp": "tab:red", "ret": "tab:orange", "apply": "tab:green",
              "other": "tab:gray"}
    fig, ax = plt.subplots(figsize=(8, 4))
    labels = [str(p.context_tokens) for p in profiles]
    bottom = [0.0] * len(profiles)
    for part, color in colors.items():
        vals = [100 * p.shares()[part] for p in profiles]
        ax.bar(labels, vals, bottom=bottom, color=color, label=part)
        bottom = [b + v for b, v in zip(bottom, vals)]
    first, last = profiles[0], profiles[-1]
    ax.set_xlabel("context (tokens already cached)")
    ax.set_ylabel("share of one decode step (%)")
    ax.set_title(f"Memory processing grows with context: {100 * first.memory_share:.0f}% of the step at "
                 f"{first.context_tokens} tokens, {100 * last.memory_share:.0f}% at {last.context_tokens}\n"
                 f"{first.model_name}, page {first.page_tokens}, top {first.selected_pages} pages per KV head",
                 fontsize=10)
    ax.legend(loc="center left", bbox_to_anchor=(1, 0.5))
    fig.tight_layout()
    return fig


def kernel_roofline(points, peak_bytes_per_s: float, peak_flop_per_s: float) -> Figure:
    """Measured kernels (achieved FLOP/s vs FLOP/byte) under the roofline min(peak, I * bandwidth)."""
    import numpy as np
    fig, ax = plt.subplots(figsize=(7, 4))
    xs = np.logspace(-3, 3, 200)
    ax.loglog(xs, np.minimum(peak_flop_per_s, xs * peak_bytes_per_s), "k-",
              label=f"roofline: {peak_bytes_per_s / 1e9:.1f} GB/s, {peak_flop_per_s / 1e9:.0f} GFLOP/s")
    for p in points:
        ax.loglog([p.intensity_flop_per_byte], [p.achieved_flop_per_s], "o", label=p.name)
    ax.set_xlabel("arithmetic intensity (FLOP/byte)")
    ax.set_ylabel("achieved FLOP/s")
    ax.set_title("Scoring and top-k sit far left of the ridge: bandwidth-bound", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def offload_model(results) -> Figure:
    """Modelled (spec-sheet) decode step: GPU-only vs the best GPU/FPGA assignment, per context."""
    fig, ax = plt.subplots(figsize=(8, 4))
    labels = [f"B={r.batch_size}\n{r.context_tokens // 1024}K" for r in results]
    xs = range(len(results))
    ax.bar([x - 0.2 for x in xs], [1e3 * r.gpu_only.total_s for r in results], 0.4, label="GPU only")
    ax.bar([x + 0.2 for x in xs], [1e3 * r.best.total_s for r in results], 0.4, label="best assignment")
    for x, r in zip(xs, results):
        tag = "".join("F" if d == "fpga" else "G" for d in r.best.devices)
        ax.annotate(f"{tag}\n{r.speedup:.2f}x", (x + 0.2, 1e3 * r.best.total_s), ha="center",
                    va="bottom", fontsize=7)
    ax.set_xticks(list(xs), labels)
    ax.set_ylabel("modelled time per decode step (ms)")
    ax.set_title(f"A model from spec sheets, not a measurement: {results[0].shape_name}\n"
                 "(letters: device of prep, comp, ret, apply; G = GPU, F = FPGA)", fontsize=10)
    ax.legend()
    fig.tight_layout()
    return fig
