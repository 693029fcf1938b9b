"""Lab 08's figures: the four steps' shares, the index kernels on a roofline, the GPU/FPGA offload model.

Each figure makes one point and its title states the finding; axes carry units.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.figure import Figure


def step_shares(profiles) -> Figure:
    """Left: stacked share of one decode step per part vs context. Right: the parts in ms."""
    colors = {"prep": "tab:purple", "comp": "tab:red", "ret": "tab:orange", "apply": "tab:green",
              "other": "tab:gray"}
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    labels = [str(p.context_tokens) for p in profiles]
    bottom = [0.0] * len(profiles)
    for part, color in colors.items():
        vals = [100 * p.shares()[part] for p in profiles]
        ax.bar(labels, vals, bottom=bottom, color=color, label=part)
        bottom = [b + v for b, v in zip(bottom, vals)]
        ax2.plot(labels, [1e3 * getattr(p, part + "_s") for p in profiles], "o-", color=color, label=part)
    ax2.plot(labels, [1e3 * p.dense_step_s for p in profiles], "k--", label="dense step (transformers)")
    first, last = profiles[0], profiles[-1]
    verb = "grows" if last.memory_share > first.memory_share else "does not grow"
    ax.set_xlabel("context (tokens already cached)")
    ax.set_ylabel("share of one decode step (%)")
    ax2.set_xlabel("context (tokens already cached)")
    ax2.set_ylabel("median time per decode step (ms)")
    ax2.set_yscale("log")
    ax2.legend(fontsize=8, loc="center left", bbox_to_anchor=(1, 0.5))  # one legend, both panels
    fig.suptitle(f"Memory processing {verb} with context: {100 * first.memory_share:.0f}% of the step at "
                 f"{first.context_tokens} tokens, {100 * last.memory_share:.0f}% at {last.context_tokens}\n"
                 f"{first.model_name}, page {first.page_tokens}, top {first.selected_pages} pages per KV head",
                 fontsize=10)
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
    ridge = peak_flop_per_s / peak_bytes_per_s
    left = all(p.intensity_flop_per_byte < ridge for p in points)
    ax.set_title(f"Ridge at {ridge:.1f} FLOP/B: " + ("every kernel sits left of it, bandwidth-bound"
                 if left else "not every kernel is left of it"), fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def offload_model(results, title: str = "") -> Figure:
    """Modelled (spec-sheet) decode step, GPU-only vs the best GPU/FPGA assignment, split into the
    rest of the model, the four memory-processing steps and PCIe transfers."""
    fig, ax = plt.subplots(figsize=(8, 4))
    labels = [f"B={r.batch_size}\n{r.context_tokens // 1024}K" for r in results]
    for off, key, hatch in ((-0.2, "gpu_only", ""), (0.2, "best", "//")):
        for x, r in enumerate(results):
            a = getattr(r, key)
            parts = (1e3 * a.rest_s, 1e3 * sum(a.step_s), 1e3 * a.transfer_s)
            bottom = 0.0
            for val, color, name in zip(parts, ("tab:gray", "tab:red", "tab:blue"),
                                        ("rest of the model", "memory processing", "PCIe")):
                ax.bar(x + off, val, 0.4, bottom=bottom, color=color, hatch=hatch,
                       label=f"{name} ({'GPU only' if key == 'gpu_only' else 'best'})" if x == 0 else None)
                bottom += val
            if key == "best":
                tag = "".join("F" if d == "fpga" else "G" for d in a.devices)
                ax.annotate(f"{tag}\n{r.speedup:.2f}x", (x + off, bottom), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(list(range(len(results))), labels)
    ax.set_ylabel("modelled time per decode step (ms)")
    ax.set_title(f"A model from spec sheets, not a measurement: {results[0].shape_name} {title}\n"
                 "(left bar GPU only, right bar best assignment; letters: device of prep, comp, ret, apply)",
                 fontsize=10)
    ax.set_ylim(0, 1.45 * ax.get_ylim()[1])  # room for the legend above the bars
    ax.legend(fontsize=7, ncol=2, loc="upper left")
    fig.tight_layout()
    return fig
