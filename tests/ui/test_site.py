"""The course site (`make site`, book/sitebuild.py) and what it is built from (issue 29).

- labs/ is committed without outputs. Each executed reference notebook (`reference/<machine>/NN_name.ipynb`) has its lab's cells, source for
  source: a lab edited since its reference run fails here, so the site never shows a lab that no longer
  exists (`make reference` on that machine fixes it). Each is executed (it has outputs) and the lot is light.
- INSTRUCTOR.md's generated tables equal what the reference JSONs and the labs give now, and name every
  graded exercise.
- The site builds from the shipped notebooks into a temporary folder (nothing executed), and in the
  system Chromium (Playwright, no browser download; skips without it, as tests/ui/test_browser.py) each lab
  page names its reference machine and shows its figures (every image loaded, naturalWidth > 0); no
  internal link, image, stylesheet or script of any page is broken.

MEMLAB_SITE_REFERENCE names another folder of executed notebooks (one folder per machine), e.g. ones
made in quick mode with tests/tools/execute_lab.py while the shipped ones are being recorded.
"""

from __future__ import annotations

import json
import os
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from tests.ui.test_browser import CHROMIUM_ARGS, chromium_path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "book"), str(ROOT / "tests" / "tools")]
import execute_lab  # noqa: E402
import sitebuild  # noqa: E402

REFERENCE = Path(os.environ.get("MEMLAB_SITE_REFERENCE") or ROOT / "reference")
MAX_MACHINE_BYTES = 4 * 2**20  # ten executed labs of one machine: "a few MB", so that 2-3 machines stay within 10 MB


def machine_folders() -> list[Path]:
    return sorted(p for p in REFERENCE.iterdir() if p.is_dir()) if REFERENCE.is_dir() else []


def test_executed_reference_notebooks_ship_and_match_their_labs():
    """Every machine has every lab executed; each lab is current (its cells) on one machine at least: a session
    re-records its own machine's class, so the others' runs of a lab it changed are older, and say so."""
    folders = machine_folders()
    assert folders, f"no executed reference notebooks in {REFERENCE}: run `make reference NAME=<machine>`"
    shipped = {r.name for r in sitebuild.reference_runs()}
    current = {lab.name: [] for lab in sitebuild.labs()}
    for folder in folders:
        assert folder.name in shipped, f"{folder} has no memlab/data/reference/{folder.name}.json"
        for lab in sitebuild.labs():
            executed = folder / lab.name
            assert executed.is_file(), f"{executed} is missing: run `make reference NAME={folder.name}`"
            nb = json.loads(executed.read_text())
            if sitebuild.source_cells(nb) == sitebuild.source_cells(json.loads(lab.read_text())):
                current[lab.name].append(folder.name)
            assert any(c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code"), f"{executed} has no outputs"
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        assert size <= MAX_MACHINE_BYTES, f"{folder}'s executed notebooks take {size / 2**20:.1f} MiB, over the budget"
    stale = [lab for lab, names in current.items() if not names]
    assert not stale, f"{stale}: no machine's executed notebook has the lab's cells: run `make reference NAME=<this machine>`"


def test_a_run_older_than_its_lab_is_marked_on_its_page(tmp_path):
    lab = sitebuild.labs()[0]
    older = json.loads(lab.read_text())
    older["cells"][0]["source"] = "an earlier first cell"
    (tmp_path / "older.ipynb").write_text(json.dumps(older))
    ref = sitebuild.reference_runs()[0]
    for src, marked in ((lab, False), (tmp_path / "older.ipynb", True)):
        sitebuild.stage_lab(src, tmp_path / "page.ipynb", ref, {}, lab)
        note = json.loads((tmp_path / "page.ipynb").read_text())["cells"][1]["source"]
        assert ("predates the lab's current version" in note) == marked, note


def test_an_executed_notebook_keeps_what_a_reader_needs_only():
    """Widget state and views, timestamps and overwritten progress lines go; a wide figure shrinks, and reads."""
    import base64
    import io

    from PIL import Image

    wide = Image.new("RGB", (2400, 600), "white")
    wide.paste((31, 119, 180), (200, 100, 2200, 500))  # a bar in matplotlib's first colour
    png = io.BytesIO()
    wide.save(png, format="PNG")
    cell = {"cell_type": "code", "source": "x", "metadata": {"execution": {"iopub.status.busy": "2026"}}, "outputs": [
        {"output_type": "display_data", "data": {"text/plain": "0%", "application/vnd.jupyter.widget-view+json": {}}},
        {"output_type": "stream", "name": "stderr", "text": "  3%|\r 50%|\r100%|\nok\n"},
        {"output_type": "display_data", "data": {"image/png": base64.b64encode(png.getvalue()).decode(), "text/plain": "<Figure>"}}]}
    nb = execute_lab.slim({"metadata": {"widgets": {"state": {}}}, "cells": [cell]})
    assert nb["metadata"] == {} and cell["metadata"] == {}
    stream, figure = cell["outputs"]
    assert stream["text"] == "100%|\nok\n"
    small = Image.open(io.BytesIO(base64.b64decode(figure["data"]["image/png"])))
    assert small.width == execute_lab.MAX_FIGURE_PX and small.height == 275
    assert small.convert("RGB").getpixel((550, 137)) == (31, 119, 180)


@pytest.mark.parametrize("lab", sitebuild.labs(), ids=lambda p: p.stem)
def test_labs_are_committed_without_outputs(lab):
    """labs/ stays clean for diffs; the outputs live in reference/<machine>/ only."""
    cells = [c for c in json.loads(lab.read_text())["cells"] if c["cell_type"] == "code"]
    dirty = [i for i, c in enumerate(cells) if c.get("outputs") or c.get("execution_count") is not None]
    assert not dirty, f"labs/{lab.name} has outputs in code cells {dirty}: jupyter nbconvert --clear-output --inplace"


def test_the_instructors_guide_tables_are_the_reference_runs_and_the_labs():
    text = (ROOT / "INSTRUCTOR.md").read_text()
    assert sitebuild.with_tables(text) == text, \
        "INSTRUCTOR.md's tables differ from the reference runs or the labs: run `python book/sitebuild.py --guide`"
    ids = [e["id"] for lab in sitebuild.labs() for e in sitebuild.exercises(lab)]
    assert len(ids) >= 10 and all(f"`{i}`" in text for i in ids)


class Refs(HTMLParser):
    """Every href and src of a page."""

    def __init__(self):
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.refs += [v for k, v in attrs if k in ("href", "src") and v]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    pytest.importorskip("myst_nb", reason="the `site` extra is not installed (myst-nb, sphinx-book-theme)")
    if not machine_folders():
        pytest.fail(f"no executed reference notebooks in {REFERENCE}: run `make reference NAME=<machine>`")
    return sitebuild.build(tmp_path_factory.mktemp("site"), REFERENCE)


def test_no_internal_link_or_image_of_the_site_is_broken(site):
    pages = sorted(p for p in site.rglob("*.html") if "_static" not in p.parts)  # _static: the theme's templates
    assert (site / "index.html").is_file() and len(pages) >= len(sitebuild.labs()) * len(machine_folders())
    broken = []
    for page in pages:
        parser = Refs()
        parser.feed(page.read_text())
        for ref in parser.refs:
            url = urlparse(ref)
            if url.scheme or ref.startswith(("#", "//", "mailto:", "data:")):
                continue
            target = (page.parent / unquote(url.path)).resolve()
            if url.path and not (target.is_file() or (target / "index.html").is_file()):
                broken.append(f"{page.relative_to(site)} -> {ref}")
    assert not broken, f"broken internal links: {broken[:10]}"


def test_each_lab_page_names_its_machine_and_shows_its_figures(site):
    pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install playwright)")
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    if path is None:
        pytest.skip("no chromium found (CHROMIUM_PATH, PATH): apt-get install chromium")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        page = browser.new_page()
        for folder in machine_folders():
            for lab in sitebuild.labs():
                nb = json.loads((folder / lab.name).read_text())
                figures = sum("image/png" in o.get("data", {}) for c in nb["cells"] for o in c.get("outputs", []))
                page.goto((site / "labs" / folder.name / f"{lab.stem}.html").as_uri())
                page.wait_for_load_state("load")
                where = f"{folder.name}/{lab.stem}"
                assert f"reference machine {folder.name}" in page.inner_text("article"), f"{where} names no machine"
                images = page.eval_on_selector_all(
                    "article img", "els => els.map(e => [e.getAttribute('src'), e.complete && e.naturalWidth > 0])")
                unloaded = [src for src, ok in images if not ok]
                assert not unloaded, f"{where}: images that did not load: {unloaded}"
                shown = sum(1 for src, _ in images if "badge" not in src)
                assert shown >= figures, f"{where}: {shown} figures shown of the notebook's {figures}"
        browser.close()
