"""`memlab disagg` (the real split) and `memlab simulate` (lab 07).

Each command imports what it runs inside its function, so `memlab --help` imports no torch (tests/test_cli_imports.py).
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
    (r,) = run_split(args.model, prompt_tokens=args.prompt_tokens, max_new_tokens=args.max_new_tokens,
                     link_gbps=args.link_gbps)
    if args.json:
        print_json(r)
        return 0
    print(f"{r.model_name}: {r.prompt_tokens}-token prompt, {r.new_tokens} new tokens; tokens match "
          f"single process: {r.tokens_match} ({r.launcher} on {', '.join(dict.fromkeys(r.hosts))})")
    print(f"KV cache sent {fmt_bytes(r.kv_bytes)} (footprint formula {fmt_bytes(r.kv_bytes_predicted)}) in "
          f"{fmt_time(r.transfer_s)} = {fmt_rate(r.transfer_bytes_per_s)} over gloo; "
          f"shared memory {fmt_time(r.shm_transfer_s)}, file {fmt_time(r.file_transfer_s)}")
    if r.link_gbps:
        print(f"shaped link: asked {r.link_gbps:g} Gbit/s, measured {r.link_measured_gbps:.3g} Gbit/s "
              f"(the packed cache alone, median of its sends: {fmt_time(r.wire_median_s)})")
    print(f"split:     TTFT {fmt_time(r.split_ttft_s)}  TPOT {fmt_time(r.split_tpot_s)} "
          f"(decode steps alone {fmt_time(r.split_decode_tpot_s)})")
    print(f"colocated: TTFT {fmt_time(r.colocated_ttft_s)}  TPOT {fmt_time(r.colocated_tpot_s)}")
    return 0


def _sim_profile(args):
    from memlab.disaggregation import profiles, published
    if args.profile == "local":
        from memlab.disaggregation import calibration  # torch and the real model: only for a measured profile
        return calibration.local_profile(args.model)
    if args.profile == "simple":
        return profiles.simple_profile()
    if args.profile in published.MODELS:
        return published.model(args.profile).profile()
    from transformers import AutoConfig
    return profiles.spec_profile(args.profile, AutoConfig.from_pretrained(models.prepare(args.model)))


def _slo(args):
    from memlab.disaggregation import slo
    s = slo.preset(args.slo) if args.slo else slo.custom(args.ttft_slo, args.tpot_slo)
    if args.slo_target is not None:
        from dataclasses import replace
        s = replace(s, target=args.slo_target)
    return s


def _print_validation(args) -> int:
    from memlab.disaggregation import validation
    v = validation.validate(args.model, quick=not args.full)[0]
    if args.json:
        print_json(v)
    else:
        print(f"median TTFT real {fmt_time(v.real_ttft_p50_s)} vs simulated {fmt_time(v.sim_ttft_p50_s)}: "
              f"error {v.ttft_rel_error:+.1%}\nmedian TPOT real {fmt_time(v.real_tpot_p50_s)} vs simulated "
              f"{fmt_time(v.sim_tpot_p50_s)}: error {v.tpot_rel_error:+.1%}\np90 errors: TTFT {v.ttft_p90_rel_error:+.1%}, "
              f"TPOT {v.tpot_p90_rel_error:+.1%} over {v.num_requests} requests\n(service-time errors: prefill "
              f"{v.prefill_rel_error:+.1%}, decode step {v.decode_step_rel_error:+.1%}; load average "
              f"{v.load_avg_1m:.1f} on {v.num_cpus} CPUs; next to a busy neighbour prefill ran "
              f"{v.prefill_contention_slowdown:.2f}x and a decode step {v.decode_contention_slowdown:.2f}x as long)\n"
              f"calibrated in {v.rounds + 1} bursts between {v.rounds} served chunks; the slowest burst's decode step "
              f"took {v.calibration_spread:.2f}x the fastest's (this machine's drift during the run)")
    return 0


def _print_goodput(args, profile, work, slo) -> int:
    from memlab.core.results import as_dict
    from memlab.disaggregation import simstats, workload
    p, d = args.prefill_workers, args.decode_workers
    link = args.link_gbps * 1e9 / 8 if args.link_gbps else None
    setups = {"colocated": workload.Cluster("colocated", p, d, prefill_chunk_tokens=args.chunk_tokens),
              "disagg": workload.Cluster("disagg", p, d, link_bytes_per_s=link)}
    found = {k: simstats.goodput_search(profile, cl, work, slo.ttft_s, slo.tpot_s, slo.target,
                                        iterations=args.goodput_iterations) for k, cl in setups.items()}
    if args.json:
        print_json({"num_workers": p + d, "slo": as_dict(slo), **{k: as_dict(g) for k, g in found.items()},
                    "workload": as_dict(work), "profile": as_dict(profile)})
        return 0
    print(_profile_line(profile))
    print(f"goodput at SLO {slo.name} (TTFT <= {fmt_time(slo.ttft_s)} and TPOT <= {fmt_time(slo.tpot_s)} for "
          f"{slo.target:.0%} of requests) [{slo.source}], {p + d} workers:")
    for k, g in found.items():
        what = "colocated" if k == "colocated" else f"disaggregated {p}P:{d}D"
        print(f"  {what}: {g.rate_per_s:.4g} req/s, {g.goodput_per_worker:.4g} per worker (bisection resolution "
              f"{g.resolution_per_s:.2g} req/s; attainment {g.attainment_at_rate:.0%} there, "
              f"{g.attainment_above:.0%} just above)" if g.is_bracketed else
              f"  {what}: >= {g.rate_per_s:.4g} req/s, not bracketed: even the top of the search met the target "
              f"(too few requests to load the cluster? raise --requests)")
    return 0


def _profile_line(profile) -> str:
    from memlab.disaggregation import profiles
    return profiles.fmt_profile(profile)


def _cmd_simulate(args) -> int:
    from memlab.disaggregation import simstats, simulator, traces, workload
    if args.validate:
        return _print_validation(args)
    if args.goodput and args.replay:
        print("memlab simulate: --goodput searches the rate of a synthetic workload; drop --replay (or --goodput)")
        return 2
    profile, slo = _sim_profile(args), _slo(args)
    work = workload.Traffic(args.requests, args.rate or 1.0, args.prompt_tokens, 0.5, args.output_tokens, 0.5,
                             seed=args.seed)
    if args.goodput:
        return _print_goodput(args, profile, work, slo)
    cluster = workload.Cluster(args.mode, args.prefill_workers, args.decode_workers,
                               link_bytes_per_s=args.link_gbps * 1e9 / 8 if args.link_gbps else None,
                               prefix_cache_blocks=args.prefix_cache_blocks,
                               prefill_chunk_tokens=args.chunk_tokens)
    requests, extra = work, {}
    if args.replay:
        requests = traces.read_trace(args.replay, max_requests=args.max_trace_requests)
        if args.rate:
            requests = traces.with_rate(requests, args.rate)
        extra = {"trace_file": str(args.replay), "trace_requests": len(requests),
                 "prefix_hit_share": traces.prefix_hit_share(requests)}
    recs = simulator.simulate(profile, cluster, requests)
    s = simstats.summarize(recs, cluster, slo.ttft_s, slo.tpot_s)
    extra.update(cached_token_share=simstats.cached_token_share(recs), prefix_cache_blocks=cluster.prefix_cache_blocks,
                 prefill_chunk_tokens=cluster.prefill_chunk_tokens)
    if args.trace:
        simstats.chrome_trace(recs, args.trace)
    if args.json:
        print_json({**s.as_json(profile), **extra})
        return 0
    print(_profile_line(profile))
    source = f"trace {args.replay} (prefix hit share {extra['prefix_hit_share']:.0%})" if args.replay else "requests"
    print(f"{s.mode} {s.num_prefill_workers}P:{s.num_decode_workers}D, {s.num_requests} {source} at "
          f"{s.rate_per_s:.3g} req/s; prefix cache {cluster.prefix_cache_blocks} blocks served "
          f"{extra['cached_token_share']:.0%} of prompt tokens")
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
    s.add_argument("--link-gbps", type=limits.POSITIVE, default=None,
                   help="send the KV cache over a loopback the kernel shapes to G gigabits/s (Linux, root; "
                        "default: the loopback at memory speed)")
    s.add_argument("--json", action="store_true", help="one JSON object with the SplitResult fields")
    s.set_defaults(func=_cmd_disagg)

    s = sub.add_parser("simulate", help="simulate a prefill/decode cluster (SimPy) over a measured profile")
    s.add_argument("--rate", type=limits.POSITIVE, default=None,
                   help="arrival rate, requests per second (Poisson; default 1); with --replay: rescale the trace")
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
                   help="'local' (measured here, cached), 'simple', a published model "
                        "(memlab.disaggregation.published.MODELS), or a device name from data/hardware.csv")
    s.add_argument("--model", default=models.DEFAULT_MODEL)
    s.add_argument("--trace", default=None, type=limits.output_file,
                   help="write a Chrome-trace JSON of the timeline here")
    s.add_argument("--replay", default=None, metavar="FILE",
                   help="serve the requests of a Mooncake-format JSONL trace (timestamp ms, input_length, "
                        "output_length, hash_ids) instead of the synthetic workload")
    s.add_argument("--max-trace-requests", type=limits.COUNT, default=None, help="with --replay: the first N only")
    s.add_argument("--prefix-cache-blocks", type=limits.COUNT0, default=0,
                   help="LRU prefix cache of N 512-token KV blocks shared by the prefill workers (0: off)")
    s.add_argument("--chunk-tokens", type=limits.COUNT0, default=0,
                   help="colocated mode: chunked prefill, C prompt tokens per step mixed with the decodes (0: off)")
    s.add_argument("--goodput", action="store_true",
                   help="search the goodput (highest rate meeting the SLO for a share of requests) of colocated "
                        "and disaggregated clusters with the same number of workers")
    s.add_argument("--slo", default=None, metavar="PRESET",
                   help="a published SLO (memlab.disaggregation.slo.PRESETS) instead of --ttft-slo/--tpot-slo")
    s.add_argument("--slo-target", type=limits.FRACTION, default=None,
                   help="share of requests that must meet both SLOs (default: the preset's, else 0.9)")
    s.add_argument("--goodput-iterations", type=limits.COUNT, default=12, help="bisection steps of the goodput search")
    s.add_argument("--validate", action="store_true",
                   help="serve a trace for real on two processes and report the simulator's error")
    s.add_argument("--full", action="store_true", help="with --validate: the longer trace and calibration")
    s.add_argument("--json", action="store_true", help="one JSON object")
    s.set_defaults(func=_cmd_simulate)
