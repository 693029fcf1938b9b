"""`memlab ...`: the same measurements as the labs, without a notebook.

Each subcommand is a `_cmd_<name>(args) -> int` registered in `build_parser()`. `--json` prints
one JSON object with the record's fields (the public interface: field names stay stable).
A MemlabError prints its message (no traceback) and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys

from . import models
from .errors import MemlabError
from .units import fmt_bytes, fmt_time


def _print_json(obj) -> None:
    from .results import as_dict
    print(json.dumps(as_dict(obj) if not isinstance(obj, (list, str, int, float)) else obj, indent=1))


def _cmd_info(args) -> int:
    from .hardware import card
    hw = card()
    _print_json(hw) if args.json else print(hw)
    return 0


def _cmd_prepare(args) -> int:
    for dtype in args.dtype.split(","):
        folder = models.prepare(args.model, dtype=dtype)
        print(f"{args.model} ({dtype}) ready in {folder}")
    return 0


def _cmd_generate(args) -> int:
    from .generation import generate
    from .loading import load
    loaded = load(args.model, strategy=args.strategy, device=args.device, dtype=args.dtype)
    r = generate(loaded, args.prompt, max_new_tokens=args.max_new_tokens, do_sample=args.sample,
                 temperature=args.temperature, seed=args.seed)
    if args.json:
        _print_json(r)
        return 0
    print(r.text)
    print(f"\n[{r.model_name} {r.dtype} on {r.device}, loaded ({loaded.result.strategy}) in "
          f"{fmt_time(loaded.result.load_time_s)}] prompt {r.prompt_tokens} tok, {r.new_tokens} new tok | "
          f"TTFT {fmt_time(r.ttft_s)} | TPOT {fmt_time(r.tpot_s)} | decode {r.decode_tok_per_s:.1f} tok/s | "
          f"prefill {r.prefill_tok_per_s:.0f} tok/s | peak RSS {fmt_bytes(r.peak_rss_bytes)}")
    return 0


# ---- issue 7: disaggregated inference (memlab disagg, memlab simulate) ----------------------

def _cmd_disagg(args) -> int:
    from .disagg import run_split
    from .units import fmt_rate
    if not args.real:
        print("memlab disagg runs a real two-process prefill/decode split: add --real "
              "(e.g. memlab disagg --real --prompt-tokens 256).")
        return 2
    (r,) = run_split(args.model, prompt_tokens=args.prompt_tokens, max_new_tokens=args.max_new_tokens)
    if args.json:
        _print_json(r)
        return 0
    print(f"{r.model_name}: {r.prompt_tokens}-token prompt, {r.new_tokens} new tokens; tokens match "
          f"single process: {r.tokens_match}")
    print(f"KV cache sent {fmt_bytes(r.kv_bytes)} (footprint formula {fmt_bytes(r.kv_bytes_predicted)}) in "
          f"{fmt_time(r.transfer_s)} = {fmt_rate(r.transfer_bytes_per_s)} over gloo; "
          f"shared memory {fmt_time(r.shm_transfer_s)}, file {fmt_time(r.file_transfer_s)}")
    print(f"split:     TTFT {fmt_time(r.split_ttft_s)}  TPOT {fmt_time(r.split_tpot_s)} "
          f"(decode steps alone {fmt_time(r.split_decode_tpot_s)})")
    print(f"colocated: TTFT {fmt_time(r.colocated_ttft_s)}  TPOT {fmt_time(r.colocated_tpot_s)}")
    return 0


def _sim_profile(args):
    from . import calibration, simulator
    if args.profile == "local":
        return calibration.local_profile(args.model)
    if args.profile == "simple":
        return simulator.simple_profile()
    from transformers import AutoConfig
    return calibration.spec_profile(args.profile, AutoConfig.from_pretrained(models.prepare(args.model)))


def _cmd_simulate(args) -> int:
    from . import calibration, simstats, simulator
    from .results import as_dict
    if args.validate:
        v = calibration.validate(args.model, quick=not args.full)[0]
        if args.json:
            _print_json(v)
        else:
            print(f"median TTFT real {fmt_time(v.real_ttft_p50_s)} vs simulated {fmt_time(v.sim_ttft_p50_s)}: "
                  f"error {v.ttft_rel_error:+.1%}\nmedian TPOT real {fmt_time(v.real_tpot_p50_s)} vs simulated "
                  f"{fmt_time(v.sim_tpot_p50_s)}: error {v.tpot_rel_error:+.1%}\n(service-time errors: prefill "
                  f"{v.prefill_rel_error:+.1%}, decode step {v.decode_step_rel_error:+.1%}; load average "
                  f"{v.load_avg_1m:.1f} on {v.num_cpus} CPUs)")
        return 0
    profile = _sim_profile(args)
    cluster = simulator.Cluster(args.mode, args.prefill_workers, args.decode_workers,
                                link_bytes_per_s=args.link_gbps * 1e9 / 8 if args.link_gbps else None)
    work = simulator.Workload(args.requests, args.rate, args.prompt_tokens, 0.5, args.output_tokens, 0.5,
                              seed=args.seed)
    recs = simulator.simulate(profile, cluster, work)
    s = simstats.summarize(recs, cluster, args.ttft_slo, args.tpot_slo)
    if args.trace:
        simstats.chrome_trace(recs, args.trace)
    if args.json:
        _print_json({**as_dict(s), "profile": as_dict(profile)})
        return 0
    print(f"{calibration.fmt_profile(profile)}")
    print(f"{s.mode} {s.num_prefill_workers}P:{s.num_decode_workers}D, {s.num_requests} requests at {args.rate} req/s")
    print(f"TTFT p50 {fmt_time(s.ttft_p50_s)} p99 {fmt_time(s.ttft_p99_s)} | TPOT p50 {fmt_time(s.tpot_p50_s)} "
          f"p99 {fmt_time(s.tpot_p99_s)} | SLO attainment {s.slo_attainment:.0%} "
          f"(TTFT <= {fmt_time(s.ttft_slo_s)}, TPOT <= {fmt_time(s.tpot_slo_s)})")
    return 0


def _add_issue7_commands(sub) -> None:
    s = sub.add_parser("disagg", help="real prefill/decode split over two processes, KV cache sent between them")
    s.add_argument("--real", action="store_true", help="run the two real worker processes (required)")
    s.add_argument("--prompt-tokens", type=int, default=256)
    s.add_argument("--max-new-tokens", type=int, default=16)
    s.add_argument("--model", default=models.DEFAULT_MODEL)
    s.add_argument("--json", action="store_true", help="one JSON object with the SplitResult fields")
    s.set_defaults(func=_cmd_disagg)

    s = sub.add_parser("simulate", help="simulate a prefill/decode cluster (SimPy) over a measured profile")
    s.add_argument("--rate", type=float, default=1.0, help="arrival rate, requests per second (Poisson)")
    s.add_argument("--prefill-workers", type=int, default=1)
    s.add_argument("--decode-workers", type=int, default=1)
    s.add_argument("--mode", choices=["disagg", "colocated"], default="disagg",
                   help="colocated runs P + D workers that each prefill and decode")
    s.add_argument("--link-gbps", type=float, default=None, help="KV link in gigabits/s (default: measured)")
    s.add_argument("--requests", type=int, default=200)
    s.add_argument("--prompt-tokens", type=int, default=256, help="mean; uniform +-50%%")
    s.add_argument("--output-tokens", type=int, default=32, help="mean; uniform +-50%%")
    s.add_argument("--ttft-slo", type=float, default=2.0, help="seconds")
    s.add_argument("--tpot-slo", type=float, default=0.2, help="seconds")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--profile", default="local",
                   help="'local' (measured here, cached), 'simple', or a device name from data/hardware.csv")
    s.add_argument("--model", default=models.DEFAULT_MODEL)
    s.add_argument("--trace", default=None, help="write a Chrome-trace JSON of the timeline here")
    s.add_argument("--validate", action="store_true",
                   help="serve a trace for real on two processes and report the simulator's error")
    s.add_argument("--full", action="store_true", help="with --validate: the longer trace and calibration")
    s.add_argument("--json", action="store_true", help="one JSON object")
    s.set_defaults(func=_cmd_simulate)
# ---- end issue 7 ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="memlab", description="Where an LLM's weights and context live, measured.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("info", help="print this machine's hardware card")
    s.add_argument("--json", action="store_true", help="one JSON object")
    s.set_defaults(func=_cmd_info)

    s = sub.add_parser("prepare", help="convert/download a model into the cache (once)",
                       description="Models:\n" + models.catalog_text(),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("model", nargs="?", default=models.DEFAULT_MODEL)
    s.add_argument("--dtype", default="fp32", help="comma-separated: fp32,bf16,fp16")
    s.set_defaults(func=_cmd_prepare)

    s = sub.add_parser("generate", help="answer a prompt and print TTFT, TPOT and tok/s")
    s.add_argument("prompt")
    s.add_argument("--model", default=models.DEFAULT_MODEL)
    s.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    s.add_argument("--dtype", default="fp32", choices=list(models.DTYPES))
    s.add_argument("--strategy", default="resident", help="where the weights live (see `memlab load`)")
    s.add_argument("--max-new-tokens", type=int, default=32)
    s.add_argument("--sample", action="store_true", help="sample instead of greedy")
    s.add_argument("--temperature", type=float, default=0.7)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--json", action="store_true", help="one JSON object with the GenerationResult fields")
    s.set_defaults(func=_cmd_generate)
    _add_issue7_commands(sub)  # issue 7
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except MemlabError as e:
        print(f"memlab: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
