"""`memlab ttft`: TTFT against prompt length (lab 03).

Each command imports what it runs inside its function, so `memlab --help` imports no torch (tests/test_cli_imports.py).
"""

from __future__ import annotations

from memlab.core import limits
from memlab.core.units import fmt_time
from memlab.core.cli import add_load_options, print_json


def _cmd_ttft(args) -> int:
    from memlab.core import ceilings
    from memlab.ttft import latency
    from memlab.core.loading import load
    tokens = args.prompt_tokens
    loaded = load(args.model, strategy=args.strategy, device=args.device, dtype=args.dtype,
                  cold=args.cold, bigger_than_ram=args.bigger_than_ram, force=args.force,
                  context_tokens=max(tokens) + 1)
    measured = ceilings.measure(quick=True)  # cached per machine (`memlab ceilings` refreshes it)
    flops, _ = measured.roof(loaded.dtype, loaded.device.type)
    points = latency.prompt_sweep(loaded, tokens, repeats=args.repeats, ceilings=measured)
    if args.json:
        print_json(latency.sweep_json(loaded, measured, points))
        return 0
    print(f"{loaded.name} {loaded.dtype} on {loaded.device} ({loaded.result.strategy}); {loaded.dtype} matmul "
          f"ceiling {flops / 1e9:.0f} GFLOP/s (measured {measured.measured_at}); median of {args.repeats}")
    print(f"{'prompt tok':>10} {'tokenize':>10} {'prefill':>10} {'TTFT':>10} {'prefill floor':>14}")
    for p in points:
        print(f"{p.prompt_tokens:>10} {fmt_time(p.tokenize_s):>10} {fmt_time(p.prefill_s):>10} "
              f"{fmt_time(p.ttft_s):>10} {fmt_time(p.predicted_prefill_s):>14}")
    return 0


def register(sub) -> None:
    s = sub.add_parser("ttft", help="time to first token against prompt length (TTFT anatomy)")
    add_load_options(s)
    s.add_argument("--prompt-tokens", type=limits.count_list, default=[16, 256, 1024],
                   help="comma-separated prompt lengths (default 16,256,1024)")
    s.add_argument("--repeats", type=limits.COUNT, default=3)
    s.add_argument("--json", action="store_true", help='{"load": LoadResult, "ceilings": Ceilings, "points": [TTFTPoint]}')
    s.set_defaults(func=_cmd_ttft)
