"""`memlab disagg` (the real split) and `memlab simulate` (lab 07).
"""

from __future__ import annotations

from memlab.core import limits, models
from memlab.core.cli import print_json
from memlab.core.units import fmt_bytes, fmt_time


def _cmd_disagg(args) -> int:
    from memlab.core.units import fmt_rate
    from memlab.disaggregation.disagg import run_split
    if not args.real:
        print("memlab disagg runs a real two-process prefill/decode split: add --real "
              "(e.g. memlab disagg --real --prompt-tokens 256).")
        return 2
    (r,) = run_split(args.model, prompt_tokens=args.prompt_tokens, max_new_tokens=args.max_new_tokens)
    if args.json:
        print_json(r)
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
    from memlab.disaggregation import calibration, profiles
    if args.profile == "local":
        return calibration.local_profile(args.model)
    if args.profile == "simple":
        return profiles.simple_profile()
    from transformers import AutoConfig
    return profiles.spec_profile(args.profile, AutoConfig.from_pretrained(models.prepare(args.model)))


def _cmd_simulate(args) -> int:
    from memlab.disaggregation import calibration, profiles, simstats, simulator, workload
    if args.validate:
        v = calibration.validate(args.model, quick=not args.full)[0]
        if args.json:
            print_json(v)
        else:
            print(f"median TTFT real {fmt_time(v.real_ttft_p50_s)} vs simulated {fmt_time(v.sim_ttft_p50_s)}: "
                  f"error {v.ttft_rel_error:+.1%}\nmedian TPOT real {fmt_time(v.real_tpot_p50_s)} vs simulated "
                  f"{fmt_time(v.sim_tpot_p50_s)}: error {v.tpot_rel_error:+.1%}\n(service-time errors: prefill "
                  f"{v.prefill_rel_error:+.1%}, decode step {v.decode_step_rel_error:+.1%}; load average "
                  f"{v.load_avg_1m:.1f} on {v.num_cpus} CPUs)")
        return 0
    profile = _sim_profile(args)
    cluster = workload.Cluster(args.mode, args.prefill_workers, args.decode_workers,
                                link_bytes_per_s=args.link_gbps * 1e9 / 8 if args.link_gbps else None)
    work = workload.Workload(args.requests, args.rate, args.prompt_tokens, 0.5, args.output_tokens, 0.5,
                              seed=args.seed)
    recs = simulator.simulate(profile, cluster, work)
    s = simstats.summarize(recs, cluster, args.ttft_slo, args.tpot_slo)
    if args.trace:
        simstats.chrome_trace(recs, args.trace)
    if args.json:
        print_json(s.as_json(profile))
        return 0
    print(f"{profiles.fmt_profile(profile)}")
    print(f"{s.mode} {s.num_prefill_workers}P:{s.num_decode_workers}D, {s.num_requests} requests at {args.rate} req/s")
    print(f"TTFT p50 {fmt_time(s.ttft_p50_s)} p99 {fmt_time(s.ttft_p99_s)} | TPOT p50 {fmt_time(s.tpot_p50_s)} "
          f"p99 {fmt_time(s.tpot_p99_s)} | SLO attainment {s.slo_attainment:.0%} "
          f"(TTFT <= {fmt_time(s.ttft_slo_s)}, TPOT <= {fmt_time(s.tpot_slo_s)})")
    return 0


def register(sub) -> None:
    s = sub.add_parser("disagg", help="real prefill/decode split over two processes, KV cache sent between them")
    s.add_argument("--real", action="store_true", help="run the two real worker processes (required)")
    s.add_argument("--prompt-tokens", type=limits.COUNT, default=256)
    s.add_argument("--max-new-tokens", type=limits.cli_type(limits.count, minimum=2), default=16,
                   help="at least 2: the decode worker makes tokens 2..n")
    s.add_argument("--model", default=models.DEFAULT_MODEL)
    s.add_argument("--json", action="store_true", help="one JSON object with the SplitResult fields")
    s.set_defaults(func=_cmd_disagg)

    s = sub.add_parser("simulate", help="simulate a prefill/decode cluster (SimPy) over a measured profile")
    s.add_argument("--rate", type=limits.POSITIVE, default=1.0, help="arrival rate, requests per second (Poisson)")
    s.add_argument("--prefill-workers", type=limits.COUNT, default=1)
    s.add_argument("--decode-workers", type=limits.COUNT, default=1)
    s.add_argument("--mode", choices=["disagg", "colocated"], default="disagg",
                   help="colocated runs P + D workers that each prefill and decode")
    s.add_argument("--link-gbps", type=limits.POSITIVE, default=None, help="KV link in gigabits/s (default: measured)")
    s.add_argument("--requests", type=limits.COUNT, default=200)
    s.add_argument("--prompt-tokens", type=limits.COUNT, default=256, help="mean; uniform +-50%%")
    s.add_argument("--output-tokens", type=limits.COUNT, default=32, help="mean; uniform +-50%%")
    s.add_argument("--ttft-slo", type=limits.POSITIVE, default=2.0, help="seconds")
    s.add_argument("--tpot-slo", type=limits.POSITIVE, default=0.2, help="seconds")
    s.add_argument("--seed", type=limits.COUNT0, default=0)
    s.add_argument("--profile", default="local",
                   help="'local' (measured here, cached), 'simple', or a device name from data/hardware.csv")
    s.add_argument("--model", default=models.DEFAULT_MODEL)
    s.add_argument("--trace", default=None, help="write a Chrome-trace JSON of the timeline here")
    s.add_argument("--validate", action="store_true",
                   help="serve a trace for real on two processes and report the simulator's error")
    s.add_argument("--full", action="store_true", help="with --validate: the longer trace and calibration")
    s.add_argument("--json", action="store_true", help="one JSON object")
    s.set_defaults(func=_cmd_simulate)
