"""The simulator's inputs: service-time profiles, where they come from, and the links (lab 07).

A `Profile` says how long a prefill, a decode step and a KV transfer take. Three sources:
  simple_profile  round numbers, for tests and the first look
  measured        fitted on this machine (`calibration.calibrate`), saved per model as JSON
  spec-derived    from a row of the device table (peak FLOP/s, memory bandwidth) and a link row,
                  with an assumed MFU: hardware that is not here, labelled so
  published       a paper's fitted latency model, coefficients and source quoted (`published.py`)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from memlab.core import devices, footprint, roofline
from memlab.core.errors import MemlabError
from memlab.core.hardware import card
from memlab.core.models import DEFAULT_MODEL, cache_dir
from memlab.core.paths import write_atomic
from memlab.core.results import as_dict
from memlab.core.units import fmt_rate, fmt_time


@dataclass(frozen=True, slots=True)
class Profile:
    """Per-worker costs; `source` says whether they were measured here or derived from a spec."""

    name: str
    source: str                         # "measured on <host>" or "spec-derived: <device>"
    prefill_base_s: float
    prefill_per_token_s: float
    prefill_per_token2_s: float         # attention's quadratic term
    decode_base_s: float                # per step, whatever the batch
    decode_per_seq_s: float             # per sequence in the batch
    decode_per_ctx_token_s: float       # per cached token read, summed over the batch
    link_bytes_per_s: float
    link_latency_s: float
    kv_bytes_per_token: int

    @classmethod
    def from_latency_model(cls, model, link_bytes_per_s: float, link_latency_s: float) -> "Profile":
        """A published fitted model (`published.LatencyModel`: prefill a + b sum(n) + c sum(n^2), decode
        a + b sum(context) + c B, in `model.time_unit_s`) as a Profile in seconds; its source is kept."""
        (pa, pb, pc), (da, db, dc), u = model.prefill, model.decode, model.time_unit_s
        return cls(model.name, f"published: {model.source}", pa * u, pb * u, pc * u, da * u, dc * u, db * u,
                   link_bytes_per_s, link_latency_s, model.kv_bytes_per_token)

    def prefill_s(self, prompt_tokens: list[int] | tuple[int, ...]) -> float:
        """Time of one prefill batch: base + a * sum(n) + b * sum(n^2)."""
        return (self.prefill_base_s + self.prefill_per_token_s * sum(prompt_tokens)
                + self.prefill_per_token2_s * sum(n * n for n in prompt_tokens))

    def decode_step_s(self, batch_size: int, context_tokens: int) -> float:
        """Time of one decode step for `batch_size` sequences holding `context_tokens` in all."""
        return (self.decode_base_s + self.decode_per_seq_s * batch_size
                + self.decode_per_ctx_token_s * context_tokens)

    def mixed_step_s(self, pieces, batch_size: int, context_tokens: int) -> float:
        """One chunked-prefill step: prompt `pieces` [(tokens done before, chunk tokens)] plus a decode batch.

        The pieces cost base + a * sum(n) + b * sum((off + n)^2 - off^2), so a prompt's chunks add up
        to its unchunked quadratic term. With decodes in the step the pass over the weights is shared:
        max(that, decode_base_s) + decode_per_seq_s * B + decode_per_ctx_token_s * context_tokens.
        """
        pre = 0.0
        if pieces:
            pre = (self.prefill_base_s + self.prefill_per_token_s * sum(n for _, n in pieces)
                   + self.prefill_per_token2_s * sum((off + n) ** 2 - off ** 2 for off, n in pieces))
        if batch_size == 0:
            return pre
        return (max(pre, self.decode_base_s) + self.decode_per_seq_s * batch_size
                + self.decode_per_ctx_token_s * context_tokens)

    def transfer_s(self, kv_bytes: int, link_bytes_per_s: float | None = None) -> float:
        """latency + bytes / bandwidth."""
        return self.link_latency_s + kv_bytes / (link_bytes_per_s or self.link_bytes_per_s)


def simple_profile() -> Profile:
    """A round-number profile for tests and the benchmark (not a measurement of anything)."""
    return Profile("simple", "made-up round numbers", 0.01, 2e-4, 0.0, 0.01, 1e-3, 1e-6,
                   10e9, 1e-4, 20_000)


# Ethernet is not in the device table; line rates by definition (1 Gb/s = 0.125 GB/s).
ETHERNET_BYTES_PER_S = {"10 Gb Ethernet": 10e9 / 8, "25 Gb Ethernet": 25e9 / 8,
                        "100 Gb Ethernet": 100e9 / 8, "400 Gb Ethernet": 400e9 / 8}


LINKS = ("10 Gb Ethernet", "25 Gb Ethernet", "100 Gb Ethernet", "PCIe 4.0 x16", "400 Gb Ethernet",
         "PCIe 5.0 x16", "NVLink 4 (H100)")


def links(names=LINKS, table_path=None) -> dict[str, float]:
    """{link name: bytes/s}; table links are skipped (with no error) when the device table is absent."""
    out = {}
    for name in names:
        try:
            out[name] = link_bytes_per_s(name, table_path)
        except MemlabError:
            continue
    return out


def link_bytes_per_s(name: str, table_path=None) -> float:
    """A link's bandwidth: Ethernet by line rate, the others from the device table's link rows."""
    if name in ETHERNET_BYTES_PER_S:
        return ETHERNET_BYTES_PER_S[name]
    return float(devices.row(name, table_path)["bandwidth_gb_per_s"]) * 1e9


def spec_profile(device: str, config, link: str = "PCIe 4.0 x16", dtype: str = "bf16", mfu: float = 0.5,
                 step_overhead_s: float = 1e-3, link_latency_s: float = 10e-6, table_path=None) -> Profile:
    """A roofline-style profile for hardware that is not here (spec-derived, labelled so)."""
    row = devices.row(device, table_path)
    peak = float(row.get(f"{dtype}_tflop_per_s") or row.get("fp16_tflop_per_s") or row["fp32_tflop_per_s"]) * 1e12 * mfu
    bw = float(row["bandwidth_gb_per_s"]) * 1e9
    fixed, per_token, per_token2 = roofline.prefill_flops_terms(config)  # the course's one prefill count
    kv_tok = footprint.kv_bytes_per_token(config, dtype=dtype)
    return Profile(f"{device} ({dtype})", f"spec-derived: {device}, {link}, MFU {mfu:.0%} assumed",
                   step_overhead_s + fixed / peak, per_token / peak, per_token2 / peak,
                   max(step_overhead_s, footprint.weights_bytes(config, dtype) / bw),
                   2 * roofline.matmul_params(config) / peak, kv_tok / bw,
                   link_bytes_per_s(link, table_path), link_latency_s, kv_tok)


def fmt_profile(p: Profile) -> str:
    """One line a learner can read: what a 512-token prefill, a decode step and 1 MB of KV cost."""
    return (f"{p.name} [{p.source}]: prefill 512 tok {fmt_time(p.prefill_s([512]))}, decode step "
            f"B=1/C=512 {fmt_time(p.decode_step_s(1, 512))}, B=32 {fmt_time(p.decode_step_s(32, 32 * 512))}, "
            f"link {fmt_rate(p.link_bytes_per_s)} + {fmt_time(p.link_latency_s)}")


def profile_path(model: str = DEFAULT_MODEL) -> Path:
    return cache_dir() / "profiles" / f"{Path(str(model)).name}-{card().host}.json"


def save_profile(profile: Profile, path: str | Path) -> Path:
    import json

    return write_atomic(path, json.dumps(as_dict(profile), indent=1))


def load_profile(path: str | Path) -> Profile:
    import json
    return Profile(**json.loads(Path(path).read_text()))
