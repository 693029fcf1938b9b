"""`memlab kvcache` (lab 09): serve a shared prefix from each tier and print TTFT beside its predictions.

Each command imports what it runs inside its function, so `memlab --help` imports no torch (tests/test_cli_imports.py).
"""

from __future__ import annotations

import argparse

from memlab.core import limits, models
from memlab.core.cli import print_json
from memlab.core.units import fmt_bytes, fmt_time

TIERS = ("recompute", "ram", "disk", "pinned")  # --tiers names; disk is disk-warm, or disk-cold with --cold


def tier_list(text: str) -> list[str]:
    """argparse `type=` for --tiers: comma-separated names from TIERS, refused in one line otherwise."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in names if t not in TIERS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown tier(s) {unknown or [text]}: choose from {', '.join(TIERS)}")
    return names


def ways(tiers: list[str], cold: bool) -> tuple:
    """The reuse ways of a --tiers list: 'disk' becomes disk-cold with --cold, else disk-warm."""
    return tuple(("disk-cold" if cold else "disk-warm") if t == "disk" else t for t in tiers)


def _cmd_kvcache(args) -> int:
    from memlab.core import ceilings, loading
    from memlab.core.results import as_dict
    from memlab.kv_cache import breakeven, reuse
    config = reuse.ReuseConfig(prefix_tokens=tuple(args.prefix_tokens), suffix_tokens=args.suffix_tokens,
                               new_tokens=args.new_tokens, repeats=args.repeats, ways=ways(args.tiers, args.cold))
    loaded = loading.load(args.model, device=args.device)
    reuse.check_context(loaded, config)  # before the ceilings are measured: a refusal costs nothing
    measured = ceilings.measure(quick=True)
    runs = reuse.run(loaded, config, measured, progress=not args.json)
    crossovers = breakeven.measured(runs)
    if args.json:
        print_json({"runs": [as_dict(r) for r in runs], "crossovers": [as_dict(c) for c in crossovers]})
        return 0
    for r in runs:
        cached = f", page cache before {max(r.page_cache_before):.0%}" if r.page_cache_before else ""
        print(f"P={r.prefix_tokens:>5} {r.way:<10} TTFT {fmt_time(r.ttft_s):>9} = prefix {fmt_time(r.prefix_s):>9} "
              f"(predicted {fmt_time(r.predicted_prefix_s)}) + suffix {fmt_time(r.suffix_s)} "
              f"(predicted {fmt_time(r.predicted_suffix_s)}) | KV {fmt_bytes(r.kv_bytes)} | same tokens "
              f"{r.same_tokens}{cached}")
    for c in crossovers:
        print(f"{c.tier} beats recompute above {c.crossover_tokens:.0f} prefix tokens ({c.source})")
    return 0


def register(sub) -> None:
    s = sub.add_parser("kvcache", help="restore a shared prefix's KV cache from RAM or disk, or recompute it: TTFT")
    s.add_argument("--prefix-tokens", type=limits.count_list, default=[256, 1024],
                   help="comma-separated prefix lengths P, e.g. 256,1024")
    s.add_argument("--suffix-tokens", type=limits.COUNT, default=32, help="new tokens after the shared prefix")
    s.add_argument("--new-tokens", type=limits.COUNT, default=8, help="tokens generated to compare the ways")
    s.add_argument("--repeats", type=limits.COUNT, default=3)
    s.add_argument("--tiers", type=tier_list, default=["recompute", "ram", "disk"],
                   help="comma-separated: recompute, ram, disk (warm; cold with --cold), pinned (CUDA only)")
    s.add_argument("--cold", action="store_true", help="disk: evict the KV file from the page cache before each restore")
    s.add_argument("--model", default=models.DEFAULT_MODEL)
    s.add_argument("--device", default="cpu", choices=["cpu", "cuda", "mps", "auto"],
                   help="cpu (default), cuda, mps (Apple) or auto: the GPU when torch sees one")
    s.add_argument("--json", action="store_true", help='one JSON object: {"runs": [ReuseRun], "crossovers": [Crossover]}')
    s.set_defaults(func=_cmd_kvcache)
