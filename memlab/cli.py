"""`memlab ...`: the same measurements as the labs, without a notebook.

The parser is built from each part's `cli.register(sub)`: the core's commands (info, prepare,
generate), then one module per lab, in course order. `--json` prints one JSON object with the
record's fields (the public interface: field names stay stable, see the README).
A MemlabError prints its message (no traceback) and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys

from memlab.core import cli as core_cli
from memlab.core.errors import MemlabError
from memlab.disaggregation import cli as disaggregation_cli
from memlab.memory_processing import cli as memory_processing_cli
from memlab.memory_wall import cli as memory_wall_cli
from memlab.quantization import cli as quantization_cli
from memlab.rag import cli as rag_cli
from memlab.ram_vs_disk import cli as ram_vs_disk_cli
from memlab.sharding import cli as sharding_cli
from memlab.ttft import cli as ttft_cli

# the order `memlab --help` lists them in
PARTS = (core_cli, memory_wall_cli, ram_vs_disk_cli, ttft_cli, quantization_cli, sharding_cli,
         disaggregation_cli, rag_cli, memory_processing_cli)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="memlab", description="Where an LLM's weights and context live, measured.")
    sub = p.add_subparsers(dest="command", required=True)
    for part in PARTS:
        part.register(sub)
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
