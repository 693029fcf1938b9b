"""`memlab mempipe`: the paper's four steps in one decode step (lab 08); `--offload`: the GPU/FPGA search.

Each command imports what it runs inside its function, so `memlab --help` imports no torch (tests/test_cli_imports.py).
"""

from __future__ import annotations

from memlab.core import limits, models
from memlab.core.cli import print_json
from memlab.core.units import fmt_time


def _offload(args, loaded, cfg) -> dict:
    """The best assignment at --context: from measured step times (--measured) or the roofline."""
    from memlab.memory_processing import measured, offload
    ratio = measured.spec_speedups(memory=args.fpga_memory)["comp"] if args.measured else None
    if args.measured:
        steps = measured.with_fpga(measured.measure(loaded, (args.context,), cfg)[0], ratio)
        r = offload.search(steps)
        extra = {"home": steps.home, "break_even_speedup": measured.break_even_speedup(steps),
                 "energy_ratio": measured.energy_ratio(r, steps.home), "origin": steps.origin}
    else:
        r, extra = offload.search(offload.LLAMA31_8B, args.context), {"home": "gpu"}
    return {"source": r.source, "shape_name": r.shape_name, "context_tokens": r.context_tokens,
            "batch_size": r.batch_size, "memory_bound_speedup": ratio, "fpga_memory": args.fpga_memory,
            "devices": list(r.best.devices), "home_only_s": r.gpu_only.total_s, "best_s": r.best.total_s,
            "transfer_s": r.best.transfer_s, "speedup": r.speedup, **extra}


def _cmd_mempipe(args) -> int:
    from memlab.memory_processing import mempipe
    from memlab.core.loading import load
    loaded = load(args.model) if args.measured or not args.offload else None
    cfg = mempipe.PipeConfig(page_tokens=args.page_tokens, budget_tokens=args.budget_tokens,
                             repeats=args.repeats)
    if args.offload:
        out = _offload(args, loaded, cfg)
        if args.json:
            print_json(out)
            return 0
        fpga = (f"FPGA {out['memory_bound_speedup']:.3g}x on comp + ret ({out['fpga_memory']} spec)"
                if args.measured else "FPGA from spec sheets")
        print(f"{out['source']} step times, {out['shape_name']} at {out['context_tokens']} tokens, {fpga}: "
              f"best {out['devices']}, "
              f"{fmt_time(out['home_only_s'])} -> {fmt_time(out['best_s'])} ({out['speedup']:.2f}x, "
              f"PCIe {fmt_time(out['transfer_s'])})")
        if "break_even_speedup" in out:
            print(f"  offloading comp + ret breaks even at {out['break_even_speedup']:.3g}x")
        return 0
    p = mempipe.profile_decode(loaded, args.context, cfg)
    if args.json:
        print_json(p.as_json())
        return 0
    print(f"{p.model_name}: one decode step after {p.context_tokens} cached tokens, "
          f"top {p.selected_pages} of {p.num_pages} pages of {p.page_tokens} per KV head")
    for part, share in p.shares().items():
        print(f"  {part:<6} {fmt_time(getattr(p, part + '_s')):>10}  {100 * share:5.1f}%")
    print(f"  step   {fmt_time(p.step_s):>10}  (memory processing {100 * p.memory_share:.1f}%; "
          f"transformers dense step {fmt_time(p.dense_step_s)})")
    print(f"  same next token as dense: {p.top1_matches_dense}, KL to dense {p.kl_to_dense:.2e} nats")
    return 0


def register(sub) -> None:
    s = sub.add_parser("mempipe", help="time the paper's four memory-processing steps in one decode step")
    s.add_argument("--context", type=limits.COUNT, default=2048, help="tokens in the KV cache before the step")
    s.add_argument("--model", default=models.DEFAULT_MODEL)
    s.add_argument("--page-tokens", type=limits.COUNT, default=16)
    s.add_argument("--budget-tokens", type=limits.COUNT, default=256, help="tokens attended per KV head")
    s.add_argument("--repeats", type=limits.COUNT, default=5)
    s.add_argument("--offload", action="store_true", help="search the GPU/FPGA assignments of the four steps")
    s.add_argument("--measured", action="store_true",
                   help="with --offload: step times measured here (cpu, cuda) instead of the roofline")
    s.add_argument("--fpga-memory", choices=("sram", "hbm"), default="sram",
                   help="with --offload --measured: FPGA speed-up on comp/ret from its SRAM or HBM spec")
    s.add_argument("--json", action="store_true", help="one JSON object with the PipeProfile fields")
    s.set_defaults(func=_cmd_mempipe)
