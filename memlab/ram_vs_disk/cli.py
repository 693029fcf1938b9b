"""`memlab load`: one residency strategy, its LoadResult (lab 02).

Each command imports what it runs inside its function, so `memlab --help` imports no torch (tests/test_cli_imports.py).
"""

from __future__ import annotations

from memlab.core.cli import print_json
from memlab.core.units import fmt_bytes, fmt_time
from memlab.core.cli import add_load_options


def _cmd_load(args) -> int:
    from memlab.core.loading import load
    from memlab.core.units import fmt_rate
    r = load(args.model, strategy=args.strategy, device=args.device, dtype=args.dtype, cold=args.cold,
             bigger_than_ram=args.bigger_than_ram, force=args.force).result
    if args.json:
        print_json(r)
        return 0
    print(f"{r.model_name} {r.dtype} on {r.device}, strategy {r.strategy}{' (cold)' if r.is_cold else ''}: "
          f"loaded in {fmt_time(r.load_time_s)} | page cache before {r.page_cache_before:.0%} | "
          f"in memory {fmt_bytes(r.weights_bytes)} of {fmt_bytes(r.checkpoint_bytes)} on disk "
          + (f"({fmt_rate(r.checkpoint_bytes / r.load_time_s)} if all read)" if r.strategy == "resident"
             else "(read later, as the forward pass touches it)")
          + f" | peak RSS {fmt_bytes(r.peak_rss_bytes)} (+{fmt_bytes(r.peak_rss_bytes - r.rss_before_bytes)} "
          "over the process before loading)")
    return 0


def register(sub) -> None:
    s = sub.add_parser("load", help="load a model with a residency strategy and print the LoadResult")
    add_load_options(s)
    s.add_argument("--json", action="store_true", help="one JSON object with the LoadResult fields")
    s.set_defaults(func=_cmd_load)
