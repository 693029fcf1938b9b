"""The real prefill/decode split: same tokens as one process, KV bytes as the formula says."""

import pytest
import torch

from memlab.disaggregation import disagg, kv_transfer, serve, workload
from memlab.core import errors, footprint, generation, shaped

SHAPE_REASON = shaped.why_cannot_shape()


def test_pack_unpack_and_cache_roundtrip(tiny):
    ids = torch.tensor([list(range(5, 25))])
    cache = generation.new_cache(tiny.model)
    with torch.inference_mode():
        generation.prefill(tiny.model, ids, cache)
    tensors = kv_transfer.kv_tensors(cache)
    assert sum(t.nbytes for t in tensors) == footprint.kv_cache_bytes(tiny.config, 20)
    shapes = [tuple(t.shape) for t in tensors]
    back = kv_transfer.unpack(kv_transfer.pack(tensors), shapes)
    assert all(torch.equal(a, b) for a, b in zip(tensors, back))
    rebuilt = kv_transfer.cache_from(back, tiny.model)
    assert rebuilt.get_seq_length() == 20
    with torch.inference_mode():   # decoding from the rebuilt cache == decoding from the original
        a = generation.decode_step(tiny.model, torch.tensor([[7]]), cache)
        b = generation.decode_step(tiny.model, torch.tensor([[7]]), rebuilt)
    assert torch.equal(a, b)


@pytest.fixture(scope="module")
def split(tiny_dir):
    return disagg.run_split(str(tiny_dir), prompt_tokens=(8, 40), max_new_tokens=6, timeout_s=180)


def test_split_tokens_equal_single_process(split):
    assert [r.prompt_tokens for r in split] == [8, 40]
    for r in split:
        assert r.tokens_match
        assert len(r.token_ids) == 6
        assert (r.device, r.d2h_s, r.h2d_s) == ("cpu", 0.0, 0.0)   # the default device: no copies to time


def test_split_refuses_mps_before_starting_processes(tiny_dir, monkeypatch):
    from memlab.core import launch
    from memlab.core.errors import InvalidArgumentError

    def no_workers(*args, **kwargs):
        raise AssertionError("run_workers was called")

    monkeypatch.setattr(launch, "run_workers", no_workers)
    with pytest.raises(InvalidArgumentError, match="cpu or cuda"):
        disagg.run_split(str(tiny_dir), prompt_tokens=8, max_new_tokens=2, device="mps")


def test_split_kv_bytes_and_timings(split, tiny):
    for r in split:
        assert r.kv_bytes == r.kv_bytes_predicted == footprint.kv_cache_bytes(tiny.config, r.prompt_tokens)
        assert r.transfer_s > 0 and r.shm_transfer_s > 0 and r.file_transfer_s > 0
        assert r.transfer_bytes_per_s == pytest.approx(r.kv_bytes / r.transfer_s)
        assert r.split_tpot_s >= r.split_decode_tpot_s


def test_serve_trace_invariants(tiny_dir):
    trace = workload.Traffic(num_requests=4, rate_per_s=50, prompt_tokens=20, prompt_spread=0.5,
                               output_tokens=5, seed=1).requests()
    recs = serve.serve_trace(str(tiny_dir), trace, timeout_s=180)
    assert [r.request_id for r in recs] == [0, 1, 2, 3]
    for spec, r in zip(trace, recs):
        assert r.prompt_tokens == spec.prompt_tokens
        assert r.prefill_started_at_s >= r.arrived_at_s - 1e-3      # real sleeps may wake a bit early
        assert r.ttft_s >= r.prefill_s
        assert r.decode_started_at_s >= r.transfer_ended_at_s
        assert r.finished_at_s > r.decode_started_at_s
        assert r.kv_bytes > 0


@pytest.mark.slow
def test_real_model_split_matches(real):
    (r,) = disagg.run_split("smollm2-135m", prompt_tokens=64, max_new_tokens=8, timeout_s=600)
    assert r.tokens_match
    assert r.kv_bytes == r.kv_bytes_predicted == 64 * 46_080


def test_shaped_split_is_refused_in_one_line_before_starting_processes(tiny_dir, monkeypatch):
    monkeypatch.setattr(shaped, "why_cannot_shape", lambda: "shaping a link needs root")
    with pytest.raises(errors.CannotShapeError, match="cannot shape a 1 Gbit/s link here: shaping a link needs root"):
        disagg.run_split(str(tiny_dir), prompt_tokens=8, max_new_tokens=2, link_gbps=1.0)


@pytest.mark.slow
@pytest.mark.skipif(SHAPE_REASON is not None, reason=f"cannot shape a link here: {SHAPE_REASON}")
def test_real_model_split_over_shaped_links(real):
    """The real model's 64-token cache (2.9 MB) at 0.2 and 1 Gbit/s: the same tokens, the rate within 20 %."""
    import os
    runs = disagg.run_split("smollm2-135m", prompt_tokens=64, max_new_tokens=6, timeout_s=600, link_gbps=(0.2, 1.0))
    assert [r.link_gbps for r in runs] == [0.2, 1.0]
    for r in runs:
        assert r.tokens_match
        assert r.link_measured_gbps == pytest.approx(r.link_gbps, rel=0.2), r
        assert r.transfer_median_s >= r.wire_median_s * 0.8  # the transfer carries the wire, and more
    assert runs[0].wire_median_s > 3 * runs[1].wire_median_s  # five times slower asked, and it is
    assert not [n for n in shaped.namespaces() if n.startswith(f"{shaped.PREFIX}{os.getpid()}-")]
