"""Lab 04 on a CUDA GPU (skipped cleanly elsewhere): memlab's int8/int4 layers packed for CUDA give
the reference quantizer's products, and the comparison runs on the GPU. Run by device_check.sh."""

import math

import pytest
import torch
from torch import nn

from memlab.quantization import fastcompare, quantcompare, quantize, records

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("cls", [quantize.Int8Linear, quantize.Int4Linear])
@pytest.mark.parametrize("shape", [(96, 128), (192, 576)])  # K = 576: SmolLM2's rows, 4 inner k-tiles on CUDA
def test_cuda_layers_match_the_reference_and_the_cpu_kernel(cls, shape):
    torch.manual_seed(0)
    lin = nn.Linear(shape[1], shape[0], bias=False)
    bits, G, sym = (8, None, True) if cls is quantize.Int8Linear else (4, 32, False)
    w_ref = quantize.dequantize_groupwise(*quantize.quantize_groupwise(lin.weight, bits, G, sym))
    x = torch.randn(3, shape[1])
    y_ref = nn.functional.linear(x, w_ref)
    y_gpu = cls(lin.cuda())(x.cuda()).cpu()
    y_cpu = cls(lin.cpu())(x)
    tol = 0.05 * y_ref.abs().max().item()  # activations and scales pass through bf16
    assert torch.allclose(y_gpu, y_ref, rtol=0.02, atol=tol) and torch.allclose(y_gpu, y_cpu, rtol=0.02, atol=tol)


def test_compare_runs_on_cuda(tiny_dir):
    cfg = records.QuantConfig.quick(model=str(tiny_dir), variants=("fp32", "int8", "int4", "dyn-int8"),
                                    prompt_tokens=8, new_tokens=4, ppl_tokens=32, device="cuda")
    by = {r.variant: r for r in quantcompare.compare(cfg, progress=False)}
    fp32, q8, q4 = by["fp32"], by["int8"], by["int4"]
    assert all(r.is_available and r.device == "cuda" for r in (fp32, q8, q4)), [r.reason for r in by.values()]
    assert fp32.streamed_bytes > q8.streamed_bytes > q4.streamed_bytes
    assert all(math.isfinite(r.perplexity) and r.decode_tok_per_s > 0 for r in (fp32, q8, q4))
    assert not by["dyn-int8"].is_available and "CPU" in by["dyn-int8"].reason
    times = quantcompare.matmul_times(out_features=1024, in_features=576, repeats=3, device="cuda")
    assert all(t > 0 for t in times.values())
    from memlab.core.loading import load
    base = load(str(tiny_dir), device="cuda")
    fast = {r.variant: r for r in fastcompare.compare(base, list(by.values()), 1e12, cfg, variants=("fp32", "int4"),
                                                      progress=False)}
    assert fast["fp32"].same_tokens and fast["int4"].streamed_bytes < fast["fp32"].streamed_bytes
