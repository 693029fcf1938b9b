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


# --- issue 5: quantized variants and what fits where ---------------------------------------------

def _cmd_quant(args) -> int:
    from .quantcompare import QuantConfig, compare
    from .results import as_dict, to_frame
    names = tuple(v.strip() for v in args.variants.split(",") if v.strip())
    try:
        make = QuantConfig.quick if args.quick else QuantConfig
        cfg = make(variants=names, model=args.model, **({"repeats": args.repeats} if args.repeats else {}))
    except ValueError as e:
        raise MemlabError(str(e)) from e
    records = compare(cfg, progress=not args.json)
    if args.json:
        _print_json({"variants": [as_dict(r) for r in records]})
        return 0
    df = to_frame(records)
    df["MiB"] = df["resident_bytes"] / 2**20
    cols = ["variant", "library", "MiB", "bits_per_weight", "load_s", "prefill_tok_per_s", "decode_tok_per_s",
            "perplexity", "agreement", "first_divergence", "answer"]
    import pandas as pd
    with pd.option_context("display.max_colwidth", 48, "display.width", 200, "display.precision", 2):
        print(df[cols].to_string(index=False))
    for r in records:
        if r.reason:
            print(f"  {r.variant}: {r.reason}")
    return 0


def _cmd_fits(args) -> int:
    from . import footprint
    precisions = tuple(p.strip() for p in args.precisions.split(","))
    cfg = footprint.resolve_config(args.model)
    name = args.model
    prints = [footprint.footprint(cfg, p, args.context, name=name) for p in precisions]
    table = footprint.fits_table({name: cfg}, precisions, args.context, table=args.table)
    if args.json:
        from .results import as_dict
        _print_json({"footprints": [as_dict(f) for f in prints],
                     "fits": table[["device", "kind", "capacity_bytes", "precision", "total_bytes", "fits"]]
                     .to_dict(orient="records")})
        return 0
    for f in prints:
        print(f"{name} {f.precision:>5}: weights {fmt_bytes(f.weights_bytes)} + KV({args.context} tok) "
              f"{fmt_bytes(f.kv_bytes)} + activations {fmt_bytes(f.activation_bytes)} = {fmt_bytes(f.total_bytes)}"
              f"   ({f.params / 1e9:.2f} B params, {f.active_params / 1e9:.2f} B read per token)")
    grid = table.set_index(["device", "precision"])["fits"].unstack()
    grid = grid.loc[list(dict.fromkeys(table["device"])), list(precisions)]
    print("\nfits on one device (weights + KV + activations <= memory capacity):")
    print(grid.map(lambda x: "yes" if x else "-").to_string())
    return 0


def _add_issue5_commands(sub) -> None:
    s = sub.add_parser("quant", help="quantized variants side by side: bytes, speed, perplexity, answer")
    s.add_argument("--variants", default="fp32,bf16,int8,int4",
                   help="comma-separated, from: " + "fp32,bf16,fp16,int8,int4,ao-int8,ao-int4,ao-int4-packed,"
                        "dyn-int8,ao-dyn-int8,gguf-q4_1")
    s.add_argument("--model", default=models.DEFAULT_MODEL)
    s.add_argument("--quick", action="store_true", help="short prompt, 16 tokens, 128-token perplexity, 1 run")
    s.add_argument("--repeats", type=int, default=0, help="speed runs per variant (median reported)")
    s.add_argument("--json", action="store_true", help='{"variants": [QuantResult fields, ...]}')
    s.set_defaults(func=_cmd_quant)

    s = sub.add_parser("fits", help="bytes of weights, KV cache and activations, and which devices hold them")
    s.add_argument("model", help="a famous model (llama-3.1-8b, deepseek-v3, ...), a config.json or a folder")
    s.add_argument("--context", type=int, default=8192, help="tokens in the KV cache (default 8192)")
    s.add_argument("--precisions", default="fp32,bf16,int8,int4")
    s.add_argument("--table", default=None, help="device table CSV (default data/hardware.csv)")
    s.add_argument("--json", action="store_true", help='{"footprints": [...], "fits": [...]}')
    s.set_defaults(func=_cmd_fits)
# --- end issue 5 ------------------------------------------------------------------------------------


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
    _add_issue5_commands(sub)  # issue 5
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
