"""`memlab generate`: lab 00 without a notebook (answer a prompt; TTFT, TPOT, tok/s).

Each command imports what it runs inside its function, so `memlab --help` imports no torch (tests/test_cli_imports.py).
"""

from __future__ import annotations

from memlab.core import dtypes, limits, models, shapetrue
from memlab.core.cli import print_json
from memlab.core.units import fmt_bytes, fmt_time


def _cmd_generate(args) -> int:
    from memlab.core.generation import generate
    from memlab.core.loading import load
    loaded = load(args.model, strategy=args.strategy, device=args.device, dtype=args.dtype,
                  cold=args.cold, bigger_than_ram=args.bigger_than_ram, force=args.force)
    r = generate(loaded, args.prompt, max_new_tokens=args.max_new_tokens, do_sample=args.sample,
                 temperature=args.temperature, seed=args.seed)
    if args.json:
        print_json(r)
        return 0
    print(r.text)
    if r.weights_origin != shapetrue.TRAINED:
        print(f"\n[{r.model_name}: {shapetrue.NOISE_NOTE}]")
    print(f"\n[{r.model_name} {r.dtype} on {r.device}, loaded ({loaded.result.strategy}) in "
          f"{fmt_time(loaded.result.load_time_s)}] prompt {r.prompt_tokens} tok, {r.new_tokens} new tok | "
          f"TTFT {fmt_time(r.ttft_s)} | TPOT {fmt_time(r.tpot_s)} | decode {r.decode_tok_per_s:.1f} tok/s | "
          f"prefill {r.prefill_tok_per_s:.0f} tok/s | peak RSS {fmt_bytes(r.peak_rss_bytes)}")
    return 0


def register(sub) -> None:
    """generate."""
    s = sub.add_parser("generate", help="answer a prompt and print TTFT, TPOT and tok/s")
    s.add_argument("prompt")
    s.add_argument("--model", default=models.DEFAULT_MODEL)
    s.add_argument("--device", default="cpu", choices=["cpu", "cuda", "mps", "auto"],
                   help="cpu (default), cuda, mps (Apple) or auto: the GPU when torch sees one")
    s.add_argument("--dtype", default="fp32", choices=list(dtypes.TORCH))
    s.add_argument("--strategy", default="resident", help="where the weights live (see `memlab load`)")
    s.add_argument("--cold", action="store_true", help="evict the checkpoint from the page cache first")
    s.add_argument("--bigger-than-ram", action="store_true", help="paged: evict each layer after use")
    s.add_argument("--force", action="store_true", help="skip the memory guard")
    s.add_argument("--max-new-tokens", type=limits.COUNT, default=32)
    s.add_argument("--sample", action="store_true", help="sample instead of greedy")
    s.add_argument("--temperature", type=limits.POSITIVE, default=0.7)
    s.add_argument("--seed", type=limits.COUNT0, default=0)
    s.add_argument("--json", action="store_true", help="one JSON object with the GenerationResult fields")
    s.set_defaults(func=_cmd_generate)
