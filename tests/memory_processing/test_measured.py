"""lab 08: the offload search from step times measured on real devices, the PCIe charges, break-even."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from memlab.core.errors import InvalidArgumentError
from memlab.memory_processing import mempipe, offload as ob
from memlab.memory_processing import measured as me

SHAPE = ob.Shape("toy", num_layers=4, num_q_heads=4, num_kv_heads=2, head_dim=8, weights_bytes=0.0, elem_bytes=4,
                 page_tokens=16, budget_tokens=64)


def steps(home: dict, other: dict | None = None, rest_s: float = 1.0, n: int = 1024) -> me.MeasuredSteps:
    times = {"a": home} | ({"b": other} if other else {})
    return me.MeasuredSteps(SHAPE, n, "a", times, rest_s)


def uniform(t: float) -> dict:
    return dict.fromkeys(ob.STEPS, t)


def test_picks_the_faster_device_per_step():
    # seconds-long steps: the PCIe charges (microseconds) cannot change the choice
    for fast in ob.STEPS:
        other = uniform(2.0) | {fast: 0.1}
        r = ob.search(steps(uniform(1.0), other))
        assert r.best.devices == tuple("b" if s == fast else "a" for s in ob.STEPS)
        assert r.source == "measured" and r.best.source == "measured"
        assert r.best.step_s[ob.STEPS.index(fast)] == 0.1
    r = ob.search(steps(uniform(1.0), {"prep": 2.0, "comp": 0.1, "ret": 0.1, "apply": 2.0}))
    assert r.best.devices == ("a", "b", "b", "a") and r.speedup > 1


def test_equal_times_move_nothing():
    r = ob.search(steps(uniform(0.01), uniform(0.01)))
    assert r.best.devices == ("a",) * 4 and r.best.transfer_s == 0 and r.speedup == 1.0
    assert r.gpu_only.devices == ("a",) * 4


def test_pcie_is_charged_on_each_device_change():
    s = steps(uniform(0.01), uniform(0.01))
    costs, L, vec = ob.step_costs(SHAPE, 1024), SHAPE.num_layers, SHAPE.head_dim * SHAPE.elem_bytes
    query = SHAPE.num_q_heads * vec
    a = ob.evaluate(("a", "b", "a", "a"), s)
    # prep's output to b, the query to b (comp reads it), comp's scores back to a
    expected = L * (ob.pcie_s(costs[0].out_bytes, False) + ob.pcie_s(query, False) + ob.pcie_s(costs[1].out_bytes, True))
    assert a.transfer_s == pytest.approx(expected, rel=1e-12)
    assert a.total_s == pytest.approx(sum(a.step_s) + a.transfer_s + a.rest_s, rel=1e-12)
    two = ob.evaluate(("a", "b", "a", "b"), s)  # a third and a fourth change, and apply's inputs
    apply_in = query + 2 * SHAPE.num_kv_heads * vec
    extra = L * (ob.pcie_s(costs[2].out_bytes, False) + ob.pcie_s(apply_in, False) + ob.pcie_s(costs[3].out_bytes, True))
    assert two.transfer_s == pytest.approx(expected + extra, rel=1e-12)
    assert ob.evaluate(("a",) * 4, s).transfer_s == 0.0
    slow_link = ob.evaluate(("a", "b", "a", "a"), replace(s, bandwidth_scale=0.5))
    assert slow_link.transfer_s > a.transfer_s


def test_roofline_transfers_unchanged_by_the_refactor():
    a = ob.evaluate(("gpu", "fpga", "fpga", "gpu"), ob.LLAMA31_8B, 4096)
    assert a.source == "roofline"
    assert a.transfer_s == ob.transfer_s(a.devices, ob.LLAMA31_8B, 4096) > 0
    assert ob.search(ob.LLAMA31_8B, 4096).source == "roofline"
    with pytest.raises(InvalidArgumentError):
        ob.evaluate(("gpu",) * 4, ob.LLAMA31_8B)


def test_break_even_speedup_is_where_offloading_ties():
    s = steps(uniform(1e-3) | {"comp": 2e-3, "ret": 1e-3}, rest_s=0.05)
    r_star = me.break_even_speedup(s)
    work = 3e-3
    pcie = ob.transfer_s(("a", "x", "x", "a"), SHAPE, 1024, home="a")
    assert r_star == pytest.approx(work / (work - pcie)) and r_star > 1
    from memlab.memory_processing import solutions
    assert solutions.break_even_speedup(work, pcie) == pytest.approx(r_star)
    tie = ob.evaluate(("a", "fpga", "fpga", "a"), me.with_fpga(s, r_star))
    assert tie.total_s == pytest.approx(ob.evaluate(("a",) * 4, s).total_s, rel=1e-9)
    assert ob.search(me.with_fpga(s, 1.01 * r_star)).best.devices == ("a", "fpga", "fpga", "a")
    assert ob.search(me.with_fpga(s, 0.99 * r_star)).best.devices == ("a",) * 4
    assert me.break_even_speedup(steps(uniform(1e-9))) == math.inf  # the transfers cost more than the work
    grid = me.speedup_map(s, [0.5 * r_star, 2 * r_star], [1.0])
    assert grid[0][0] == 1.0 and grid[0][1] > 1.0


def test_spec_speedups_and_energy():
    sram, hbm = me.spec_speedups(), me.spec_speedups(memory="hbm")
    g, f = ob.SPECS["gpu"], ob.SPECS["fpga"]
    assert sram["comp"] == pytest.approx(f.sram_bytes_per_s / (g.mem_bytes_per_s * g.irregular_efficiency))
    assert hbm["ret"] < 1 < sram["ret"] and sram["apply"] == hbm["apply"] < 1
    s = steps(uniform(0.01), rest_s=0.1)
    r, energy = me.at_ratio(s, 1.0)  # an FPGA no faster on comp/ret: nothing moves, no energy saved
    assert r.best.devices == ("a",) * 4 and energy == 1.0
    e = me.energy_j(r.gpu_only, "a")
    assert e == pytest.approx(me.POWER_W["gpu"][0] * r.gpu_only.total_s)
    r, energy = me.at_ratio(steps(uniform(0.01) | {"comp": 1.0}), 100.0)
    assert r.best.devices[1] == "fpga" and 1 < energy < r.speedup  # the FPGA's draw is added


def test_bad_input_is_one_line_errors():
    with pytest.raises(InvalidArgumentError):
        steps({"prep": 1.0})
    with pytest.raises(InvalidArgumentError):
        steps(uniform(1.0)).with_device("b", {"comp": 2.0})
    with pytest.raises(InvalidArgumentError):
        ob.evaluate(("a", "z", "a", "a"), steps(uniform(1.0)))
    with pytest.raises(InvalidArgumentError):
        me.spec_speedups(memory="dram")


def test_batched_is_an_extrapolation_of_every_step():
    s = steps(uniform(0.01), uniform(0.02)).batched(4)
    assert s.times["b"]["comp"] == pytest.approx(0.08) and s.rest_s == 1.0 and s.shape.batch_size == 4


def test_measure_times_the_mempipe_steps(tiny):
    cfg = mempipe.PipeConfig(page_tokens=16, budget_tokens=32, repeats=1)
    out = me.measure(tiny, (80, 40), cfg, devices=("cpu",))
    assert [m.context_tokens for m in out] == [40, 80] and out[0].home == "cpu"
    assert all(m.times["cpu"][s] >= 0 for m in out for s in ob.STEPS) and out[0].rest_s > 0
    assert out[0].shape.num_layers == tiny.config.num_hidden_layers and out[0].shape.elem_bytes == 4
    profiles = mempipe.profile_contexts(tiny, (40, 80), cfg)
    again = me.measure(tiny, (40, 80), cfg, devices=("cpu",), reuse={"cpu": profiles})
    assert again[1].times["cpu"]["comp"] == profiles[1].comp_s and again[1].rest_s == profiles[1].other_s
    with pytest.raises(InvalidArgumentError):
        me.measure(tiny, (40, 96), cfg, devices=("cpu",), reuse={"cpu": profiles})
    assert ob.search(me.with_fpga(out[1], 10.0)).source == "measured"


@pytest.mark.gpu
def test_measure_on_cuda(tiny):
    cfg = mempipe.PipeConfig(page_tokens=16, budget_tokens=32, repeats=1)
    out = me.measure(tiny, (40,), cfg, devices=("cpu", "cuda"))
    assert out[0].home == "cuda" and set(out[0].devices) == {"cpu", "cuda"}
    assert next(tiny.model.parameters()).device.type == "cpu"  # moved back
    r = ob.search(out[0])
    assert r.gpu_only.devices == ("cuda",) * 4 and r.source == "measured"
    assert torch.cuda.is_available()


def test_plot_measured_offload():
    import matplotlib
    matplotlib.use("Agg")
    from memlab.memory_processing import plots
    s = steps(uniform(1e-3), rest_s=0.01)
    grid = me.speedup_map(s, [1.0, 10.0], [0.5, 1.0])
    be = [me.break_even_speedup(replace(s, bandwidth_scale=b)) for b in (0.5, 1.0)]
    fig = plots.measured_offload([1.0, 10.0], [0.5, 1.0], grid, be, [(512, 1.1, 1.0), (1024, 1.2, 1.1)],
                                 [(1, 1.2, 1.1), (4, 1.5, 1.3)], 21.7)
    assert len(fig.axes) >= 3


def test_cli_offload_measured_json(tiny_dir, capsys):
    import json
    from memlab.cli import main
    assert main(["mempipe", "--model", str(tiny_dir), "--context", "40", "--repeats", "1", "--offload", "--measured",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["source"] == "measured" and out["home"] == "cpu" and len(out["devices"]) == 4
    assert out["speedup"] >= 1 and out["break_even_speedup"] >= 1 and out["origin"]["cpu"] == "measured"
    assert main(["mempipe", "--offload", "--context", "4096", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["source"] == "roofline" and out["devices"] == ["gpu"] * 4
