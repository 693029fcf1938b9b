"""The quantization comparison's config and its record, one per variant (lab 04, `memlab quant`).

`QuantConfig` says what to run (variants, prompt, tokens, repeats); `QuantResult` is what one
variant measured: bytes (`streamed_bytes`, `linear_bits_per_weight`: counted from the built model's
tensors), speed, quality and the answer. Both the in-process variants
(`quantcompare`) and the llama.cpp reference (`gguf_reference`) return it.
"""

from __future__ import annotations

from dataclasses import dataclass

from memlab.core import hardware, limits, tensors
from memlab.core.errors import InvalidArgumentError
from memlab.core.models import DEFAULT_MODEL
from memlab.quantization import quantize


def run_device(device: str = "auto") -> tuple[str, str]:
    """Where lab 04 runs its torch variants for the lab's DEVICE, and why: cuda stays cuda; mps and
    cpu give "cpu" (memlab's int4 and torch.ao's dynamic int8 have no mps kernels)."""
    if hardware.cpu_or_cuda(device) == "cuda":
        return "cuda", "on the GPU (llama.cpp stays on the CPU)"
    if hardware.resolve_device(device).type == "mps":
        return "cpu", "on the CPU: memlab's int4 and torch.ao's dynamic int8 have no kernels for Apple's mps"
    return "cpu", "on the CPU"


@dataclass(frozen=True, slots=True)
class QuantConfig:
    variants: tuple = ("fp32", "bf16", "int8", "int4", "ao-int8", "ao-int4", "dyn-int8", "gguf-q4_1")
    model: str = DEFAULT_MODEL
    prompt_tokens: int = 100     # prompt for the speed runs, cut from the evaluation text
    new_tokens: int = 32         # greedy tokens per speed run (EOS ignored)
    ppl_tokens: int = 512        # tokens of the evaluation text scored for perplexity
    repeats: int = 3             # speed runs per variant; the median is reported
    device: str = "cpu"          # where the torch variants run: "cpu" or "cuda" (llama.cpp: the CPU)

    def __post_init__(self):
        unknown = [v for v in self.variants if v not in quantize.VARIANTS]
        if unknown:
            raise InvalidArgumentError(f"unknown variant(s) {unknown}; choose from {', '.join(quantize.VARIANTS)}")
        for name, minimum in (("new_tokens", 2), ("ppl_tokens", 2), ("prompt_tokens", 1), ("repeats", 1)):
            limits.count(getattr(self, name), name, minimum)
        kind = hardware.resolve_device(self.device).type  # "auto" -> what is here; a missing GPU is a clear error
        if kind not in ("cpu", "cuda"):
            raise InvalidArgumentError(f"device={self.device!r}: the quantized kernels run on cpu or cuda "
                                       "(`run_device` says where a lab's DEVICE runs them)")
        object.__setattr__(self, "device", kind)

    @classmethod
    def quick(cls, **kw) -> "QuantConfig":
        """Small enough for tests and quick labs: 64-token prompt, 16 new tokens, 128 scored, 1 run."""
        return cls(**{**dict(prompt_tokens=64, new_tokens=16, ppl_tokens=128, repeats=1), **kw})


@dataclass(frozen=True, slots=True)
class QuantResult:
    variant: str
    library: str
    description: str
    is_available: bool
    reason: str                   # why it could not run ("" when it ran); notes such as emulation
    resident_bytes: int           # weights as held in memory, counted from the tensors
    streamed_bytes: int           # weights one decode step reads (input embedding excluded when untied)
    bits_per_weight: float        # effective, of the decoder-layer matrices, scales/zeros included
    load_s: float                 # load the checkpoint (+ quantize)
    quantize_s: float
    prefill_tok_per_s: float
    decode_tok_per_s: float
    perplexity: float
    agreement: float              # share of fp32's greedy tokens it also picks (teacher-forced)
    first_divergence: int         # first token index where free-running greedy differs from fp32
    answer: str                   # reply to quality.QUESTION
    tokens: tuple                 # greedy tokens of the speed prompt
    host: str
    device: str = "cpu"           # where it ran


def streamed_bytes(model) -> int:
    """Bytes one decode step reads: every weight, except an input embedding that is not also lm_head
    (a lookup reads one row of it)."""
    emb = model.get_input_embeddings().weight
    out = getattr(model.get_output_embeddings(), "weight", None)
    return tensors.model_bytes(model) - (0 if out is emb else tensors.tensor_bytes([emb]))


def linear_bits_per_weight(model, linear_names: list[str], num_weights: int) -> float:
    """8 * bytes of the (quantized) linear layers, scales and zeros included / their weight count."""
    mods = dict(model.named_modules())
    weights = []
    for name in linear_names:
        weights += [t for k, t in mods[name].state_dict(keep_vars=True).items() if "bias" not in k]
    return 8 * tensors.tensor_bytes(weights) / num_weights
