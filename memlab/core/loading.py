"""Where the weights live while tokens are made: residency strategies (labs 00, 02).

Each strategy loads the same checkpoint and must give the same logits as `resident`:
  1. resident: every weight copied into RAM (or VRAM with device="cuda") before the first token.
     transformers 5 maps safetensors lazily, so a plain `from_pretrained` is *not* resident:
     its tensors point into the file's mmap and fault in on first use. memlab copies them.
  2. mmap: a meta-device skeleton whose tensors are views into a private mmap of the file
     (`assign=True`, as gpt-fast does); each page is read from disk on first touch.
  3. paged: only embedding, norm and head stay in memory; each decoder layer is read from disk
     when the forward pass reaches it and dropped after (memlab.core.paging):
       paged            read layer i when it is needed (disk time adds to compute time)
       paged-prefetch   read layer i+1 on a thread while layer i computes (they overlap)
       paged-accelerate accelerate's disk offload (`device_map` "disk"), for comparison
     bigger_than_ram=True also evicts each layer's pages after use, so every token reads every
     layer from disk, as when the model does not fit the page cache.
Before loading, `memlab.core.guard` predicts the footprint and refuses what will not fit (force=True
overrides); cold=True evicts the checkpoint from the page cache first and records what was left.
Where the platform cannot evict (no posix_fadvise: macOS), cold=True warns and loads warm, and
bigger_than_ram is refused with a message.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from memlab.core import checkpoint, dtypes, guard, limits, models, pagecache, paging, tensors
from memlab.core.errors import MemlabError, UnsupportedArchitectureError
from memlab.core.hardware import card, resolve_device
from memlab.core.measure import PeakMemory, Timer, release_freed_memory

DEFAULT_CONTEXT_TOKENS = 2048  # what the memory guard budgets the KV cache for, unless told


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
    # cold runs and paging
    is_cold: bool = False       # eviction was asked for (page_cache_before says if it worked)
    checkpoint_bytes: int = 0   # size of the safetensors file on disk
    bigger_than_ram: bool = False
    rss_before_bytes: int = 0   # the process's RSS when loading began (imports, earlier models):
                                # peak_rss_bytes - rss_before_bytes is what this load added


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

    def paging_stats(self) -> "paging.PagingStats | None":
        """Layer reads, bytes and wait time of a `paged`/`paged-prefetch` model (None otherwise)."""
        streamer = getattr(self.model, "_memlab_streamer", None)
        return streamer.stats() if streamer is not None else None

    def release(self) -> None:
        """Free the model now: close a paged load's layer reads and file, drop the weights (this object's
        reference: an engine built over them keeps its own), hand the freed heap or VRAM back. The
        record (`result`) stays; the model is gone (`model` is None)."""
        streamer = getattr(self.model, "_memlab_streamer", None)
        if streamer is not None:
            streamer.close()
        self.model = None
        release_freed_memory()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


def _buffers_to(model: torch.nn.Module, device: torch.device) -> None:
    """Move a skeleton's real buffers (rotary inv_freq, built on the CPU from the config) to `device`."""
    for module in model.modules():
        for k, b in module._buffers.items():
            if b is not None and not b.is_meta and b.device != device:
                module._buffers[k] = b.to(device)


def load_resident(folder: Path, device: torch.device, dtype: str) -> torch.nn.Module:
    """Every tensor in anonymous RAM (or VRAM) before the first token.

    A single-file checkpoint is read with large sequential `pread`s straight into anonymous memory
    and assigned to a meta-device skeleton: one pass over the file at disk speed. (transformers'
    `from_pretrained` maps the file instead, so its pages would fault in one by one at the first
    forward, and a copy out of the mapping would touch every byte twice.) Other layouts: load
    with transformers, then copy each tensor out of the file mapping.
    """
    import os
    file = checkpoint_file(folder)
    if file is not None:
        from transformers import AutoConfig
        fd = os.open(file, os.O_RDONLY)
        try:
            if hasattr(os, "posix_fadvise"):  # hints only (Linux): without them the reads are just slower
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)  # a larger kernel readahead window
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)    # queue the whole file now: the disk
                # works while Python builds the model skeleton (~0.25 s here), instead of after it
            model = checkpoint.skeleton(AutoConfig.from_pretrained(folder), dtypes.torch_dtype(dtype))
            tensors = checkpoint.read_tensors(fd, checkpoint.read_header(file))
        finally:
            os.close(fd)
        if device.type != "cpu":
            tensors = {k: v.to(device) for k, v in tensors.items()}
        checkpoint.assign_weights(model, tensors, dtypes.torch_dtype(dtype))
        _buffers_to(model, device)
        return model
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtypes.torch_dtype(dtype), use_safetensors=True)
    for t in list(model.parameters()) + list(model.buffers()):
        # clone: detach the tensor from the file mapping so no page is read from disk later
        t.data = t.data.to(device, copy=True) if device.type != "cpu" else t.data.clone()
    return model.eval()


# --- mmap and paged strategies ---------------------------------------------------------------

def load_mmap(folder: Path, device: torch.device, dtype: str) -> torch.nn.Module:
    """Skeleton on the meta device, then every tensor a view into an mmap of the file (no copy)."""
    from transformers import AutoConfig
    model = checkpoint.skeleton(AutoConfig.from_pretrained(folder), dtypes.torch_dtype(dtype))
    tensors = checkpoint.map_checkpoint(checkpoint_file(folder))  # nothing is read yet
    checkpoint.assign_weights(model, tensors, dtypes.torch_dtype(dtype))
    return model.to(device) if device.type != "cpu" else model  # on a GPU, mmap is just the path in


def _load_streaming(folder: Path, device: torch.device, dtype: str, prefetch: bool,
                    bigger_than_ram: bool) -> torch.nn.Module:
    """Non-layer tensors read into memory; decoder layers streamed from disk by a LayerStreamer."""
    import os
    from transformers import AutoConfig
    file = checkpoint_file(folder)
    model = checkpoint.skeleton(AutoConfig.from_pretrained(folder), dtypes.torch_dtype(dtype))
    layers, rest = checkpoint.split_layers(checkpoint.read_header(file))
    fd = os.open(file, os.O_RDONLY)
    try:
        entries = checkpoint.read_header(file)
        resident = checkpoint.read_tensors(fd, {k: entries[k] for k in rest})
    finally:
        os.close(fd)
    checkpoint.assign_weights(model, {k: v.to(device) for k, v in resident.items()}, dtypes.torch_dtype(dtype),
                              later=frozenset(entries) - set(rest))
    _buffers_to(model, device)
    stack = paging.layer_stack(model)
    if len(layers) != len(stack):
        raise MemlabError(f"{file} has {len(layers)} decoder layers named like 'model.layers.<i>.', "
                          f"the model {len(stack)}: this checkpoint layout cannot be streamed.")
    model._memlab_streamer = paging.LayerStreamer(stack, layers, file, device, prefetch, bigger_than_ram)
    if prefetch and device.type == "cpu" and (os.cpu_count() or 1) > 1:
        model._memlab_thread_hooks = paging.reserve_core_for_reads(model)
    return model


def load_paged(folder: Path, device: torch.device, dtype: str, bigger_than_ram: bool = False) -> torch.nn.Module:
    """Each decoder layer is read from disk when the forward pass reaches it, then dropped."""
    return _load_streaming(folder, device, dtype, prefetch=False, bigger_than_ram=bigger_than_ram)


def load_paged_prefetch(folder: Path, device: torch.device, dtype: str,
                        bigger_than_ram: bool = False) -> torch.nn.Module:
    """Like `load_paged`, but a thread reads layer i+1 while layer i computes."""
    return _load_streaming(folder, device, dtype, prefetch=True, bigger_than_ram=bigger_than_ram)


def load_paged_accelerate(folder: Path, device: torch.device, dtype: str) -> torch.nn.Module:
    """accelerate's disk offload: every decoder layer on "disk", loaded by its hooks per forward."""
    import tempfile
    from transformers import AutoConfig, AutoModelForCausalLM
    config = AutoConfig.from_pretrained(folder)
    if getattr(AutoModelForCausalLM._model_mapping.get(type(config), None), "base_model_prefix", None) != "model":
        raise UnsupportedArchitectureError(f"{folder}: paged-accelerate puts each model.layers.<i> on disk, and a "
                                           f"{config.model_type!r} model has no such modules; {checkpoint.RUNS}.")
    num_layers = config.num_hidden_layers
    where = "cpu" if device.type == "cpu" else device.index or 0
    device_map = {"model.embed_tokens": where, "model.norm": where, "model.rotary_emb": where,
                  "lm_head": where, **{f"model.layers.{i}": "disk" for i in range(num_layers)}}
    offload = tempfile.mkdtemp(prefix="memlab-offload-")  # stays empty for a safetensors checkpoint
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtypes.torch_dtype(dtype), device_map=device_map,
                                                 offload_folder=offload, use_safetensors=True)
    return model.eval()


STRATEGIES: dict[str, Callable[..., torch.nn.Module]] = {
    "resident": load_resident,
    "mmap": load_mmap,                      
    "paged": load_paged,                    
    "paged-prefetch": load_paged_prefetch,  
    "paged-accelerate": load_paged_accelerate,
}
STREAMING = ("paged", "paged-prefetch")  # the strategies that accept bigger_than_ram


def checkpoint_file(folder: Path) -> Path | None:
    """The single safetensors file of a checkpoint folder (None if sharded or absent)."""
    files = sorted(Path(folder).glob("*.safetensors"))
    return files[0] if len(files) == 1 else None


def import_model_code(config) -> None:
    """Import the model's modeling code now: transformers imports it lazily, at the first
    `from_pretrained`/`from_config`, and in a fresh process that import (with the integrations
    it pulls in) takes seconds, which would otherwise be counted as loading the weights."""
    from transformers import AutoModelForCausalLM
    try:
        AutoModelForCausalLM._model_mapping[type(config)]
    except (KeyError, AttributeError):
        pass  # not an auto-mapped causal LM: from_pretrained will say so


def load(model: str = models.DEFAULT_MODEL, strategy: str = "resident", device: str = "cpu",
         dtype: str = "fp32", cache_dir: str | Path | None = None, *, cold: bool = False,
         bigger_than_ram: bool = False, context_tokens: int | None = None, batch_size: int = 1,
         force: bool = False) -> Loaded:
    """Prepare `model` (convert once), check it fits, load it with `strategy` on `device`, time it.

    cold: evict the checkpoint from the page cache first (pages still mapped by a live model in
    this process cannot be evicted: `result.page_cache_before` records what was really left; where
    eviction is unsupported it warns and loads warm, and page_cache_before is nan without mincore).
    context_tokens, batch_size: what the memory guard budgets the KV cache for (default: 2048 or
    the model's context if shorter; more than the model's context is refused); force skips the guard.
    """
    from transformers import AutoTokenizer
    if strategy not in STRATEGIES:
        raise MemlabError(f"Unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}.")
    if bigger_than_ram and strategy not in STREAMING:
        raise MemlabError(f"bigger_than_ram works with strategy {' or '.join(STREAMING)}, not {strategy!r}.")
    if bigger_than_ram and not pagecache.supports_eviction():
        raise MemlabError("bigger_than_ram evicts every layer after use, and this platform cannot evict "
                          f"({pagecache.EVICTION_UNSUPPORTED}).")
    dev = resolve_device(device)
    folder = models.prepare(model, dtype=dtype, cache_dir=cache_dir)
    config = checkpoint.read_config(folder)
    if context_tokens is None:
        context_tokens = min(DEFAULT_CONTEXT_TOKENS, limits.context_limit(config) or DEFAULT_CONTEXT_TOKENS)
    limits.check_context(config, context_tokens, model)
    guard.check(guard.predict(config, strategy, dtype, context_tokens, batch_size, str(dev)), force=force)
    import_model_code(config)  # not timed as loading: a fresh process would pay it inside the timer
    file = checkpoint_file(folder)
    if strategy != "resident" and file is None:
        raise MemlabError(f"Strategy {strategy!r} needs a single model.safetensors in {folder}.")
    if cold and file is not None:
        pagecache.evict(file)
    cached_before = pagecache.resident_fraction(file) if file else float("nan")
    models.check_checkpoint(folder)  # after the residency count: reading the header caches pages
    extra = {"bigger_than_ram": True} if bigger_than_ram else {}
    with PeakMemory(dev) as pm, Timer(dev) as t:
        net = STRATEGIES[strategy](folder, dev, dtype, **extra)
    if (Path(folder) / "generation_config.json").exists() and hasattr(net, "generation_config"):
        from transformers import GenerationConfig  # skeleton-built models start from the config's
        net.generation_config = GenerationConfig.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    result = LoadResult(strategy=strategy, model_name=model, device=str(dev), dtype=dtype,
                        weights_bytes=tensors.model_bytes(net), load_time_s=t.elapsed_s,
                        peak_rss_bytes=pm.peak_rss_bytes, peak_vram_bytes=pm.peak_vram_bytes,
                        page_cache_before=cached_before, host=card().host, is_cold=cold,
                        checkpoint_bytes=file.stat().st_size if file else 0,
                        bigger_than_ram=bigger_than_ram, rss_before_bytes=pm.start_rss_bytes)
    return Loaded(model=net, tokenizer=tokenizer, result=result, checkpoint=folder,
                  config=net.config, name=model, device=dev, dtype=dtype)
