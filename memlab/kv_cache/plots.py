"""Lab 09's figures: TTFT split into restore and suffix prefill, the break-even over prefix length,
restore time over block size.

Each figure makes one point and its title states the finding; axes carry units. Plots never measure.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from memlab.core.units import fmt_bytes, fmt_time

COLORS = {"recompute": "tab:red", "ram": "tab:green", "disk-cold": "tab:blue", "disk-warm": "tab:cyan",
          "pinned": "tab:purple"}


def ttft_split(runs, prefix_tokens: int | None = None) -> Figure:
    """One bar per way at one prefix length: the prefix part (restore or recompute) then the suffix
    prefill; an x marks each part's prediction from the measured ceilings."""
    P = prefix_tokens or max(r.prefix_tokens for r in runs)
    rows = [r for r in runs if r.prefix_tokens == P]
    fig, ax = plt.subplots(figsize=(8, 0.55 * len(rows) + 1.4))
    for i, r in enumerate(rows):
        ax.barh(i, r.prefix_s * 1e3, color=COLORS.get(r.way, "gray"), label="prefix: restore / recompute" if i == 0 else None)
        ax.barh(i, r.suffix_s * 1e3, left=r.prefix_s * 1e3, color="lightgray", edgecolor="gray",
                label="suffix prefill + first token" if i == 0 else None)
        ax.plot(r.predicted_prefix_s * 1e3, i, "kx", label="predicted prefix part" if i == 0 else None)
        ax.text((r.prefix_s + r.suffix_s) * 1e3, i, f" {fmt_time(r.ttft_s)}", va="center", fontsize=8)
    ax.set_yticks(range(len(rows)), [r.way for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel("time to first token (ms)")
    rec = next((r for r in rows if r.way == "recompute"), None)
    best = min(rows, key=lambda r: r.ttft_s)
    if rec is not None and best is not rec:
        title = f"Reusing the {P}-token prefix ({best.way}) cuts TTFT {rec.ttft_s / best.ttft_s:.1f}x"
    else:
        title = f"At {P} prefix tokens, {best.way} gives the first token soonest"
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def breakeven(runs, lines: dict, crossovers, server_tokens, server_curves: dict, server_crossovers,
              server_name: str = "") -> Figure:
    """Left: this machine's measured prefix times per way, with their fitted lines; right: a GPU
    server's recompute and restore times from spec sheets. Dotted verticals: the crossovers."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for way, line in lines.items():
        pts = sorted((r.prefix_tokens, r.prefix_s) for r in runs if r.way == way)
        xs = np.array([p for p, _ in pts], dtype=float)
        left.plot(xs, [s * 1e3 for _, s in pts], "o", color=COLORS.get(way, "gray"), label=f"{way} (measured)")
        grid = np.linspace(xs.min(), xs.max(), 50)
        left.plot(grid, (line.intercept_s + line.slope_s_per_token * grid) * 1e3, "-", color=COLORS.get(way, "gray"),
                  alpha=0.6)
    for c in crossovers:
        if 0 < c.crossover_tokens < math.inf:
            left.axvline(c.crossover_tokens, ls=":", color=COLORS.get(c.tier, "gray"))
    left.set_xlabel("prefix tokens P")
    left.set_ylabel("prefix part of TTFT (ms)")
    left.set_yscale("log")
    always = [c.tier for c in crossovers if c.crossover_tokens == 0]
    left.set_title(f"This machine: {', '.join(always) or 'no tier'} beats recomputing at every length" if always
                   else "This machine: where restoring starts to beat recomputing", fontsize=10)
    left.legend(fontsize=7)
    styles = ["-", "--", "-.", ":"]
    for i, (name, secs) in enumerate(server_curves.items()):
        right.plot(server_tokens, secs * 1e3, styles[i % 4], color="tab:red" if name == "recompute" else None,
                   label=name if name == "recompute" else f"restore from {name}")
    flips = [c for c in server_crossovers if 0 < c.crossover_tokens <= max(server_tokens)]
    for c in flips:
        right.axvline(c.crossover_tokens, ls=":", color="gray")
        right.annotate(f"{c.tier}: {c.crossover_tokens:,.0f}", (c.crossover_tokens, right.get_ylim()[0]),
                       fontsize=7, rotation=90, va="bottom")
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("prefix tokens P")
    right.set_ylabel("ms (spec-sheet peaks)")
    right.set_title(f"{server_name}: " + (f"{flips[0].tier} beats recomputing only above "
                                          f"{flips[0].crossover_tokens:,.0f} tokens" if flips else
                                          "the tiers never cross recompute in this range"), fontsize=10)
    right.legend(fontsize=7)
    fig.tight_layout()
    return fig


def reserved_vs_used(results) -> Figure:
    """Bytes used vs reserved by contiguous and paged allocation (and paged with a shared prefix)."""
    fig, ax = plt.subplots(figsize=(8, 3.8))
    labels, used, reserved, colors = [], [], [], []
    for r in results:
        tag = f"{r.num_requests} requests" + (f", {r.shared_prefix_tokens}-token shared prefix" if r.shared_prefix_tokens else "")
        for name, value, color in (("contiguous", r.contiguous_reserved_bytes, "tab:red"),
                                   ("paged", r.unshared_paged_reserved_bytes, "tab:blue")) + \
                (((("paged + shared", r.paged_reserved_bytes, "tab:green"),) if r.shared_prefix_tokens else ())):
            labels.append(f"{name}\n{tag}")
            used.append(r.used_bytes / 2**20)
            reserved.append(value / 2**20)
            colors.append(color)
    x = np.arange(len(labels))
    ax.bar(x, reserved, color=colors, alpha=0.5, label="reserved")
    ax.bar(x, used, width=0.4, color="black", alpha=0.7, label="used by the requests' tokens")
    ax.set_xticks(x, labels, fontsize=7)
    ax.set_ylabel("KV cache (MiB)")
    first = results[0]
    ax.set_title(f"Contiguous allocation leaves {first.contiguous_waste:.0%} of its reservation empty; "
                 f"blocks of {first.block_tokens} tokens leave {first.paged_waste:.0%}", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def block_sweep(points, fits: dict, prefix_tokens: int | None = None) -> Figure:
    """Restore time over block size at one prefix length, per tier (colour) and layout (marker), log-log,
    with each tier's fitted line (latency x transfers + bytes / rate) and the recompute time."""
    P = prefix_tokens or max(p.prefix_tokens for p in points)
    rows = [p for p in points if p.prefix_tokens == P]
    fig, ax = plt.subplots(figsize=(8, 4.8))
    colors = {**COLORS, "disk-cold-sequential": "tab:olive"}
    sizes = np.geomspace(min(p.block_bytes for p in rows) / 1.5, max(p.block_bytes for p in rows) * 1.5, 60)
    for tier, f in fits.items():
        pts = [p for p in rows if p.tier == tier]
        for layout, marker in (("per-layer", "o"), ("contiguous", "s")):
            mine = [p for p in pts if p.layout == layout]
            ax.plot([p.block_bytes for p in mine], [p.restore_best_s * 1e3 for p in mine], marker, ls="none",
                    color=colors.get(tier, "gray"), label=f"{tier}, {layout}")
        nbytes = pts[0].num_bytes
        ax.plot(sizes, [(nbytes / b * f.latency_s + nbytes / f.rate_bytes_per_s) * 1e3 for b in sizes], "-",
                color=colors.get(tier, "gray"), alpha=0.5, lw=1)
    rec = rows[0].recompute_best_s
    ax.axhline(rec * 1e3, color="tab:red", ls="--", label=f"recompute the {P} tokens")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("bytes per transfer (one block)")
    ax.set_ylabel(f"restore {P} prefix tokens (ms, fastest repeat)")
    slower = [p for p in rows if p.restore_best_s > rec]
    worst = max(rows, key=lambda p: p.restore_best_s)
    ax.set_title(f"{worst.tier} in {worst.layout} blocks of {fmt_bytes(worst.block_bytes)}: {worst.num_transfers} "
                 f"transfers take {fmt_time(worst.restore_best_s)}" + (f", {len(slower)} restores slower than recomputing"
                                                                        if slower else ""), fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig
