"""Reference runs: recording, building, comparing, and the shipped runs cover what the labs compare."""

import json
import re
from pathlib import Path

import pytest

from memlab.core import errors
from memlab.course import reference

ROOT = Path(__file__).resolve().parents[2]


def test_record_build_and_compare(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MEMLAB_QUICK", "0")
    monkeypatch.setenv("MEMLAB_RECORD", str(tmp_path / "work"))
    mine = reference.compare("03", {"ttft_s": 0.2, "decode_tok_per_s": 40}, references=[])
    assert "no reference run" in capsys.readouterr().out
    assert list(mine["you"]) == ["200", "40"] and mine.index[0] == "TTFT (ms)"
    written = json.loads((tmp_path / "work" / "03.json").read_text())
    assert written["mode"] == "full" and written["numbers"] == {"ttft_s": 0.2, "decode_tok_per_s": 40.0}
    path = reference.build(tmp_path / "work", "box", lab_runs={"03": {"full_wall_s": 9.0}}, out_dir=tmp_path / "ref")
    (ref,) = reference.runs(path.parent)
    assert ref.name == "box" and ref.labs["03"]["ttft_s"] == 0.2 and ref.card["host"]
    monkeypatch.delenv("MEMLAB_RECORD")
    table = reference.comparison("03", {"ttft_s": 0.4, "new_s": 1.0}, ref)
    assert table.loc["ttft_s", "you / reference"] == pytest.approx(2.0)
    assert table["reference"].isna().tolist() == [False, True]  # a number the reference never recorded
    shown = reference.compare("03", {"ttft_s": 0.4, "new_s": 1.0}, references=[ref])
    assert "compared with the reference run box" in capsys.readouterr().out
    assert list(shown.columns) == ["you", "reference", "you / reference"]
    assert shown.loc["TTFT (ms)"].tolist() == ["400", "200", "2"] and shown.loc["new (s)"].tolist() == ["1", "-", "-"]


@pytest.mark.parametrize("key, values, name, scale", [
    ("decode_tok_per_s", [12.0], "decode (tok/s)", 1.0), ("gloo_beta_gb_per_s", [0.5], "gloo beta (GB/s)", 1.0),
    ("one_thread_matmul_gflop_per_s", [90.0], "one thread matmul (GFLOP/s)", 1.0),
    ("cold_start_ttft_s", [2.0, 0.5], "cold start TTFT (s)", 1.0), ("ram_ttft_s", [0.02, 0.5], "RAM TTFT (ms)", 1e3),
    ("gloo_alpha_s", [4e-5, 9e-5], "gloo alpha (µs)", 1e6), ("tensor_r2_comm_s_per_token", [0.002], "tensor 2 ranks comm (ms/token)", 1e3),
    ("fp32_perplexity", [9.2], "fp32 perplexity", 1.0)])
def test_headline_names_read_with_their_units(key, values, name, scale):
    assert reference.label(key, values) == (name, scale)


def test_numbers_show_three_significant_digits():
    assert [reference.fmt(v) for v in (0.0012345, 12.345, 123.45, 1234.5, 2.5e7, float("nan"))] == \
        ["0.00123", "12.3", "123", "1,234", "2.5e+07", "-"]


def card_of(model: str, features: str, gpu: str = "") -> dict:
    return {"cpu_model": model, "cpu_features": features, "gpu_name": gpu}


REFS = [reference.ReferenceRun(name, card, "full", "2026-01-01T00:00:00", {}) for name, card in (
    ("epyc", card_of("AMD EPYC", "avx2 fma")), ("xeon", card_of("Intel(R) Xeon(R)", "avx2 fma avx512f amx_bf16")),
    ("xeon-h100", card_of("Intel(R) Xeon(R)", "avx2 fma avx512f", "NVIDIA H100 80GB HBM3")))]


@pytest.mark.parametrize("mine, picked, why", [
    (card_of("AMD EPYC 7B13", "avx2 fma"), "epyc", "same CPU vendor (AMD) and extensions"),
    (card_of("AMD Ryzen 9 7950X", "avx2 fma avx512f"), "epyc", "same CPU vendor (AMD), other extensions"),
    (card_of("Intel(R) Core(TM) i7", "avx2 fma"), "xeon", "same CPU vendor (Intel), other extensions"),
    (card_of("Intel(R) Xeon(R) Platinum", "avx2 fma avx512f amx_bf16"), "xeon", "same CPU vendor (Intel) and"),
    (card_of("AMD EPYC", "avx2 fma", "NVIDIA H100 80GB HBM3"), "xeon-h100", "the same GPU (NVIDIA H100"),
    (card_of("AMD EPYC", "avx2 fma", "Tesla T4"), "xeon-h100", "a GPU run (NVIDIA H100 80GB HBM3), none with yours (Tesla T4)"),
    (card_of("Apple M2", "unknown"), "epyc", "no shipped run shares your GPU or CPU vendor")])
def test_compare_picks_the_closest_machine_and_says_why(mine, picked, why):
    ref, line = reference.closest(REFS, mine)
    assert ref.name == picked and line.startswith(f"compared with the reference run {picked}:") and why in line, line


def test_build_refuses_quick_records_and_compare_refuses_non_numbers(tmp_path, monkeypatch):
    monkeypatch.setenv("MEMLAB_QUICK", "1")
    reference.record("00", {"ttft_s": 0.1}, tmp_path)
    with pytest.raises(errors.InvalidArgumentError, match="full-mode"):
        reference.build(tmp_path, "box", out_dir=tmp_path / "ref")
    with pytest.raises(errors.InvalidArgumentError, match="must be a number"):
        reference.compare("00", {"ttft_s": "fast"}, references=[])
    with pytest.raises(errors.InvalidArgumentError, match="no lab records"):
        reference.build(tmp_path / "empty", "box")


def test_plan_warns_when_this_machine_has_less_memory_than_the_lab_needed(monkeypatch, capsys):
    ref = reference.ReferenceRun("box", {}, "full", "2026-01-01T00:00:00", {},
                                 {"05": {"quick_wall_s": 30.0, "quick_peak_bytes": 2**40, "full_wall_s": 90.0,
                                         "full_peak_bytes": 2**41}})
    monkeypatch.setenv("MEMLAB_QUICK", "1")
    reference.plan("05", references=[ref])
    out = capsys.readouterr().out
    assert "quick 30 s, 1024.0 GiB; full 90 s, 2048.0 GiB" in out and "warning" in out
    ref_small = reference.ReferenceRun("box", {}, "full", "2026-01-01T00:00:00", {},
                                       {"05": {"quick_wall_s": 30.0, "quick_peak_bytes": 1}})
    reference.plan("05", references=[ref_small])
    assert "warning" not in capsys.readouterr().out


def lab_comparisons() -> dict[str, set[str]]:
    """lab -> the headline names its `ml.reference.compare` call passes."""
    out = {}
    for lab in sorted((ROOT / "labs").glob("[0-9][0-9]_*.ipynb")):
        code = "\n".join("".join(c["source"]) for c in json.loads(lab.read_text())["cells"] if c["cell_type"] == "code")
        m = re.search(r'ml\.reference\.compare\("(\d\d)", \{(.*?)\}\)', code, re.S)
        assert m, f"{lab.name} compares no headline numbers with the reference run"
        assert m.group(1) == lab.name[:2], f"{lab.name} compares as lab {m.group(1)}"
        out[m.group(1)] = set(re.findall(r'"(\w+)":', m.group(2)))
    return out


def test_every_lab_compares_and_the_shipped_reference_has_its_numbers():
    refs = reference.runs()
    assert refs, "no reference run is shipped in memlab/data/reference/"
    for lab, names in lab_comparisons().items():
        assert names, f"lab {lab} compares nothing"
        for ref in refs:
            missing = names - set(ref.labs.get(lab, {}))
            assert not missing, f"reference {ref.name} lacks lab {lab}'s {sorted(missing)}: record it again"
            assert {"quick_peak_bytes", "full_peak_bytes"} <= set(ref.lab_runs.get(lab, {})), \
                f"reference {ref.name} lacks lab {lab}'s peak memory"


def test_the_readme_course_table_shows_the_reference_runs_time_and_memory():
    """No typed machine numbers: the README's per-lab time and memory are the shipped reference run's."""
    readme = (ROOT / "README.md").read_text()
    ref = reference.runs()[0]
    for lab, run in sorted(ref.lab_runs.items()):
        row = next((line for line in readme.splitlines() if re.match(rf"\| `{lab}_\w+` \|", line)), None)
        assert row, f"the README's course table has no row for lab {lab}"
        assert reference.cost(run) in row, f"README row of lab {lab} should show {reference.cost(run)!r} ({ref.name})"


@pytest.mark.parametrize("card, name", [
    (card_of("AMD EPYC", "avx2 fma"), "epyc-avx2-2core"),
    (card_of("Intel(R) Xeon(R) Processor", "avx2 fma avx512f avx512_vnni amx_bf16 amx_int8"), "xeon-avx512-amx-2core"),
    (card_of("AMD Ryzen 9 7950X 16-Core Processor", "avx2 fma avx512f"), "ryzen-avx512-2core"),
    (card_of("Intel(R) Xeon(R) CPU @ 2.20GHz", "avx2 fma"), "xeon-avx2-2core"),
    (card_of("AMD EPYC", "avx2 fma", "NVIDIA H100 80GB HBM3"), "nvidia-h100-80gb-hbm3")])
def test_a_reference_run_is_named_by_its_machine_class(card, name):
    assert reference.machine_class({**card, "num_cores": 2}) == name
