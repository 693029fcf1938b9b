"""Published fitted latency models, as simulator profiles (lab 07).

Serving papers fit a small formula to their GPUs' measured step times and drive a simulator
with it. DistServe (Zhong et al., OSDI 2024) fits, per model and tensor-parallel degree on
A100-80GB GPUs (its simulator, `simdistserve/estimators/time_estimator.py`):

  prefill batch  T = a + b * sum(n) + c * sum(n^2)          n = each prompt's tokens
  decode step    T = a + b * sum(context) + c * B           context = each sequence's tokens + 1

in milliseconds, with one (a, b, c) for the prefill and one for decode batches under 95
sequences (a second set takes over from 95; memlab's batches stay below it). The coefficients
below are copied digit for digit from `simdistserve/estimators/profile_data/
profiler-a100-80g.distserve.json` in github.com/LLMServe/DistServe (commit 817188e0). Both forms
are the ones `Profile.prefill_s` and `Profile.decode_step_s` already compute, so a published
model becomes a `Profile` by a change of units (`LatencyModel.profile`). Its KV bytes per token
follow from the OPT configs (2 x layers x hidden x 2 B in fp16); the link is the caller's choice.
DistServe's simulator also adds 1 ms per pipeline stage to every prefill; that is not part of
the fit and is left out here.
"""

from __future__ import annotations

from dataclasses import dataclass

from memlab.core.errors import InvalidArgumentError
from memlab.disaggregation.profiles import Profile, link_bytes_per_s

_SOURCE = ("DistServe (Zhong et al., OSDI 2024) fitted latency model, {} on A100-80GB, TP={}: "
           "LLMServe/DistServe simdistserve/estimators/profile_data/profiler-a100-80g.distserve.json "
           "(commit 817188e0), 'prefill' and 'decoding_smallbs' (batch < 95)")


@dataclass(frozen=True, slots=True)
class LatencyModel:
    """A paper's fitted step-time formula, in the paper's time unit, with where it comes from."""

    name: str
    source: str
    prefill: tuple[float, float, float]   # (a, b, c): a + b sum(n) + c sum(n^2)
    decode: tuple[float, float, float]    # (a, b, c): a + b sum(context) + c B
    time_unit_s: float                    # 1e-3: the coefficients give milliseconds
    max_decode_batch: int                 # the decode fit holds below this batch size
    num_gpus: int                         # GPUs per worker (tensor-parallel degree)
    kv_bytes_per_token: int               # KV cache of one token, all layers (fp16)

    def prefill_s(self, prompt_tokens) -> float:
        """The paper's prefill formula, in seconds."""
        a, b, c = self.prefill
        return (a + b * sum(prompt_tokens) + c * sum(n * n for n in prompt_tokens)) * self.time_unit_s

    def decode_step_s(self, batch_size: int, context_tokens: int) -> float:
        """The paper's decode formula, in seconds (context_tokens summed over the batch)."""
        if batch_size >= self.max_decode_batch:
            raise InvalidArgumentError(f"{self.name}: the decode fit holds for batches under "
                                       f"{self.max_decode_batch}, asked for {batch_size}")
        a, b, c = self.decode
        return (a + b * context_tokens + c * batch_size) * self.time_unit_s

    def profile(self, link: str = "PCIe 4.0 x16", link_latency_s: float = 10e-6, table_path=None) -> Profile:
        """This model as a simulator Profile (seconds), over a link from the device table or Ethernet list."""
        return Profile.from_latency_model(self, link_bytes_per_s(link, table_path), link_latency_s)


def _opt_kv_bytes(num_layers: int, hidden: int) -> int:
    return 2 * num_layers * hidden * 2          # K and V, every layer, fp16


MODELS: dict[str, LatencyModel] = {m.name: m for m in (
    LatencyModel("distserve-opt-13b-a100-tp1", _SOURCE.format("OPT-13B", 1),
                 (16.456860431694288, 0.09264750660897617, 6.474785740229194e-06),
                 (19.934702624895458, 0.0006269356524350583, 0.03850697740828398),
                 1e-3, 95, 1, _opt_kv_bytes(40, 5120)),
    LatencyModel("distserve-opt-13b-a100-tp2", _SOURCE.format("OPT-13B", 2),
                 (13.402703359246601, 0.06234291581603636, 2.226884309113053e-06),
                 (13.294796350285385, 0.00034109219700723494, 0.06296393225243659),
                 1e-3, 95, 2, _opt_kv_bytes(40, 5120)),
    LatencyModel("distserve-opt-66b-a100-tp4", _SOURCE.format("OPT-66B", 4),
                 (26.76512367065223, 0.1375928914774527, 7.561318878163137e-06),
                 (30.760284619429587, 0.000451947603788462, 0.063284195750671),
                 1e-3, 95, 4, _opt_kv_bytes(64, 9216)),
)}


def model(name: str) -> LatencyModel:
    """A published latency model by name; a one-line error lists the names."""
    try:
        return MODELS[name]
    except KeyError:
        raise InvalidArgumentError(f"unknown published latency model {name!r}; known: {', '.join(MODELS)}") from None
