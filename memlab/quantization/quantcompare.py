"""Bytes, speed and quality of each quantized variant, measured side by side (lab 04, `memlab quant`).

For every variant of `quantize.VARIANTS`: load (and quantize) the real model, count the bytes its
tensors hold, time prefill and decode with memlab's own loop (`generation.generate`, greedy,
median of `repeats`), and score it with `quality`: perplexity on the shipped text, agreement with
fp32's greedy tokens, and the answer to one fixed question. fp32 always runs first: it is the
reference for agreement and for the speed ratios.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from types import SimpleNamespace

import torch

from memlab.core import ceilings, roofline, tensors
from memlab.core.errors import InvalidArgumentError
from memlab.core.generation import generate
from memlab.core.hardware import card
from memlab.core.loading import load
from memlab.core.measure import repeat
from memlab.quantization import quality, quantize, records
from memlab.quantization.gguf_reference import measure_gguf
from memlab.quantization.records import QuantConfig, QuantResult


def _unavailable(v: quantize.Variant, reason: str, device: str = "cpu") -> QuantResult:
    nan = float("nan")
    return QuantResult(v.name, v.library, v.description, False, reason, 0, 0, nan, nan, nan, nan, nan,
                       nan, nan, -1, "", (), card().host, device)


def _device(model) -> torch.device:
    return model.get_input_embeddings().weight.device


def _speed(model, tokenizer, prompt_ids, cfg: QuantConfig):
    """Median prefill and decode tok/s over `repeats` greedy runs (first run is a warm-up if >1)."""
    loaded = SimpleNamespace(model=model, tokenizer=tokenizer, device=_device(model), name=cfg.model, dtype="")
    runs = [generate(loaded, prompt_ids, max_new_tokens=cfg.new_tokens, stop_at_eos=False)
            for _ in range(cfg.repeats + (cfg.repeats > 1))][(cfg.repeats > 1):]
    return (statistics.median(r.prefill_tok_per_s for r in runs),
            statistics.median(r.decode_tok_per_s for r in runs), runs[0].token_ids)


def answer_question(model, tokenizer) -> str:
    loaded = SimpleNamespace(model=model, tokenizer=tokenizer, device=_device(model), name="", dtype="")
    return generate(loaded, quality.QUESTION, max_new_tokens=24).text.strip()


def measure(name: str, cfg: QuantConfig, reference: QuantResult | None = None,
            base=None) -> QuantResult:
    """Build variant `name` of cfg.model and measure it; `reference` is the fp32 result (or None)."""
    v = quantize.VARIANTS[name]
    reason = quantize.missing_reason(v, cfg.device)
    if reason:
        return _unavailable(v, reason, cfg.device)
    if v.library == "llama.cpp":
        return measure_gguf(v, cfg, reference)
    loaded = base if base is not None and v.load_dtype == "fp32" else load(cfg.model, dtype=v.load_dtype,
                                                                           device=cfg.device)
    load_s = loaded.result.load_time_s
    fp32_model, tokenizer = loaded.model, loaded.tokenizer
    # bits per weight of the decoder-layer matrices (lm_head is kept in fp32 by some variants)
    linears = [n for n, m in fp32_model.named_modules() if type(m) is torch.nn.Linear and n != "lm_head"]
    mods = dict(fp32_model.named_modules())
    num_weights = sum(mods[n].weight.numel() for n in linears)
    t0 = time.perf_counter()
    try:
        model = quantize.build(fp32_model, v)
        quantize_s = time.perf_counter() - t0 if v.quantize else 0.0
        ids = quality.eval_ids(tokenizer, cfg.ppl_tokens)
        prompt = quality.eval_ids(tokenizer, cfg.prompt_tokens)
        prefill, decode, tokens = _speed(model, tokenizer, prompt, cfg)
    except Exception as e:  # a library that refuses this CPU or GPU: say so, keep going
        return _unavailable(v, f"{type(e).__name__}: {str(e).splitlines()[0][:200]}", cfg.device)
    ref_tokens = reference.tokens if reference is not None else tokens
    result = QuantResult(
        variant=v.name, library=v.library, description=v.description, is_available=True,
        reason=quantize.emulation_note(v.load_dtype), resident_bytes=tensors.model_bytes(model),
        streamed_bytes=records.streamed_bytes(model),
        bits_per_weight=records.linear_bits_per_weight(model, linears, num_weights),
        load_s=load_s + quantize_s, quantize_s=quantize_s, prefill_tok_per_s=prefill,
        decode_tok_per_s=decode, perplexity=quality.perplexity(model, ids),
        agreement=quality.agreement(model, prompt, list(ref_tokens)),
        first_divergence=quality.first_divergence(tokens, ref_tokens), answer=answer_question(model, tokenizer),
        tokens=tuple(tokens), host=card().host, device=cfg.device)
    del model
    gc.collect()
    return result


def compare(cfg: QuantConfig | None = None, progress: bool = True, base=None) -> list[QuantResult]:
    """Measure every variant of `cfg` (fp32 first, as the reference); one QuantResult each.
    `base`: the fp32 model already loaded (a lab's), so memory holds one fp32 copy, not two."""
    from tqdm.auto import tqdm

    cfg = cfg or QuantConfig()
    names = ["fp32"] + [v for v in cfg.variants if v != "fp32"]
    if base is not None and next(base.model.parameters()).dtype != torch.float32:
        raise InvalidArgumentError(f"compare(base=...) needs the fp32 model, got {next(base.model.parameters()).dtype}")
    if base is not None and _device(base.model).type != cfg.device:
        raise InvalidArgumentError(f"compare(base=...) got a model on {_device(base.model).type} for a run on "
                                   f"{cfg.device}: load it with device={cfg.device!r}")
    base = base if base is not None else load(cfg.model, dtype="fp32", device=cfg.device)
    results, reference = [], None
    for name in tqdm(names, desc="variants", disable=not progress):
        r = measure(name, cfg, reference, base=base)
        if name == "fp32":
            reference = r
        results.append(r)
    return [r for r in results if r.variant in cfg.variants] if "fp32" not in cfg.variants \
        else results


def decode_bound_tok_per_s(result: QuantResult, bandwidth_bytes_per_s: float) -> float:
    """Fastest decode the memory allows: bandwidth / bytes streamed per token (`roofline`'s bound)."""
    return roofline.decode_tok_per_s_bound(result.streamed_bytes, bandwidth_bytes_per_s) \
        if result.streamed_bytes else float("nan")


def ratios(results: list[QuantResult], bandwidth_bytes_per_s: float) -> list[dict]:
    """Per variant: decode tok/s, as a share of fp32's and of its own bandwidth bound."""
    fp32 = next((r for r in results if r.variant == "fp32"), None)
    rows = []
    for r in results:
        bound = decode_bound_tok_per_s(r, bandwidth_bytes_per_s)
        rows.append(dict(variant=r.variant, decode_tok_per_s=r.decode_tok_per_s,
                         vs_fp32=r.decode_tok_per_s / fp32.decode_tok_per_s if fp32 else math.nan,
                         bound_tok_per_s=bound, of_bound=r.decode_tok_per_s / bound if bound else math.nan))
    return rows


def read_bandwidth_bytes_per_s(size_bytes: int | None = None, repeats: int = 5) -> float:
    """Memory read bandwidth as a decode step sees it, bytes/s: the read kernel of
    `memlab.core.ceilings.stream` (sum of one large fp32 array, best of `repeats`), on arrays of
    `ceilings.array_size()` by default: at least twice the last-level cache, so DRAM is measured."""
    return ceilings.stream(size_bytes or ceilings.array_size(), repeats, read_only=True)["read"] * 1e9


@torch.inference_mode()
def matmul_times(out_features: int = 49152, in_features: int = 576, repeats: int = 20,
                 device: str = "cpu") -> dict[str, float]:
    """Seconds of one decode-shaped matmul (1 token x weight) per kernel on `device`: where the bytes
    go and where they do not (median of `repeats`). Default shape: SmolLM2's lm_head."""
    torch.manual_seed(0)
    lin = torch.nn.Linear(in_features, out_features, bias=False, device=device)
    x = torch.randn(1, in_features, device=device)
    kernels = {"fp32 F.linear": lin, "memlab int8 (fused)": quantize.Int8Linear(lin),
               "memlab int4 (fused)": quantize.Int4Linear(lin),
               "dequantize int8 then fp32": lambda x, q=quantize.Int8Linear(lin):
                   torch.nn.functional.linear(x, q.qweight.float() * q.scale.float()[:, None])}
    if quantize.missing_reason(quantize.VARIANTS["ao-int8"], device) == "":
        import copy
        kernels["torchao int8 G=32"] = quantize.build(torch.nn.Sequential(copy.deepcopy(lin)),
                                                      quantize.VARIANTS["ao-int8"])
    out = {}
    for name, k in kernels.items():
        out[name] = repeat(lambda: k(x), repeats, device=torch.device(device)).median
    return out
