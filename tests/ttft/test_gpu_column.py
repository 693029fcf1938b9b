"""Lab 03's GPU column, as far as a CPU can test it: absent with its reason, joined beside the CPU's."""

import torch

from memlab.ttft import gpu, latency


def _pt(T, ttft):
    return latency.TTFTPoint(T, 1, 0.0, ttft * 0.9, ttft, ttft, ttft, float("nan"), 1)


def test_on_the_cpu_the_column_is_absent_and_says_why():
    s = gpu.sweep("smollm2-135m", (16,), device="cpu")
    assert s.points == () and s.first_token_ids == () and "absent" in s.absent
    rows = gpu.beside([_pt(16, 0.1), _pt(64, 0.2)], s)
    assert [set(r) for r in rows] == [{"prompt_tokens", "cpu_ttft_s", "cpu_prefill_s"}] * 2
    if not torch.cuda.is_available() and not gpu.hardware.has_mps():
        assert gpu.sweep("smollm2-135m", (16,), device="auto").absent == gpu.GPU_ABSENT


def test_a_gpu_sweep_sits_beside_the_cpu_one():
    s = gpu.GPUSweep("cuda:0", (_pt(16, 0.01), _pt(64, 0.02)), (5, 7))
    rows = gpu.beside([_pt(16, 0.1), _pt(64, 0.3)], s)
    assert rows[1]["cuda:0_ttft_s"] == 0.02 and abs(rows[1]["ttft_cpu_over_gpu"] - 15) < 1e-9


def test_first_tokens_match_the_sweep_prompts(tiny):
    toks = gpu.first_tokens(tiny, (4, 8))
    assert len(toks) == 2 and all(isinstance(t, int) for t in toks)
