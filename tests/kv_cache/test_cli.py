"""`memlab kvcache --json` on the tiny model: the fields the README lists, the same tokens every way."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from memlab import cli
from memlab.kv_cache import breakeven, reuse
from memlab.kv_cache import cli as kv_cli

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def readme_fields(after: str) -> set[str]:
    """The comma-separated names in the first code span(s) after `after` in the kvcache section."""
    section = README[README.index("### memlab kvcache (lab 09)"):].split("\n## ")[0]
    section = next(par for par in section.split("\n\n") if after in par)  # the paragraph that names them
    tail = section[section.index(after) + len(after):]
    names = set()
    for span in re.findall(r"`([^`]*)`", tail):
        items = [x.strip() for x in span.split(",")]
        if len(items) > 1 and all(re.match(r"^[a-z_][a-z0-9_]*$", x) for x in items):
            names |= set(items)
            break
    return names


def test_the_readme_lists_the_record_fields():
    assert readme_fields("`ReuseRun` fields") == {f.name for f in dataclasses.fields(reuse.ReuseRun)}
    assert readme_fields("`memlab.kv_cache.breakeven.Crossover`") >= {f.name for f in dataclasses.fields(breakeven.Crossover)}


def test_kvcache_json_on_the_tiny_model(tiny_dir, capsys):
    argv = ["kvcache", "--model", str(tiny_dir), "--prefix-tokens", "8,24", "--suffix-tokens", "4",
            "--new-tokens", "3", "--repeats", "1", "--tiers", "recompute,ram,disk", "--cold", "--json"]
    assert cli.main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"runs", "crossovers"}
    assert [r["way"] for r in out["runs"]] == ["recompute", "ram", "disk-cold"] * 2
    assert all(r["same_tokens"] for r in out["runs"])
    assert set(out["runs"][0]) == {f.name for f in dataclasses.fields(reuse.ReuseRun)}
    assert all(max(r["page_cache_before"]) < 0.05 for r in out["runs"] if r["way"] == "disk-cold")
    assert {c["tier"] for c in out["crossovers"]} == {"ram", "disk-cold"}


def test_disk_means_warm_unless_cold():
    assert kv_cli.ways(["ram", "disk"], cold=False) == ("ram", "disk-warm")
    assert kv_cli.ways(["disk"], cold=True) == ("disk-cold",)


@pytest.mark.parametrize("text", ["", ",", "ram,tape"])
def test_a_bad_tier_list_is_refused(text):
    import argparse
    with pytest.raises(argparse.ArgumentTypeError, match="unknown tier"):
        kv_cli.tier_list(text)


def test_the_readme_lists_the_block_sweep_fields():
    from memlab.kv_cache import blockfit, granularity
    assert readme_fields("`BlockRestore` fields") == {f.name for f in dataclasses.fields(granularity.BlockRestore)}
    assert readme_fields("`memlab.kv_cache.blockfit.TierFit`") == {f.name for f in dataclasses.fields(blockfit.TierFit)}
    assert readme_fields("(`BlockBreakeven`)") == {f.name for f in dataclasses.fields(blockfit.BlockBreakeven)}


def test_kvcache_block_tokens_json_on_the_tiny_model(tiny_dir, capsys):
    argv = ["kvcache", "--model", str(tiny_dir), "--prefix-tokens", "8,24", "--suffix-tokens", "3", "--new-tokens", "2",
            "--repeats", "1", "--tiers", "recompute,ram,disk", "--cold", "--block-tokens", "1,4", "--json"]
    assert cli.main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"runs", "crossovers", "granularity"}
    g = out["granularity"]
    assert [f["tier"] for f in g["fits"]] == ["ram", "disk-cold", "disk-cold-sequential"]
    assert len(g["points"]) == 2 * 2 * 2 * 3 and all(p["same_bytes"] for p in g["points"])
    assert all(p["page_cache_before"] and max(p["page_cache_before"]) < 0.05 for p in g["points"] if p["tier"] != "ram")
    assert len(g["breakevens"]) == 3 * 2


@pytest.mark.parametrize("argv, message", [
    (["--prefix-tokens", "64", "--block-tokens", "4"], "two lengths"),
    (["--prefix-tokens", "8,24", "--block-tokens", "4", "--device", "cuda"], "--device cpu")])
def test_a_bad_block_sweep_is_refused_in_one_line(argv, message, capsys):
    assert cli.main(["kvcache", *argv]) != 0
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
