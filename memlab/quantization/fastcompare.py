"""Every precision through one fast decode path (`memlab.core.fastpath`): lab 04 and `memlab bench`.

`quantcompare` runs each variant through transformers' module tree, so its int8/int4 speed-ups
carry the eager loop's per-operator overhead. Here the same weights run through the hand-written
step: fp32 and bf16 as the model's dtype, int8/int4 as memlab's fused kernels applied to the fused
q/k/v and gate/up matrices (each row keeps the codes and scales the eager variant has), and
optionally an int8 lm_head. Per variant: decode tok/s (median of `repeats`), the bytes one step
reads (counted from the tensors the fast path holds), its bound bandwidth / bytes, the speed-up
over fp32 beside the byte ratio, and whether its greedy tokens are the eager variant's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from memlab.core import ckernels, fastpath, kernels, roofline, tensors
from memlab.core.errors import InvalidArgumentError
from memlab.core.loading import load
from memlab.core.measure import repeat
from memlab.quantization import quality, quantize

# variant -> (constructor for the layer matrices, constructor for the lm_head): None keeps the dtype
LINEARS = {"fp32": (None, None), "bf16": (None, None), "int8": (quantize.Int8Linear, None),
           "int4": (quantize.Int4Linear, None), "int4-fast": (quantize.Int4Linear, quantize.Int8Linear)}


@dataclass(frozen=True, slots=True)
class FastRow:
    """One variant through the fast path."""

    variant: str
    weights: str                  # what the layer matrices are: "float32", "bfloat16", "Int8Linear", ...
    streamed_bytes: int           # one decode step's reads, counted from the fast path's tensors
    decode_tok_per_s: float       # median of repeats
    prefill_s: float              # the prompt's prefill to its first token's logits (median)
    bound_tok_per_s: float        # bandwidth / streamed_bytes
    of_bound: float               # decode_tok_per_s / bound_tok_per_s
    vs_fp32: float                # decode tok/s / fp32's, through the same path
    byte_ratio: float             # fp32 streamed bytes / this variant's: the speed-up bandwidth allows
    of_byte_ratio: float          # vs_fp32 / byte_ratio (1.0 = as fast as its bytes promise)
    compile_s: float              # torch.compile's first call (0.0: not compiled)
    matmul_s: float               # one token's matmuls on their own (`matmul_seconds`)
    matmul_gb_per_s: float        # streamed_bytes / matmul_s: how fast the kernels themselves stream
    other_s: float                # 1 / decode tok/s - matmul_s: attention, norms, RoPE, dispatch
    kernels: object               # the measured kernels.KernelChoice (None: F.linear everywhere)
    same_tokens: bool             # greedy tokens equal to the eager variant's
    first_divergence: int         # first differing token index (the common length when the same)
    tokens: tuple


def streamed_bytes(fast: fastpath.FastLlama) -> int:
    """Bytes one decode step of `fast` reads: every layer matrix (scales and zeros included), the
    norms and the lm_head; one embedding row is not counted (records.streamed_bytes's convention)."""
    held = [*(fast.layers[i][k] for i in range(len(fast.layers)) for k in ("qkv", "o", "gate_up", "down", "ln1", "ln2")),
            *(b for w in fast.layers for b in w["bias"].values() if b is not None), fast.final_norm, fast.lm_head]
    return tensors.tensor_bytes([t for h in held for t in (h.state_dict(keep_vars=True).values()
                                                          if isinstance(h, torch.nn.Module) else [h])])


def engine(model, prompt_ids: list[int], new_tokens: int, variant: str, compile: bool = False,
           kernels: str = "auto", step: str = "auto") -> fastpath.FastLlama:
    """The fast path of `variant` on `model`, sized for the prompt and the new tokens: its kernels (and
    whether the step runs in C: `core.cstep`) are chosen (`.kernels`) before anything decodes, so a lab
    can show them and ask for a prediction first."""
    if variant not in LINEARS:
        raise InvalidArgumentError(f"the fast path runs {', '.join(LINEARS)}; got {variant!r}")
    linear, head = LINEARS[variant]
    return fastpath.FastLlama(model, len(prompt_ids) + new_tokens, linear=linear, lm_head=head, compile=compile,
                              kernels=kernels, step=step)


def measure(model, prompt_ids: list[int], new_tokens: int, variant: str, repeats: int = 3,
            compile: bool = False, kernels: str = "auto", fast: fastpath.FastLlama | None = None,
            step: str = "auto") -> tuple[fastpath.FastDecodeResult, int, float, object]:
    """Median-of-`repeats` fast-path run of `variant` on `model` (fp32 for int8/int4, the variant's
    dtype for fp32/bf16); returns the median run by decode speed, the bytes a step reads and the
    seconds its matmuls take on their own (`matmul_seconds`) and the kernel choice (`kernels`: "auto",
    measured per machine, or "linear": torch's F.linear everywhere; `step`: as `FastLlama`'s).
    `fast`: an `engine` built already."""
    fast = fast or engine(model, prompt_ids, new_tokens, variant, compile, kernels, step)
    ids = torch.tensor([prompt_ids])
    runs = sorted((fastpath.fast_generate(model, ids, new_tokens, fast=fast) for _ in range(repeats)),
                  key=lambda r: r.decode_tok_per_s)
    return runs[len(runs) // 2], streamed_bytes(fast), matmul_seconds(fast), fast.kernels


def compare(base, results, bandwidth_bytes_per_s: float, cfg, variants=tuple(LINEARS),
            repeats: int | None = None, compile: bool = False, progress: bool = True,
            engines: dict | None = None) -> list[FastRow]:
    """Each of `variants` through the fast path, on the prompt `quantcompare.compare` timed (`cfg`),
    its tokens checked against that variant's eager tokens in `results` (QuantResult list).
    `base`: the loaded fp32 model (lab 04's); bf16 is loaded in its own dtype and released.
    `engines`: variant -> an `engine` built already (its kernels shown before it ran)."""
    from tqdm.auto import tqdm

    eager = {r.variant: r for r in results if r.is_available}
    prompt = quality.eval_ids(base.tokenizer, cfg.prompt_tokens)
    if "fp32" not in eager:
        raise InvalidArgumentError("fastcompare.compare needs fp32's eager result: the reference for tokens and speed")
    names = ["fp32"] + [v for v in variants if v != "fp32" and v in eager and v in LINEARS]
    rows, fp32 = [], None
    for v in tqdm(names, desc="fast path", disable=not progress):
        dtype = quantize.VARIANTS[v].load_dtype
        model = base.model if dtype == "fp32" else load(cfg.model, dtype=dtype, device=cfg.device).model
        run, nbytes, mm_s, choice = measure(model, prompt, cfg.new_tokens, v, repeats or cfg.repeats, compile,
                                            fast=(engines or {}).get(v))
        fp32 = fp32 or (run, nbytes)
        bound = roofline.decode_tok_per_s_bound(nbytes, bandwidth_bytes_per_s)
        vs = run.decode_tok_per_s / fp32[0].decode_tok_per_s
        ref = eager[v].tokens
        rows.append(FastRow(
            variant=v, weights=run.weights, streamed_bytes=nbytes, decode_tok_per_s=run.decode_tok_per_s,
            prefill_s=run.prefill_s, bound_tok_per_s=bound, of_bound=run.decode_tok_per_s / bound, vs_fp32=vs,
            byte_ratio=fp32[1] / nbytes, of_byte_ratio=vs / (fp32[1] / nbytes), compile_s=run.compile_s,
            matmul_s=mm_s, matmul_gb_per_s=nbytes / mm_s / 1e9, other_s=1 / run.decode_tok_per_s - mm_s, kernels=choice,
            same_tokens=tuple(run.token_ids) == tuple(ref),
            first_divergence=quality.first_divergence(run.token_ids, ref), tokens=tuple(run.token_ids)))
    return rows


@torch.inference_mode()
def matmul_seconds(fast: fastpath.FastLlama, repeats: int = 5) -> float:
    """Seconds one token's matmuls take on their own: every matrix of `fast` (its layers' fused q/k/v,
    o, gate/up, down and the lm_head) applied in turn to one activation row, median of `repeats`.
    A decode step minus this is what the rest of the step costs (attention, norms, RoPE, dispatch).
    A step in C runs each role's matrices in one C call (`ckernels.Batch`): so are they timed here."""
    d = fast.embed.shape[1]
    x = torch.randn(1, 1, d, dtype=fast.dtype, device=fast.device)
    mats = [(layer[k], k) for layer in fast.layers for k in ("qkv", "o", "gate_up", "down")] + [(fast.lm_head, "head")]
    inputs = {"o": torch.randn(1, 1, fast.num_heads * fast.head_dim, dtype=fast.dtype, device=fast.device),
              "down": torch.randn(1, 1, fast.layers[0]["ffn"], dtype=fast.dtype, device=fast.device)}

    if fast.cstep is not None:
        mats = [(ckernels.Batch([layer[k] for layer in fast.layers]), k) for k in ("qkv", "o", "gate_up", "down")]
        mats.append((ckernels.Batch([fast.lm_head]), "head"))

    def run():
        for w, k in mats:
            w(inputs.get(k, x)) if isinstance(w, ckernels.Batch) else fastpath.matmul(inputs.get(k, x), w)
    with kernels.torch_threads(fast.threads):  # as the step runs them
        return repeat(run, repeats, device=fast.device).median
