"""Reading safetensors checkpoints: the one reader every loader and worker uses (labs 00, 02, 05).

A safetensors file is an 8-byte little-endian header length N, N bytes of JSON (name -> dtype,
shape, byte range), then the raw tensor bytes. Readers, simplest first:
  read_header     the JSON header as {name: TensorEntry} (absolute byte ranges)
  map_checkpoint  every tensor as a view into one private mmap: nothing read until touched
  read_tensors    chosen tensors read with pread into anonymous memory (16 MiB reads, several in flight)
(lab 05 reads one tensor or a block of its rows or columns by name: sharding/reads.py.)
Building a model around tensors: `read_config`, `skeleton` (a meta-device model) and `assign_weights`,
which refuses weights that are another architecture's (`ARCHITECTURES`: what memlab runs).
"""

from __future__ import annotations

import json
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import torch

from memlab.core import dtypes, pagecache
from memlab.core.errors import UnsupportedArchitectureError

READ_CHUNK_BYTES = 16 * 2**20
# What memlab runs: Llama-family decoders saved by transformers' save_pretrained (the byte formulas
# of footprint and guard, and the layer paging, describe these; the catalog's models are of them).
ARCHITECTURES = ("LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM")
RUNS = f"memlab runs Llama-family decoders saved by transformers ({', '.join(ARCHITECTURES)})"
LAYER_RE = re.compile(r"^(?:model\.)?layers\.(\d+)\.(.+)$")


@dataclass(frozen=True, slots=True)
class TensorEntry:
    """One tensor of a safetensors file: absolute byte range [start, end) in the file."""

    name: str
    dtype: torch.dtype
    shape: tuple[int, ...]
    start_byte: int
    end_byte: int


def read_header(path: str | Path) -> dict[str, TensorEntry]:
    """Parse a safetensors header: u64 little-endian length N, N bytes of JSON, then data."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        out[name] = TensorEntry(name, dtypes.safetensors_dtype(info["dtype"]), tuple(info["shape"]),
                                base + begin, base + end)
    return out


def map_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor of `path` as a view into one copy-on-write mmap; no byte is read yet."""
    entries = read_header(path)
    size = os.path.getsize(path)
    storage = torch.UntypedStorage.from_file(str(path), shared=False, nbytes=size)
    whole = torch.empty(0, dtype=torch.uint8).set_(storage)  # (size,) bytes, lazily paged
    return {e.name: whole[e.start_byte:e.end_byte].view(e.dtype).reshape(e.shape)
            for e in entries.values()}


def split_layers(entries: dict[str, TensorEntry]) -> tuple[dict[int, dict[str, TensorEntry]], list[str]]:
    """Group tensor names by decoder layer index; the rest (embedding, norm, head) apart."""
    layers: dict[int, dict[str, TensorEntry]] = {}
    rest = []
    for name, e in entries.items():
        m = LAYER_RE.match(name)
        if m:
            layers.setdefault(int(m.group(1)), {})[m.group(2)] = e
        else:
            rest.append(name)
    return layers, rest


def entries_bytes(entries: dict[str, TensorEntry]) -> int:
    """Bytes these tensors occupy in the file (and in memory once read)."""
    return sum(e.end_byte - e.start_byte for e in entries.values())


def read_tensors(fd: int, entries: dict[str, TensorEntry],
                 into: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Read tensors with `pread` into anonymous memory, in file order.

    Without `into`, each tensor gets memory of its own, so a tensor the caller later replaces (the fast
    path stacks q/k/v into one matrix, or lays a matrix out for its kernel) is freed with its last
    reference: one buffer for the whole file would keep every byte alive while any tensor of it lives
    (a 135M model held its 513 MB twice). Every first touch of fresh memory is a page fault the kernel
    must zero-fill. `into`: a uint8 buffer of at least `entries_bytes(entries)` to reuse (paging reads
    each layer into the same one); adjacent tensors are then read as one span: fewer, larger reads.
    """
    ordered = sorted(entries.items(), key=lambda kv: kv[1].start_byte)
    out, pieces = {}, []
    i, offset = 0, 0
    while i < len(ordered):
        j, end = i, ordered[i][1].end_byte
        while into is not None and j + 1 < len(ordered) and ordered[j + 1][1].start_byte == end:
            j += 1  # merge adjacent ranges into one span
            end = ordered[j][1].end_byte
        start = ordered[i][1].start_byte
        if into is None:
            buf = torch.empty(end - start, dtype=torch.uint8)
        else:
            buf = into[offset:offset + end - start]
            offset += end - start
        view = memoryview(buf.numpy())
        # 16 MiB per read: one huge call measured slower, and erratic
        pieces += [(view[got:got + READ_CHUNK_BYTES], start + got) for got in range(0, len(view), READ_CHUNK_BYTES)]
        for name, e in ordered[i:j + 1]:
            lo = e.start_byte - start
            out[name] = buf[lo:lo + e.end_byte - e.start_byte].view(e.dtype).reshape(e.shape)
        i = j + 1
    # a whole load keeps READ_STREAMS reads in flight (a virtual disk serves one at a time slowly: see
    # pagecache.READ_STREAMS); paging reads a layer at a time into `into` in its own thread, one read at a time
    pagecache.pread_pieces(fd, pieces, pagecache.READ_STREAMS if into is None else 1)
    return out


def evict_range(fd: int, entries: dict[str, TensorEntry]) -> None:
    """Drop these tensors' bytes from the page cache (they are not mapped, so this works)."""
    start = min(e.start_byte for e in entries.values())
    end = max(e.end_byte for e in entries.values())
    os.posix_fadvise(fd, start, end - start, os.POSIX_FADV_DONTNEED)


def read_config(folder: str | Path):
    """The folder's transformers config; a model_type transformers cannot build is refused in one line."""
    import transformers
    try:
        return transformers.AutoConfig.from_pretrained(folder)
    except (ValueError, KeyError) as e:  # transformers' words: a paragraph about installing from source
        try:
            model_type = json.loads((Path(folder) / "config.json").read_text()).get("model_type")
        except (OSError, ValueError, AttributeError):
            raise e from None  # not an architecture problem: config.json itself is unreadable
        raise UnsupportedArchitectureError(
            f"{folder}: config.json names model_type {model_type!r}, which transformers "
            f"{transformers.__version__} cannot build; {RUNS}.") from e


def skeleton(config, dtype: torch.dtype = torch.float32):
    """The model with every parameter on the meta device (no memory) and real buffers.

    Buffers such as the rotary `inv_freq` are computed from the config, not stored in the
    checkpoint, so they are created for real (`include_buffers=False`).
    """
    import contextlib

    from accelerate import init_empty_weights
    from transformers import AutoModelForCausalLM
    try:  # skip random init: on meta tensors it does nothing, yet a cold load's profile spent 0.2 s in it
        from transformers.initialization import no_init_weights
    except ImportError:
        no_init_weights = contextlib.nullcontext

    with init_empty_weights(include_buffers=False), no_init_weights():
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    return model.eval()


def assign_weights(model, tensors: dict[str, torch.Tensor], dtype: torch.dtype | None = None,
                   later: frozenset[str] = frozenset()) -> None:
    """Make `tensors` the model's parameters without copying (`assign=True`); re-tie the head.

    Every parameter must then be set, or be named in `later` (the layers a paged model reads when
    it reaches them): one left on the meta device means the checkpoint is another architecture's,
    refused here instead of failing at the first forward with "Cannot copy out of meta tensor".
    """
    if dtype is not None:
        tensors = {k: v if v.dtype == dtype else v.to(dtype) for k, v in tensors.items()}
    model.load_state_dict(tensors, strict=False, assign=True)
    out, inp = model.get_output_embeddings(), model.get_input_embeddings()
    if getattr(model.config, "tie_word_embeddings", False) and out is not None and out.weight.is_meta:
        out.weight = inp.weight
    unset = [n for n, p in model.named_parameters() if p.is_meta and n not in later]
    if unset:
        raise UnsupportedArchitectureError(
            f"{model.config.name_or_path or 'this model'}: its config builds a {type(model).__name__} "
            f"(model_type {model.config.model_type!r}), but the checkpoint has no tensor for {len(unset)} of its "
            f"weights (first: {unset[0]}): the weights are another architecture's, or named otherwise; {RUNS}.")
