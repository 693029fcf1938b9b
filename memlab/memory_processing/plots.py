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


# The paper's published ranges (arXiv 2603.29002; PAPER.md 2.1, 2.4, 2.5): (low, high, label)
PAPER_END_TO_END = (1.04, 2.2, "paper: end to end 1.04-2.2x (abstract)")
PAPER_LSERVE = (1.15, 1.49, "paper: LServe end to end 1.15-1.49x ([S1]=[S2])")
PAPER_ENERGY = (1.11, 4.7, "paper: energy 1.11-4.7x (abstract)")
PAPER_SPARSE_BATCH = {1: (1.02, 1.19), 2: (1.05, 1.34), 4: (1.09, 1.51), 8: (1.14, 1.67), 32: (1.15, 1.83)}  # [S1]


def measured_offload(ratios, scales, grid, break_even, by_context, by_batch, spec_ratio: float) -> Figure:
    """Left: best speed-up over (comp/ret speed-up on the FPGA, PCIe bandwidth scale), with the
    break-even line. Middle: speed-up vs context and vs batch at `spec_ratio`, beside the paper's ranges.
    Right: the modelled energy ratio beside the paper's. `by_context`/`by_batch`: [(x, speedup, energy)]."""
    import numpy as np
    fig, (ax, ax2, ax3) = plt.subplots(1, 3, figsize=(15, 4.3))
    mesh = ax.pcolormesh(ratios, scales, np.array(grid), shading="nearest", cmap="viridis")
    fig.colorbar(mesh, ax=ax, label="best end-to-end speed-up (x)")
    finite = [(b, s) for b, s in zip(break_even, scales) if b != float("inf")]  # inf: no speed-up is enough
    ax.plot([b for b, _ in finite], [s for _, s in finite], "w--", label="break-even (speed-up 1)")
    ax.axvline(spec_ratio, color="tab:red", label=f"spec sheets, SRAM: {spec_ratio:.1f}x")
    ax.set_xscale("log"), ax.set_yscale("log")
    ax.set_xlabel("comp + ret speed-up on the FPGA vs measured (x)")
    ax.set_ylabel("PCIe bandwidth / paper's fitted curve")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("Offloading wins right of the dashed line", fontsize=9)
    for band, color in ((PAPER_END_TO_END, "tab:green"), (PAPER_LSERVE, "tab:olive")):
        ax2.axhspan(band[0], band[1], color=color, alpha=0.15, label=band[2])
    ax2.plot([c for c, _, _ in by_context], [s for _, s, _ in by_context], "o-", label="model vs context (B=1)")
    twin = ax2.twiny()
    twin.plot([b for b, _, _ in by_batch], [s for _, s, _ in by_batch], "s-", color="tab:purple",
              label="model vs batch (longest context)")
    for b, (lo, hi) in PAPER_SPARSE_BATCH.items():
        twin.plot([b, b], [lo, hi], color="tab:purple", alpha=0.4, lw=6)
    twin.set_xscale("log", base=2), twin.set_xlabel("batch size (purple; bars: paper, sparse attention)")
    ax2.set_xscale("log", base=2)
    ax2.set_xlabel("context (tokens cached)")
    ax2.set_ylabel("end-to-end speed-up (x)")
    ax2.legend(fontsize=7, loc="upper left")
    twin.legend(fontsize=7, loc="lower right")
    ax3.axhspan(*PAPER_ENERGY[:2], color="tab:green", alpha=0.15, label=PAPER_ENERGY[2])
    ax3.plot([c for c, _, _ in by_context], [e for _, _, e in by_context], "o-", label="model vs context (B=1)")
    ax3.axhline(1.0, color="k", lw=0.8)
    ax3b = ax3.twiny()
    ax3b.plot([b for b, _, _ in by_batch], [e for _, _, e in by_batch], "s-", color="tab:purple", label="vs batch")
    ax3b.set_xscale("log", base=2), ax3b.set_xlabel("batch size (purple)")
    ax3.set_xscale("log", base=2)
    ax3.set_xlabel("context (tokens cached)")
    ax3.set_ylabel("energy GPU-only / best (x)")
    ax3.legend(fontsize=7, loc="upper left")
    fig.suptitle(f"Measured step times, FPGA derived at the spec-sheet ratio ({spec_ratio:.1f}x on comp + ret); "
                 f"batch > 1 extrapolated from batch 1", fontsize=10)
    fig.tight_layout()
    return fig
