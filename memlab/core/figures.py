"""Figures two or more labs share (the kernel table of labs 01 and 04). Functions take records, return a Figure, never measure.

Each figure makes one point and its title states the finding; axes carry units.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.figure import Figure


def kernel_rates(choice, roof_gb_per_s: float, title: str = "") -> Figure:
    """Bars per decode-matmul role: the GB/s each candidate kernel streamed (`core.kernels`), the chosen
    one solid, beside the memory roof. Labs 01 (fp32) and 04 (every precision)."""
    roles = [r for r, _ in choice.kernels]
    chosen = {(r, k, choice.step_threads) for r, k in choice.kernels}
    cands = sorted({(t.kernel, t.threads) for t in choice.times})
    fig, ax = plt.subplots(figsize=(8, 3.8))
    width = 0.8 / max(len(cands), 1)
    for j, (kernel, threads) in enumerate(cands):
        rates = {t.role: t.gb_per_s for t in choice.times if (t.kernel, t.threads) == (kernel, threads)}
        xs = [i + j * width for i, r in enumerate(roles) if r in rates]
        bars = ax.bar(xs, [rates[r] for r in roles if r in rates], width,
                      label=f"{kernel}, {threads} torch thread{'s' if threads != 1 else ''}")
        for b, r in zip(bars, [r for r in roles if r in rates]):
            b.set_alpha(1.0 if (r, kernel, threads) in chosen else 0.3)
    ax.axhline(roof_gb_per_s, color="black", ls="--", label=f"memory roof {roof_gb_per_s:.1f} GB/s")
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(roles))], roles)
    ax.set_ylabel("weights streamed (GB/s)")
    rate = sum(t.bytes for t in choice.times if (t.role, t.kernel, t.threads) in chosen) / choice.matmul_s / 1e9
    ax.set_title(title or f"The same bytes, read by different code: the chosen kernels (solid) stream "
                 f"{rate:.1f} GB/s, {rate / roof_gb_per_s:.0%} of the roof", fontsize=10)
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    return fig
