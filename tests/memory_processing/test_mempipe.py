"""lab 08: the four steps on the tiny model, the synthetic kernels, the offload model."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import pytest
import torch

from memlab.core.errors import InvalidArgumentError
from memlab.memory_processing import mempipe as mp
from memlab.memory_processing import offload as ob
from memlab.memory_processing import scoring


def test_full_budget_sparse_step_equals_dense(tiny):
    # 37 tokens: a partial last page; budget covers every page -> exactly dense attention
    p = mp.profile_decode(tiny, 37, mp.PipeConfig(page_tokens=16, budget_tokens=64, repeats=1))
    assert p.num_pages == 3 and p.selected_pages == 3
    assert p.top1_matches_dense and p.kl_to_dense < 1e-5


def test_small_budget_differs_and_shares_sum_to_one(tiny):
    p = mp.profile_decode(tiny, 96, mp.PipeConfig(page_tokens=16, budget_tokens=16, repeats=2))
    assert p.selected_pages == 1 and p.num_pages == 6
    assert p.kl_to_dense > 1e-7  # one page of six: not the dense answer
    assert math.isclose(sum(p.shares().values()), 1.0)
    assert 0 < p.memory_share < 1


def test_build_index_bounds_every_key():
    keys = torch.randn(2, 37, 8)
    kmin, kmax = mp.build_index(keys, 16)
    assert kmin.shape == (2, 3, 8)
    for p in range(3):
        page = keys[:, p * 16:(p + 1) * 16]
        assert torch.equal(kmin[:, p], page.amin(1)) and torch.equal(kmax[:, p], page.amax(1))


def test_page_score_is_an_upper_bound_on_q_dot_k():
    keys, q = torch.randn(1, 64, 8), torch.randn(1, 3, 8)
    kmin, kmax = mp.build_index(keys, 16)
    scores = mp.page_scores(q, kmin, kmax)  # (1, 4)
    exact = torch.einsum("hgd,htd->hgt", q, keys).view(1, 3, 4, 16).amax(-1).amax(1)
    assert torch.all(scores >= exact - 1e-5)


def test_index_kernels_account_bytes():
    pts = scoring.kernels(num_keys=4096, dim=16, top_k=32, repeats=1)
    assert [p.name.split(":")[0] for p in pts] == ["comp", "comp", "comp", "ret"]
    assert pts[0].flops == 2 * 4096 * 16 and pts[0].intensity_flop_per_byte < 1
    assert all(p.time_s > 0 for p in pts)
    assert scoring.kernels(num_keys=1024, dim=16, top_k=8, repeats=1, kinds=("page",))[0].name.startswith("comp: page")
    with pytest.raises(InvalidArgumentError, match="unknown kernel kinds"):
        scoring.kernels(num_keys=1024, dim=16, repeats=1, kinds=("flash",))


def test_page_scores_as_two_gemvs_equal_the_elementwise_bound():
    # sum_d max(q_d min_pd, q_d max_pd) = max_p . max(q, 0) + min_p . min(q, 0), for every sign of q
    keys, q = torch.randn(2, 96, 8), torch.randn(2, 3, 8)
    kmin, kmax = mp.build_index(keys, 16)
    elementwise = torch.maximum(torch.einsum("hgd,hpd->hgpd", q, kmin), torch.einsum("hgd,hpd->hgpd", q, kmax)).sum(-1).amax(1)
    assert torch.allclose(mp.page_scores(q, kmin, kmax), elementwise, atol=1e-5)


def test_pcie_model_is_continuous():
    for to_gpu in (True, False):
        xs = [1e3 * kb for kb in range(1, 100_000)]  # 1 KB steps up to 100 MB
        ys = [ob.pcie_bytes_per_s(x, to_gpu) for x in xs]
        assert all(abs(b - a) < 0.1e9 for a, b in zip(ys, ys[1:]))


def test_search_is_the_brute_force_optimum():
    shape = replace(ob.LLAMA31_8B, batch_size=2)
    for n in (4096, 65536):
        r = ob.search(shape, n)
        every = [ob.evaluate(d, shape, n) for d in itertools.product(("gpu", "fpga"), repeat=4)]
        assert r.best.total_s == min(a.total_s for a in every)
        assert r.gpu_only.devices == ("gpu",) * 4 and r.gpu_only.transfer_s == 0


def test_search_moves_work_when_the_fpga_is_much_faster():
    fast = dict(ob.SPECS, fpga=replace(ob.SPECS["fpga"], mem_bytes_per_s=1e15, peak_flop_per_s=1e18,
                                       sram_bytes=0.0, sram_bytes_per_s=0.0))
    r = ob.search(ob.LLAMA31_8B, 65536, fast)
    assert r.best.devices[1:3] == ("fpga", "fpga") and r.speedup > 1


def test_state_that_does_not_fit_is_infeasible():
    a = ob.evaluate(("gpu",) * 4, ob.LLAMA31_8B, 1_048_576)  # 128 GiB of KV + 16 GB of weights
    assert not a.is_feasible and a.total_s == math.inf


@pytest.mark.slow
def test_real_model_profile(real):
    p = mp.profile_decode(real, 512, mp.PipeConfig(repeats=1))
    assert p.num_pages == 32 and p.step_s > 0


def test_plots_draw_from_records(tiny):
    import matplotlib
    matplotlib.use("Agg")
    from memlab.memory_processing import plots
    profiles = mp.profile_contexts(tiny, (32, 64), mp.PipeConfig(repeats=1))
    assert plots.step_shares(profiles).axes
    pts = scoring.kernels(num_keys=1024, dim=16, top_k=8, repeats=1)
    assert plots.kernel_roofline(pts, 1e10, 1e11).axes
    assert plots.offload_model(ob.sweep(contexts=(4096,))).axes


def test_cli_mempipe_json(tiny_dir, capsys):
    import json
    from memlab.cli import main
    assert main(["mempipe", "--model", str(tiny_dir), "--context", "40", "--repeats", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["context_tokens"] == 40 and 0 < out["memory_share"] < 1
