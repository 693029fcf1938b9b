"""Lab 03's figures: the TTFT waterfall, TTFT against prompt length, latency against throughput.

Each figure makes one point and its title states the finding; axes carry units.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from memlab.core.units import fmt_time


def waterfall(stages, title: str = "") -> Figure:
    """Horizontal bars, each stage starting where the previous one ended (latency.waterfall)."""
    fig, ax = plt.subplots(figsize=(9, 0.5 * len(stages) + 1.2))
    total = sum(s.duration_s for s in stages)
    for i, s in enumerate(stages):
        ax.barh(i, s.duration_s * 1e3, left=s.start_s * 1e3, color=plt.cm.tab10(i % 10))
        ax.text((s.start_s + s.duration_s) * 1e3, i, f" {fmt_time(s.duration_s)}", va="center", fontsize=8)
    ax.set_yticks(range(len(stages)), [s.name for s in stages])
    ax.invert_yaxis()
    ax.set_xlabel("time since request start (ms)")
    big = max(stages, key=lambda s: s.duration_s)
    ax.set_title(title or f"{big.name} is {big.duration_s / total:.0%} of the {fmt_time(total)} to the first token",
                 fontsize=10)
    fig.tight_layout()
    return fig


def ttft_vs_prompt(points) -> Figure:
    """Measured TTFT and prefill against prompt length, with the FLOP floor of prefill."""
    T = [p.prompt_tokens for p in points]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(T, [p.ttft_s * 1e3 for p in points], "o-", label="TTFT measured (median)")
    ax.fill_between(T, [p.ttft_min_s * 1e3 for p in points], [p.ttft_max_s * 1e3 for p in points], alpha=0.2)
    ax.plot(T, [p.prefill_s * 1e3 for p in points], "s--", label="prefill forward alone")
    ax.plot(T, [p.predicted_prefill_s * 1e3 for p in points], "k:", label="floor: 2·N·T / matmul FLOP/s")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("prompt tokens T")
    ax.set_ylabel("ms")
    ax.set_title(f"TTFT grows with the prompt: {fmt_time(points[0].ttft_s)} at {T[0]} tokens, "
                 f"{fmt_time(points[-1].ttft_s)} at {T[-1]}", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def latency_throughput(points) -> Figure:
    """Per-request tok/s (what one user sees) against total tok/s (what the machine serves)."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot([p.total_tok_per_s for p in points], [p.per_request_tok_per_s for p in points], "o-",
            label="measured")
    ax.plot([p.bound_total_tok_per_s for p in points], [p.bound_per_request_tok_per_s for p in points], "k:",
            marker="x", label="bound: max(bytes / bandwidth, FLOPs / FLOP/s) per step")
    for p in points:
        ax.annotate(f"B={p.batch_size}", (p.total_tok_per_s, p.per_request_tok_per_s), fontsize=8,
                    xytext=(4, 4), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("total decode tok/s (all requests)")
    ax.set_ylabel("per-request decode tok/s")
    a, b = points[0], points[-1]
    gain = b.total_tok_per_s / a.total_tok_per_s
    head = "Batching trades latency for throughput" if gain > 1 else "Batching did not pay off in this run"
    ax.set_title(f"{head}: B={b.batch_size} serves {gain:.1f}x the tokens, each request "
                 f"{a.per_request_tok_per_s / b.per_request_tok_per_s:.1f}x slower", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
