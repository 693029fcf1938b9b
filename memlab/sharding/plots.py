"""Lab 05's figures: memory per rank, compute vs communication, the decode timeline, shard loading.

Each figure makes one point and its title states the finding; axes carry units.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from memlab.core.units import MiB


def shard_memory(results, title: str | None = None) -> Figure:
    """Per-rank bars: weights and KV cache held (solid) beside peak RSS (hatched), one group per run.

    `results`: ShardResults (a 1-rank run is the single-process baseline).
    """
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
