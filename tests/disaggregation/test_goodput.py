"""Goodput as DistServe defines it (a bisection over the rate) and the published SLO presets."""

from dataclasses import replace

import pytest

from memlab.core.errors import InvalidArgumentError
from memlab.disaggregation import simstats, slo
from memlab.disaggregation.profiles import simple_profile
from memlab.disaggregation.simulator import simulate
from memlab.disaggregation.workload import Cluster, Traffic

WORK = Traffic(num_requests=120, rate_per_s=1.0, prompt_tokens=256, prompt_spread=0.5, output_tokens=16,
                output_spread=0.5, seed=2)


def _attainment(cluster, rate, ttft, tpot):
    return simstats.slo_attainment(simulate(simple_profile(), cluster, replace(WORK, rate_per_s=rate)), ttft, tpot)


@pytest.mark.parametrize("mode", ["disagg", "colocated"])
def test_the_search_brackets_the_crossing(mode):
    cl = Cluster(mode, 1, 1)
    g = simstats.goodput_search(simple_profile(), cl, WORK, 0.3, 0.05, target=0.9, iterations=10)
    assert g.is_bracketed and g.rate_per_s > 0
    assert g.goodput_per_worker == pytest.approx(g.rate_per_s / 2)
    # the two sides of the bracket, re-simulated: the found rate meets the target, one resolution above does not
    assert _attainment(cl, g.rate_per_s, 0.3, 0.05) == g.attainment_at_rate >= 0.9
    assert _attainment(cl, g.rate_per_s + g.resolution_per_s, 0.3, 0.05) == g.attainment_above < 0.9
    hi0 = 4 * cl.num_workers / simple_profile().prefill_s([WORK.prompt_tokens])
    assert g.resolution_per_s == pytest.approx(hi0 / 2**10)
    assert g.num_simulations == 11
    assert simstats.goodput_search(simple_profile(), cl, WORK, 0.3, 0.05, iterations=10) == g   # deterministic


def test_goodput_is_monotone_in_the_slo_and_the_target():
    cl = Cluster("disagg", 1, 1)
    tight = simstats.goodput(simple_profile(), cl, WORK, 0.2, 0.03, iterations=10)
    loose = simstats.goodput(simple_profile(), cl, WORK, 0.6, 0.1, iterations=10)
    assert loose >= tight > 0
    strict = simstats.goodput(simple_profile(), cl, WORK, 0.3, 0.05, target=0.99, iterations=10)
    lax = simstats.goodput(simple_profile(), cl, WORK, 0.3, 0.05, target=0.5, iterations=10)
    assert lax >= strict


def test_an_unreachable_slo_gives_zero_and_a_bad_target_is_refused():
    g = simstats.goodput_search(simple_profile(), Cluster(), WORK, 1e-6, 1e-6, iterations=4)
    assert g.rate_per_s == 0.0 and g.attainment_above < 0.9
    with pytest.raises(InvalidArgumentError, match="target"):
        simstats.goodput_search(simple_profile(), Cluster(), WORK, 1.0, 1.0, target=1.5)


def test_an_easy_slo_is_reported_as_not_bracketed():
    few = replace(WORK, num_requests=5)
    g = simstats.goodput_search(simple_profile(), Cluster(), few, 100.0, 100.0, iterations=4)
    assert not g.is_bracketed and g.attainment_at_rate == 1.0


def test_presets_carry_published_sources():
    assert len(slo.PRESETS) >= 6
    for name, s in slo.PRESETS.items():
        assert s.name == name and s.ttft_s > 0 and s.tpot_s > 0 and 0 < s.target <= 1
        assert ("DistServe" in s.source and "Table 1" in s.source) or "mlperf.conf" in s.source
    code = slo.preset("distserve-code-opt-66b")
    assert (code.ttft_s, code.tpot_s, code.target) == (0.125, 0.2, 0.9)
    server = slo.preset("mlperf-llama2-70b-server")
    assert (server.ttft_s, server.tpot_s, server.target) == (2.0, 0.2, 0.99)
    assert slo.preset("mlperf-llama2-70b-interactive").tpot_s < server.tpot_s
    with pytest.raises(InvalidArgumentError, match="known: distserve"):
        slo.preset("chatbot")
    assert slo.custom(1.0, 0.1).source == "set by the user"
    with pytest.raises(InvalidArgumentError):
        slo.SLO("x", 0.0, 0.1, 0.9, "nowhere")
