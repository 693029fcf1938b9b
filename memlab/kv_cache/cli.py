"""`memlab kvcache` (lab 09): serve a shared prefix from each tier and print TTFT beside its predictions.

Each command imports what it runs inside its function, so `memlab --help` imports no torch (tests/test_cli_imports.py).
"""

from __future__ import annotations

import argparse

from memlab.core import limits, models
from memlab.core.cli import print_json
from memlab.core.errors import InvalidArgumentError
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
    if args.block_tokens and len(args.prefix_tokens) < 2:  # refused before anything loads
        raise InvalidArgumentError("--block-tokens fits latency and rate: give --prefix-tokens two lengths or more")
    if args.block_tokens and args.device in ("cuda", "mps"):
        raise InvalidArgumentError("--block-tokens sweeps restores into a CPU cache: use --device cpu")
    loaded = loading.load(args.model, device=args.device)
    reuse.check_context(loaded, config)  # before the ceilings are measured: a refusal costs nothing
    measured = ceilings.measure(quick=True)
    runs = reuse.run(loaded, config, measured, progress=not args.json)
    crossovers = breakeven.measured(runs)
    sweep = block_sweep(loaded, args) if args.block_tokens else None
    if args.json:
        out = {"runs": [as_dict(r) for r in runs], "crossovers": [as_dict(c) for c in crossovers]}
        if sweep is not None:
            out["granularity"] = {k: [as_dict(x) for x in v] for k, v in sweep.items()}
        print_json(out)
        return 0
    for r in runs:
        cached = f", page cache before {max(r.page_cache_before):.0%}" if r.page_cache_before else ""
        print(f"P={r.prefix_tokens:>5} {r.way:<10} TTFT {fmt_time(r.ttft_s):>9} = prefix {fmt_time(r.prefix_s):>9} "
              f"(predicted {fmt_time(r.predicted_prefix_s)}) + suffix {fmt_time(r.suffix_s)} "
              f"(predicted {fmt_time(r.predicted_suffix_s)}) | KV {fmt_bytes(r.kv_bytes)} | same tokens "
              f"{r.same_tokens}{cached}")
    for c in crossovers:
        print(f"{c.tier} beats recompute above {c.crossover_tokens:.0f} prefix tokens ({c.source})")
    for p in (sweep or {}).get("points", []):
        print(f"P={p.prefix_tokens:>5} {p.tier:<21} {p.layout:<10} blocks of {fmt_bytes(p.block_bytes):>9} x "
              f"{p.num_transfers:>6}: restore {fmt_time(p.restore_best_s):>9} vs recompute {fmt_time(p.recompute_best_s)}")
    for f in (sweep or {}).get("fits", []):
        print(f"{f.tier}: {fmt_time(f.latency_s)} per transfer + bytes / {f.rate_bytes_per_s / 1e9:.2f} GB/s "
              f"(R^2 {f.r2:.3f}, {f.num_points} points)")
    for b in (sweep or {}).get("breakevens", []):
        print(f"P={b.prefix_tokens}: {b.tier} loses to recomputing below blocks of {fmt_bytes(b.predicted_block_bytes)} "
              f"(predicted; the sweep flips between {fmt_bytes(b.largest_losing_bytes)} and {fmt_bytes(b.smallest_winning_bytes)})")
    return 0


def block_tiers(tiers: list[str], cold: bool) -> tuple:
    """The block-size sweep's tiers of a --tiers list: ram; disk is disk-warm, or with --cold the cold
    pool read scattered and in order."""
    from memlab.kv_cache import granularity
    names = ["ram"] if "ram" in tiers else []
    if "disk" in tiers:
        names += ["disk-cold", "disk-cold-sequential"] if cold else ["disk-warm"]
    return tuple(names) or granularity.TIERS


def block_sweep(loaded, args) -> dict:
    """--block-tokens: restore each prefix block by block from each tier, fit latency + bytes / rate."""
    from memlab.kv_cache import blockfit, granularity
    config = granularity.GranularityConfig(prefix_tokens=tuple(args.prefix_tokens), block_tokens=tuple(args.block_tokens),
                                           tiers=block_tiers(args.tiers, args.cold), repeats=args.repeats,
                                           suffix_tokens=args.suffix_tokens, new_tokens=args.new_tokens)
    points = granularity.run(loaded, config, progress=not args.json)
    fits = blockfit.fits(points)
    return {"points": points, "fits": list(fits.values()), "breakevens": blockfit.breakevens(points, fits)}


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
    s.add_argument("--block-tokens", type=limits.count_list, default=None,
                   help="also restore each prefix in blocks of these many tokens (comma-separated, e.g. 1,4,16,64), "
                        "per layer and contiguous, and fit latency + bytes / rate per tier (CPU)")
    s.add_argument("--model", default=models.DEFAULT_MODEL)
    s.add_argument("--device", default="cpu", choices=["cpu", "cuda", "mps", "auto"],
                   help="cpu (default), cuda, mps (Apple) or auto: the GPU when torch sees one")
    s.add_argument("--json", action="store_true", help='one JSON object: {"runs": [ReuseRun], "crossovers": [Crossover]} '
                   '(+ "granularity": {"points", "fits", "breakevens"} with --block-tokens)')
    s.set_defaults(func=_cmd_kvcache)
