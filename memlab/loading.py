"""Where the weights live while tokens are made: residency strategies (labs 00, 02).

Each strategy loads the same checkpoint and must give the same logits as `resident`:
  1. resident: every weight copied into RAM (or VRAM with device="cuda") before the first token.
     transformers 5 maps safetensors lazily, so a plain `from_pretrained` is *not* resident:
     its tensors point into the file's mmap and fault in on first use. memlab copies them.
More strategies (mmap, paged) register themselves in `STRATEGIES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from . import models, pagecache
from .errors import MemlabError
from .hardware import card, resolve_device
from .measure import PeakMemory, Timer


@dataclass(frozen=True, slots=True)
class LoadResult:
    strategy: str
    model_name: str
    device: str
    dtype: str
    weights_bytes: int          # sum of unique parameter + buffer bytes as loaded
    load_time_s: float
    peak_rss_bytes: int
    peak_vram_bytes: int        # 0 without a GPU
    page_cache_before: float    # fraction of the checkpoint's pages cached before loading
    host: str


@dataclass
class Loaded:
    """A model ready to generate, with the tokenizer and the record of how it was loaded."""

    model: Any
    tokenizer: Any
    result: LoadResult
    checkpoint: Path
    config: Any
    name: str
    device: torch.device
    dtype: str


def weights_bytes(model: torch.nn.Module) -> int:
    """Bytes of unique parameters and buffers (a tied embedding counts once)."""
    seen, total = set(), 0
    for t in list(model.parameters()) + list(model.buffers()):
        if id(t) not in seen and t.device.type != "meta":
            seen.add(id(t))
            total += t.numel() * t.element_size()
    return total


def load_resident(folder: Path, device: torch.device, dtype: str) -> torch.nn.Module:
    """Load, then copy every tensor into anonymous RAM (clone) or VRAM (.to(device))."""
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=models.DTYPES[dtype], use_safetensors=True)
    for t in list(model.parameters()) + list(model.buffers()):
        # clone: detach the tensor from the file mapping so no page is read from disk later
        t.data = t.data.to(device, copy=True) if device.type != "cpu" else t.data.clone()
    return model.eval()


STRATEGIES: dict[str, Callable[[Path, torch.device, str], torch.nn.Module]] = {
    "resident": load_resident,
}


def checkpoint_file(folder: Path) -> Path | None:
    """The single safetensors file of a checkpoint folder (None if sharded or absent)."""
    files = sorted(Path(folder).glob("*.safetensors"))
    return files[0] if len(files) == 1 else None


def load(model: str = models.DEFAULT_MODEL, strategy: str = "resident", device: str = "cpu",
         dtype: str = "fp32", cache_dir: str | Path | None = None) -> Loaded:
    """Prepare `model` (convert once), load it with `strategy` on `device`, and time it."""
    from transformers import AutoTokenizer
    if strategy not in STRATEGIES:
        raise MemlabError(f"Unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}.")
    dev = resolve_device(device)
    folder = models.prepare(model, dtype=dtype, cache_dir=cache_dir)
    models.check_checkpoint(folder)
    file = checkpoint_file(folder)
    cached_before = pagecache.resident_fraction(file) if file else float("nan")
    with PeakMemory(dev) as pm, Timer(dev) as t:
        net = STRATEGIES[strategy](folder, dev, dtype)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    result = LoadResult(strategy=strategy, model_name=model, device=str(dev), dtype=dtype,
                        weights_bytes=weights_bytes(net), load_time_s=t.elapsed_s,
                        peak_rss_bytes=pm.peak_rss_bytes, peak_vram_bytes=pm.peak_vram_bytes,
                        page_cache_before=cached_before, host=card().host)
    return Loaded(model=net, tokenizer=tokenizer, result=result, checkpoint=folder,
                  config=net.config, name=model, device=dev, dtype=dtype)
