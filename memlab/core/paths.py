"""Where memlab's shipped data live: package data, found with importlib.resources.

`memlab/data/` holds the device table (hardware.csv, a source per row), famous models' configs
(model_configs.json) and the perplexity text (eval_text.txt). They install with the package, so
a non-editable install (`pip install .`, `pip install git+...`, Colab) reads the same files.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from memlab.core.errors import MemlabError


def data_path(name: str) -> Path:
    """The path of a file shipped in memlab/data (hardware.csv, model_configs.json, eval_text.txt)."""
    path = Path(str(resources.files("memlab") / "data" / name))
    if not path.is_file():
        raise MemlabError(f"memlab's data file {name} is missing from {path.parent}: reinstall memlab")
    return path


def package_root() -> Path:
    """The folder that holds the `memlab` package (a child process puts it on sys.path)."""
    return Path(str(resources.files("memlab"))).parent
