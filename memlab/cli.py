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



# --- lab 08: memory processing (mempipe) -----------------------------------------------------

def _cmd_mempipe(args) -> int:
    from . import mempipe
    from .loading import load
    from .results import as_dict
    loaded = load(args.model)
    cfg = mempipe.PipeConfig(page_tokens=args.page_tokens, budget_tokens=args.budget_tokens,
                             repeats=args.repeats)
    p = mempipe.profile_decode(loaded, args.context, cfg)
    if args.json:
        print(json.dumps({**as_dict(p), "memory_share": p.memory_share}, indent=1))
        return 0
    print(f"{p.model_name}: one decode step after {p.context_tokens} cached tokens, "
          f"top {p.selected_pages} of {p.num_pages} pages of {p.page_tokens} per KV head")
    for part, share in p.shares().items():
        print(f"  {part:<6} {fmt_time(getattr(p, part + '_s')):>10}  {100 * share:5.1f}%")
    print(f"  step   {fmt_time(p.step_s):>10}  (memory processing {100 * p.memory_share:.1f}%; "
          f"transformers dense step {fmt_time(p.dense_step_s)})")
    print(f"  same next token as dense: {p.top1_matches_dense}, KL to dense {p.kl_to_dense:.2e} nats")
    return 0


def _add_mempipe(sub) -> None:
    s = sub.add_parser("mempipe", help="time the paper's four memory-processing steps in one decode step")
    s.add_argument("--context", type=int, default=2048, help="tokens in the KV cache before the step")
    s.add_argument("--model", default=models.DEFAULT_MODEL)
    s.add_argument("--page-tokens", type=int, default=16)
    s.add_argument("--budget-tokens", type=int, default=256, help="tokens attended per KV head")
    s.add_argument("--repeats", type=int, default=5)
    s.add_argument("--json", action="store_true", help="one JSON object with the StepProfile fields")
    s.set_defaults(func=_cmd_mempipe)
# --- end lab 08 ------------------------------------------------------------------------------

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
    _add_mempipe(sub)  # lab 08
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
