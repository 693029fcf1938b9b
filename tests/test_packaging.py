"""The package as a learner on Colab gets it: a built wheel, installed non-editable, used from
outside the checkout. Its data files must come with it, and a lab must run on it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def setuptools_version() -> tuple:
    """(major,) of this venv's setuptools; (0,) without one (pip then builds in isolation, from the registry)."""
    try:
        import setuptools
    except ImportError:
        return (0,)
    return (int(setuptools.__version__.split(".")[0]),)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """memlab's wheel built from this checkout and unpacked into a folder of its own (--no-deps:
    the dependencies are this venv's, as they would be Colab's)."""
    out = tmp_path_factory.mktemp("wheel")
    isolation = ["--no-build-isolation"] if setuptools_version() >= (77,) else []
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", *isolation, "-w", str(out / "dist"),
                    str(ROOT)], check=True, cwd=out)
    [wheel] = (out / "dist").glob("memlab-*.whl")
    target = out / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, cwd=out)
    return wheel, target


def run_outside(target: Path, code: str, cwd: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(target)}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def test_the_wheel_ships_the_data_files(installed):
    wheel, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    for f in ("hardware.csv", "model_configs.json", "eval_text.txt"):
        assert f"memlab/data/{f}" in names
    assert any(n.startswith("memlab/data/reference/") and n.endswith(".json") for n in names), "no reference run"


def test_the_installed_package_reads_its_data_from_outside_the_checkout(installed, tmp_path):
    _, target = installed
    out = run_outside(target, "import memlab, sys; from memlab.core import paths, devices; "
                              "print(memlab.__file__); print(paths.data_path('hardware.csv')); "
                              "print(len(devices.table()))", tmp_path)
    file, data, rows = out.split()
    assert file.startswith(str(target)) and data.startswith(str(target)) and int(rows) > 10


def test_a_lab_runs_on_the_installed_package(installed, tmp_path):
    """Lab 00, copied outside the checkout, top to bottom in quick mode on the installed wheel."""
    _, target = installed
    lab = tmp_path / "lab.ipynb"
    shutil.copy(ROOT / "labs" / "00_start_here.ipynb", lab)
    env = {**os.environ, "PYTHONPATH": str(target), "MEMLAB_QUICK": "1", "MEMLAB_SOLUTIONS": "1"}  # predictions filled in
    check = "import memlab; assert memlab.__file__.startswith(%r), memlab.__file__" % str(target)
    subprocess.run([sys.executable, "-c", check], check=True, cwd=tmp_path, env=env)
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "--nbval-lax", "-p", "no:cacheprovider", str(lab)],
                       capture_output=True, text=True, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stdout[-3000:]
