"""The README is the CLI's contract: every command it shows parses, and the `--json` fields it lists exist."""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
from pathlib import Path

import pytest

from memlab import cli

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")


def subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))  # argparse has no public API
    return dict(action.choices)


def readme_commands() -> list[str]:
    """Every `memlab ...` code span of the README (a command line as a user would type it)."""
    return sorted(set(re.findall(r"`(memlab [a-z][^`]*)`", README)))


@pytest.mark.parametrize("line", readme_commands())
def test_readme_command_and_its_options_exist(line):
    subs = subparsers()
    name = line.split()[1]
    assert name in subs, f"README shows `{line}`, but memlab has no command {name!r}"
    known = {s for a in subs[name]._actions for s in a.option_strings}
    for flag in re.findall(r"(?<![\w-])--[a-z][a-z-]*", line):
        assert flag in known, f"README shows `{line}`: `memlab {name}` has no option {flag}"


def listed_fields() -> dict[str, set[str]]:
    """{'memlab generate --json': {'model_name', ...}}: the field lists after '... --json` fields'."""
    out = {}
    for m in re.finditer(r"`(memlab [^`]*--json)` fields[^:]*:(.*?)(?:\n\n|\Z)", README, re.S):
        names = set()
        for span in re.findall(r"`([^`]*)`", m.group(2)):
            items = [x.strip() for x in span.split(",")]
            if len(items) > 1 and all(IDENT.match(x) for x in items if x):
                names |= {x for x in items if x}
        out[m.group(1)] = names
    return out


def test_the_readme_lists_fields_for_the_main_commands():
    assert {"memlab generate --json", "memlab load --json", "memlab simulate --json",
            "memlab ceilings --json", "memlab roofline --json"} <= set(listed_fields())


def record_fields(command: str) -> set[str]:
    from memlab.core.ceilings import Ceilings
    from memlab.core.generation import GenerationResult
    from memlab.core.loading import LoadResult
    from memlab.disaggregation.validation import Validation
    from memlab.disaggregation.disagg import SplitResult
    from memlab.disaggregation.simstats import SimSummary
    from memlab.memory_wall.report import RooflineReport
    from memlab.memory_wall.specreport import SpecDecReport, VerifyCosts
    from memlab.rag.retrieval import RagTTFT
    records = {"generate": GenerationResult, "load": LoadResult, "ceilings": Ceilings, "roofline": RooflineReport,
               "disagg": SplitResult, "rag": RagTTFT, "simulate": SimSummary, "specdec": SpecDecReport}
    name = command.split()[1]
    if name == "simulate" and "--validate" in command:
        return {f.name for f in dataclasses.fields(Validation)}
    if name == "simulate" and "--goodput" in command:  # {num_workers, slo: SLO, colocated/disagg: GoodputResult}
        from memlab.disaggregation.simstats import GoodputResult
        from memlab.disaggregation.slo import SLO
        return ({"num_workers", "slo", "colocated", "disagg", "workload", "profile"}
                | {f.name for f in dataclasses.fields(GoodputResult)} | {f.name for f in dataclasses.fields(SLO)})
    extra = {"simulate": {"profile"}, "specdec": {f.name for f in dataclasses.fields(VerifyCosts)}}.get(name, set())
    return {f.name for f in dataclasses.fields(records[name])} | extra


@pytest.mark.parametrize("command", sorted(c for c in listed_fields() if c.split()[1] != "mempipe"))
def test_listed_fields_are_fields_of_the_record(command):
    missing = listed_fields()[command] - record_fields(command)
    assert not missing, f"README lists {sorted(missing)} for `{command}`, but the record has no such field"


def test_mempipe_fields_are_the_step_profile():
    from memlab.memory_processing.mempipe import PipeProfile
    m = re.search(r"`--json` fields \(`memlab\.memory_processing\.mempipe\.PipeProfile`\):(.*?)(?:\n\n)", README, re.S)
    assert m, "the README no longer documents memlab mempipe --json"
    names = {x.strip() for span in re.findall(r"`([^`]*)`", m.group(1)) for x in span.split(",") if IDENT.match(x.strip())}
    assert names - {f.name for f in dataclasses.fields(PipeProfile)} <= {"memory_share"}


@pytest.mark.parametrize("argv", [["generate", "hi", "--max-new-tokens", "3"], ["load", "--strategy", "mmap"]],
                         ids=lambda a: a[0])
def test_json_keys_on_the_tiny_model_match_the_readme(argv, tiny_dir, capsys):
    assert cli.main(argv[:1] + argv[1:] + ["--model", str(tiny_dir), "--json"]) == 0
    keys = set(json.loads(capsys.readouterr().out))
    missing = listed_fields()[f"memlab {argv[0]} --json"] - keys
    assert not missing, f"`memlab {argv[0]} --json` lacks README fields {sorted(missing)}"


def test_simulate_json_keys_match_the_readme(capsys):
    assert cli.main(["simulate", "--profile", "simple", "--requests", "20", "--json"]) == 0
    keys = set(json.loads(capsys.readouterr().out))
    assert listed_fields()["memlab simulate --json"] <= keys


def test_the_layout_names_every_module_of_the_package():
    """The README's layout block (memlab/ ... tests/) names each module of core/, course/ and every topic."""
    root = Path(__file__).resolve().parents[1]
    text = (root / "README.md").read_text()
    block = text[text.index("\nmemlab/\n"):]
    block = block[:block.index("```")]
    words = set(re.findall(r"[a-z_0-9]+", block))
    missing = [f"{folder.name}/{py.stem}" for folder in sorted((root / "memlab").iterdir()) if folder.is_dir()
               for py in sorted(folder.glob("*.py")) if py.stem != "__init__" and py.stem not in words]
    assert not missing, f"the README's layout does not name: {missing}"
