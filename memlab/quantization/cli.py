"""`memlab quant` and `memlab fits` (lab 04).

Each command imports what it runs inside its function, so `memlab --help` imports no torch (tests/test_cli_imports.py).
"""

from __future__ import annotations

from memlab.core import limits, models, quantformat
from memlab.core.cli import print_json
from memlab.core.errors import ContextTooLongError, MemlabError
from memlab.core.units import fmt_bytes


def _cmd_quant(args) -> int:
    from memlab.core.results import as_dict, to_frame
    from memlab.quantization.quantcompare import compare
    from memlab.quantization.records import QuantConfig
    names = tuple(v.strip() for v in args.variants.split(",") if v.strip())
    try:
        make = QuantConfig.quick if args.quick else QuantConfig
        cfg = make(variants=names, model=args.model, device=args.device,
                   **({"repeats": args.repeats} if args.repeats is not None else {}))
    except ValueError as e:
        raise MemlabError(str(e)) from e
    base = None
    if args.fast:
        from memlab.core.loading import load
        base = load(cfg.model, device=cfg.device)
    records = compare(cfg, progress=not args.json, base=base)
    fast = []
    if args.fast:
        from memlab.quantization import fastcompare
        fast = fastcompare.compare(base, records, _bandwidth(cfg.device, args.quick), cfg,
                                   variants=names, progress=not args.json)
    if args.json:
        print_json({"variants": [as_dict(r) for r in records], **({"fast": [as_dict(r) for r in fast]} if args.fast else {})})
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
    if fast:
        print("\nthe same variants through memlab's fast path (memlab.core.fastpath):")
        f = to_frame(fast)
        f["MiB_per_token"] = f["streamed_bytes"] / 2**20
        print(f[["variant", "weights", "MiB_per_token", "decode_tok_per_s", "of_bound", "vs_fp32", "byte_ratio",
                 "of_byte_ratio", "same_tokens"]].to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    return 0


def _cmd_fits(args) -> int:
    from memlab.core import footprint
    from memlab.quantization import fits
    precisions = tuple(p.strip() for p in args.precisions.split(","))
    cfg = footprint.resolve_config(args.model)
    name = args.model
    limit = limits.context_limit(cfg)
    if limit is not None and args.context > limit:  # a KV cache the model can never fill is no answer
        raise ContextTooLongError(f"--context {args.context} is past {name}'s {limit}-token context window "
                                  f"(max_position_embeddings in its config): ask for --context {limit} or less")
    prints = [fits.footprint(cfg, p, args.context, name=name) for p in precisions]
    table = fits.fits_table({name: cfg}, precisions, args.context, table=args.table)
    if args.json:
        print_json(fits.fits_json(prints, table))
        return 0
    for f in prints:
        print(f"{name} {f.precision:>5} ({8 * f.weights_bytes / f.params:.2f} bits/weight on average): weights "
              f"{fmt_bytes(f.weights_bytes)} + KV({args.context} tok) {fmt_bytes(f.kv_bytes)} + activations "
              f"{fmt_bytes(f.activation_bytes)} = {fmt_bytes(f.total_bytes)}"
              f"   ({f.params / 1e9:.2f} B params, {f.active_params / 1e9:.2f} B read per token)")
    for p in precisions:  # what each quantized format stores (memlab.core.quantformat)
        fmt = quantformat.FORMATS[p]
        if quantformat.is_quantized(fmt):
            print(f"  {p}: {fmt.description}" + (" (bf16 here)" if fmt.embedding == "kept" else ""))
    grid = table.set_index(["device", "precision"])["fits"].unstack()
    grid = grid.loc[list(dict.fromkeys(table["device"])), list(precisions)]
    print("\nfits on one device (weights + KV + activations <= memory capacity):")
    print(grid.map(lambda x: "yes" if x else "-").to_string())
    return 0


def _bandwidth(device: str, quick: bool) -> float:
    """The memory roof of `device`, bytes/s: the CPU's read kernel, or the GPU's HBM from the ceilings."""
    if device == "cpu":
        from memlab.quantization import quantcompare
        return quantcompare.read_bandwidth_bytes_per_s()
    from memlab.core import ceilings
    return ceilings.on_device(ceilings.measure(quick=quick), device).bandwidth_bytes_per_s


def register(sub) -> None:
    s = sub.add_parser("quant", help="quantized variants side by side: bytes, speed, perplexity, answer")
    s.add_argument("--variants", default="fp32,bf16,int8,int4",
                   help="comma-separated, from: " + "fp32,bf16,fp16,int8,int4,int4-fast,ao-int8,ao-int4,ao-int4-packed,"
                        "dyn-int8,ao-dyn-int8,gguf-q4_1")
    s.add_argument("--model", default=models.DEFAULT_MODEL)
    s.add_argument("--quick", action="store_true", help="short prompt, 16 tokens, 128-token perplexity, 1 run")
    s.add_argument("--repeats", type=limits.COUNT, default=None,
                   help="speed runs per variant, median reported (default 3; --quick 1)")
    s.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu); llama.cpp always runs on the CPU")
    s.add_argument("--fast", action="store_true",
                   help="also run fp32, bf16, int8, int4, int4-fast through memlab's fast decode path")
    s.add_argument("--json", action="store_true", help='{"variants": [QuantResult fields, ...], "fast": [FastRow fields, ...]}')
    s.set_defaults(func=_cmd_quant)

    s = sub.add_parser("fits", help="bytes of weights, KV cache and activations, and which devices hold them")
    s.add_argument("model", help="a famous model (llama-3.1-8b, deepseek-v3, ...), a config.json or a folder")
    s.add_argument("--context", type=limits.COUNT, default=8192, help="tokens in the KV cache (default 8192)")
    s.add_argument("--precisions", default="fp32,bf16,int8,int4",
                   help="comma-separated, from: " + ",".join(quantformat.FORMATS) + " (int8, int4: memlab's formats, "
                        "scales and zeros counted; q8_0, q4_1, q4_0: GGUF's)")
    s.add_argument("--table", default=None, help="device table CSV (default data/hardware.csv)")
    s.add_argument("--json", action="store_true", help='{"footprints": [...], "fits": [...]}')
    s.set_defaults(func=_cmd_fits)
