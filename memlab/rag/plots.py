"""Lab 06's figures: RAG's TTFT split, retrieval latency per store, TTFT against context; at scale,
search time against N per store (with the TTFT line) and HNSW's recall against its search time.

Each figure makes one point and its title states the finding; axes carry units.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from memlab.core.units import fmt_bytes


def _rag_label(r) -> str:
    if r.store == "none":
        return "question alone"
    where = {"ram": "RAM index", "disk": "disk (sqlite scan)", "bm25": "disk (FTS5 BM25)"}.get(r.store, r.store)
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


def latency_vs_size(points, ttft_s: float) -> Figure:
    """Median search time against N per store and cache state (log-log), the TTFT as a line."""
    fig, ax = plt.subplots(figsize=(8, 5))
    groups: dict[str, list] = {}
    for p in points:
        groups.setdefault(p.store if p.cache_state == "ram" else f"{p.store} {p.cache_state}", []).append(p)
    for label, ps in groups.items():
        ps = sorted(ps, key=lambda p: p.num_vectors)
        ax.plot([p.num_vectors for p in ps], [p.median_s * 1e3 for p in ps], "o-" if "cold" not in label else "s--",
                label=label, lw=1.2, ms=4)
    ax.axhline(ttft_s * 1e3, color="tab:orange", lw=2, label=f"the model's TTFT here: {ttft_s * 1e3:.0f} ms")
    ax.axhline(ttft_s * 1e2, color="tab:orange", lw=1, ls=":", label="10% of it")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("vectors in the store N (384-d float32; log scale)")
    ax.set_ylabel("one query's search, median (ms, log scale)")
    n = max(p.num_vectors for p in points)
    top = {p.store: p.median_s for p in points if p.num_vectors == n and p.cache_state in ("ram", "warm")}
    title = "Search time against the store's size"
    if "flat" in top and "hnsw" in top:
        title = (f"At N = {n:,} the exact flat scan takes {top['flat'] * 1e3:.1f} ms, "
                 f"HNSW {top['hnsw'] * 1e3:.2f} ms ({top['flat'] / top['hnsw']:.0f}x faster)")
    ax.set_title(f"{title}\n{points[0].hardware.host}, {points[0].threads} faiss thread(s)", fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(True, which="both", alpha=0.2)
    fig.tight_layout()
    return fig


def recall_vs_latency(curve, chosen_ef: int | None = None) -> Figure:
    """HNSW's recall@k against its median search time, one line per N, one point per efSearch."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for n in sorted({e.num_vectors for e in curve}):
        es = [e for e in curve if e.num_vectors == n]
        ax.plot([e.median_s * 1e3 for e in es], [e.recall_at_k for e in es], "o-", ms=3, label=f"N = {n:,}")
        for e in es:
            if e.ef_search == chosen_ef:
                ax.plot(e.median_s * 1e3, e.recall_at_k, "k*", ms=10)
    ax.set_xscale("log")
    ax.set_xlabel("one query's search, median (ms, log scale)")
    ax.set_ylabel("recall@k against exact search")
    ax.set_title("A deeper graph search (larger efSearch) buys recall with time"
                 + (f"\n(* efSearch = {chosen_ef}, chosen)" if chosen_ef else ""), fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
