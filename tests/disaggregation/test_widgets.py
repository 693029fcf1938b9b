"""The disaggregation explorer builds offline and redraws quickly."""

import matplotlib
import pytest

matplotlib.use("Agg")

from memlab.disaggregation import widgets# noqa: E402
from memlab.disaggregation.profiles import simple_profile  # noqa: E402


def test_explore_both_modes():
    res = widgets.explore(simple_profile(), 5.0, 1, 1, 100.0, 256, num_requests=100)
    assert set(res) == {"disagg", "colocated"}
    assert all(len(recs) == 100 for _, recs in res.values())
    fig = widgets.draw(res, 2.0, 0.2)
    assert len(fig.axes) == 2


def test_explorer_widget_builds():
    pytest.importorskip("ipywidgets")
    box = widgets.disagg_explorer(simple_profile(), num_requests=50)
    assert len(box.children) == 4
