"""Where memlab's shipped data live (package data, found with importlib.resources), and how
memlab writes a cache file so that a killed process never leaves half of one (`write_atomic`).

`memlab/data/` holds the device table (hardware.csv, a source per row), famous models' configs
(model_configs.json) and the perplexity text (eval_text.txt). They install with the package, so
a non-editable install (`pip install .`, `pip install git+...`, Colab) reads the same files.
"""

from __future__ import annotations

import os
import tempfile
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


def write_atomic(path: str | Path, data: str | bytes | None = None, write=None) -> Path:
    """Write `path` whole or not at all: into a temporary file beside it, then rename over it.

    `data` (text or bytes), or `write(f)` called with the open binary file. A killed process or a
    full disk leaves the old file (or none), never half of a new one; the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if write is not None:
                write(f)
            else:
                f.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
