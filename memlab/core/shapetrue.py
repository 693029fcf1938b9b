"""Shape-true models: a real architecture at its real size, with random weights (labs 01, 02, 04).

Decode time depends on the bytes a token streams, not on their values, so a model with the
published config of Llama-3.2-1B and seeded random weights decodes at Llama-3.2-1B's speed while
its text is noise. `shape:NAME` names one (NAME from data/model_configs.json, the table
`memlab fits` reads), and `models.prepare` writes it once into the cache:
  1. `hf_config`     the published config as a transformers config, marked `memlab_weights`
                     "random (shape-true)" so every output can say its text is noise
  2. `tensor_specs`  every tensor's name and shape, from a meta-device skeleton (no memory)
  3. `check_room`    refuse before writing a byte when the disk has not got room (needed vs free)
  4. `write_weights` one safetensors file, written tensor by tensor and chunk by chunk: the header
                     first (the offsets follow from the shapes), then each chunk drawn, scaled and
                     written, so at most `CHUNK_ELEMENTS` values are in memory, whatever the size
Values are what transformers' own init draws: normal(0, initializer_range) for matrices and the
embedding, 1 for norm weights, 0 for biases; each chunk has its own seed (name, chunk, seed), so
the file is the same bytes on every machine.
"""

from __future__ import annotations

import json
import math
import shutil
import zlib
from pathlib import Path

from memlab.core import dtypes
from memlab.core.errors import MemlabError, UnknownModelError, UnsupportedArchitectureError
from memlab.core.paths import data_path

PREFIX = "shape:"
RANDOM = "random (shape-true)"     # config.memlab_weights of a shape-true model
TRAINED = "trained"                # what every other model's weights are
NOISE_NOTE = "its weights are random (shape-true): the text is noise; the timing is real"
CHUNK_ELEMENTS = 8 * 2**20         # values drawn per chunk: 32 MiB in fp32
MODEL_TYPES = ("llama", "qwen2", "mistral")  # the architectures memlab runs (checkpoint.ARCHITECTURES)
# imports torch only inside functions: `memlab --help` lists these names without paying for torch
_ST_DTYPE = {"fp32": "F32", "bf16": "BF16", "fp16": "F16"}
_META = {"_source", "_note", "torch_dtype"}


def is_shape_true(name) -> bool:
    """True for a `shape:NAME` model name."""
    return isinstance(name, str) and name.startswith(PREFIX)


def weights_origin(config) -> str:
    """RANDOM for a shape-true model's config, else TRAINED (read from config.memlab_weights)."""
    return getattr(config, "memlab_weights", None) or TRAINED


def published_configs() -> dict[str, dict]:
    """The shipped configs (data/model_configs.json) of the architectures memlab can run."""
    data = json.loads(Path(data_path("model_configs.json")).read_text())
    return {k: v for k, v in data.items() if not k.startswith("_") and v.get("model_type") in MODEL_TYPES}


def names_text() -> str:
    """The shape-true names, for help texts and errors."""
    return ", ".join(PREFIX + n for n in published_configs())


def published(name: str) -> dict:
    """The published config of `shape:NAME` (or `NAME`), refused in one line when unknown or not runnable."""
    short = name[len(PREFIX):] if is_shape_true(name) else name
    data = json.loads(Path(data_path("model_configs.json")).read_text())
    if short.lower() in data and not short.startswith("_") and short.lower() not in published_configs():
        raise UnsupportedArchitectureError(
            f"{PREFIX}{short}: its architecture ({data[short.lower()].get('model_type')}) is in the fits table "
            f"only: memlab runs {', '.join(MODEL_TYPES)} decoders. Shape-true models: {names_text()}")
    if short.lower() not in published_configs():
        raise UnknownModelError(f"No shape-true model {name!r}: choose one of {names_text()}")
    return published_configs()[short.lower()]


def hf_config(fields: dict, bos_token_id: int | None = None, eos_token_id: int | None = None):
    """A transformers config from a published config's fields, marked as random weights."""
    from transformers import AutoConfig
    kw = {k: v for k, v in fields.items() if k not in _META and k != "model_type"}
    return AutoConfig.for_model(fields["model_type"], bos_token_id=bos_token_id, eos_token_id=eos_token_id,
                                memlab_weights=RANDOM, **kw)


def tensor_specs(config) -> dict[str, tuple[int, ...]]:
    """Every stored tensor's name and shape, read off a meta-device model (a tied head is not stored)."""
    import torch
    from transformers import AutoModelForCausalLM
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    specs = {n: tuple(p.shape) for n, p in model.named_parameters(remove_duplicate=True)}
    if getattr(config, "tie_word_embeddings", False):
        specs.pop("lm_head.weight", None)
    return specs


def weights_bytes(config, dtype: str = "fp32") -> int:
    """Bytes of the weights file's tensors: sum over tensors of prod(shape) * bytes per value."""
    per_value = int(dtypes.dtype_bytes(dtype))
    return sum(math.prod(s) * per_value for s in tensor_specs(config).values())


def check_room(folder: Path, needed_bytes: int) -> None:
    """Refuse, before anything is written, when the disk under `folder` has less than `needed_bytes` free."""
    where = Path(folder)
    while not where.exists():
        where = where.parent
    free = shutil.disk_usage(where).free
    if free < needed_bytes:
        raise MemlabError(f"Not enough disk for this shape-true model: it needs {needed_bytes / 2**30:.2f} GiB "
                          f"({needed_bytes} bytes) and {where} has {free / 2**30:.2f} GiB free. Free some space, "
                          "choose a smaller model or dtype, or point MEMLAB_CACHE at a larger disk.")


def _fill(name: str) -> float | None:
    """The constant a tensor starts at (1 for norms, 0 for biases), or None for random."""
    if name.endswith("norm.weight"):
        return 1.0
    return 0.0 if name.endswith(".bias") else None


def _header(specs: dict[str, tuple[int, ...]], dtype: str) -> bytes:
    """The safetensors header (u64 length, JSON padded to 8 bytes): offsets follow from the shapes."""
    per_value, offset, header = int(dtypes.dtype_bytes(dtype)), 0, {"__metadata__": {"format": "pt"}}
    for name, shape in specs.items():
        end = offset + math.prod(shape) * per_value
        header[name] = {"dtype": _ST_DTYPE[dtype], "shape": list(shape), "data_offsets": [offset, end]}
        offset = end
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text


def write_weights(path: str | Path, config, dtype: str = "fp32", seed: int = 0, progress: bool = True) -> int:
    """Write `config`'s random weights to one safetensors file, chunk by chunk; return the bytes written."""
    import torch
    from tqdm.auto import tqdm
    specs, torch_dtype = tensor_specs(config), dtypes.torch_dtype(dtype)
    std = float(getattr(config, "initializer_range", 0.02))
    total = sum(math.prod(s) for s in specs.values())
    buffer = torch.empty(min(CHUNK_ELEMENTS, max(math.prod(s) for s in specs.values())))
    with open(path, "wb") as f, tqdm(total=total * int(dtypes.dtype_bytes(dtype)), unit="B", unit_scale=True,
                                     desc="write shape-true weights (once)", disable=not progress) as bar:
        f.write(_header(specs, dtype))
        for name, shape in specs.items():
            numel, constant = math.prod(shape), _fill(name)
            for index, start in enumerate(range(0, numel, CHUNK_ELEMENTS)):
                chunk = buffer[:min(CHUNK_ELEMENTS, numel - start)]
                if constant is None:
                    g = torch.Generator().manual_seed(zlib.crc32(f"{seed}:{name}:{index}".encode()))
                    chunk.normal_(0.0, std, generator=g)
                else:
                    chunk.fill_(constant)
                f.write(chunk.to(torch_dtype).view(torch.uint8).numpy())
                bar.update(chunk.numel() * int(dtypes.dtype_bytes(dtype)))
        return f.tell()


def build(folder: str | Path, fields: dict, dtype: str, tokenizer_folder: str | Path, seed: int = 0,
          progress: bool = True) -> Path:
    """A loadable shape-true checkpoint in `folder`: config.json, model.safetensors, the tokenizer of
    `tokenizer_folder` (its ids must be < the config's vocab_size: prompts index the embedding)."""
    from transformers import AutoTokenizer
    folder = Path(folder)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_folder)
    if len(tokenizer) > fields["vocab_size"]:
        raise UnsupportedArchitectureError(
            f"a vocabulary of {fields['vocab_size']} is smaller than the tokenizer's {len(tokenizer)}: "
            "prompts could name tokens this model has not got")
    config = hf_config(fields, tokenizer.bos_token_id, tokenizer.eos_token_id)
    config.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    write_weights(folder / "model.safetensors", config, dtype, seed, progress)
    return folder
