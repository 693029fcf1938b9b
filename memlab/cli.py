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
    loaded = load(args.model, strategy=args.strategy, device=args.device, dtype=args.dtype,
                  cold=args.cold, bigger_than_ram=args.bigger_than_ram, force=args.force)  # issue 4
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


# --- issue 4: load strategies, cold starts, TTFT anatomy ------------------------------------------

def _add_load_options(s) -> None:
    from .loading import STRATEGIES
    s.add_argument("--model", default=models.DEFAULT_MODEL)
    s.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    s.add_argument("--dtype", default="fp32", choices=list(models.DTYPES))
    s.add_argument("--strategy", default="resident", choices=list(STRATEGIES),
                   help="where the weights live: resident (RAM/VRAM), mmap (mapped file), "
                        "paged (one layer at a time from disk), paged-prefetch, paged-accelerate")
    s.add_argument("--cold", action="store_true", help="evict the checkpoint from the page cache first")
    s.add_argument("--bigger-than-ram", action="store_true",
                   help="paged/paged-prefetch: evict each layer after use, so every token reads it from disk")
    s.add_argument("--force", action="store_true", help="load even if the memory guard predicts it won't fit")


def _cmd_load(args) -> int:
    from .loading import load
    from .units import fmt_rate
    r = load(args.model, strategy=args.strategy, device=args.device, dtype=args.dtype, cold=args.cold,
             bigger_than_ram=args.bigger_than_ram, force=args.force).result
    if args.json:
        _print_json(r)
        return 0
    print(f"{r.model_name} {r.dtype} on {r.device}, strategy {r.strategy}{' (cold)' if r.is_cold else ''}: "
          f"loaded in {fmt_time(r.load_time_s)} | page cache before {r.page_cache_before:.0%} | "
          f"in memory {fmt_bytes(r.weights_bytes)} of {fmt_bytes(r.checkpoint_bytes)} on disk "
          + (f"({fmt_rate(r.checkpoint_bytes / r.load_time_s)} if all read)" if r.strategy == "resident"
             else "(read later, as the forward pass touches it)")
          + f" | peak RSS {fmt_bytes(r.peak_rss_bytes)} (+{fmt_bytes(r.peak_rss_bytes - r.rss_before_bytes)} "
          "over the process before loading)")
    return 0


def _cmd_ttft(args) -> int:
    from . import ceilings, latency
    from .loading import load
    from .results import as_dict
    tokens = [int(t) for t in args.prompt_tokens.split(",")]
    loaded = load(args.model, strategy=args.strategy, device=args.device, dtype=args.dtype,
                  cold=args.cold, bigger_than_ram=args.bigger_than_ram, force=args.force,
                  context_tokens=max(tokens) + 1)
    measured = ceilings.measure(quick=True)  # cached per machine (`memlab ceilings` refreshes it)
    flops, bandwidth = measured.roof(loaded.dtype, loaded.device.type)
    points = latency.prompt_sweep(loaded, tokens, repeats=args.repeats, ceilings=measured)
    if args.json:
        roofs = {"read_bytes_per_s": bandwidth, "matmul_flop_per_s": flops, "device": str(loaded.device),
                 "dtype": loaded.dtype, "measured": as_dict(measured)}
        print(json.dumps({"load": as_dict(loaded.result), "ceilings": roofs,
                          "points": [as_dict(p) for p in points]}, indent=1))
        return 0
    print(f"{loaded.name} {loaded.dtype} on {loaded.device} ({loaded.result.strategy}); {loaded.dtype} matmul "
          f"ceiling {flops / 1e9:.0f} GFLOP/s (measured {measured.measured_at}); median of {args.repeats}")
    print(f"{'prompt tok':>10} {'tokenize':>10} {'prefill':>10} {'TTFT':>10} {'prefill floor':>14}")
    for p in points:
        print(f"{p.prompt_tokens:>10} {fmt_time(p.tokenize_s):>10} {fmt_time(p.prefill_s):>10} "
              f"{fmt_time(p.ttft_s):>10} {fmt_time(p.predicted_prefill_s):>14}")
    return 0


def _add_issue4_commands(sub) -> None:
    s = sub.add_parser("load", help="load a model with a residency strategy and print the LoadResult")
    _add_load_options(s)
    s.add_argument("--json", action="store_true", help="one JSON object with the LoadResult fields")
    s.set_defaults(func=_cmd_load)

    s = sub.add_parser("ttft", help="time to first token against prompt length (TTFT anatomy)")
    _add_load_options(s)
    s.add_argument("--prompt-tokens", default="16,256,1024", help="comma-separated prompt lengths")
    s.add_argument("--repeats", type=int, default=3)
    s.add_argument("--json", action="store_true", help='{"load": LoadResult, "ceilings": Ceilings, "points": [TTFTPoint]}')
    s.set_defaults(func=_cmd_ttft)

# --- end issue 4 -----------------------------------------------------------------------------------


# ---- issue 3: ceilings and roofline ----------------------------------------------------------

def _cmd_ceilings(args) -> int:
    from . import ceilings
    from .units import fmt_flops
    c = ceilings.measure(quick=args.quick, refresh=args.refresh)
    if args.json:
        _print_json(c)
        return 0
    print(f"{c.host} ({c.mode}, {c.num_threads} threads, load avg {c.load_avg_1min:.1f}, measured {c.measured_at})")
    print(f"memory  copy {c.copy_gb_per_s:.1f} | scale {c.scale_gb_per_s:.1f} | add {c.add_gb_per_s:.1f} | "
          f"triad {c.triad_gb_per_s:.1f} GB/s  ({fmt_bytes(c.array_bytes)} arrays)")
    print("matmul  " + " | ".join(f"{d} {fmt_flops(c.flop_per_s(d))}" for d in ("fp32", "bf16", "fp16")))
    if c.disk_file_bytes:
        print(f"disk    cold {c.disk_cold_gb_per_s:.2f} GB/s (resident after evict {c.disk_cold_resident_fraction:.0%}) | "
              f"warm {c.disk_warm_gb_per_s:.2f} GB/s")
    if c.vram_gb_per_s:
        print(f"gpu     {c.device}: VRAM {c.vram_gb_per_s:.0f} GB/s | fp32 {fmt_flops(c.gpu_fp32_flop_per_s)} | "
              f"bf16 {fmt_flops(c.gpu_bf16_flop_per_s)} | H2D pinned {c.h2d_pinned_gb_per_s:.1f} / pageable "
              f"{c.h2d_pageable_gb_per_s:.1f} GB/s | D2H pinned {c.d2h_pinned_gb_per_s:.1f} / pageable "
              f"{c.d2h_pageable_gb_per_s:.1f} GB/s")
    return 0


def _cmd_roofline(args) -> int:
    from . import ceilings, roofline
    from .loading import load
    c = ceilings.measure(quick=True)
    loaded = load(args.model, dtype=args.dtype)
    rep = roofline.measure_report(loaded, c, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                                  fast=not args.no_fast)
    if args.out:
        from . import plots
        pts = [roofline.point(f"decode (eager) B={args.batch_size}",
                              roofline.decode_workload(loaded.model.config, args.batch_size,
                                                       rep.prompt_tokens + rep.new_tokens // 2, args.dtype),
                              args.batch_size / rep.measured_decode_tok_per_s)]
        plots.roofline(c, pts, roofline.devices()).savefig(args.out, dpi=120)
    if args.json:
        _print_json(rep)
        return 0
    print(f"{rep.model_name} {rep.dtype}, batch {rep.batch_size}: {rep.decode_bytes_per_token / 1e6:.0f} MB per token, "
          f"intensity {rep.decode_intensity_flop_per_byte:.2f} FLOP/byte; triad {rep.bandwidth_gb_per_s:.1f} GB/s")
    print(f"decode  predicted <= {rep.predicted_decode_tok_per_s:.1f} tok/s | measured {rep.measured_decode_tok_per_s:.1f} "
          f"tok/s ({rep.decode_fraction_of_bound:.0%} of the bound)")
    if not args.no_fast:
        print(f"fast    {rep.fast_decode_tok_per_s:.1f} tok/s ({rep.fast_fraction_of_bound:.0%} of the bound), "
              f"same tokens: {rep.fast_same_tokens}")
    print(f"prefill predicted >= {fmt_time(rep.predicted_prefill_s)} | measured {fmt_time(rep.measured_prefill_s)}")
    if args.out:
        print(f"figure saved to {args.out}")
    return 0


def _add_issue3_commands(sub) -> None:
    s = sub.add_parser("ceilings", help="measure memory bandwidth, matmul FLOP/s, disk (cached per machine)")
    s.add_argument("--quick", action="store_true", help="seconds instead of under a minute")
    s.add_argument("--refresh", action="store_true", help="measure again instead of using the cache")
    s.add_argument("--json", action="store_true", help="one JSON object with the Ceilings fields")
    s.set_defaults(func=_cmd_ceilings)

    s = sub.add_parser("roofline", help="predicted vs measured decode speed from the measured ceilings")
    s.add_argument("--model", default=models.DEFAULT_MODEL)
    s.add_argument("--dtype", default="fp32", choices=list(models.DTYPES))
    s.add_argument("--batch-size", type=int, default=1)
    s.add_argument("--max-new-tokens", type=int, default=32)
    s.add_argument("--no-fast", action="store_true", help="skip memlab's fast decode path")
    s.add_argument("--out", help="save the roofline figure to this PNG")
    s.add_argument("--json", action="store_true", help="one JSON object with the RooflineReport fields")
    s.set_defaults(func=_cmd_roofline)

# ---- end issue 3 ------------------------------------------------------------------------------


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


# ---- lab 06 (RAG): `memlab rag` -------------------------------------------------------------
def _cmd_rag(args) -> int:
    from . import rag
    from .loading import load
    embedder = rag.Embedder()
    chunks = rag.corpus(max_chunks_per_topic=1 if args.quick else None)
    emb, _ = rag.embed_corpus(chunks, embedder)
    store = rag.open_store(args.store, chunks, emb)
    loaded = load(args.model)
    rag.retrieve(store, args.question, embedder, args.k)  # warm-up: first encode/search pays one-off costs
    r = rag.rag_ttft(loaded, args.question, store, embedder, k=args.k, cold=args.cold,
                     max_new_tokens=args.max_new_tokens)
    if args.json:
        _print_json(r)
        return 0
    print(r.text)
    print(f"\n[{args.store} store, {r.cache_state}, {store.num_chunks} chunks, {fmt_bytes(store.index_bytes)}] "
          f"top {r.top_k}: {', '.join(r.top_topics)}")
    print(f"embed {fmt_time(r.embed_s)} + search {fmt_time(r.search_s)} + model TTFT {fmt_time(r.llm_ttft_s)} "
          f"(prompt {r.prompt_tokens} tok, {r.context_tokens} of them context) = TTFT {fmt_time(r.ttft_s)}")
    return 0


def _add_rag_parser(sub) -> None:
    s = sub.add_parser("rag", help="answer from retrieved pydoc chunks; time embed, search and TTFT")
    s.add_argument("question")
    s.add_argument("--store", default="ram", choices=["ram", "disk", "bm25"],
                   help="ram: numpy index; disk: sqlite file scanned per query; bm25: sqlite FTS5")
    s.add_argument("--cold", action="store_true", help="evict the database file from the page cache first")
    s.add_argument("--k", type=int, default=3, help="chunks put into the prompt")
    s.add_argument("--quick", action="store_true", help="one chunk per topic (79 chunks) instead of all")
    s.add_argument("--model", default=models.DEFAULT_MODEL)
    s.add_argument("--max-new-tokens", type=int, default=32)
    s.add_argument("--json", action="store_true", help="one JSON object with the RagTTFT fields")
    s.set_defaults(func=_cmd_rag)
# ---- end lab 06 -------------------------------------------------------------------------------



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
    s.add_argument("--cold", action="store_true", help="evict the checkpoint from the page cache first")  # issue 4
    s.add_argument("--bigger-than-ram", action="store_true", help="paged: evict each layer after use")  # issue 4
    s.add_argument("--force", action="store_true", help="skip the memory guard")  # issue 4
    s.add_argument("--max-new-tokens", type=int, default=32)
    s.add_argument("--sample", action="store_true", help="sample instead of greedy")
    s.add_argument("--temperature", type=float, default=0.7)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--json", action="store_true", help="one JSON object with the GenerationResult fields")
    s.set_defaults(func=_cmd_generate)
    _add_issue3_commands(sub)  # issue 3
    _add_issue4_commands(sub)  # issue 4: load, ttft
    _add_issue5_commands(sub)  # issue 5
    _add_shard_parser(sub)  # issue 6
    _add_issue7_commands(sub)  # issue 7
    _add_rag_parser(sub)  # lab 06
    _add_mempipe(sub)  # lab 08
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
