"""Worked solutions of lab 07's exercises (graded by memlab.course.exercises)."""

from __future__ import annotations

from memlab.core import footprint


def kv_bytes_shipped(config, prompt_tokens: int, dtype: str = "fp32") -> float:
    """Keys and values of every prompt token in every layer: 2 x L x K x D x bytes x T, the
    course's one KV formula (`memlab.core.footprint.kv_cache_bytes`)."""
    return footprint.kv_cache_bytes(config, prompt_tokens, dtype=dtype)


# measured / predicted that 07-transfer accepts: one gloo transfer per prompt length, timed once, between two
# single-threaded processes on a 2-core machine: TCP over the loopback, and the rebuild of the cache on rank 1.
# The median of five sends per length (transfer_median_s): one send missed this line by 3.4x. On an AVX2 EPYC
# (2 vCPUs), quick mode (64, 256 -> 512 tokens): 1.23 and 1.31; in the browser test, with JupyterLab and
# Chromium on the same two cores, 2.71. A prediction that ships the bytes at lab 01's memory bandwidth (the
# loopback is a copy through the kernel) lands 30-90x above it (512 tokens' 24 MB: under 1 ms at 30 GB/s).
TRANSFER_BAND = (0.5, 3.0)


def transfer_s(transfers, kv_bytes: int) -> float:
    """A transfer costs a fixed latency (a message each way, the cache rebuilt) + bytes / the link's rate.
    The two largest transfers measured (`transfers`: (bytes, seconds) pairs) give both: the rate is the
    extra bytes over the extra time, the latency what is left of the larger one; then latency + kv_bytes / rate."""
    (b1, t1), (b2, t2) = sorted(transfers)[-2:]
    rate = (b2 - b1) / (t2 - t1)
    latency = t2 - b2 / rate
    return latency + kv_bytes / rate


def link_transfer_s(config, prompt_tokens: int, link_bytes_per_s: float, link_latency_s: float,
                    dtype: str = "bf16") -> float:
    """One prompt's KV cache over a link: latency + kv_bytes / bandwidth, with kv_bytes from the KV formula."""
    return link_latency_s + footprint.kv_cache_bytes(config, prompt_tokens, dtype=dtype) / link_bytes_per_s


def fitted_prefill_s(coefficients: tuple[float, float, float], prompt_tokens: int, time_unit_s: float) -> float:
    """DistServe's fitted prefill time of one prompt of n tokens: (a + b n + c n^2) in the fit's unit, in seconds.
    On an idle cluster the first token comes when that prefill ends, so it is also the TTFT."""
    a, b, c = coefficients
    return (a + b * prompt_tokens + c * prompt_tokens ** 2) * time_unit_s


# measured / predicted that 07-shaped accepts: the 64-token cache over a loopback shaped to 0.2 Gbit/s, the median
# of five sends. Under load (load average ~11): 1.00 (0.121 s measured, 0.121 s predicted); quiet runs
# (AMD EPYC, 2 vCPUs): 0.95 quick, 0.97 full. Bits for bytes misses by 8x; the wire alone (no copies) lands
# inside at 0.2 Gbit/s, where the copies at both ends are under 2 % of the time.
SHAPED_BAND = (0.7, 1.4)


def shaped_transfer_s(kv_bytes: int, gbps: float, link_latency_s: float, link_bytes_per_s: float) -> float:
    """The KV cache over a wire shaped to G Gbit/s: the copies at both ends at the calibrated loopback's
    rate, in series with the wire: latency + bytes / loopback rate + bytes x 8 / (G x 1e9)."""
    return link_latency_s + kv_bytes / link_bytes_per_s + kv_bytes * 8 / (gbps * 1e9)
