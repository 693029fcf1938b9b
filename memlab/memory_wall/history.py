"""The memory wall over the years: reference devices' peak FLOP/s against their bandwidth
(data/hardware.csv), each fitted as a growth factor per two years (lab 01)."""

from __future__ import annotations

import math

import numpy as np


def peak_tflop_per_s(row) -> float:
    """A device's best dense figure: bf16, else fp16, else fp32 (TFLOP/s)."""
    for col in ("bf16_tflop_per_s", "fp16_tflop_per_s", "fp32_tflop_per_s"):
        v = row[col]
        if v == v and not math.isnan(float(v)):
            return float(v)
    return float("nan")


def growth_per_2_years(years, values) -> float:
    """Fitted growth factor per two years: exp-fit log(value) = a + b*year, factor = e^(2b)."""
    b, _ = np.polyfit(np.asarray(years, float), np.log(np.asarray(values, float)), 1)
    return float(np.exp(2 * b))
