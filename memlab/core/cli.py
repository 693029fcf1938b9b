"""CLI pieces every topic shares: JSON output, the load options, and the core commands (info, prepare).

Each topic's `cli.register(sub)` adds its commands; `memlab.cli` builds the parser from them.
Registering imports nothing heavy: every command imports what it runs inside its `_cmd_*`
function, so `memlab --help`, `memlab info` and `memlab fits` load no torch, transformers,
matplotlib or simpy (tests/test_cli_imports.py), and `memlab generate` (start_here/cli.py) loads what generating needs.
"""

from __future__ import annotations

import argparse
import json
from memlab.core import dtypes, models



def print_json(obj) -> None:
    from memlab.core.results import as_dict
    print(json.dumps(as_dict(obj) if not isinstance(obj, (list, str, int, float)) else obj, indent=1))


# the names of memlab.core.loading.STRATEGIES, here so that listing them imports no torch
# (tests/core/test_cli.py checks that the two agree)
STRATEGIES = ("resident", "mmap", "paged", "paged-prefetch", "paged-accelerate")


def add_load_options(s) -> None:
    s.add_argument("--model", default=models.DEFAULT_MODEL)
    s.add_argument("--device", default="cpu", choices=["cpu", "cuda", "mps", "auto"],
                   help="cpu (default), cuda, mps (Apple) or auto: the GPU when torch sees one")
    s.add_argument("--dtype", default="fp32", choices=list(dtypes.TORCH))
    s.add_argument("--strategy", default="resident", choices=list(STRATEGIES),
                   help="where the weights live: resident (RAM/VRAM), mmap (mapped file), "
                        "paged (one layer at a time from disk), paged-prefetch, paged-accelerate")
    s.add_argument("--cold", action="store_true", help="evict the checkpoint from the page cache first")
    s.add_argument("--bigger-than-ram", action="store_true",
                   help="paged/paged-prefetch: evict each layer after use, so every token reads it from disk")
    s.add_argument("--force", action="store_true", help="load even if the memory guard predicts it won't fit")


def _cmd_info(args) -> int:
    from memlab.core.hardware import card
    hw = card()
    print_json(hw) if args.json else print(hw)
    return 0


def _cmd_prepare(args) -> int:
    for dtype in args.dtype.split(","):
        folder = models.prepare(args.model, dtype=dtype)
        print(f"{args.model} ({dtype}) ready in {folder}")
    return 0


def register(sub) -> None:
    """info, prepare."""
    s = sub.add_parser("info", help="print this machine's hardware card")
    s.add_argument("--json", action="store_true", help="one JSON object")
    s.set_defaults(func=_cmd_info)

    s = sub.add_parser("prepare", help="convert/download a model into the cache (once)",
                       description="Models:\n" + models.catalog_text(),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("model", nargs="?", default=models.DEFAULT_MODEL)
    s.add_argument("--dtype", default="fp32", help="comma-separated: fp32,bf16,fp16")
    s.set_defaults(func=_cmd_prepare)
