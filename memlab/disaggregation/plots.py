"""Lab 07's figures: the real split, KV transports, and the simulator's sweeps, timeline and validation.

Each figure makes one point and its title states the finding; axes carry units.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.figure import Figure


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


def goodput_bars(results: dict) -> Figure:
    """Goodput per worker, colocated vs disaggregated, per SLO; results = {slo name: [GoodputResult, ...]}."""
    import numpy as np
    names = list(results)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for k, (mode, color) in enumerate((("colocated", "tab:red"), ("disagg", "tab:blue"))):
        vals = [next(g.goodput_per_worker for g in results[n] if g.mode == mode) for n in names]
        ax.bar(x + (k - 0.5) * 0.4, vals, 0.4, color=color, label=mode)
    ax.set_xticks(x, names, fontsize=8)
    ax.set_ylabel("goodput per worker (req/s)")
    wins = [max(results[n], key=lambda g: g.goodput_per_worker).mode for n in names]
    ax.set_title("The better setup depends on the SLO: " + ", ".join(f"{w} wins {n}" for n, w in zip(names, wins)),
                 fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def prefix_cache_sweep(rows) -> Figure:
    """Median TTFT and the share of prompt tokens served from the cache vs cache capacity.

    rows = [(capacity_blocks, SimSummary, cached_token_share)]; capacity 0 is the run without a cache.
    """
    fig, a = plt.subplots(figsize=(7, 3.6))
    labels = [str(c) if c else "none" for c, _, _ in rows]
    a.plot(labels, [s.ttft_p50_s for _, s, _ in rows], "o-", color="tab:orange", label="TTFT p50")
    a.set_xlabel("prefix cache capacity (512-token blocks)")
    a.set_ylabel("median TTFT (s)")
    b = a.twinx()
    b.plot(labels, [share * 100 for _, _, share in rows], "s--", color="tab:green", label="prompt tokens from cache")
    b.set_ylabel("prompt tokens from the cache (%)")
    a.set_title("A prefix cache skips the shared prefix: the bigger it is, the less prefill waits", fontsize=10)
    fig.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, 0.85))
    fig.tight_layout()
    return fig


def chunked_prefill(rows) -> Figure:
    """TTFT p50 and TPOT p90 vs chunk size; rows = [(chunk tokens or 0 for whole prompts, SimSummary)]."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    labels = [str(c) if c else "whole" for c, _ in rows]
    a.plot(labels, [s.ttft_p50_s * 1e3 for _, s in rows], "o-", color="tab:orange")
    b.plot(labels, [s.tpot_p90_s * 1e3 for _, s in rows], "o-", color="tab:blue")
    a.set_ylabel("TTFT p50 (ms)")
    b.set_ylabel("TPOT p90 (ms)")
    for ax in (a, b):
        ax.set_xlabel("prefill chunk (tokens per step)")
    fig.suptitle("Chunked prefill trades TTFT for steady decodes: small chunks stall decode less, "
                 "prompts take more steps", fontsize=10)
    fig.tight_layout()
    return fig


def shaped_link(points, break_even_gbps: float) -> Figure:
    """KV transfer vs the shaped rate, measured and simulated, beside the prefill it could replace
    (linkcheck.LinkPoint records)."""
    pts = sorted(points, key=lambda p: p.link_gbps)
    g = [p.link_gbps for p in pts]
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    ax.plot(g, [p.transfer_s * 1e3 for p in pts], "o-", label="measured: KV transfer (median of 5 sends)")
    ax.plot(g, [p.sim_transfer_s * 1e3 for p in pts], "x--", label="simulator, same link")
    ax.plot(g, [p.prefill_s * 1e3 for p in pts], "s:", color="gray", label="measured: the prefill (recompute)")
    ax.axvline(break_even_gbps, color="tab:red", lw=1, label="predicted break-even")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("shaped link (Gbit/s, log)")
    ax.set_ylabel("time (ms, log)")
    ax.set_title("Below the break-even rate, sending the KV costs more than recomputing it", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
