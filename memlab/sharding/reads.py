"""A checkpoint's tensors read by name, or only a block of one (a worker's rows or columns): what the
tensor-parallel workers and the checkpoint sharder read (lab 05). One safetensors file or a sharded
folder with its index; the format itself is the core's reader (core/checkpoint.py).
"""

from __future__ import annotations

import json
import mmap
import os
import warnings
from functools import lru_cache
from pathlib import Path

import torch

from memlab.core.checkpoint import TensorEntry, read_header, read_tensors
from memlab.core.errors import MemlabError


@lru_cache(maxsize=32)
def cached_header(path: str, mtime_ns: int, size: int) -> dict[str, TensorEntry]:
    return read_header(path)


def weight_map(folder: str | Path) -> dict[str, Path]:
    """Tensor name -> file, for a single `model.safetensors` or a sharded folder with an index."""
    folder = Path(folder)
    index = folder / "model.safetensors.index.json"
    if index.exists():
        return {k: folder / v for k, v in json.loads(index.read_text())["weight_map"].items()}
    single = folder / "model.safetensors"
    if not single.exists():
        raise MemlabError(f"No model.safetensors or index in {folder}; run memlab.core.models.prepare().")
    return {k: single for k in read_header(single)}


def read_tensor(files: dict, name: str, rows=None, cols=None, dtype=None,
                device: torch.device | str = "cpu") -> torch.Tensor:
    """Read one tensor, or only a block of its rows [lo, hi) or columns [lo, hi), into this process.

    Rows are one contiguous byte range, read with pread; columns come through a mapping of the
    file (only the pages that hold them are touched). The result is a private copy, not a view
    of the file, so it counts as this process's own resident bytes, held once: another dtype or
    device converts it, nothing else copies it again.
    """
    path = str(files[name])
    st = os.stat(path)
    e = cached_header(path, st.st_mtime_ns, st.st_size)[name]
    if rows is not None:
        row_bytes = (e.end_byte - e.start_byte) // e.shape[0]
        e = TensorEntry(name, e.dtype, (rows[1] - rows[0],) + e.shape[1:],
                        e.start_byte + rows[0] * row_bytes, e.start_byte + rows[1] * row_bytes)
    with open(path, "rb") as f:
        if cols is None:
            t = read_tensors(f.fileno(), {name: e})[name]
        else:
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m, warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch warns that the read-only buffer is not writable: we only copy
                whole = torch.frombuffer(m, dtype=torch.uint8, count=e.end_byte - e.start_byte, offset=e.start_byte)
                t = whole.view(e.dtype).reshape(e.shape)[:, cols[0]:cols[1]].clone()
                del whole
    # a copy only where one is needed: the bytes read above are already this process's own memory
    return t.to(device=device, dtype=dtype or t.dtype).contiguous()
