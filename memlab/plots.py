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


# ---- issue 3: roofline, decode batch sweep, memory wall ---------------------------------------

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
                    label=f"this machine, {dtype}: {peak / 1e9:.0f} GFLOP/s, triad {bw / 1e9:.1f} GB/s")
    if devices is not None:
        from .roofline import peak_tflop_per_s
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
    from .roofline import growth_per_2_years, peak_tflop_per_s
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


# --- issue 4: RAM vs disk, TTFT anatomy -------------------------------------------------------

def strategy_bars(runs, floor_tok_per_s: float | None = None) -> Figure:
    """Per strategy (cold and warm): load + TTFT stacked on the left, decode tok/s on the right."""
    labels = ["\n".join([r.strategy.replace("paged-", "paged-\n") + (" >RAM" if r.bigger_than_ram else ""),
                         "cold" if r.is_cold else "warm"]) for r in runs]
    x = range(len(runs))
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4))
    a.bar(x, [r.load_s for r in runs], color="tab:gray", label="load")
    a.bar(x, [r.ttft_s for r in runs], bottom=[r.load_s for r in runs], color="tab:orange",
          label="TTFT (tokenize + prefill + first sample)")
    a.set_ylabel("seconds from load() to first token")
    a.set_xticks(list(x), labels, fontsize=7)
    a.legend(fontsize=8)
    b.bar(x, [r.decode_tok_per_s for r in runs], color=["tab:blue" if not r.is_cold else "tab:cyan" for r in runs])
    if floor_tok_per_s:
        b.axhline(floor_tok_per_s, color="k", ls="--", lw=1, label=">RAM bound: streamed layers at the best cold read rate")
        b.legend(fontsize=8)
    b.set_ylabel("decode tokens / s")
    b.set_xticks(list(x), labels, fontsize=7)
    fast = max(runs, key=lambda r: r.decode_tok_per_s)
    slow = min(runs, key=lambda r: r.decode_tok_per_s)
    fig.suptitle(f"Where the weights live sets the speed: {fast.decode_tok_per_s:.1f} tok/s ({fast.strategy}) "
                 f"vs {slow.decode_tok_per_s:.1f} tok/s ({slow.strategy}{' >RAM' if slow.bigger_than_ram else ''})",
                 fontsize=10)
    fig.tight_layout()
    return fig


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


# --- issue 5: quantized variants and what fits where ---------------------------------------------

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
    """Models (rows) x devices (columns): the smallest precision of fp32/bf16/int8/int4 that fits,
    from `footprint.fits_table`. Blank = does not fit even at 4 bits."""
    import numpy as np
    order = ["fp32", "bf16", "int8", "int4"]
    order = [p for p in order if p in set(table["precision"])]
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


# --- issue 6: sharding (lab 05) ----------------------------------------------------------------

def shard_memory(results, title: str | None = None) -> Figure:
    """Per-rank bars: weights and KV cache held (solid) beside peak RSS (hatched), one group per run.

    `results`: ShardResults (a 1-rank run is the single-process baseline).
    """
    from .units import MiB
    fig, ax = plt.subplots(figsize=(9, 4))
    ticks, labels, x = [], [], 0.0
    for res in results:
        for r in res.ranks:
            first = not ticks
            ax.bar(x - 0.2, r.weights_bytes / MiB, 0.4, color="tab:blue", label="weights held" if first else None)
            ax.bar(x - 0.2, r.kv_cache_bytes / MiB, 0.4, bottom=r.weights_bytes / MiB, color="tab:green",
                   label="KV cache" if first else None)
            ax.bar(x + 0.2, r.peak_rss_bytes / MiB, 0.4, color="tab:gray", hatch="//", alpha=0.6,
                   label="peak RSS of the process" if first else None)
            ticks.append(x)
            labels.append(f"{res.mode}\nR={res.world_size} rank {r.rank}")
            x += 1
        x += 0.5
    ax.set_xticks(ticks, labels, fontsize=8)
    ax.set_ylabel("MiB (1024² bytes)")
    ax.set_title(title or "Each rank holds part of the weights; each process still pays for Python + torch",
                 fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def comm_split(results) -> Figure:
    """Time per decoded token, stacked: compute vs time blocked in communication (mean over ranks)."""
    fig, ax = plt.subplots(figsize=(8, 3.8))
    names = [f"{r.mode}\nR={r.world_size}" + (f", M={r.micro_batches}" if r.micro_batches > 1 else "")
             for r in results]
    comp = [r.decode_compute_s_per_token * 1e3 for r in results]
    comm = [r.decode_comm_s_per_token * 1e3 for r in results]
    ax.bar(names, comp, color="tab:blue", label="compute")
    ax.bar(names, comm, bottom=comp, color="tab:orange", label="blocked in send/recv/all-reduce")
    ax.plot(names, [r.tpot_s * 1e3 for r in results], "k_", markersize=30, label="wall time per token (TPOT)")
    ax.set_ylabel("ms per decoded token (per rank)")
    worst = max(results, key=lambda r: r.comm_share)
    ax.set_title(f"Talking costs: up to {worst.comm_share:.0%} of a rank's decode time is spent "
                 f"communicating ({worst.mode}, R={worst.world_size})", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def decode_gantt(result, step: int | None = None) -> Figure:
    """Timeline of one decode step across ranks: compute (blue) and communication (orange) intervals."""
    steps = sorted({e.step for r in result.ranks for e in r.events if e.step > 0})
    step = step if step is not None else steps[len(steps) // 2]
    ev = [e for r in result.ranks for e in r.events if e.step == step]
    t0 = min(e.start_at_s for e in ev)
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.6 * result.world_size))
    colors = {"compute": "tab:blue", "comm": "tab:orange"}
    for e in ev:
        ax.barh(e.rank, (e.end_at_s - e.start_at_s) * 1e3, left=(e.start_at_s - t0) * 1e3,
                color=colors[e.kind], edgecolor="white", linewidth=0.3)
    ax.set_yticks(range(result.world_size), [f"rank {r}" for r in range(result.world_size)])
    ax.invert_yaxis()
    ax.set_xlabel("ms since the step started")
    from matplotlib.patches import Patch
    ax.legend(handles=[Patch(color=c, label=k) for k, c in colors.items()], fontsize=8,
              loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title(f"One decode step (step {step}), {result.mode} parallel on {result.world_size} ranks: "
                 f"{(max(e.end_at_s for e in ev) - t0) * 1e3:.1f} ms", fontsize=10)
    fig.tight_layout()
    return fig


def shard_load(loads) -> Figure:
    """Peak RSS of a checkpoint load, single file vs shards, beside the prediction start + largest file."""
    from .units import MiB
    fig, ax = plt.subplots(figsize=(7, 3.8))
    names = [f"{r.layout}\n{r.num_files} file(s), largest {r.largest_file_bytes / MiB:.0f} MiB" for r in loads]
    ax.bar(names, [r.start_rss_bytes / MiB for r in loads], color="tab:gray", label="before reading (model allocated)")
    ax.bar(names, [(r.peak_rss_bytes - r.start_rss_bytes) / MiB for r in loads],
           bottom=[r.start_rss_bytes / MiB for r in loads], color="tab:red", label="extra during the load")
    ax.plot(names, [r.predicted_peak_rss_bytes / MiB for r in loads], "k_", markersize=40,
            label="predicted peak: start + largest file")
    ax.set_ylabel("RSS (MiB)")
    ax.set_title("Loading shard by shard needs room for one shard, not the whole file", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# ---- issue 7: disaggregated inference (lab 07) -----------------------------------------------

def disagg_split(results) -> Figure:
    """TTFT and TPOT, split (prefill worker -> decode worker) vs colocated, per prompt length."""
    import numpy as np
    n = [r.prompt_tokens for r in results]
    x = np.arange(len(n))
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    a.bar(x - 0.2, [r.colocated_ttft_s * 1e3 for r in results], 0.4, label="colocated (1 process)")
    a.bar(x + 0.2, [r.split_ttft_s * 1e3 for r in results], 0.4, label="split: prefill worker")
    b.bar(x - 0.2, [r.colocated_tpot_s * 1e3 for r in results], 0.4, label="colocated")
    b.bar(x + 0.2, [r.split_decode_tpot_s * 1e3 for r in results], 0.4, label="split: decode steps")
    b.bar(x + 0.2, [(r.split_tpot_s - r.split_decode_tpot_s) * 1e3 for r in results], 0.4,
          bottom=[r.split_decode_tpot_s * 1e3 for r in results], label="split: KV transfer, spread over tokens")
    for ax, what in ((a, "TTFT (ms)"), (b, "TPOT (ms)")):
        ax.set_xticks(x, [f"{k} tok" for k in n])
        ax.set_xlabel("prompt length")
        ax.set_ylabel(what)
        ax.legend(fontsize=8)
    extra = [r.split_tpot_s - r.colocated_tpot_s for r in results]
    fig.suptitle(f"One request at a time, the split changes TPOT by {min(extra) * 1e3:+.1f} to "
                 f"{max(extra) * 1e3:+.1f} ms: the KV transfer is its price", fontsize=10)
    fig.tight_layout()
    return fig


def kv_transports(results) -> Figure:
    """Time to move the KV cache between the two processes: gloo, shared memory, a file."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    kv = [r.kv_bytes / 2**20 for r in results]
    for field, label in (("transfer_s", "gloo send/recv (TCP loopback)"), ("shm_transfer_s", "shared memory"),
                         ("file_transfer_s", "safetensors file")):
        ax.plot(kv, [getattr(r, field) * 1e3 for r in results], "o-", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("KV cache sent (MiB, log)")
    ax.set_ylabel("transfer time (ms, log)")
    ax.set_title("KV transfer time grows with the prompt; the transport sets the slope", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def sim_load_sweep(summaries) -> Figure:
    """Median and p90 TTFT and TPOT vs offered load, one line per mode (SimSummary records)."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    for mode, style in (("colocated", "tab:red"), ("disagg", "tab:blue")):
        rows = sorted((s for s in summaries if s.mode == mode), key=lambda s: s.rate_per_s)
        if not rows:
            continue
        rate = [s.rate_per_s for s in rows]
        a.plot(rate, [s.ttft_p50_s for s in rows], "o-", color=style, label=f"{mode} p50")
        a.plot(rate, [s.ttft_p90_s for s in rows], "--", color=style, label=f"{mode} p90")
        b.plot(rate, [s.tpot_p50_s * 1e3 for s in rows], "o-", color=style, label=f"{mode} p50")
        b.plot(rate, [s.tpot_p90_s * 1e3 for s in rows], "--", color=style, label=f"{mode} p90")
    a.set_yscale("log")
    a.set_ylabel("TTFT (s, log)")
    b.set_ylabel("TPOT (ms)")
    for ax in (a, b):
        ax.set_xlabel("arrival rate (requests/s)")
        ax.legend(fontsize=8)
    worst = {m: max((s.tpot_p90_s for s in summaries if s.mode == m), default=float("nan"))
             for m in ("colocated", "disagg")}
    fig.suptitle(f"Worst p90 TPOT: colocated {worst['colocated'] * 1e3:.0f} ms, disaggregated "
                 f"{worst['disagg'] * 1e3:.0f} ms (colocated decode waits behind new prompts)", fontsize=10)
    fig.tight_layout()
    return fig


def sim_ratio(rows, num_workers: int) -> Figure:
    """Goodput per worker for each prefill:decode split (rows from simstats.best_ratio)."""
    rows = sorted(rows, key=lambda r: (r[0] == 0, r[0]))
    labels = ["colocated" if p == 0 else f"{p}P:{d}D" for p, d, _ in rows]
    best = max(r[2] for r in rows)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.bar(labels, [r[2] for r in rows], color=["tab:green" if r[2] == best else "tab:gray" for r in rows])
    ax.set_ylabel("goodput per worker (req/s at >= 90% SLO)")
    ax.set_title(f"{num_workers} workers: the best split is {labels[[r[2] for r in rows].index(best)]}",
                 fontsize=10)
    fig.tight_layout()
    return fig


def sim_link(link_rows) -> Figure:
    """Median TTFT and TPOT vs KV link bandwidth; link_rows = [(name, bytes_per_s, SimSummary)]."""
    fig, ax = plt.subplots(figsize=(7, 3.6))
    bw = [r[1] / 1e9 for r in link_rows]
    ax.plot(bw, [r[2].ttft_p50_s * 1e3 for r in link_rows], "o-", label="TTFT p50 (first token after KV lands)")
    ax.plot(bw, [r[2].tpot_p50_s * 1e3 for r in link_rows], "s-", label="TPOT p50")
    for name, b, s in link_rows:
        ax.annotate(name, (b / 1e9, s.ttft_p50_s * 1e3), fontsize=7, rotation=30)
    ax.set_xscale("log")
    ax.set_xlabel("KV link bandwidth (GB/s, log)")
    ax.set_ylabel("ms")
    ax.set_title("A slow link adds the KV transfer to every request; past a point it stops mattering",
                 fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def sim_timeline(records, max_requests: int = 12) -> Figure:
    """A Gantt chart of the first requests: queueing, prefill, KV transfer, decode."""
    recs = sorted(records, key=lambda r: r.request_id)[:max_requests]
    fig, ax = plt.subplots(figsize=(9, 0.35 * len(recs) + 1.2))
    for i, r in enumerate(recs):
        spans = [(r.arrived_at_s, r.prefill_started_at_s, "lightgray", "queued"),
                 (r.prefill_started_at_s, r.prefill_started_at_s + r.prefill_s, "tab:orange", "prefill"),
                 (r.transfer_started_at_s, r.transfer_ended_at_s, "tab:purple", "KV transfer"),
                 (r.transfer_ended_at_s, r.decode_started_at_s, "gainsboro", "waits for a decode slot"),
                 (r.decode_started_at_s, r.finished_at_s, "tab:blue", "decode")]
        for start, end, color, label in spans:
            if end > start:
                ax.barh(i, end - start, left=start, color=color, label=label if i == 0 or label not in
                        ax.get_legend_handles_labels()[1] else None)
    ax.set_yticks(range(len(recs)), [f"r{r.request_id} ({r.prompt_tokens} tok)" for r in recs])
    ax.invert_yaxis()
    ax.set_xlabel("time (s)")
    ax.set_title("Where each request's time goes", fontsize=10)
    handles, labels = ax.get_legend_handles_labels()
    uniq = dict(zip(labels, handles))
    ax.legend(uniq.values(), uniq.keys(), fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def sim_validation(real, sim) -> Figure:
    """Per-request TTFT and TPOT, real two-process run vs the simulator on the same trace."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    ids = [r.request_id for r in real]
    a.plot(ids, [r.ttft_s for r in real], "o-", label="real")
    a.plot(ids, [r.ttft_s for r in sim], "x--", label="simulated")
    b.plot(ids, [r.tpot_s * 1e3 for r in real], "o-", label="real")
    b.plot(ids, [r.tpot_s * 1e3 for r in sim], "x--", label="simulated")
    a.set_ylabel("TTFT (s)")
    b.set_ylabel("TPOT (ms)")
    for ax in (a, b):
        ax.set_xlabel("request")
        ax.legend(fontsize=8)
    fig.suptitle("The simulator against the real prefill and decode workers, same requests", fontsize=10)
    fig.tight_layout()
    return fig
# ---- end issue 7 ------------------------------------------------------------------------------


# ---- lab 06 (RAG): retrieval time and its effect on TTFT -------------------------------------

def _rag_label(r) -> str:
    if r.store == "none":
        return "question alone"
    where = {"ram": "RAM index", "disk": "disk (sqlite scan)", "bm25": "disk (FTS5 BM25)"}[r.store]
    state = "" if r.cache_state in ("ram", "none") else f", {r.cache_state}"
    return f"{where}{state}, k={r.top_k}"


def rag_ttft_breakdown(records) -> Figure:
    """Stacked bar per configuration (medians over repeats): embed question, search, model TTFT."""
    import numpy as np
    groups: dict[str, list] = {}
    for r in records:
        groups.setdefault(_rag_label(r), []).append(r)
    labels = list(groups)
    med = {f: [float(np.median([getattr(r, f) for r in groups[l]])) * 1e3 for l in labels]
           for f in ("embed_s", "search_s", "llm_ttft_s", "retrieval_s")}
    tokens = [int(np.median([r.prompt_tokens for r in groups[l]])) for l in labels]
    fig, ax = plt.subplots(figsize=(9, 0.6 * len(labels) + 2))
    y = np.arange(len(labels))
    left = np.zeros(len(labels))
    for field, name, color in [("embed_s", "embed question (MiniLM)", "tab:green"),
                               ("search_s", "search store", "tab:red"),
                               ("llm_ttft_s", "tokenize + prefill + first token", "tab:orange")]:
        ax.barh(y, med[field], left=left, color=color, label=name)
        left += np.array(med[field])
    for yi, total, n in zip(y, left, tokens):
        ax.text(total, yi, f" {total:.0f} ms, {n} tok", va="center", fontsize=8)
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set_xlabel("time to first token (ms, median)")
    ax.set_xlim(0, left.max() * 1.25)
    alone = [m for l, m in zip(labels, med["llm_ttft_s"]) if l == "question alone"]
    ctx = [m for l, m in zip(labels, med["llm_ttft_s"]) if l != "question alone"]
    ret = [m for l, m in zip(labels, med["retrieval_s"]) if l != "question alone"]
    title = "RAG time to first token, split into its steps"
    if alone and ctx:
        title = (f"Retrieved context adds {float(np.median(ctx)) - alone[0]:.0f} ms of model TTFT; "
                 f"retrieval itself takes {min(ret):.1f}-{max(ret):.1f} ms")
    ax.set_title(f"{title}\n{records[0].hardware.host}", fontsize=10)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12 - 0.3 / len(labels)), ncol=3, fontsize=8)
    fig.tight_layout()
    return fig


def retrieval_latency(results) -> Figure:
    """Search time per store and page-cache state (every repeat as a dot, median as a bar), log axis."""
    import numpy as np
    groups: dict[str, list] = {}
    for r in results:
        state = "" if r.cache_state == "ram" else f" {r.cache_state}"
        groups.setdefault(f"{r.store}{state}", []).append(r)
    labels = list(groups)
    fig, ax = plt.subplots(figsize=(8, 0.55 * len(labels) + 2))
    for i, l in enumerate(labels):
        ms = [r.search_s * 1e3 for r in groups[l]]
        ax.barh(i, float(np.median(ms)), color="tab:red", alpha=0.5)
        ax.plot(ms, [i] * len(ms), "k.", ms=4)
        ax.text(float(np.median(ms)), i, f"  {np.median(ms):.2f} ms", va="center", fontsize=8)
    embeds = [r.embed_s * 1e3 for r in results if r.embed_s > 0]
    if embeds:
        ax.axvline(float(np.median(embeds)), color="tab:green", ls="--",
                   label=f"embedding the question: {np.median(embeds):.1f} ms")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("search time (ms, log scale): query vector -> top-k texts in hand")
    med = {l: float(np.median([r.search_s for r in groups[l]])) for l in labels}
    r0 = results[0]
    title = f"Search over {r0.num_chunks} chunks"
    if "ram" in med and "disk cold" in med:
        title += f": disk cold is {med['disk cold'] / med['ram']:.0f}x the RAM index"
    ax.set_title(f"{title}\n(index: RAM {_fmt_index_bytes(results, 'ram')}, sqlite file "
                 f"{_fmt_index_bytes(results, 'disk')})", fontsize=10)
    fig.tight_layout()
    return fig


def _fmt_index_bytes(results, store: str) -> str:
    from .units import fmt_bytes
    sizes = [r.index_bytes for r in results if r.store == store]
    return fmt_bytes(sizes[0]) if sizes else "-"


def ttft_vs_context(records) -> Figure:
    """Model TTFT against prompt tokens as more chunks go into the prompt, with a least-squares line."""
    import numpy as np
    x = np.array([r.prompt_tokens for r in records], float)
    y = np.array([r.llm_ttft_s for r in records]) * 1e3
    fig, ax = plt.subplots(figsize=(7, 4))
    for k in sorted({r.top_k for r in records}):
        sel = [i for i, r in enumerate(records) if r.top_k == k]
        ax.plot(x[sel], y[sel], "o", label=f"k={k} chunks")
    title = "Model TTFT against prompt length"
    if len(set(x)) > 1:
        slope, icept = np.polyfit(x, y, 1)
        xs = np.linspace(0, x.max(), 50)
        ax.plot(xs, icept + slope * xs, "k--", lw=1, label=f"fit: {icept:.0f} ms + {slope:.2f} ms/token")
        title = f"Every retrieved token is prefilled: +{slope * 100:.0f} ms of TTFT per 100 prompt tokens"
    ax.set_xlabel("prompt tokens (question + retrieved chunks + chat template)")
    ax.set_ylabel("model TTFT (ms)")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.set_title(f"{title}\n{records[0].hardware.host}", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
# ---- end lab 06 -------------------------------------------------------------------------------


# --- lab 08: memory processing (mempipe, offload) ---------------------------------------------

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
