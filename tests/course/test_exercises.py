"""Graded exercises: unanswered, right, wrong; the solutions path; every worked solution solves its
exercise and every exercise marks a wrong answer as a miss."""

import json
import re
from pathlib import Path

import pytest

import memlab as ml
from memlab.core import footprint, roofline
from memlab.course import checks, exercises
from memlab.start_here import solutions

ROOT = Path(__file__).resolve().parents[2]


def test_unanswered_right_and_wrong(capsys, monkeypatch):
    monkeypatch.delenv("MEMLAB_SOLUTIONS", raising=False)
    assert exercises.grade("x", None, 10.0, hint="think") is None
    assert exercises.grade("x", 10.4, 10.0, rel=0.05) is True
    assert exercises.grade("x", 12.0, 10.0, rel=0.05, hint="twice the bytes") is False  # a miss never fails
    out = capsys.readouterr().out.splitlines()
    assert "not answered yet" in out[0] and "Hint: think" in out[0]
    assert out[1].startswith("[x] right") and out[2].startswith("[x] not quite") and "twice the bytes" in out[2]


def test_the_solutions_path_fills_the_answer_and_fails_on_a_wrong_solution(monkeypatch):
    monkeypatch.setenv("MEMLAB_SOLUTIONS", "1")
    assert exercises.grade("x", None, 513.0, rel=0.01, solution=solutions.weights_mib,
                           inputs=dict(num_params=134_515_008)) is True
    with pytest.raises(checks.ClaimFailed, match="worked solution"):
        exercises.grade("x", None, 1000.0, rel=0.01, solution=solutions.weights_mib, inputs=dict(num_params=134_515_008))
    assert exercises.grade("x", 500.0, 513.0, rel=0.01) is False  # a learner's own answer still only misses


def test_a_band_grades_a_measured_time(capsys, monkeypatch):
    monkeypatch.delenv("MEMLAB_SOLUTIONS", raising=False)
    assert exercises.grade("t", 10.0, 9.0, band=(0.7, 1.15)) is True     # measured / predicted = 0.9
    assert exercises.grade("t", 10.0, 12.0, band=(0.7, 1.15)) is False   # 1.2: the prediction left something out
    assert exercises.grade("t", 20.0, 9.0, band=(0.7, 1.15)) is False    # 0.45: a wrong model
    out = capsys.readouterr().out.splitlines()
    assert "0.90" in out[0] and "needs 0.7 to 1.15" in out[1]
    monkeypatch.setenv("MEMLAB_SOLUTIONS", "1")
    with pytest.raises(checks.ClaimFailed, match="0.45"):
        exercises.grade("t", None, 9.0, band=(0.7, 1.15), solution=lambda: 20.0)


def test_the_lock_refuses_to_measure_before_a_prediction(monkeypatch, capsys):
    monkeypatch.delenv("MEMLAB_SOLUTIONS", raising=False)
    with pytest.raises(exercises.PredictionNeeded, match=r"predict first.*reveal\('t-lock'\)"):
        exercises.lock("t-lock", None, solution=solutions.weights_mib, inputs=dict(num_params=2**20))
    assert isinstance(exercises.PredictionNeeded("x"), ml.MemlabError)  # one line in a notebook, no traceback
    exercises.lock("t-lock", 3.0)  # answered: the measurement runs
    assert exercises.reveal("t-lock") == 4.0  # the door to the worked solution: its source and its value
    assert "def weights_mib" in capsys.readouterr().out
    with pytest.raises(ml.MemlabError, match="no worked solution"):
        exercises.reveal("never-locked")
    monkeypatch.setenv("MEMLAB_SOLUTIONS", "1")
    exercises.lock("t-lock", None)  # the solutions path measures; grade then fills in the worked solution


def test_every_lock_is_graded_and_every_band_locked():
    for lab in sorted((ROOT / "labs").glob("*.ipynb")):
        code = "\n".join("".join(c["source"]) for c in json.loads(lab.read_text())["cells"] if c["cell_type"] == "code")
        locked = set(re.findall(r'ml\.exercises\.lock\("([\w-]+)"', code))
        banded = {ex for ex, call in re.findall(r'ml\.exercises\.grade\("([\w-]+)"(.*?)\)\n', code, re.S) if "band=" in call}
        assert banded <= locked, f"{lab.name}: a measured time graded without its lock: {banded - locked}"
        assert locked <= set(re.findall(r'ml\.exercises\.grade\("([\w-]+)"', code)), f"{lab.name}: a lock never graded"


def test_worked_solutions_match_the_physics(tiny):
    cfg = tiny.config
    assert solutions.weights_mib(footprint.num_params(cfg)) * 2**20 == footprint.weights_bytes(cfg, "fp32")
    assert solutions.e2e_s(0.1, 0.02, 11) == pytest.approx(0.3)
    bw = 20e9
    bound = roofline.predict(roofline.decode_workload(cfg, 1, 8), 1e15, bw).tok_per_s
    assert ml.memory_wall.solutions.decode_bound_tok_per_s(cfg, bw) == pytest.approx(bound, rel=0.05)
    assert ml.quantization.solutions.int4_bits_per_weight() == 5.0


def test_the_int4_byte_ratio_solution_matches_the_tensors(tiny):
    from memlab.quantization import quantize, records
    int4 = quantize.build(tiny.model, quantize.VARIANTS["int4"])
    measured = records.streamed_bytes(tiny.model) / records.streamed_bytes(int4)
    assert ml.quantization.solutions.fp32_over_int4_bytes(tiny.config) == pytest.approx(measured, rel=0.02)


def lab_exercises():
    out = []
    for lab in sorted((ROOT / "labs").glob("*.ipynb")):
        code = "\n".join("".join(c["source"]) for c in json.loads(lab.read_text())["cells"] if c["cell_type"] == "code")
        out += [(lab.stem, ex) for ex in re.findall(r'ml\.exercises\.grade\("([\w-]+)"', code)]
    return out


def test_every_lab_exercise_has_a_worked_solution_and_a_tolerance():
    # one exercise may be graded in two places of its lab (quick mode against the computed bound, full mode
    # against the measured run), but an id belongs to one lab
    found = sorted(set(lab_exercises()))
    assert len({ex for _, ex in found}) == len(found), f"an exercise id is used by two labs: {found}"
    per_lab = {lab.stem: sum(1 for stem, _ in found if stem == lab.stem) for lab in (ROOT / "labs").glob("*.ipynb")}
    assert min(per_lab.values()) >= 3, f"every lab has at least three graded exercises: {per_lab}"
    for lab in sorted((ROOT / "labs").glob("*.ipynb")):
        code = "\n".join("".join(c["source"]) for c in json.loads(lab.read_text())["cells"] if c["cell_type"] == "code")
        for call in code.split("ml.exercises.grade(")[1:]:
            call = call.split("\n\n")[0]
            assert "solution=" in call and ("rel=" in call or "band=" in call), \
                f"{lab.name}: an exercise without a worked solution or a tolerance: {call[:60]}"


def test_the_topic_solutions_match_what_the_code_counts(tiny):
    from memlab.core import checkpoint, loading
    cfg = tiny.config
    layers, _ = checkpoint.split_layers(checkpoint.read_header(loading.checkpoint_file(tiny.checkpoint)))
    streamed = sum(e.end_byte - e.start_byte for layer in layers.values() for e in layer.values())
    assert ml.ram_vs_disk.solutions.streamed_layer_bytes(cfg) == streamed
    assert ml.disaggregation.solutions.kv_bytes_shipped(cfg, 20) == footprint.kv_cache_bytes(cfg, 20)
    assert ml.rag.solutions.index_bytes(79) == 79 * 384 * 4
    from memlab.sharding import tensor_parallel
    assert ml.sharding.solutions.allreduced_bytes_per_token(cfg, 2) == 2 * tensor_parallel.allreduce_bytes_per_token(cfg)


def test_time_bands_can_be_reported_instead_of_raised(monkeypatch, capsys):
    """Under MEMLAB_TIME_BANDS=report (the browser test) a worked solution's miss of a time band prints;
    a miss of an exact exercise still raises, and without the variable a band miss raises."""
    monkeypatch.setenv("MEMLAB_SOLUTIONS", "1")
    monkeypatch.setenv("MEMLAB_TIME_BANDS", "report")
    assert exercises.grade("t-band", None, 9.0, band=(0.7, 1.15), solution=lambda: 20.0) is False
    assert "reported, not raised" in capsys.readouterr().out
    with pytest.raises(checks.ClaimFailed):
        exercises.grade("t-exact", None, 1000.0, rel=0.01, solution=lambda: 513.0)
    monkeypatch.delenv("MEMLAB_TIME_BANDS")
    with pytest.raises(checks.ClaimFailed):
        exercises.grade("t-band", None, 9.0, band=(0.7, 1.15), solution=lambda: 20.0)

