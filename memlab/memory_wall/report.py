"""Predicted bounds beside measured speed for one model: what `memlab roofline` prints (lab 01).

`measure_report` generates once through transformers' modules (eager) and once through memlab's
fast path, and sets both beside the roofline bounds from this machine's measured ceilings.
"""

from __future__ import annotations

from dataclasses import dataclass

from memlab.core.generation import encode, generate
from memlab.core.roofline import decode_workload, predict, prefill_workload
from memlab.core import fastpath


@dataclass(frozen=True, slots=True)
class RooflineReport:
    """Predicted bounds beside measured speed for one model (what `memlab roofline` prints)."""

    model_name: str
    dtype: str
    batch_size: int
    prompt_tokens: int
    new_tokens: int
    bandwidth_gb_per_s: float            # the memory roof (Ceilings.bandwidth_bytes_per_s)
    peak_flop_per_s: float               # measured matmul, this dtype
    decode_bytes_per_token: float
    decode_intensity_flop_per_byte: float
    predicted_decode_tok_per_s: float    # roofline bound
    measured_decode_tok_per_s: float     # memlab.core.generation (transformers modules, eager)
    decode_fraction_of_bound: float
    fast_decode_tok_per_s: float         # memlab.core.fastpath; nan when not run
    fast_fraction_of_bound: float
    fast_same_tokens: bool
    predicted_prefill_s: float
    measured_prefill_s: float


def measure_report(loaded, ceilings, prompt="Explain why the sky is blue in two sentences.",
                   max_new_tokens: int = 32, batch_size: int = 1, fast: bool = True) -> RooflineReport:
    """Generate once (and once through the fast path), and set both beside the roofline bounds."""
    import torch

    cfg, dtype = loaded.model.config, loaded.dtype
    r = generate(loaded, prompt, max_new_tokens=max_new_tokens, batch_size=batch_size, stop_at_eos=False)
    peak, bw = ceilings.flop_per_s(dtype), ceilings.bandwidth_bytes_per_s
    dec = decode_workload(cfg, batch_size, r.prompt_tokens + r.new_tokens // 2, dtype)
    pred = predict(dec, peak, bw)
    pre = predict(prefill_workload(cfg, r.prompt_tokens, batch_size, dtype), peak, bw)
    fast_tps, same = float("nan"), False
    if fast:
        ids = torch.tensor([encode(loaded.tokenizer, prompt)] * batch_size)
        f = fastpath.fast_generate(loaded.model, ids, max_new_tokens, model_name=loaded.name)
        fast_tps, same = f.decode_tok_per_s, tuple(f.token_ids) == tuple(r.token_ids)
    return RooflineReport(
        model_name=loaded.name, dtype=dtype, batch_size=batch_size, prompt_tokens=r.prompt_tokens,
        new_tokens=r.new_tokens, bandwidth_gb_per_s=bw / 1e9, peak_flop_per_s=peak,
        decode_bytes_per_token=dec.bytes / batch_size, decode_intensity_flop_per_byte=dec.intensity_flop_per_byte,
        predicted_decode_tok_per_s=pred.tok_per_s, measured_decode_tok_per_s=r.decode_tok_per_s,
        decode_fraction_of_bound=r.decode_tok_per_s / pred.tok_per_s,
        fast_decode_tok_per_s=fast_tps, fast_fraction_of_bound=fast_tps / pred.tok_per_s,
        fast_same_tokens=same, predicted_prefill_s=pre.time_s, measured_prefill_s=r.prefill_s)
