"""`memlab specdec`'s record: verify costs per k, acceptance, predicted and measured speed-ups (tiny model)."""

from __future__ import annotations

import json

import pytest

from memlab import cli
from memlab.core.errors import MemlabError
from memlab.memory_wall import specreport


def test_predicted_speedup_is_tokens_over_cost():
    ratio = (1.0, 1.1, 1.2, 1.3, 1.4)
    tokens, cost, pred = specreport.predicted_speedup(1.0, [4, 4, 0], ratio)
    assert tokens == pytest.approx((5 + 5 + 1) / 3)
    assert cost == pytest.approx((1.4 + 1.4 + 1.0) / 3)
    assert pred == pytest.approx(tokens / cost)
    assert specreport.predicted_speedup(0.0, [2, 2], ratio)[2] == pytest.approx(1 / 1.2)  # nothing kept: a loss


def test_measure_on_the_tiny_model(tiny):
    rep = specreport.measure(tiny, "ab ab ab ab ab ab ab ab", k=3, max_new_tokens=12, repeats=1)
    assert rep.same_tokens and rep.new_tokens == len(rep.token_ids) <= 12
    assert rep.costs.ks == tuple(range(9)) and rep.costs.cost_ratio[0] == 1.0
    assert all(t > 0 for t in rep.costs.verify_s)
    assert rep.num_accepted <= rep.num_drafted <= rep.k * rep.num_verifies
    assert rep.tokens_per_verify == pytest.approx((rep.new_tokens - 1) / rep.num_verifies)
    assert rep.predicted_speedup == pytest.approx(rep.expected_tokens_per_verify / rep.mean_verify_cost)
    assert rep.measured_speedup > 0


def test_the_roofline_reads_the_weights_once_for_all_drafts(tiny):
    costs = specreport.verify_costs(tiny.model, [5, 6, 7, 8], max_k=4, repeats=1, peak_flop_per_s=1e11,
                                    bandwidth_bytes_per_s=1e10)
    assert costs.roofline_ratio[0] == 1.0
    assert all(a <= b for a, b in zip(costs.roofline_ratio, costs.roofline_ratio[1:]))  # more tokens, never less work
    assert 1 < costs.roofline_ratio[4] < 5  # more work than one step, far below 5 plain steps: one weight read


def test_an_empty_prompt_is_refused(tiny):
    with pytest.raises(MemlabError, match="the prompt is empty"):
        specreport.measure(tiny, "   ", repeats=1)


def test_specdec_json_on_the_tiny_model(tiny_dir, capsys):
    assert cli.main(["specdec", "--model", str(tiny_dir), "--prompt", "xy xy xy xy xy", "--k", "2", "--tokens", "8",
                     "--repeats", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["same_tokens"] is True and out["k"] == 2
    assert {"acceptance_rate", "predicted_speedup", "measured_speedup", "costs"} <= set(out)
    assert len(out["costs"]["verify_s"]) == len(out["costs"]["ks"])
    from tests.test_readme import listed_fields
    missing = listed_fields()["memlab specdec --json"] - set(out) - set(out["costs"])
    assert not missing, f"`memlab specdec --json` lacks README fields {sorted(missing)}"


def test_head_read_rates_time_each_kernel_through_time_role(tiny, monkeypatch):
    """GB/s per (kernel, rows), each from `kernels.time_role` with that many rows; rows < 1 refused."""
    from memlab.core import kernels
    calls = []

    def fake(role, mats, kernel, threads, repeats, rows=1):
        calls.append((kernel, rows))
        return kernels.KernelTime(role, "float32", (1, 1), 1, kernel, threads, 0.5, 10 ** 9 * rows, 2.0 * rows, rows)
    monkeypatch.setattr(specreport, "time_role", fake)
    rates = specreport.head_read_rates(tiny.model, rows=(1, 3), kernels=("linear", "no-such-kernel"))
    assert rates == {("linear", 1): 2.0, ("linear", 3): 6.0} and calls == [("linear", 1), ("linear", 3)]
    with pytest.raises(MemlabError):
        specreport.head_read_rates(tiny.model, rows=(0,))


def test_specdec_fast_path_json_on_the_tiny_model(tiny_dir, capsys):
    """`--path fast`: the same tokens as greedy, the path and the code that ran each k in the record."""
    assert cli.main(["specdec", "--model", str(tiny_dir), "--prompt", "xy xy xy xy xy", "--k", "2", "--tokens", "8",
                     "--repeats", "1", "--path", "fast", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["same_tokens"] is True and out["path"] == "fast" and out["costs"]["path"] == "fast"
    assert len(out["costs"]["kernels"]) == len(out["costs"]["ks"])
    from memlab.core import ckernels
    if not ckernels.reason():
        assert out["costs"]["kernels"][:2] == ["c-step/gemv", "c-step/gemm"]


def test_time_role_times_several_rows(tiny):
    """`kernels.time_role(rows=...)`: the kernel runs on that many rows; the bytes read stay the matrices'."""
    from memlab.core import kernels
    w = tiny.model.get_output_embeddings().weight
    one, five = (kernels.time_role("head", [w], "linear", 1, repeats=1, rows=n) for n in (1, 5))
    assert (one.rows, five.rows) == (1, 5) and one.bytes == five.bytes == w.numel() * w.element_size()
    with pytest.raises(MemlabError):
        kernels.time_role("head", [w], "linear", 1, repeats=1, rows=0)
