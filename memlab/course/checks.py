"""Claims a lab makes, checked in code: a cell fails when its claim stops holding.

Each check prints one line when the claim holds ("ok  <claim>: <what was measured>") and raises
`ClaimFailed` (an AssertionError, so nbval marks the cell failed) when it does not, with one
readable message: the claim, what was expected, what was measured, and what it means.

    exact(measured, expected, claim, meaning)      physics that is exact: bytes, token ids, counts
    true(condition, claim, meaning, measured=...)   a yes/no fact the run established
    within(measured, low, high, claim, meaning)     a number inside a range derived from physics
    greater(a, b, claim, meaning)                   a > b; a and b may be lists of repeats: the claim
                                                    then needs every a above every b (min(a) > max(b)),
                                                    so a noisy machine fails it honestly, not by luck
    close(measured, expected, rel, claim, meaning)  |measured - expected| <= rel * |expected|
"""

from __future__ import annotations

import math
import statistics


class ClaimFailed(AssertionError):
    """A lab's claim did not hold on this run."""


def _show(x) -> str:
    if isinstance(x, float):
        return f"{x:.4g}"
    if isinstance(x, (list, tuple)) and len(x) > 8:
        return f"[{', '.join(_show(v) for v in x[:4])}, ... {len(x)} values]"
    if isinstance(x, (list, tuple)):
        return f"[{', '.join(_show(v) for v in x)}]"
    return repr(x)


def _fail(claim: str, expected: str, measured, meaning: str):
    raise ClaimFailed(f"claim failed: {claim}. Expected {expected}, measured {_show(measured)}. {meaning}".rstrip())


def _ok(claim: str, measured) -> None:
    print(f"ok  {claim}: {_show(measured)}")


def exact(measured, expected, claim: str, meaning: str = "") -> None:
    if measured != expected:
        _fail(claim, f"exactly {_show(expected)}", measured, meaning)
    _ok(claim, measured)


def true(condition: bool, claim: str, meaning: str = "", measured=None) -> None:
    if not condition:
        _fail(claim, "it to hold", condition if measured is None else measured, meaning)
    _ok(claim, True if measured is None else measured)


def within(measured: float, low: float, high: float, claim: str, meaning: str = "") -> None:
    if not (isinstance(measured, (int, float)) and low <= measured <= high and not math.isnan(measured)):
        _fail(claim, f"between {_show(low)} and {_show(high)}", measured, meaning)
    _ok(claim, measured)


def close(measured: float, expected: float, rel: float, claim: str, meaning: str = "") -> None:
    if not abs(measured - expected) <= rel * abs(expected):
        _fail(claim, f"{_show(expected)} within {rel:.0%}", measured, meaning)
    _ok(claim, measured)


def greater(a, b, claim: str, meaning: str = "") -> None:
    """a > b; with repeats (lists), every a above every b."""
    lo_a = min(a) if isinstance(a, (list, tuple)) else a
    hi_b = max(b) if isinstance(b, (list, tuple)) else b
    shown = (f"{_show(a)} vs {_show(b)}" if not isinstance(a, (list, tuple)) else
             f"{_show(a)} (median {_show(statistics.median(a))}) vs {_show(b)}")
    if not lo_a > hi_b:
        raise ClaimFailed(f"claim failed: {claim}. Expected the first above the second, measured {shown}. "
                          f"{meaning}".rstrip())
    print(f"ok  {claim}: {shown}")
