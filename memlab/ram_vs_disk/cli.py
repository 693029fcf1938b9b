"""`memlab load`: one residency strategy, its LoadResult; `memlab limited`: decode in a memory cgroup (lab 02).

Each command imports what it runs inside its function, so `memlab --help` imports no torch (tests/test_cli_imports.py).
"""

from __future__ import annotations

from memlab.core import limits, models
from memlab.core.cli import print_json
from memlab.core.units import fmt_bytes, fmt_time
from memlab.core.cli import add_load_options, STRATEGIES


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


def _cmd_limited(args) -> int:
    from memlab.ram_vs_disk import cgroup
    run, generation = cgroup.generate_limited(args.model, args.strategy, int(args.limit_gib * 2**30),
                                              args.max_new_tokens, args.prompt, args.dtype, args.force)
    if args.json:
        from memlab.core.results import as_dict
        print_json({**as_dict(run), "generation": generation})
        return 0
    print(run.summary)
    if generation is not None:
        print(f"{generation['model_name']} ({args.strategy}): decode {generation['decode_tok_per_s']:.2f} tok/s, "
              f"TTFT {fmt_time(generation['ttft_s'])}" + ("; the text is noise (random shape-true weights)"
                                                           if generation.get("weights_origin") != "trained" else ""))
    return 0 if generation is not None or run.is_oom_killed else 1


def register(sub) -> None:
    s = sub.add_parser("load", help="load a model with a residency strategy and print the LoadResult")
    add_load_options(s)
    s.add_argument("--json", action="store_true", help="one JSON object with the LoadResult fields")
    s.set_defaults(func=_cmd_load)

    s = sub.add_parser("limited", help="generate inside a memory cgroup whose limit (page cache included) may be "
                                       "below the model: bigger than RAM for real (Linux, root)")
    s.add_argument("--limit-gib", type=limits.POSITIVE, required=True, help="the cgroup's memory limit, GiB (2^30 B)")
    s.add_argument("--model", default=models.DEFAULT_MODEL, help="e.g. shape:llama-3.2-1b (random weights, real size)")
    s.add_argument("--strategy", default="paged-prefetch", choices=list(STRATEGIES))
    s.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16"])
    s.add_argument("--prompt", default="hi")
    s.add_argument("--max-new-tokens", type=limits.COUNT, default=4)
    s.add_argument("--force", action="store_true", help="skip the memory guard (it reads the limit too)")
    s.add_argument("--json", action="store_true", help="the LimitedRun fields and `generation` (null when killed)")
    s.set_defaults(func=_cmd_limited)
