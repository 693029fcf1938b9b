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
    _add_rag_parser(sub)  # lab 06
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
