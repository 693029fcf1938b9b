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
    _add_shard_parser(sub)  # issue 6
    return p


# --- issue 6: memlab shard ---------------------------------------------------------------------

def _cmd_shard(args) -> int:
    import dataclasses
    from . import sharding
    from .results import as_dict
    if args.mode == "checkpoint":
        r = sharding.compare_checkpoint(args.model, args.max_shard_mib * 2**20, args.max_new_tokens)
        if args.json:
            d = as_dict(dataclasses.replace(r, hardware=None))
            d.pop("hardware", None)
            d.update(mode="checkpoint", host=r.hardware.host)
            _print_json(d)
            return 0
        print(f"{r.model_name}: {r.shards.num_files} shards of <= {args.max_shard_mib} MiB in {r.shard_dir}; "
              f"same tokens: {r.tokens_match}")
        for x in (r.single, r.shards):
            print(f"  {x.layout:6s} {x.num_files:3d} file(s), largest {fmt_bytes(x.largest_file_bytes)} | "
                  f"load {fmt_time(x.load_s)} | RSS before {fmt_bytes(x.start_rss_bytes)}, peak "
                  f"{fmt_bytes(x.peak_rss_bytes)} (predicted {fmt_bytes(x.predicted_peak_rss_bytes)})")
        return 0
    cfg = sharding.ParallelConfig(model=args.model, world_size=args.ranks, max_new_tokens=args.max_new_tokens,
                                  batch_size=args.batch_size, micro_batches=args.micro_batches,
                                  backend=args.backend, timeout_s=args.timeout)
    r = sharding.run(cfg, args.mode)
    if args.json:
        _print_json(sharding.summary(r))
        return 0
    print(f"{r.mode} parallel, {r.world_size} ranks ({r.backend}), {r.new_tokens} tokens; "
          f"tokens match one process: {r.tokens_match}")
    print(f"  prefill {fmt_time(r.prefill_s)} | TPOT {fmt_time(r.tpot_s)} | per token per rank: compute "
          f"{fmt_time(r.decode_compute_s_per_token)}, communication {fmt_time(r.decode_comm_s_per_token)} "
          f"({r.comm_share:.0%}) | {r.comm_bytes_per_token:.0f} B/token sent "
          f"(formula {r.predicted_comm_bytes_per_token} B)")
    for x in r.ranks:
        print(f"  rank {x.rank}: {x.holds:40s} weights {fmt_bytes(x.weights_bytes)}, KV {fmt_bytes(x.kv_cache_bytes)}, "
              f"peak RSS {fmt_bytes(x.peak_rss_bytes)}")
    return 0


def _add_shard_parser(sub) -> None:
    s = sub.add_parser("shard", help="checkpoint shards, pipeline or tensor parallel over torch.distributed")
    s.add_argument("--mode", required=True, choices=["checkpoint", "pipeline", "tensor"])
    s.add_argument("--ranks", type=int, default=2, help="worker processes (pipeline, tensor)")
    s.add_argument("--model", default=models.DEFAULT_MODEL)
    s.add_argument("--max-new-tokens", type=int, default=16)
    s.add_argument("--batch-size", type=int, default=1)
    s.add_argument("--micro-batches", type=int, default=1, help="pipeline only")
    s.add_argument("--backend", default="gloo", choices=["gloo", "nccl"])
    s.add_argument("--max-shard-mib", type=int, default=64, help="checkpoint mode: largest shard")
    s.add_argument("--timeout", type=float, default=300.0, help="seconds before a stuck run is stopped")
    s.add_argument("--json", action="store_true", help="one JSON object (tokens_match, ranks, comm times)")
    s.set_defaults(func=_cmd_shard)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except MemlabError as e:
        print(f"memlab: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
