"""`memlab ceilings`, `memlab roofline` and `memlab specdec` (lab 01).

Each command imports what it runs inside its function, so `memlab --help` imports no torch (tests/test_cli_imports.py).
"""

from __future__ import annotations

from memlab.core import dtypes, limits, models
from memlab.core.cli import print_json
from memlab.core.units import fmt_bytes, fmt_time


def _cmd_ceilings(args) -> int:
    from memlab.core import ceilings
    from memlab.core.units import fmt_flops
    c = ceilings.measure(quick=args.quick, refresh=args.refresh)
    if args.json:
        print_json(c)
        return 0
    print(f"{c.host} ({c.mode}, {c.num_threads} threads, load avg {c.load_avg_1min:.1f}, measured {c.measured_at})")
    reads = " (" + ", ".join(f"{k} {v:.1f}" for k, v in c.read_kernels) + ")" if c.read_kernels else ""
    print(f"memory  roof {c.bandwidth_bytes_per_s / 1e9:.1f} = the fastest of: read {c.read_gb_per_s:.1f}{reads} | copy {c.copy_gb_per_s:.1f} | scale {c.scale_gb_per_s:.1f} | "
          f"add {c.add_gb_per_s:.1f} | triad {c.triad_gb_per_s:.1f} GB/s  ({fmt_bytes(c.array_bytes)} arrays)")
    print("matmul  " + " | ".join(f"{d} {fmt_flops(c.flop_per_s(d))}" for d in ("fp32", "bf16", "fp16")))
    if c.disk_file_bytes:
        print(f"disk    cold {c.disk_cold_gb_per_s:.2f} GB/s (resident after evict {c.disk_cold_resident_fraction:.0%}) | "
              f"warm {c.disk_warm_gb_per_s:.2f} GB/s")
    if c.vram_gb_per_s:
        print(f"gpu     {c.device}: VRAM {c.vram_gb_per_s:.0f} GB/s | fp32 {fmt_flops(c.gpu_fp32_flop_per_s)} | "
              f"bf16 {fmt_flops(c.gpu_bf16_flop_per_s)} | H2D pinned {c.h2d_pinned_gb_per_s:.1f} / pageable "
              f"{c.h2d_pageable_gb_per_s:.1f} GB/s | D2H pinned {c.d2h_pinned_gb_per_s:.1f} / pageable "
              f"{c.d2h_pageable_gb_per_s:.1f} GB/s")
    return 0


def _cmd_roofline(args) -> int:
    from memlab.core import ceilings, devices, roofline
    from memlab.memory_wall import points
    from memlab.memory_wall import report
    from memlab.core.loading import load
    c = ceilings.measure(quick=True)
    loaded = load(args.model, dtype=args.dtype)
    rep = report.measure_report(loaded, c, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                                  fast=not args.no_fast)
    if args.out:
        from memlab.memory_wall import plots
        pts = [points.point(f"decode (eager) B={args.batch_size}",
                              roofline.decode_workload(loaded.model.config, args.batch_size,
                                                       rep.prompt_tokens + rep.new_tokens // 2, args.dtype),
                              args.batch_size / rep.measured_decode_tok_per_s)]
        plots.roofline(c, pts, devices.table()).savefig(args.out, dpi=120)
    if args.json:
        print_json(rep)
        return 0
    print(f"{rep.model_name} {rep.dtype}, batch {rep.batch_size}: {rep.decode_bytes_per_token / 1e6:.0f} MB per token, "
          f"intensity {rep.decode_intensity_flop_per_byte:.2f} FLOP/byte; memory roof {rep.bandwidth_gb_per_s:.1f} GB/s")
    print(f"decode  predicted <= {rep.predicted_decode_tok_per_s:.1f} tok/s | measured {rep.measured_decode_tok_per_s:.1f} "
          f"tok/s ({rep.decode_fraction_of_bound:.0%} of the bound)")
    if not args.no_fast:
        print(f"fast    {rep.fast_decode_tok_per_s:.1f} tok/s ({rep.fast_fraction_of_bound:.0%} of the bound), "
              f"same tokens: {rep.fast_same_tokens}")
    print(f"prefill predicted >= {fmt_time(rep.predicted_prefill_s)} | measured {fmt_time(rep.measured_prefill_s)}")
    if args.out:
        print(f"figure saved to {args.out}")
    return 0


def _cmd_specdec(args) -> int:
    from memlab.core import ceilings
    from memlab.core.loading import load
    from memlab.memory_wall import specreport
    c = ceilings.measure(quick=True)
    loaded = load(args.model)
    rep = specreport.measure(loaded, args.prompt, k=args.k, max_new_tokens=args.tokens, max_ngram=args.max_ngram,
                             repeats=args.repeats, ceilings=c, num_threads=args.threads, progress=not args.json,
                             path=args.path)
    if args.json:
        print_json(rep)
        return 0
    v = rep.costs
    print(f"{rep.model_name}, {rep.path} path, {rep.prompt_tokens}-token prompt, {v.num_threads} thread(s): "
          f"a forward of k + 1 tokens (k drafts) vs one decode step ({fmt_time(v.verify_s[0])}), medians of {v.repeats} rounds")
    print("  k        " + " ".join(f"{k:>5d}" for k in v.ks))
    print("  measured " + " ".join(f"{r:5.2f}" for r in v.cost_ratio))
    print("  roofline " + " ".join(f"{r:5.2f}" for r in v.roofline_ratio))
    print("  ran: " + ", ".join(f"k={k} {name}" for k, name in zip(v.ks, v.kernels) if k in (0, 1))
          + " (k > 1 as k = 1)")
    print(f"same tokens as greedy: {rep.same_tokens} ({rep.new_tokens} tokens); k = {rep.k}: {rep.num_verifies} verifies, "
          f"acceptance {rep.acceptance_rate:.0%} ({rep.num_accepted}/{rep.num_drafted} drafts), "
          f"{rep.tokens_per_verify:.2f} tokens per verify (expected from the acceptance {rep.expected_tokens_per_verify:.2f})")
    print(f"speed-up over greedy: predicted {rep.predicted_speedup:.2f}x (tokens per verify / mean verify cost "
          f"{rep.mean_verify_cost:.2f}), measured {rep.measured_speedup:.2f}x "
          f"(decode {fmt_time(rep.greedy_decode_s)} -> {fmt_time(rep.speculative_decode_s)})")
    return 0


def register(sub) -> None:
    s = sub.add_parser("ceilings", help="measure memory bandwidth, matmul FLOP/s, disk (cached per machine)")
    s.add_argument("--quick", action="store_true", help="seconds instead of under a minute")
    s.add_argument("--refresh", action="store_true", help="measure again instead of using the cache")
    s.add_argument("--json", action="store_true", help="one JSON object with the Ceilings fields")
    s.set_defaults(func=_cmd_ceilings)

    s = sub.add_parser("roofline", help="predicted vs measured decode speed from the measured ceilings")
    s.add_argument("--model", default=models.DEFAULT_MODEL)
    s.add_argument("--dtype", default="fp32", choices=list(dtypes.TORCH))
    s.add_argument("--batch-size", type=limits.COUNT, default=1)
    s.add_argument("--max-new-tokens", type=limits.COUNT, default=32)
    s.add_argument("--no-fast", action="store_true", help="skip memlab's fast decode path")
    s.add_argument("--out", type=limits.output_file, help="save the roofline figure to this PNG")
    s.add_argument("--json", action="store_true", help="one JSON object with the RooflineReport fields")
    s.set_defaults(func=_cmd_roofline)

    s = sub.add_parser("specdec", help="speculative decoding with prompt-lookup drafts: verify cost per k, "
                                       "acceptance, predicted vs measured speed-up, same tokens as greedy")
    s.add_argument("--model", default=models.DEFAULT_MODEL)
    s.add_argument("--prompt", default="quote", help="text, or a built-in prompt: quote (copies its context), "
                                                     "prose (does not)")
    s.add_argument("--k", type=limits.COUNT, default=4, help="the most drafted tokens per verify")
    s.add_argument("--tokens", type=limits.COUNT, default=48, help="new tokens at most (stops at end of text)")
    s.add_argument("--max-ngram", type=limits.COUNT, default=3, help="longest n-gram the lookup matches")
    s.add_argument("--repeats", type=limits.COUNT, default=3)
    s.add_argument("--threads", type=limits.COUNT, default=1, help="torch threads (1: a shared machine's "
                                                                   "scheduling stays out of the ratios)")
    s.add_argument("--path", default="eager", choices=["eager", "fast"],
                   help="eager (default: transformers' forward, any model it loads) or fast (memlab's fast path: "
                        "the step and a verify of k drafts in C, each weight row read once for all k + 1 rows)")
    s.add_argument("--json", action="store_true", help="one JSON object with the SpecDecReport fields")
    s.set_defaults(func=_cmd_specdec)
