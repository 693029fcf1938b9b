"""What the serving simulator is asked to serve (a `Traffic`), on what (a `Cluster`), and what became of
each request (a `RequestRecord`, simulated or served for real), lab 07.

A workload is a seeded list of requests: Poisson arrivals at `rate_per_s`, prompt and output
lengths uniform in mean * [1 - spread, 1 + spread] (or a replayed trace, `traces.py`). A cluster
is a mode ("disagg": P prefill workers -> KV link -> D decode workers; "colocated": P + D workers
that do both), batch limits, an optional link that overrides the profile's measured one, an
optional prefix cache (`prefix_cache.py`) and, in colocated mode, optional chunked prefill.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from memlab.core.errors import InvalidArgumentError


@dataclass(frozen=True, slots=True)
class RequestSpec:
    request_id: int
    arrived_at_s: float
    prompt_tokens: int
    output_tokens: int       # all generated tokens, the first one (made by prefill) included
    block_hashes: tuple[int, ...] = ()   # ids of the prompt's KV blocks (Mooncake's hash_ids); () = none


@dataclass(frozen=True, slots=True)
class Traffic:
    """Poisson arrivals; lengths uniform in mean * [1 - spread, 1 + spread]."""

    num_requests: int = 200
    rate_per_s: float = 1.0
    prompt_tokens: int = 256
    prompt_spread: float = 0.0
    output_tokens: int = 32
    output_spread: float = 0.0
    seed: int = 0

    def __post_init__(self):
        for name in ("num_requests", "prompt_tokens", "output_tokens"):
            if getattr(self, name) < 1:
                raise InvalidArgumentError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.rate_per_s > 0:
            raise InvalidArgumentError(f"rate_per_s must be > 0 (requests per second), got {self.rate_per_s}")
        for name in ("prompt_spread", "output_spread"):
            if not 0 <= getattr(self, name) < 1:
                raise InvalidArgumentError(f"{name} is a fraction in [0, 1), got {getattr(self, name)}")

    def requests(self) -> tuple[RequestSpec, ...]:
        """The seeded request list: exponential inter-arrival gaps of mean 1 / rate."""
        rng = np.random.default_rng(self.seed)
        n = self.num_requests
        arrived = np.cumsum(rng.exponential(1.0 / self.rate_per_s, n))

        def lengths(mean, spread):
            lo, hi = max(1, round(mean * (1 - spread))), max(1, round(mean * (1 + spread)))
            return rng.integers(lo, hi + 1, n)
        prompt, output = lengths(self.prompt_tokens, self.prompt_spread), lengths(self.output_tokens, self.output_spread)
        return tuple(RequestSpec(i, float(arrived[i]), int(prompt[i]), int(output[i])) for i in range(n))


@dataclass(frozen=True, slots=True)
class Cluster:
    mode: str = "disagg"                    # "disagg" or "colocated"
    num_prefill_workers: int = 1
    num_decode_workers: int = 1             # colocated mode runs P + D identical workers
    max_prefill_batch: int = 8              # requests per prefill batch
    max_prefill_batch_tokens: int = 4096    # a single longer prompt still runs alone
    max_decode_batch: int = 64
    link_bytes_per_s: float | None = None   # None: the profile's measured link
    link_latency_s: float | None = None
    ttft_includes_transfer: bool = False    # True: token 1 counts once the KV has landed on the decode
                                            # worker (it answers the user); False: at prefill end (DistServe)
    prefix_cache_blocks: int = 0            # LRU prefix cache shared by the prefill workers, in blocks; 0 = off
    prefix_block_tokens: int = 512          # tokens per block (Mooncake's traces hash 512-token blocks)
    prefill_chunk_tokens: int = 0           # colocated only: chunked prefill (Sarathi), C tokens per step; 0 = off

    def __post_init__(self):
        if self.mode not in ("disagg", "colocated"):
            raise InvalidArgumentError(f"mode must be 'disagg' or 'colocated', not {self.mode!r}")
        for name in ("num_prefill_workers", "num_decode_workers", "max_prefill_batch", "max_prefill_batch_tokens",
                     "max_decode_batch"):
            if getattr(self, name) < 1:
                raise InvalidArgumentError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("prefix_cache_blocks", "prefill_chunk_tokens"):
            if getattr(self, name) < 0:
                raise InvalidArgumentError(f"{name} must be >= 0 (0 = off), got {getattr(self, name)}")
        if self.prefix_block_tokens < 1:
            raise InvalidArgumentError(f"prefix_block_tokens must be >= 1, got {self.prefix_block_tokens}")
        if self.prefill_chunk_tokens and self.mode != "colocated":
            raise InvalidArgumentError("prefill_chunk_tokens is an option of the colocated mode (a disaggregated "
                                       "prefill worker has no decodes to mix its chunks with)")
        for name in ("link_bytes_per_s", "link_latency_s"):
            v = getattr(self, name)
            if v is not None and not (v > 0 if name == "link_bytes_per_s" else v >= 0):
                raise InvalidArgumentError(f"{name} must be {'> 0' if name == 'link_bytes_per_s' else '>= 0'}, got {v}")

    @property
    def num_workers(self) -> int:
        return self.num_prefill_workers + self.num_decode_workers


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One finished request; `*_at_s` are times on the simulated clock, `*_s` durations."""

    request_id: int
    prompt_tokens: int
    output_tokens: int
    kv_bytes: int
    prefill_worker: int
    decode_worker: int
    arrived_at_s: float
    prefill_started_at_s: float
    first_token_at_s: float                  # prefill end (or KV landed, see Cluster)
    transfer_started_at_s: float
    transfer_ended_at_s: float
    decode_started_at_s: float               # joined a decode batch
    finished_at_s: float
    ttft_s: float
    tpot_s: float
    e2e_s: float
    prefill_s: float
    transfer_s: float
    cached_tokens: int = 0                   # prompt tokens served from the prefix cache (not prefilled)


def trace_at_utilization(profile, workload: Traffic, utilization: float) -> tuple[RequestSpec, ...]:
    """The workload's requests at `utilization` of the busier worker's capacity (batch-1 service).

    capacity = 1 / max(prefill time, decode time per request), from the profile's cost model.
    """
    n, out = workload.prompt_tokens, workload.output_tokens
    decode_s = sum(profile.decode_step_s(1, n + 1 + j) for j in range(out - 1))
    service_s = max(profile.prefill_s([n]), decode_s)
    return replace(workload, rate_per_s=utilization / service_s).requests()


def validation_workload(quick: bool = True, seed: int = 0) -> Traffic:
    """The default validation workload (its rate is set from the measured profile)."""
    return Traffic(num_requests=15 if quick else 32, rate_per_s=1.0, prompt_tokens=160, prompt_spread=0.5,
                    output_tokens=12 if quick else 24, seed=seed)
