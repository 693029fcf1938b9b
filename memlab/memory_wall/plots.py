"""Lab 01's figures: the roofline from measured ceilings, decode against batch size, the memory wall over the years.

Each figure makes one point and its title states the finding; axes carry units.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from memlab.core.units import fmt_bytes
from memlab.memory_wall.history import growth_per_2_years, peak_tflop_per_s


def roofline(ceilings, points=(), devices=None, reference=("NVIDIA H100 SXM5", "NVIDIA A100 SXM4 80GB",
             "AMD EPYC 9654", "Apple M1 Max"), dtypes=("fp32", "bf16")) -> Figure:
    """Log-log roofline: this machine's measured roofs, reference devices' spec roofs, measured points.

    Roof: attainable FLOP/s = min(peak, I * bandwidth), I = FLOP per byte moved.
    """
    import numpy as np
    fig, ax = plt.subplots(figsize=(8, 5.2))
    x = np.logspace(-2, 4, 200)
    bw = ceilings.bandwidth_bytes_per_s
    for dtype, style in zip(dtypes, ("-", "--", ":")):
        peak = ceilings.flop_per_s(dtype)
        if peak > 0:
            ax.plot(x, np.minimum(peak, x * bw), style, color="tab:red", lw=2,
                    label=f"this machine, {dtype}: {peak / 1e9:.0f} GFLOP/s, memory {bw / 1e9:.1f} GB/s")
    if devices is not None:
        for name in reference:
            rows = devices[devices["name"] == name]
            if rows.empty:
                continue
            row = rows.iloc[0]
            peak, dbw = peak_tflop_per_s(row) * 1e12, row["bandwidth_gb_per_s"] * 1e9
            ax.plot(x, np.minimum(peak, x * dbw), color="0.6", lw=1)
            ax.annotate(f"{name} (spec)", (x[-1], peak), fontsize=7, color="0.4", ha="right", va="bottom")
    markers = {"decode": "o", "prefill": "s"}
    for p in points:
        ax.scatter(p.intensity_flop_per_byte, p.flop_per_s, marker=markers.get(p.phase, "^"), s=50,
                   zorder=3, label=f"measured: {p.label} ({p.tok_per_s:.1f} tok/s)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP per byte moved)")
    ax.set_ylabel("attainable FLOP/s")
    ridge = ceilings.flop_per_s(dtypes[0]) / bw if bw > 0 else float("nan")
    decode = [p for p in points if p.phase == "decode"]
    if decode:  # the title states what the measured points show, not what they should show
        i = max(p.intensity_flop_per_byte for p in decode)
        side = "left of" if i < ridge else "right of"
        title = (f"Decode at <= {i:.2g} FLOP/B sits {side} the {dtypes[0]} ridge ({ridge:.0f} FLOP/B): "
                 + ("bandwidth-bound" if i < ridge else "compute-bound"))
    else:
        title = f"Roofline from this machine's measured ceilings ({dtypes[0]} ridge {ridge:.0f} FLOP/B)"
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(True, which="major", alpha=0.3)
    fig.tight_layout()
    return fig


def decode_batch_sweep(batch_sizes, predicted_tok_per_s, measured_tok_per_s, labels=("measured",)) -> Figure:
    """Decode tok/s (all sequences together) vs batch size: roofline bound beside measurement.

    `measured_tok_per_s` is one sequence of values, or a list of them (one per label).
    """
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(batch_sizes, predicted_tok_per_s, "--", color="tab:red", label="roofline bound (measured ceilings)")
    series = measured_tok_per_s if isinstance(measured_tok_per_s[0], (list, tuple)) else [measured_tok_per_s]
    for values, label in zip(series, labels):
        ax.plot(batch_sizes, values, "o-", label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size (sequences decoded together)")
    ax.set_ylabel("decode throughput (tok/s, all sequences)")
    first = series[0]
    ax.set_title(f"Batch {batch_sizes[0]} -> {batch_sizes[-1]}: bound x{predicted_tok_per_s[-1] / predicted_tok_per_s[0]:.1f}, "
                 f"{labels[0]} x{first[-1] / first[0]:.1f} tok/s (each weight byte serves the whole batch)",
                 fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return fig


def memory_wall(devices) -> Figure:
    """Peak dense FLOP/s and memory bandwidth by year (GPUs), with fitted growth per two years."""
    import numpy as np
    gpus = devices[devices["kind"] == "gpu"].sort_values("year")
    flops = np.array([peak_tflop_per_s(r) for _, r in gpus.iterrows()]) * 1e12
    bws = gpus["bandwidth_gb_per_s"].to_numpy() * 1e9
    years = gpus["year"].to_numpy()
    g_f, g_b = growth_per_2_years(years, flops), growth_per_2_years(years, bws)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.scatter(years, flops / flops.min(), color="tab:red", label=f"peak dense FLOP/s (x{g_f:.1f} per 2 years)")
    ax.scatter(years, bws / bws.min(), color="tab:blue", label=f"memory bandwidth (x{g_b:.1f} per 2 years)")
    span = np.linspace(years.min(), years.max(), 50)
    for values, color in ((flops, "tab:red"), (bws, "tab:blue")):
        b, a = np.polyfit(years, np.log(values / values.min()), 1)
        ax.plot(span, np.exp(a + b * span), color=color, alpha=0.6)
    ax.set_yscale("log")
    ax.set_xlabel("year")
    ax.set_ylabel("relative to the smallest in the table")
    ax.set_title(f"The memory wall: compute grew x{g_f:.1f}, bandwidth x{g_b:.1f} every two years "
                 f"({len(gpus)} GPUs, spec sheets)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return fig


def staircase(st, marks: dict | None = None) -> Figure:
    """Read GB/s against working-set size (log2 axis), with the OS-reported cache, the measured edge
    of the cache and `marks` ({label: bytes}, e.g. a model's weights) drawn as vertical lines."""
    fig, ax = plt.subplots(figsize=(8, 4.4))
    ax.plot(st.sizes_bytes, st.read_gb_per_s, "o-", color="tab:blue", label="read kernel, best of repeats")
    ax.axhline(st.dram_gb_per_s, color="0.5", lw=1, ls=":", label=f"DRAM (largest array) {st.dram_gb_per_s:.1f} GB/s")
    ax.axvline(st.cache_bytes, color="tab:green", lw=1.5, label=f"reads at DRAM speed from {fmt_bytes(st.cache_bytes)}")
    if st.os_cache_bytes:
        ax.axvline(st.os_cache_bytes, color="tab:red", lw=1.5, ls="--",
                   label=f"last-level cache the OS reports: {fmt_bytes(st.os_cache_bytes)}")
    for (label, n), color in zip((marks or {}).items(), ("tab:purple", "tab:orange", "tab:brown")):
        ax.axvline(n, color=color, lw=1, ls="-.", label=f"{label}: {fmt_bytes(n)}")
    ax.set_xscale("log", base=2)
    ax.set_xticks(st.sizes_bytes, [fmt_bytes(n) for n in st.sizes_bytes], rotation=30, fontsize=8)
    ax.minorticks_off()
    ax.set_xlabel("working set (one array, summed)")
    ax.set_ylabel("read bandwidth (GB/s)")
    ax.set_ylim(bottom=0)
    ax.set_title(f"A cache serves up to {st.cache_gb_per_s:.0f} GB/s; from {fmt_bytes(st.cache_bytes)} on, "
                 f"reads come from DRAM at {st.dram_gb_per_s:.0f} GB/s", fontsize=10)
    ax.legend(fontsize=7, loc="upper right")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return fig


def verify_cost(costs, fast=None) -> Figure:
    """A forward of k + 1 tokens (k drafts) over one decode step, measured and the roofline's, against k;
    k + 1 plain steps for scale: below that line, verifying k drafts in one pass beats decoding them one by one.
    `fast`: the same through memlab's fast path (`specfast`), measured in the same run."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ks = list(costs.ks)
    ax.plot(ks, costs.cost_ratio, "o-", color="tab:blue", label=f"{costs.path} ({costs.num_threads} thread(s), median)")
    if fast is not None:
        ax.plot(ks, fast.cost_ratio, "s-", color="tab:green", label=f"{fast.path} path ({fast.kernels[-1]})")
    if any(costs.roofline_ratio):
        ax.plot(ks, costs.roofline_ratio, "--", color="tab:red", label="roofline (weights read once + FLOPs at the peak)")
    ax.plot(ks, [k + 1 for k in ks], ":", color="0.5", label="k + 1 plain steps")
    ax.set_xlabel("k drafted tokens verified in one forward (k = 0: a plain decode step)")
    ax.set_ylabel("time / one decode step")
    k4 = min(4, ks[-1])
    best = fast if fast is not None else costs
    ax.set_title(f"Verifying {k4} drafts costs {best.cost_ratio[k4]:.2f}x a step here, {best.path} path "
                 f"(the roofline: {costs.roofline_ratio[k4]:.2f}x)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig
