"""ipywidgets explorers over measured constants, offline and fast (lab 07).

`disagg_explorer(profile)`: sliders for arrival rate, prefill and decode workers, KV link
bandwidth and prompt length; each change re-runs the simulator (a few hundred requests, tens of
milliseconds) for the disaggregated cluster and for a colocated cluster of the same size, and
redraws their TTFT and TPOT distributions with the SLO lines.
"""

from __future__ import annotations

from dataclasses import replace

from memlab.disaggregation import simstats
from memlab.disaggregation.profiles import Profile
from memlab.disaggregation.simulator import simulate
from memlab.disaggregation.workload import Cluster, Traffic


def explore(profile: Profile, rate_per_s: float, num_prefill: int, num_decode: int, link_gbps: float,
            prompt_tokens: int, output_tokens: int = 32, num_requests: int = 300,
            ttft_slo_s: float = 2.0, tpot_slo_s: float = 0.2):
    """Simulate both modes for one slider setting; {mode: SimSummary} and the records, for drawing."""
    work = Traffic(num_requests, rate_per_s, prompt_tokens, 0.5, output_tokens, 0.5, seed=0)
    out = {}
    for mode in ("disagg", "colocated"):
        cl = Cluster(mode, num_prefill, num_decode, link_bytes_per_s=link_gbps * 1e9 / 8,
                     ttft_includes_transfer=True)
        recs = simulate(profile, cl, work)
        out[mode] = (simstats.summarize(recs, cl, ttft_slo_s, tpot_slo_s), recs)
    return out


def draw(results, ttft_slo_s: float, tpot_slo_s: float):
    """Box plots of TTFT and TPOT per mode, SLO lines dashed, attainment in the legend."""
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    modes = list(results)
    a.boxplot([[r.ttft_s for r in results[m][1]] for m in modes], whis=(5, 95), showfliers=False)
    b.boxplot([[r.tpot_s * 1e3 for r in results[m][1]] for m in modes], whis=(5, 95), showfliers=False)
    labels = [f"{m}\nSLO met {results[m][0].slo_attainment:.0%}" for m in modes]
    a.axhline(ttft_slo_s, ls="--", color="gray")
    b.axhline(tpot_slo_s * 1e3, ls="--", color="gray")
    a.set_yscale("log")
    a.set_ylabel("TTFT (s, log)")
    b.set_ylabel("TPOT (ms)")
    for ax in (a, b):
        ax.set_xticks(range(1, len(modes) + 1), labels, fontsize=8)
    fig.tight_layout()
    return fig


def disagg_explorer(profile: Profile, ttft_slo_s: float = 2.0, tpot_slo_s: float = 0.2,
                    max_rate_per_s: float | None = None, num_requests: int = 300):
    """The interactive explorer (an ipywidgets VBox); nothing leaves this machine."""
    import ipywidgets as w
    import matplotlib.pyplot as plt
    from IPython.display import display
    base = profile.prefill_s([256])
    top = max_rate_per_s or round(4 / base, 2)
    sliders = dict(
        rate_per_s=w.FloatSlider(value=round(top / 8, 3), min=top / 100, max=top, step=top / 100,
                                 description="rate req/s", readout_format=".3g", continuous_update=False),
        num_prefill=w.IntSlider(value=1, min=1, max=8, description="prefill P", continuous_update=False),
        num_decode=w.IntSlider(value=1, min=1, max=8, description="decode D", continuous_update=False),
        link_gbps=w.FloatLogSlider(value=min(400.0, profile.link_bytes_per_s * 8 / 1e9), base=10, min=-1,
                                   max=4, description="link Gb/s", continuous_update=False),
        prompt_tokens=w.IntSlider(value=256, min=16, max=4096, step=16, description="prompt tok",
                                  continuous_update=False))
    out = w.Output()

    def redraw(**kw):
        res = explore(profile, num_requests=num_requests, ttft_slo_s=ttft_slo_s, tpot_slo_s=tpot_slo_s, **kw)
        with out:
            out.clear_output(wait=True)
            fig = draw(res, ttft_slo_s, tpot_slo_s)
            display(fig)
            plt.close(fig)

    w.interactive_output(redraw, sliders)
    note = w.HTML(f"<small>profile: {profile.name} ({profile.source}); {num_requests} requests per setting; "
                  f"colocated runs P + D workers that each prefill and decode</small>")
    return w.VBox([w.HBox(list(sliders.values())[:3]), w.HBox(list(sliders.values())[3:]), note, out])


def with_link(profile: Profile, link_gbps: float) -> Profile:
    """The same profile with another KV link (Gb/s)."""
    return replace(profile, link_bytes_per_s=link_gbps * 1e9 / 8)
