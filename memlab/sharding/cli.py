"""`memlab shard`: checkpoint shards, pipeline or tensor parallel (lab 05).

Each command imports what it runs inside its function, so `memlab --help` imports no torch (tests/test_cli_imports.py).
"""

from __future__ import annotations

from memlab.core import limits, models
from memlab.core.cli import print_json
from memlab.core.units import fmt_bytes, fmt_time


def _cmd_shard(args) -> int:
    from memlab.sharding import checkpoint_shards, parallel as sharding
    if args.mode == "checkpoint":
        r = checkpoint_shards.compare_checkpoint(args.model, args.max_shard_mib * 2**20, args.max_new_tokens)
        if args.json:
            print_json(r.as_json())
            return 0
        print(f"{r.model_name}: {r.shards.num_files} shards of <= {args.max_shard_mib} MiB in {r.shard_dir}; "
              f"same tokens: {r.tokens_match}")
        for x in (r.single, r.shards):
            print(f"  {x.layout:6s} {x.num_files:3d} file(s), largest {fmt_bytes(x.largest_file_bytes)} | "
                  f"load {fmt_time(x.load_s)} | RSS before {fmt_bytes(x.start_rss_bytes)}, peak "
                  f"{fmt_bytes(x.peak_rss_bytes)} (predicted {fmt_bytes(x.predicted_peak_rss_bytes)})")
        return 0
    from memlab.core import torchrun
    env = torchrun.rank_env()
    ranks = args.ranks or (env.world_size if env else 2)  # under torchrun: the ranks it started
    cfg = sharding.ParallelConfig(model=args.model, world_size=ranks, max_new_tokens=args.max_new_tokens,
                                  batch_size=args.batch_size, micro_batches=args.micro_batches,
                                  backend=args.backend, timeout_s=args.timeout, link_gbps=args.link_gbps)
    r = sharding.run(cfg, args.mode)
    if args.json:
        print_json(r.as_json())
        return 0
    where = f"{r.launcher} on {', '.join(dict.fromkeys(r.hosts))}"
    print(f"{r.mode} parallel, {r.world_size} ranks ({r.backend}, {where}), {r.new_tokens} tokens; "
          f"tokens match one process: {r.tokens_match}")
    print(f"  prefill {fmt_time(r.prefill_s)} | TPOT {fmt_time(r.tpot_s)} | per token per rank: compute "
          f"{fmt_time(r.decode_compute_s_per_token)}, communication {fmt_time(r.decode_comm_s_per_token)} "
          f"({r.comm_share:.0%}) | {r.comm_bytes_per_token:.0f} B/token sent "
          f"(formula {r.predicted_comm_bytes_per_token} B)")
    if r.link_gbps:
        print(f"  shaped link: asked {r.link_gbps:g} Gbit/s, measured {r.link_measured_gbps:.3g} Gbit/s (1 and 8 MiB probes)")
    for x in r.ranks:
        print(f"  rank {x.rank}: {x.holds:40s} weights {fmt_bytes(x.weights_bytes)}, KV {fmt_bytes(x.kv_cache_bytes)}, "
              f"peak RSS {fmt_bytes(x.peak_rss_bytes)}")
    return 0


def register(sub) -> None:
    s = sub.add_parser("shard", help="checkpoint shards, pipeline or tensor parallel over torch.distributed")
    s.add_argument("--mode", required=True, choices=["checkpoint", "pipeline", "tensor"])
    s.add_argument("--ranks", type=limits.COUNT, default=None,
                   help="worker processes (pipeline, tensor); default 2, or under torchrun the ranks it started")
    s.add_argument("--model", default=models.DEFAULT_MODEL)
    s.add_argument("--max-new-tokens", type=limits.COUNT, default=16)
    s.add_argument("--batch-size", type=limits.COUNT, default=1)
    s.add_argument("--micro-batches", type=limits.COUNT, default=1, help="pipeline only")
    s.add_argument("--backend", default="gloo", choices=["gloo", "nccl"])
    s.add_argument("--max-shard-mib", type=limits.COUNT0, default=64,
                   help="checkpoint mode: largest shard (0: every tensor in a file of its own)")
    s.add_argument("--link-gbps", type=limits.POSITIVE, default=None,
                   help="pipeline, tensor: the ranks talk over a loopback the kernel shapes to G gigabits/s (Linux, root)")
    s.add_argument("--timeout", type=limits.POSITIVE, default=300.0, help="seconds before a stuck run is stopped")
    s.add_argument("--json", action="store_true", help="one JSON object (tokens_match, ranks, comm times)")
    s.set_defaults(func=_cmd_shard)
