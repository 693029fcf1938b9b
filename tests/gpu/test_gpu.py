"""On a CUDA GPU (skipped cleanly elsewhere): DEVICE="auto" finds it, the GPU ceilings and roofline,
VRAM-resident loading that keeps the CPU's tokens, lab 02's RAM -> VRAM rung, lab 03's GPU column,
an NCCL rank, and lab 07's split with its KV cache through host memory. Run by
tests/gpu/device_check.sh (`pytest -m gpu`)."""

import pytest
import torch

import memlab as ml
from memlab.core import ceilings, ceilings_gpu, hardware, pagecache
from tests.conftest import requires_bundled

pytestmark = pytest.mark.gpu


def test_auto_is_cuda():
    assert hardware.resolve_device("auto").type == "cuda"
    assert hardware.card().gpu_vram_bytes > 0


def test_gpu_ceilings_are_measured_and_draw_a_roofline():
    import matplotlib
    matplotlib.use("Agg")
    from memlab.memory_wall import plots
    c = ceilings.measure_now(quick=True)
    assert c.device != "cpu" and c.vram_gb_per_s > 50          # GB/s: any CUDA GPU's memory beats this
    assert min(c.gpu_fp32_flop_per_s, c.gpu_bf16_flop_per_s, c.gpu_fp16_flop_per_s) > 1e11
    assert c.gpu_bf16_flop_per_s > c.gpu_fp32_flop_per_s      # tensor cores
    assert min(c.h2d_pinned_gb_per_s, c.h2d_pageable_gb_per_s, c.d2h_pinned_gb_per_s, c.d2h_pageable_gb_per_s) > 0.5
    g = ceilings_gpu.on_device(c, "cuda")
    assert g.bandwidth_bytes_per_s == c.vram_gb_per_s * 1e9 and g.flop_per_s("bf16") == c.gpu_bf16_flop_per_s
    assert ceilings_gpu.on_device(c, "auto") == g
    assert len(ceilings_gpu.rows(c)) == 8
    assert "ridge" in plots.roofline(g, [], None).axes[0].get_title()


def test_pinned_copies_are_not_slower_than_pageable():
    out = ceilings_gpu.host_device_copies(64 * 2**20, repeats=3)
    assert out["h2d_pinned"] > 0.5 * out["h2d_pageable"] and out["d2h_pinned"] > 0.5 * out["d2h_pageable"]


def test_resident_in_vram_gives_the_cpu_tokens(tiny_dir):
    cpu = ml.load(str(tiny_dir))
    gpu = ml.load(str(tiny_dir), device="auto")
    assert gpu.device.type == "cuda" and all(p.device.type == "cuda" for p in gpu.model.parameters())
    a = ml.generate(cpu, "Hello there", max_new_tokens=8, stop_at_eos=False)
    b = ml.generate(gpu, "Hello there", max_new_tokens=8, stop_at_eos=False)
    assert a.token_ids == b.token_ids and b.device.startswith("cuda") and b.peak_vram_bytes > 0


@pytest.mark.parametrize("strategy", ["mmap", "paged", "paged-prefetch"])
def test_every_strategy_runs_on_cuda(tiny_dir, strategy):
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    with torch.inference_mode():
        ref = ml.load(str(tiny_dir), device="cuda").model(ids.cuda()).logits
        got = ml.load(str(tiny_dir), strategy, device="cuda").model(ids.cuda()).logits
    assert (got - ref).abs().max().item() < 1e-4


@requires_bundled
def test_the_real_model_answers_paris_from_vram():
    r = ml.generate(ml.load("smollm2-135m", device="cuda"), "What is the capital of France?", max_new_tokens=16)
    assert "Paris" in r.text


def test_lab02_ladder_has_the_pcie_rung(tmp_path):
    from memlab.ram_vs_disk import ladder
    f = tmp_path / "x.bin"
    f.write_bytes(b"\0" * 2**22)
    warm = pagecache.measure_read_rate(f, cold=False)
    lad = ladder.ladder(warm, warm, device="auto", copy_bytes=16 * 2**20, repeats=2)
    assert lad.absent == "" and lad.rung("RAM -> VRAM, pinned").bytes_per_s > 0
    assert lad.rung("RAM -> VRAM, pageable").bytes_per_s > 0


def test_lab03_gpu_column(tiny_dir):
    from memlab.ttft import gpu
    s = gpu.sweep(str(tiny_dir), (4, 16), device="auto", repeats=1)
    assert s.device.startswith("cuda") and len(s.points) == 2 and s.absent == ""
    assert list(s.first_token_ids) == gpu.first_tokens(ml.load(str(tiny_dir)), (4, 16))


def test_one_nccl_rank_gives_the_one_process_tokens(tiny_dir):
    from memlab.sharding import parallel
    cfg = parallel.ParallelConfig(model=str(tiny_dir), world_size=1, backend="nccl", max_new_tokens=4)
    assert parallel.run(cfg, "pipeline").tokens_match


def test_lab07_split_on_cuda_sends_the_cache_through_host_memory(tiny_dir):
    from memlab.disaggregation import disagg
    (r,) = disagg.run_split(str(tiny_dir), prompt_tokens=(64,), max_new_tokens=4, timeout_s=300, device="cuda")
    assert r.tokens_match and r.kv_bytes == r.kv_bytes_predicted and r.device == "cuda"
    assert r.d2h_s > 0 and r.h2d_s > 0 and r.transfer_s >= r.d2h_s + r.h2d_s
