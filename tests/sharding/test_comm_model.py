"""The alpha-beta model: formulas by hand, and a real two-process probe."""
import math


from memlab.sharding import comm_model
from memlab.core import models


def test_predict_decode_formulas():
    cfg = models.tiny_config(num_hidden_layers=30, hidden_size=576)
    alpha, beta, mem, W = 10e-6, 450e9, 3350e9, 538_000_000
    tp, pp = comm_model.predict_decode(cfg, 8, alpha, beta, mem, W)
    msg = 576 * 4
    assert tp.mode == "tensor" and pp.mode == "pipeline"
    assert math.isclose(tp.compute_s, W / (8 * mem))
    assert math.isclose(tp.comm_s, 61 * (alpha + 2 * 7 / 8 * msg / beta) + alpha)  # + the all-gather of the argmax
    assert math.isclose(pp.compute_s, W / mem)
    assert math.isclose(pp.comm_s, 8 * alpha + 7 * msg / beta)
    one = comm_model.predict_decode(cfg, 1, alpha, beta, mem, W)
    assert all(p.comm_s == 0 and p.comm_share == 0 for p in one)


def test_probe_link_two_processes():
    p = comm_model.probe_link(sizes_bytes=(4, 65536, 1 << 20), repeats=3, timeout_s=240)
    assert len(p.one_way_s) == 3 and all(t > 0 for t in p.one_way_s)
    assert p.alpha_s >= 0 and p.beta_bytes_per_s > 0 and p.allreduce_s > 0
