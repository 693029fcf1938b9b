"""A package whose modules import on first use (PEP 562): every topic's `__init__` is one.

`ml.rag.stores` imports memlab.rag.stores the first time it is read, so importing a topic (and its
`cli.py`, which `memlab --help` needs for the topic's commands) costs that topic nothing more. When
each `__init__` imported all its modules, `memlab --help` imported torch, transformers, matplotlib
and simpy to print a usage text: ~3.5 s and ~360 MB of RSS on the course VM, against ~0.2 s now.
"""

from __future__ import annotations

import importlib
import sys
from typing import Callable


def submodules(package: str, names: tuple[str, ...]) -> tuple[Callable, Callable]:
    """The `__getattr__` and `__dir__` of `package`'s `__init__`: each of `names` imports when first read."""
    def __getattr__(name: str):
        if name in names:
            return importlib.import_module(f"{package}.{name}")
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(names))

    return __getattr__, __dir__
