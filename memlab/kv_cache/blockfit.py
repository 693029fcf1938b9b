"""A tier's cost per transfer and per byte, fitted from the block-size sweep, and the block size
below which restoring loses to recomputing (lab 09; the sweep is `granularity`).

Each tier is fitted by least squares over the sweep's points (two prefix lengths or more, so both
terms are identified; each point's fastest repeat, the one least disturbed by other work):
    restore_s ~= num_transfers x latency_s + num_bytes / rate
A restore in blocks of b bytes makes num_bytes / b transfers, so it loses to recomputing when
    num_bytes / b x latency + num_bytes / rate > recompute_s
    <=> b < num_bytes x latency / (recompute_s - num_bytes / rate)        (the break-even block size)
and no block size pays when num_bytes / rate alone exceeds recompute_s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from memlab.core.errors import InvalidArgumentError


@dataclass(frozen=True, slots=True)
class TierFit:
    """restore_s ~= num_transfers x latency_s + num_bytes / rate_bytes_per_s, least squares."""

    tier: str
    latency_s: float             # per transfer
    rate_bytes_per_s: float
    r2: float                    # 1 - SS_res / SS_tot over the tier's points
    num_points: int


@dataclass(frozen=True, slots=True)
class BlockBreakeven:
    """The block size below which restoring a P-token prefix from a tier loses to recomputing it."""

    tier: str
    prefix_tokens: int
    recompute_s: float             # fastest recompute of the prefix
    predicted_block_bytes: float   # from the fit: num_bytes x latency / (recompute_s - num_bytes / rate); inf: never pays
    largest_losing_bytes: float    # in the sweep: the largest block that restored slower than recompute (0: none)
    smallest_winning_bytes: float  # the smallest that restored faster (inf: none)
    is_within_one_step: bool       # the prediction lies between the swept sizes next to the sweep's flip



def fit(points, tier: str) -> TierFit:
    """Least squares of restore_best_s on (num_transfers, num_bytes) over one tier's points, no
    intercept: t = n x latency + bytes / rate, both non-negative (rate inf: the bytes' share is below
    what these points resolve). R^2 = 1 - SS_res / SS_tot."""
    pts = [p for p in points if p.tier == tier]
    if len({p.num_bytes for p in pts}) < 2:
        raise InvalidArgumentError(f"fitting {tier} needs two prefix lengths or more (has {len(pts)} points)")
    X = np.array([[p.num_transfers, p.num_bytes] for p in pts], dtype=float)
    y = np.array([p.restore_best_s for p in pts])
    (latency, per_byte), *_ = np.linalg.lstsq(X, y, rcond=None)
    if latency < 0 or per_byte < 0:  # a negative cost is not physics: keep the term the points resolve, alone
        keep = 1 if latency < 0 else 0
        coef = float(X[:, keep] @ y / (X[:, keep] @ X[:, keep]))
        latency, per_byte = (0.0, coef) if keep else (coef, 0.0)
    resid = y - X @ np.array([latency, per_byte])
    r2 = 1.0 - float(resid @ resid) / float(((y - y.mean()) ** 2).sum())
    return TierFit(tier, float(latency), float(1.0 / per_byte) if per_byte > 0 else math.inf, r2, len(pts))


def fits(points) -> dict[str, TierFit]:
    """One fit per tier present in `points`."""
    return {t: fit(points, t) for t in dict.fromkeys(p.tier for p in points)}


def predict_s(f: TierFit, num_transfers: int, num_bytes: int) -> float:
    """The fit's restore time: num_transfers x latency + num_bytes / rate."""
    return num_transfers * f.latency_s + num_bytes / f.rate_bytes_per_s


def breakeven_block_bytes(f: TierFit, num_bytes: int, recompute_s: float) -> float:
    """Block size below which restoring loses: num_bytes x latency / (recompute_s - num_bytes / rate);
    inf when moving the bytes alone already costs more than recomputing (no block size pays)."""
    spare = recompute_s - num_bytes / f.rate_bytes_per_s
    return num_bytes * max(f.latency_s, 0.0) / spare if spare > 0 else math.inf


def breakevens(points, tier_fits: dict[str, TierFit]) -> list[BlockBreakeven]:
    """Per tier and prefix length: the fit's break-even block size beside what the sweep saw."""
    out = []
    for tier, f in tier_fits.items():
        for P in dict.fromkeys(p.prefix_tokens for p in points):
            pts = [p for p in points if p.tier == tier and p.prefix_tokens == P]
            rec = pts[0].recompute_best_s
            lose = max((p.block_bytes for p in pts if p.restore_best_s > rec), default=0)
            win = min((p.block_bytes for p in pts if p.restore_best_s <= rec), default=math.inf)
            predicted = breakeven_block_bytes(f, pts[0].num_bytes, rec)
            sizes = [0] + sorted({p.block_bytes for p in pts}) + [math.inf]
            lo = sizes[max(sizes.index(lose) - 1, 0)]  # one swept size either side of the flip
            hi = sizes[min(sizes.index(win) + 1, len(sizes) - 1)]
            out.append(BlockBreakeven(tier, P, rec, predicted, float(lose), float(win), bool(lo <= predicted <= hi)))
    return out
