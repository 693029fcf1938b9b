"""Lab 00's figure: the token timeline of one answer. Functions take records, return a Figure, never measure."""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from memlab.core.units import fmt_time


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
