"""Lab 02's figure: each residency strategy's load time and decode speed.

Each figure makes one point and its title states the finding; axes carry units.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.figure import Figure


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
