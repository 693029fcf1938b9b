"""Lab 04's figures: bytes, speed and quality of each variant; what fits where.

Each figure makes one point and its title states the finding; axes carry units.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.figure import Figure


def quant_tradeoff(results) -> Figure:
    """One figure, three views of the same variants: bytes vs decode tok/s, bytes vs perplexity,
    decode tok/s vs perplexity. Only variants that ran are drawn; byte axes are log scale."""
    rows = [r for r in results if r.is_available]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    views = [("resident_bytes", "decode_tok_per_s", "weights in memory (MiB, log)", "decode (tok/s)"),
             ("resident_bytes", "perplexity", "weights in memory (MiB, log)", "perplexity (lower is better)"),
             ("decode_tok_per_s", "perplexity", "decode (tok/s)", "perplexity (lower is better)")]
    for ax, (x, y, xl, yl) in zip(axes, views):
        for i, r in enumerate(rows):
            xv = getattr(r, x) / 2**20 if x.endswith("bytes") else getattr(r, x)
            ax.scatter(xv, getattr(r, y), s=60, color=f"C{i}", zorder=3)
            ax.annotate(r.variant, (xv, getattr(r, y)), textcoords="offset points", xytext=(5, 4), fontsize=8)
        if x.endswith("bytes"):
            ax.set_xscale("log")
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        ax.grid(alpha=0.3)
    fp32 = next((r for r in rows if r.variant == "fp32"), None)
    best = max(rows, key=lambda r: r.decode_tok_per_s)
    title = "Fewer bytes per weight: size, speed and quality of each variant"
    if fp32 is not None:
        title = (f"{best.variant} decodes {best.decode_tok_per_s / fp32.decode_tok_per_s:.1f}x fp32's speed in "
                 f"{best.resident_bytes / fp32.resident_bytes:.0%} of its bytes, at perplexity "
                 f"{best.perplexity:.2f} vs {fp32.perplexity:.2f}")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def quant_roofline(results, bandwidth_bytes_per_s: float) -> Figure:
    """Each variant's decode tok/s against the bound bandwidth / streamed bytes (the dashed line)."""
    rows = [r for r in results if r.is_available and r.streamed_bytes]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    xs = [r.streamed_bytes / 2**20 for r in rows]
    lo, hi = min(xs) / 1.5, max(xs) * 1.5
    grid = [lo * (hi / lo) ** (i / 50) for i in range(51)]
    ax.plot(grid, [bandwidth_bytes_per_s / (g * 2**20) for g in grid], "--", color="gray",
            label=f"bound: {bandwidth_bytes_per_s / 1e9:.1f} GB/s / bytes per token")
    for i, r in enumerate(rows):
        ax.scatter(r.streamed_bytes / 2**20, r.decode_tok_per_s, s=60, color=f"C{i}", zorder=3)
        ax.annotate(f"{r.variant} ({r.decode_tok_per_s * r.streamed_bytes / bandwidth_bytes_per_s:.0%})",
                    (r.streamed_bytes / 2**20, r.decode_tok_per_s), textcoords="offset points",
                    xytext=(5, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("weight bytes read per decoded token (MiB, log)")
    ax.set_ylabel("decode (tok/s, log)")
    shares = [r.decode_tok_per_s * r.streamed_bytes / bandwidth_bytes_per_s for r in rows]
    ax.set_title(f"Variants decode at {min(shares):.0%}-{max(shares):.0%} of their bandwidth bound "
                 "(share in brackets)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return fig


def fits_heatmap(table, precision: str | None = None) -> Figure:
    """Models (rows) x devices (columns): the first of the table's precisions, in the order `fits.fits_table`
    was given them (widest first: fp32, bf16, int8, int4[, q4_0]), that fits. Blank = none fits."""
    import numpy as np
    order = list(dict.fromkeys(table["precision"]))
    if precision is not None:
        order = [precision]
    models = list(dict.fromkeys(table["model"]))
    devices = list(dict.fromkeys(table["device"]))
    grid = np.full((len(models), len(devices)), np.nan)
    for (m, d), g in table.groupby(["model", "device"], sort=False):
        fits = [order.index(p) for p, ok in zip(g["precision"], g["fits"]) if ok and p in order]
        if fits:
            grid[models.index(m), devices.index(d)] = min(fits)
    fig, ax = plt.subplots(figsize=(max(8, 0.32 * len(devices) + 3), 0.45 * len(models) + 2.8))
    cmap = plt.get_cmap("viridis_r", len(order))
    im = ax.imshow(grid, cmap=cmap, vmin=-0.5, vmax=len(order) - 0.5, aspect="auto")
    ax.set_xticks(range(len(devices)), devices, rotation=75, ha="right", fontsize=7)
    ax.set_yticks(range(len(models)), models, fontsize=8)
    cbar = fig.colorbar(im, ax=ax, ticks=range(len(order)))
    cbar.ax.set_yticklabels(order)
    cbar.set_label("widest precision that fits")
    ax.set_title("Big models fit one device only at 4 bits, or not at all "
                 "(weights + KV + activations vs memory capacity; blank = does not fit)", fontsize=9)
    fig.tight_layout()
    return fig


def fast_vs_eager(results, fast_rows) -> Figure:
    """Each precision's decode tok/s as a share of its bandwidth bound, through transformers' modules
    (eager) and through the fast path, side by side: what per-operator overhead costs each one."""
    import numpy as np
    eager = {r.variant: r for r in results if r.is_available}
    rows = [r for r in fast_rows if r.variant in eager]
    x = np.arange(len(rows))
    eager_share = [eager[r.variant].decode_tok_per_s / r.bound_tok_per_s for r in rows]
    fig, ax = plt.subplots(figsize=(8, 3.8))
    ax.bar(x - 0.2, eager_share, 0.4, label="eager (transformers modules)", color="C7")
    ax.bar(x + 0.2, [r.of_bound for r in rows], 0.4, label="fast path (memlab.core.fastpath)", color="C0")
    for i, r in enumerate(rows):
        ax.annotate(f"{r.decode_tok_per_s:.0f} tok/s", (i + 0.2, r.of_bound), ha="center",
                    textcoords="offset points", xytext=(0, 3), fontsize=8)
    ax.axhline(1.0, color="k", ls="--", lw=1, label="bound: bandwidth / bytes per token")
    ax.set_xticks(x, [r.variant for r in rows])
    ax.set_ylabel("decode tok/s / its own bound")
    ax.set_ylim(0, 1.15)
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(axis="y", alpha=0.3)
    best = max(rows, key=lambda r: r.of_bound)
    ax.set_title(f"Each precision's share of its bound, eager vs fast path (closest: {best.variant} fast, "
                 f"{best.of_bound:.0%})", fontsize=10)
    fig.tight_layout()
    return fig
