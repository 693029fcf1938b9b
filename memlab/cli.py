"""`memlab ...`: the same measurements as the labs, without a notebook.

The parser is built from each part's `cli.register(sub)`: the core's commands (info, prepare),
then one module per lab, in course order (lab 00's `generate` first). `--json` prints one JSON
object with the record's fields (the public interface: field names stay stable, see the README).

The error contract: a bad option is refused by its type, in one line (exit 2); a `MemlabError`
prints `memlab: error: <message>` (exit 2); anything else (out of memory, a full or read-only disk,
a bug) prints one line saying what happened and to run with `--debug` for the traceback (exit 1);
Ctrl-C exits 130. `--debug` anywhere on the line shows the traceback instead. Under torchrun
(`core.torchrun`) only rank 0 prints its result: the other ranks' standard output is dropped
(their errors still print). This module imports nothing heavy at import time, so even a failure to
import torch is reported in one line: each part's `cli.py` registers its commands with argparse
alone, and a command imports what it runs (torch, transformers, matplotlib, simpy) when it runs
(tests/test_cli_imports.py).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import sys
import traceback
from pathlib import Path

from memlab.core import cli as core_cli
from memlab.core import torchrun
from memlab.core.errors import MemlabError
from memlab.disaggregation import cli as disaggregation_cli
from memlab.kv_cache import cli as kv_cache_cli
from memlab.memory_processing import cli as memory_processing_cli
from memlab.memory_wall import cli as memory_wall_cli
from memlab.quantization import cli as quantization_cli
from memlab.rag import cli as rag_cli
from memlab.ram_vs_disk import cli as ram_vs_disk_cli
from memlab.sharding import cli as sharding_cli
from memlab.start_here import cli as start_here_cli
from memlab.ttft import cli as ttft_cli

DISK_ERRORS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
               errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
               errno.EPERM: "permission denied"}


def parts() -> tuple:
    """The CLI's parts, in the order `memlab --help` lists them."""
    return (core_cli, start_here_cli, memory_wall_cli, ram_vs_disk_cli, ttft_cli, quantization_cli, sharding_cli,
            disaggregation_cli, rag_cli, memory_processing_cli, kv_cache_cli)


class Parser(argparse.ArgumentParser):
    """argparse, but a refused option prints one line (the usage is one `--help` away); exit 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="memlab", description="Where an LLM's weights and context live, measured.")
    p.add_argument("--debug", action="store_true", help="show the full traceback of an unexpected error")
    sub = p.add_subparsers(dest="command", required=True)
    for part in parts():
        part.register(sub)
    return p


# how torch (PytorchStreamWriter), safetensors (StorageFull) and sqlite say "the disk is full" in their own exceptions
FULL_DISK_WORDS = ("No space left on device", "StorageFull", "database or disk is full")


def disk_error(e: BaseException) -> str | None:
    """What to do about a write the disk refused (full, over quota, read-only, not ours); None for other errors."""
    code = getattr(e, "errno", None)
    if code not in DISK_ERRORS and any(w in str(e) for w in FULL_DISK_WORDS):
        code = errno.ENOSPC
    if code not in DISK_ERRORS:
        return None
    from memlab.core.models import cache_dir
    cache, name = cache_dir(), getattr(e, "filename", None)
    what = DISK_ERRORS[code] + (f" {'on' if code in (errno.EACCES, errno.EPERM) else 'writing'} {name}" if name else "")
    full = code in (errno.ENOSPC, errno.EDQUOT)
    to_cache = f"memlab's cache ({cache}) needs a writable folder with free space; set MEMLAB_CACHE to another folder"
    if name is None:  # a failed write() does not say which file: name both places memlab writes to
        return (f"{what} (memlab was writing a file you named, or its cache {cache}): "
                f"{'free space there' if full else 'name a file in a writable folder'}, "
                "or set MEMLAB_CACHE to move the cache")
    if Path(name).expanduser().resolve().is_relative_to(cache.expanduser().resolve()):
        return f"{what}: {to_cache}"
    fix = "free space on that disk" if full else "choose a folder you can write to"
    return f"{what}: {fix}, or name a file in another folder"


def describe(e: BaseException) -> str:
    """One line for an error that is not a MemlabError: what happened and what to do."""
    if isinstance(e, MemoryError):
        return ("out of memory (MemoryError): close other programs, or try a smaller model, --dtype bf16 or "
                "--strategy mmap|paged")
    if (fix := disk_error(e)) is not None:
        return fix
    if isinstance(e, (ImportError, OSError)) and "torch" in str(e):
        return f"could not import torch ({type(e).__name__}: {e}): too little free memory, or a broken install"
    return f"{type(e).__name__}: {e}"


MIN_ADDRESS_SPACE = 768 * 2**20  # torch's libraries map most of this at import; below it C++ may abort silently


def address_space_limit() -> int | None:
    """The process's address-space limit in bytes (`ulimit -v`), or None when unlimited or unknown."""
    try:
        import resource
    except ImportError:  # not POSIX
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    return None if soft == resource.RLIM_INFINITY else soft


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]  # accepted anywhere on the line, not only before the command
    limit = address_space_limit()
    if limit is not None and limit < MIN_ADDRESS_SPACE and not {"-h", "--help"} & set(argv):
        print(f"memlab: error: this shell limits a process to {limit / 2**20:.0f} MiB of address space (ulimit -v); "
              f"memlab needs at least {MIN_ADDRESS_SPACE / 2**20:.0f} MiB to import torch: raise the limit", file=sys.stderr)
        return 1
    try:
        args = build_parser().parse_args(argv)
        if torchrun.is_lead():
            return args.func(args)
        with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):  # torchrun rank > 0: rank 0 prints
            return args.func(args)
    except MemlabError as e:
        if debug:
            traceback.print_exc()
        print(f"memlab: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("memlab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of our output left (`memlab fits ... | head`): nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit flush does not fail again
        return 1
    except Exception as e:  # the catch-all: one line, the traceback only on request
        if debug:
            traceback.print_exc()
            return 1
        print(f"memlab: error: {describe(e)} (run with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
