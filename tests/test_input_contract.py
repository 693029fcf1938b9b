"""The input contract (README, "Errors"): every bad input gets one line that names the limit or
the reason, never a traceback; the package raises the same words as a MemlabError.

Three tables: options the CLI refuses by type (exit 2 before anything loads), inputs it refuses
at run time (a MemlabError, exit 2), and the package's own checks. Then the faults of the machine.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import threading

import pytest

from memlab import cli
from memlab.core import errors, limits, models, paths
from memlab.quantization import fits

# argv -> words the one error line must contain (argparse names the option)
REFUSED_BY_TYPE = [
    (["generate", "hi", "--max-new-tokens", "-3"], "argument --max-new-tokens: must be >= 1, got -3"),
    (["generate", "hi", "--max-new-tokens", "two"], "argument --max-new-tokens: expected an integer, got 'two'"),
    (["generate", "hi", "--temperature", "0"], "argument --temperature: must be > 0, got 0.0"),
    (["generate", "hi", "--temperature", "nan"], "argument --temperature: must be a finite number > 0"),
    (["generate", "hi", "--seed", "-1"], "argument --seed: must be >= 0"),
    (["simulate", "--rate", "-1"], "argument --rate: must be > 0, got -1.0"),
    (["simulate", "--rate", "inf"], "argument --rate: must be a finite number > 0"),
    (["simulate", "--requests", "0"], "argument --requests: must be >= 1, got 0"),
    (["simulate", "--prefill-workers", "0"], "argument --prefill-workers: must be >= 1"),
    (["simulate", "--decode-workers", "-2"], "argument --decode-workers: must be >= 1"),
    (["simulate", "--link-gbps", "-5"], "argument --link-gbps: must be > 0"),
    (["simulate", "--ttft-slo", "-1"], "argument --ttft-slo: must be > 0"),
    (["simulate", "--tpot-slo", "0"], "argument --tpot-slo: must be > 0"),
    (["simulate", "--prompt-tokens", "0"], "argument --prompt-tokens: must be >= 1"),
    (["simulate", "--output-tokens", "0"], "argument --output-tokens: must be >= 1"),
    (["disagg", "--prompt-tokens", "0"], "argument --prompt-tokens: must be >= 1"),
    (["disagg", "--max-new-tokens", "1"], "argument --max-new-tokens: must be >= 2, got 1"),
    (["disagg", "--real", "--link-gbps", "-1"], "argument --link-gbps: must be > 0, got -1.0"),
    (["shard", "--mode", "pipeline", "--link-gbps", "0"], "argument --link-gbps: must be > 0, got 0.0"),
    (["mempipe", "--context", "0"], "argument --context: must be >= 1, got 0"),
    (["mempipe", "--page-tokens", "0"], "argument --page-tokens: must be >= 1"),
    (["mempipe", "--budget-tokens", "0"], "argument --budget-tokens: must be >= 1"),
    (["mempipe", "--repeats", "0"], "argument --repeats: must be >= 1"),
    (["ttft", "--prompt-tokens", "0"], "argument --prompt-tokens: must be >= 1, got 0"),
    (["ttft", "--prompt-tokens", "16,abc"], "argument --prompt-tokens: expected an integer, got 'abc'"),
    (["ttft", "--prompt-tokens", ","], "argument --prompt-tokens: expected comma-separated integers >= 1"),
    (["ttft", "--repeats", "0"], "argument --repeats: must be >= 1"),
    (["roofline", "--batch-size", "0"], "argument --batch-size: must be >= 1"),
    (["roofline", "--max-new-tokens", "0"], "argument --max-new-tokens: must be >= 1"),
    (["specdec", "--k", "0"], "argument --k: must be >= 1, got 0"),
    (["specdec", "--tokens", "0"], "argument --tokens: must be >= 1"),
    (["specdec", "--threads", "-1"], "argument --threads: must be >= 1"),
    (["fits", "llama-3.1-8b", "--context", "0"], "argument --context: must be >= 1, got 0"),
    (["quant", "--repeats", "0"], "argument --repeats: must be >= 1"),
    (["shard", "--mode", "pipeline", "--ranks", "0"], "argument --ranks: must be >= 1"),
    (["shard", "--mode", "pipeline", "--batch-size", "0"], "argument --batch-size: must be >= 1"),
    (["shard", "--mode", "pipeline", "--micro-batches", "0"], "argument --micro-batches: must be >= 1"),
    (["shard", "--mode", "pipeline", "--max-new-tokens", "0"], "argument --max-new-tokens: must be >= 1"),
    (["shard", "--mode", "checkpoint", "--max-shard-mib", "-1"], "argument --max-shard-mib: must be >= 0"),
    (["shard", "--mode", "pipeline", "--timeout", "0"], "argument --timeout: must be > 0"),
    (["rag", "q", "--k", "0"], "argument --k: must be >= 1"),
    (["rag", "q", "--max-new-tokens", "0"], "argument --max-new-tokens: must be >= 1"),
    (["rag", "q", "--store", "tape"], "argument --store: invalid choice: 'tape'"),
    (["rag-scale", "--sizes", "0"], "argument --sizes: must be >= 1, got 0"),
    (["rag-scale", "--stores", "flat,tape"], "argument --stores: unknown store(s) ['tape']"),
    (["rag-scale", "--ef-search", "0"], "argument --ef-search: must be >= 1"),
    (["rag-scale", "--threads", "0"], "argument --threads: must be >= 1"),
    (["kvcache", "--prefix-tokens", "0"], "argument --prefix-tokens: must be >= 1, got 0"),
    (["kvcache", "--prefix-tokens", "256,x"], "argument --prefix-tokens: expected an integer, got 'x'"),
    (["kvcache", "--suffix-tokens", "0"], "argument --suffix-tokens: must be >= 1, got 0"),
    (["kvcache", "--new-tokens", "-1"], "argument --new-tokens: must be >= 1"),
    (["kvcache", "--repeats", "0"], "argument --repeats: must be >= 1"),
    (["kvcache", "--tiers", "ram,tape"], "argument --tiers: unknown tier(s) ['tape']"),
    (["simulate", "--trace", "/no/such/folder/t.json"],
     "argument --trace: '/no/such/folder/t.json' is in a folder that does not exist (/no/such/folder): create it"),
    (["roofline", "--out", "/no/such/folder/r.png"], "argument --out: '/no/such/folder/r.png' is in a folder that"),
    (["roofline", "--out", "/"], "argument --out: '/' is a folder: name a file in it"),
    (["shard", "--mode", "nope"], "argument --mode: invalid choice: 'nope'"),
    (["nope"], "invalid choice: 'nope'"),
]


@pytest.mark.parametrize("argv,words", REFUSED_BY_TYPE, ids=[" ".join(a) for a, _ in REFUSED_BY_TYPE])
def test_cli_refuses_a_bad_option_in_one_line(argv, words, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert words in err, err
    assert err.count("\n") == 1 and "Traceback" not in err, err


def refused_at_run_time(tiny_dir, pickle_dir, other_dirs):
    tiny = str(tiny_dir)
    gpt2, unknown, binary = (str(other_dirs[k]) for k in ("gpt2", "unknown", "binary"))
    return [
        # a config whose architecture is not the weights' (was "Cannot copy out of meta tensor"), or unknown
        (["load", "--model", gpt2], "builds a GPT2LMHeadModel (model_type 'gpt2'), but the checkpoint has no tensor"),
        (["load", "--model", gpt2, "--strategy", "paged"], "memlab runs Llama-family decoders saved by transformers"),
        (["load", "--model", gpt2, "--strategy", "paged-accelerate"], "memlab runs Llama-family decoders"),
        (["load", "--model", unknown], "names model_type 'no-such-arch', which transformers"),
        # files that are not what the option reads (were UnicodeDecodeError, JSONDecodeError, KeyError)
        (["simulate", "--profile", "simple", "--replay", binary], "line 1: not text: a trace is a Mooncake-format"),
        (["fits", binary], "is not text: give a model's config.json"),
        (["fits", "llama-3.1-8b", "--table", binary], "is not a CSV file (not text): a device table is a CSV"),
        # a context no model of the famous table can hold (was answered without a word)
        (["fits", "llama-3.1-8b", "--context", "1000000"],
         "--context 1000000 is past llama-3.1-8b's 131072-token context window (max_position_embeddings"),
        (["generate", "", "--model", tiny], "the prompt is empty"),
        (["generate", "   ", "--model", tiny], "the prompt is empty"),
        (["generate", "hi", "--model", tiny, "--max-new-tokens", "5000"], "exceed"),
        (["ttft", "--model", tiny, "--prompt-tokens", "100000"], "4096-token context"),
        (["mempipe", "--model", tiny, "--context", "100000"], "4096-token context"),
        (["kvcache", "--model", tiny, "--prefix-tokens", "100000"], "4096-token context"),
        (["mempipe", "--model", tiny, "--page-tokens", "32", "--budget-tokens", "16"],
         "budget_tokens must be >= page_tokens (32)"),
        (["load", "--model", str(pickle_dir)], "never pickles"),
        (["load", "--model", str(pickle_dir.parent)], "no config.json"),
        (["fits", "no-such-model"], "No config for 'no-such-model'"),
        (["fits", "llama-3.1-8b", "--precisions", "fp7"], "unknown dtype 'fp7'"),
        (["prepare", "--dtype", "fp7"], "dtype='fp7' is not one of fp32, bf16, fp16"),
        (["quant", "--variants", "nope"], "unknown variant(s) ['nope']"),
        (["shard", "--mode", "pipeline", "--model", tiny, "--ranks", "3"], "Cannot split 2 layers across 3 ranks"),
        (["shard", "--mode", "pipeline", "--model", tiny, "--batch-size", "3", "--micro-batches", "2"],
         "must be a multiple of micro_batches"),
    ]


@pytest.fixture
def pickle_dir(tmp_path, tiny_dir):
    d = tmp_path / "pickled"
    d.mkdir()
    (d / "config.json").write_text((tiny_dir / "config.json").read_text())
    (d / "pytorch_model.bin").write_bytes(b"not loaded, ever")
    return d


@pytest.fixture
def other_dirs(tmp_path, tiny_dir):
    """The tiny Llama's weights under a GPT-2 config and under an unknown model_type, and a binary file."""
    out = {}
    for name, patch in (("gpt2", {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}),
                        ("unknown", {"model_type": "no-such-arch", "architectures": ["NoSuchForCausalLM"]})):
        d = tmp_path / name
        shutil.copytree(tiny_dir, d)
        (d / "config.json").write_text(json.dumps({**json.loads((tiny_dir / "config.json").read_text()), **patch}))
        out[name] = d
    out["binary"] = tmp_path / "binary.json"
    out["binary"].write_bytes(bytes(range(128, 256)) * 4)
    return out


def test_cli_refuses_bad_input_at_run_time_in_one_line(tiny_dir, pickle_dir, other_dirs, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("MEMLAB_CACHE", str(tmp_path / "cache"))
    for argv, words in refused_at_run_time(tiny_dir, pickle_dir, other_dirs):
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("memlab: error: ") and words in err, (argv, err)
        assert "Traceback" not in err, (argv, err)


@pytest.mark.parametrize("argv", [["disagg", "--real", "--link-gbps", "1"], ["shard", "--mode", "tensor", "--link-gbps", "1"],
                                  ["disagg", "--real", "--link-gbps", "50"]])
def test_a_shaped_link_is_refused_in_one_line_where_it_cannot_be_made(argv, tiny_dir, capsys, monkeypatch):
    from memlab.core import shaped
    monkeypatch.setattr(shaped.os, "geteuid", lambda: 1000)  # not root: no namespace, no qdisc
    assert cli.main(argv + ["--model", str(tiny_dir)]) == 2
    err = capsys.readouterr().err
    words = "link rate must be 0.01..20.0 Gbit/s, got 50.0" if "50" in argv else \
        "cannot shape a 1 Gbit/s link here: shaping a link needs root"
    assert err.startswith("memlab: error: ") and words in err and err.count("\n") == 1, err


def test_weights_of_another_architecture_are_refused_before_the_first_forward(other_dirs):
    import memlab as ml
    for strategy in ("resident", "mmap", "paged"):
        with pytest.raises(errors.UnsupportedArchitectureError, match=r"no tensor for \d+ of its weights \(first: "):
            ml.load(str(other_dirs["gpt2"]), strategy)


def test_an_output_file_in_a_folder_memlab_cannot_write_is_refused_before_the_run(tmp_path, monkeypatch, capsys):
    """Read-only or not ours: os.access says so (root passes every mode check, so it is stood in for here)."""
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(tmp_path) else real(p, mode))
    with pytest.raises(SystemExit) as e:
        cli.main(["simulate", "--trace", str(tmp_path / "t.json")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "cannot be written here (a read-only disk, or a folder that is not yours)" in err, err
    with pytest.raises(errors.InvalidArgumentError, match="path 'x/y' is in a folder that does not exist"):
        limits.writable_file("x/y", "path")


def test_a_pickle_only_folder_is_refused_for_what_it_is_not_for_a_footprint(pickle_dir):
    with pytest.raises(errors.NoSafetensorsError, match=r"found pytorch_model.bin.*never pickles"):
        models.prepare(str(pickle_dir))


# the package says the same words, so a notebook shows one readable line too
def package_cases(tiny):
    from memlab.core import footprint, generation
    from memlab.disaggregation.workload import Cluster, Traffic
    from memlab.kv_cache.reuse import ReuseConfig
    from memlab.memory_processing.mempipe import PipeConfig
    from memlab.quantization.records import QuantConfig
    from memlab.sharding.workers import ParallelConfig
    from memlab.ttft import latency
    return [
        (lambda: generation.generate(tiny, "hi", max_new_tokens=0), "max_new_tokens must be >= 1, got 0"),
        (lambda: generation.generate(tiny, "hi", batch_size=-1), "batch_size must be >= 1, got -1"),
        (lambda: generation.generate(tiny, "hi", max_new_tokens=2.5), "max_new_tokens must be an integer"),
        (lambda: generation.generate(tiny, "", max_new_tokens=2), "the prompt is empty"),
        (lambda: generation.generate(tiny, [], max_new_tokens=2), "no token ids"),
        (lambda: generation.generate(tiny, "hi", do_sample=True, temperature=0), "temperature must be > 0"),
        (lambda: Traffic(rate_per_s=-1), "rate_per_s must be > 0"),
        (lambda: Traffic(prompt_spread=1.5), "prompt_spread is a fraction in [0, 1)"),
        (lambda: Cluster(num_decode_workers=0), "num_decode_workers must be >= 1, got 0"),
        (lambda: Cluster(mode="both"), "mode must be 'disagg' or 'colocated'"),
        (lambda: Cluster(link_latency_s=-1.0), "link_latency_s must be >= 0"),
        (lambda: PipeConfig(page_tokens=0), "page_tokens must be >= 1, got 0"),
        (lambda: PipeConfig(page_tokens=32, budget_tokens=16), "budget_tokens must be >= page_tokens"),
        (lambda: QuantConfig(repeats=0), "repeats must be >= 1, got 0"),
        (lambda: QuantConfig(new_tokens=1), "new_tokens must be >= 2, got 1"),
        (lambda: ParallelConfig(batch_size=0), "batch_size must be >= 1, got 0"),
        (lambda: ParallelConfig(timeout_s=0), "timeout_s must be > 0"),
        (lambda: fits.footprint("llama-3.1-8b", context=0), "context must be >= 1, got 0"),
        (lambda: latency.prompt_sweep(tiny, [8], repeats=0), "repeats must be >= 1, got 0"),
        (lambda: ReuseConfig(prefix_tokens=(0,)), "prefix_tokens must be >= 1, got 0"),
        (lambda: ReuseConfig(ways=("tape",)), "unknown way(s) ['tape']"),
        (lambda: limits.fraction(1.5, "share"), "share must be in [0, 1], got 1.5"),
        (lambda: limits.count(True, "ranks"), "ranks must be an integer >= 1, got True"),
    ]


def test_the_package_raises_the_same_words_as_a_memlab_error(tiny):
    for call, words in package_cases(tiny):
        with pytest.raises(errors.InvalidArgumentError) as e:
            call()
        assert words in str(e.value), (words, str(e.value))
        assert isinstance(e.value, (errors.MemlabError, ValueError))


def test_an_empty_question_is_refused_before_any_search():
    from memlab.rag import retrieval
    with pytest.raises(errors.InvalidArgumentError, match="the question is empty"):
        retrieval.retrieve(store=None, question="  ", embedder=None)


# ---- anything else: one line plus --debug, and the traceback with --debug --------------------

@pytest.mark.parametrize("exc,words", [
    (RuntimeError("an index tensor went wrong"), "RuntimeError: an index tensor went wrong"),
    (MemoryError(), "out of memory"),
    (OSError(errno.ENOSPC, "No space left on device", "/cache/x.tmp"), "the disk is full writing /cache/x.tmp"),
    (OSError(errno.EROFS, "Read-only file system", "/cache"), "the file system is read-only"),
    (OSError(errno.ENOSPC, "No space left on device", "/data/trace.json"),
     "the disk is full writing /data/trace.json: free space on that disk, or name a file in another folder"),
    (OSError(errno.ENOSPC, "No space left on device"),
     "the disk is full (memlab was writing a file you named, or its cache"),
    (RuntimeError("PytorchStreamWriter failed writing file data/0: No space left on device"), "the disk is full"),
    (OSError(errno.EACCES, "Permission denied", "/srv/x.png"),
     "permission denied on /srv/x.png: choose a folder you can"),
    (ImportError("libtorch_cpu.so: failed to map segment from shared object"), "could not import torch"),
])
def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback(exc, words, capsys, monkeypatch):
    from memlab.core import cli as core_cli

    def boom(args):
        raise exc
    monkeypatch.setattr(core_cli, "_cmd_info", boom)
    assert cli.main(["info"]) == 1
    err = capsys.readouterr().err
    assert words in err and "run with --debug for the traceback" in err and err.count("\n") == 1, err
    assert cli.main(["info", "--debug"]) == 1
    assert "Traceback" in capsys.readouterr().err


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux), where every write fails: ENOSPC")
def test_a_full_disk_says_what_to_do_not_the_exception_name(capsys):
    assert cli.main(["simulate", "--profile", "simple", "--requests", "3", "--trace", "/dev/full"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("memlab: error: the disk is full") and "free space there" in err, err
    assert "OSError" not in err and err.count("\n") == 1, err


def test_importing_the_cli_imports_no_torch():
    """So that a machine too small to import torch still gets memlab's one-line error."""
    code = "import sys, memlab, memlab.cli; print(json.dumps('torch' in sys.modules))"
    out = subprocess.run([sys.executable, "-c", "import json; " + code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) is False


# ---- faults of the machine -------------------------------------------------------------------

def test_two_prepares_at_once_take_turns_and_both_get_a_whole_folder(tmp_path):
    out, errs = [], []

    def prepare():
        try:
            out.append(models.prepare("tiny", cache_dir=tmp_path))
        except Exception as e:  # surfaced below
            errs.append(e)
    threads = [threading.Thread(target=prepare) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errs and len(set(out)) == 1 and models.is_complete(out[0])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tiny-fp32.") and p.is_dir()]


def test_a_full_disk_during_conversion_leaves_nothing_half_written(tmp_path, monkeypatch):
    def full(tmp):
        (tmp / "model.safetensors").write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(models, "build_tiny", full)
    with pytest.raises(errors.MemlabError, match="nothing was left half-written"):
        models.prepare("tiny", cache_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == []


def test_write_atomic_keeps_the_old_file_when_the_write_dies(tmp_path):
    path = paths.write_atomic(tmp_path / "record.json", '{"ok": 1}')

    def dies(f):
        f.write(b'{"half')
        raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(OSError):
        paths.write_atomic(path, write=dies)
    assert path.read_text() == '{"ok": 1}' and [p.name for p in tmp_path.iterdir()] == ["record.json"]


def test_a_corrupt_cached_ceilings_record_is_measured_again(tmp_path, monkeypatch, quiet_machine):
    from memlab.core import ceilings
    path = ceilings._cache_file(tmp_path, "quick")
    path.parent.mkdir(parents=True)
    path.write_text('{"triad_gb_per_s": 1')  # half-written by a killed process
    fields = {f: 0 for f in ceilings.Ceilings.__dataclass_fields__}
    fresh = ceilings.Ceilings(**{**fields, "host": "here", "device": "cpu", "mode": "quick", "matmul_sizes": (),
                                 "measured_at": "now", "read_gb_per_s": 1.0})
    monkeypatch.setattr(ceilings, "measure_now", lambda **kw: fresh)
    assert ceilings.measure(quick=True, cache_dir=tmp_path) == fresh
    assert json.loads(path.read_text())["host"] == "here"  # and the cache is whole again


def test_a_corrupt_embedding_cache_is_computed_again(tmp_path):
    import numpy as np

    from memlab.rag import chunks

    class Fixed:  # a stand-in embedder: this test is about the cache file, not the embeddings
        name, dim = "fixed", 3

        def encode(self, texts):
            return np.ones((len(texts), 3), dtype=np.float32)
    corpus = [chunks.Chunk(0, "a", "first"), chunks.Chunk(1, "b", "second")]
    emb, _ = chunks.embed_corpus(corpus, Fixed(), cache_dir=tmp_path)
    cache = next(tmp_path.glob("emb-*.npy"))
    cache.write_bytes(cache.read_bytes()[:40])  # truncated
    again, seconds = chunks.embed_corpus(corpus, Fixed(), cache_dir=tmp_path)
    assert again.shape == emb.shape and seconds > 0


def test_a_shell_too_small_to_import_torch_gets_one_line():
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (400 * 2**20, resource.RLIM_INFINITY)); "
            "from memlab import cli; sys.exit(cli.main(['info']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 1 and "ulimit -v" in r.stderr and r.stderr.count("\n") == 1, r.stderr


def test_a_notebook_shows_a_memlab_error_in_one_line(monkeypatch):
    monkeypatch.delenv("MEMLAB_SOLUTIONS", raising=False)  # `make test` sets it, and the lock then lets the cell run
    from IPython.core.interactiveshell import InteractiveShell
    from memlab.course import exercises
    shell = InteractiveShell.instance()
    shown = []
    shell._showtraceback = lambda etype, value, stb: shown.append(stb)
    result = shell.run_cell("import memlab.course.exercises as ex\nex.lock('t-one-line', None)")
    assert isinstance(result.error_in_exec, exercises.PredictionNeeded)  # the cell still fails
    assert shown == [[f"PredictionNeeded: {result.error_in_exec}"]]  # in one line, no frames
    result = shell.run_cell("1 / 0")  # anything else keeps its traceback
    assert len(shown[-1]) > 1
