"""The input contract: one check per kind of number, the same words in the CLI and the package.

    count(v, name, minimum=1)   an integer >= minimum (tokens, repeats, workers, ranks, k)
    positive(v, name)           a finite number > 0 (rates, seconds, bandwidths)
    non_negative(v, name)       a finite number >= 0 (a latency, a temperature for greedy)
    fraction(v, name)           a number in [0, 1]
    check_context(config, n)    n tokens (prompt + new) within the model's context window (context_limit)
    writable_file(path, name)   a file path whose folder exists and can be written (an output)
Each returns the value or raises `InvalidArgumentError` naming the argument, the limit and the
value given. `cli_type(check, ...)` turns a check into an argparse `type=`, so a bad option is
refused before anything loads, with the same words (argparse adds the option's name).
"""

from __future__ import annotations

import argparse
import math
import numbers
import os
from pathlib import Path

from memlab.core.errors import ContextTooLongError, InvalidArgumentError


def _refuse(name: str, rule: str, value) -> None:
    raise InvalidArgumentError(f"{name} must be {rule}, got {value!r}")


def count(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        _refuse(name, f"an integer >= {minimum}", value)
    if value < minimum:
        _refuse(name, f">= {minimum}", value)
    return int(value)


def _number(value, name: str, rule: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        _refuse(name, f"a finite number {rule}", value)
    return float(value)


def positive(value, name: str) -> float:
    if _number(value, name, "> 0") <= 0:
        _refuse(name, "> 0", value)
    return float(value)


def non_negative(value, name: str) -> float:
    if _number(value, name, ">= 0") < 0:
        _refuse(name, ">= 0", value)
    return float(value)


def fraction(value, name: str) -> float:
    if not 0 <= _number(value, name, "in [0, 1]") <= 1:
        _refuse(name, "in [0, 1]", value)
    return float(value)


def writable_file(path, name: str) -> Path:
    """An output file memlab can write: refused before the work that fills it, not after."""
    p = Path(path).expanduser()
    folder = p.parent
    if p.is_dir():
        raise InvalidArgumentError(f"{name} {str(path)!r} is a folder: name a file in it")
    if not folder.is_dir():
        raise InvalidArgumentError(f"{name} {str(path)!r} is in a folder that does not exist ({folder}): "
                                   "create it first, or name a file in another folder")
    if not os.access(folder, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise InvalidArgumentError(f"{name} {str(path)!r} cannot be written here (a read-only disk, or a folder "
                                   "that is not yours): name a file in a folder you can write to")
    return p


def output_file(text: str) -> str:
    """argparse `type=` for an output file (`writable_file`); the text is kept as it was given."""
    try:
        writable_file(text, "it")
    except InvalidArgumentError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("it "))
    return text


def cli_type(check, **limits):
    """An argparse `type=` that parses the text (int for `count`, float otherwise) and applies `check`."""
    def parse(text: str):
        try:
            value = int(text) if check is count else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if check is count else 'a number'}, got {text!r}")
        try:
            return check(value, "it", **limits)
        except InvalidArgumentError as e:
            raise argparse.ArgumentTypeError(str(e).removeprefix("it "))
    parse.__name__ = check.__name__
    return parse


def count_list(text: str) -> list[int]:
    """argparse `type=` for comma-separated counts such as "16,256,1024" (each >= 1)."""
    parse = cli_type(count)
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers >= 1, got {text!r}")
    return [parse(p) for p in parts]


COUNT = cli_type(count)                       # the common case: an integer >= 1
COUNT0 = cli_type(count, minimum=0)           # an integer >= 0
POSITIVE = cli_type(positive)
NON_NEGATIVE = cli_type(non_negative)
FRACTION = cli_type(fraction)


# ---- a model's context window ----------------------------------------------------------------

def context_limit(config) -> int | None:
    """The most tokens (prompt + generated) the model was built for: max_position_embeddings (None: unstated)."""
    get = config.get if isinstance(config, dict) else lambda key: getattr(config, key, None)  # fits reads dicts
    value = get("max_position_embeddings") or get("n_positions")
    return int(value) if value else None


def check_context(config, num_tokens: int, name: str = "the model") -> None:
    """Refuse `num_tokens` (prompt + new tokens) beyond the model's context window, with both numbers."""
    limit = context_limit(config)
    if limit is not None and num_tokens > limit:
        raise ContextTooLongError(
            f"{num_tokens} tokens (prompt + new tokens) exceed {name}'s {limit}-token context "
            f"(max_position_embeddings in its config): ask for at most {limit} tokens in all.")
