"""memlab: where an LLM's weights and context live, and what that costs, measured live.

`import memlab as ml` gives the core modules every lab needs (`ml.hardware`, `ml.loading`,
`ml.footprint`, ...), the course harness (`ml.checks`, `ml.exercises`, `ml.reference`), `ml.load`,
`ml.generate` and `ml.show_source`. Each lab's own package is `ml.<topic>` (`ml.start_here`,
`ml.memory_wall`, ..., see the README's layout table). Every
module is imported on first use, so `import memlab` itself imports neither torch nor anything
else heavy (the CLI can then say in one line when torch cannot even be imported). Nothing is
measured or loaded at import time.
"""

import importlib as _importlib
import inspect as _inspect

from memlab.core import quiet as _quiet
from memlab.core.errors import MemlabError  # noqa: F401  (no torch behind it)

_quiet.install()  # two harmless third-party log lines on every model load (see core/quiet.py)

__version__ = "0.1.0"

CORE = ("ceilings", "checkpoint", "cstep", "devices", "dtypes", "errors", "fastpath", "figures", "footprint", "held",
        "generation", "guard", "hardware", "hierarchy", "kernels", "kv", "launch", "limits", "loading", "measure", "models", "pagecache", "paging",
        "paths", "quantformat", "results", "roofline", "shaped", "shapetrue", "tensors", "text", "units")
COURSE = ("checks", "exercises", "reference")  # the notebook harness: memlab/course/
TOPICS = ("start_here", "memory_wall", "ram_vs_disk", "ttft", "quantization", "sharding", "rag", "disaggregation",
          "memory_processing", "kv_cache")
_NAMES = {"load": "loading", "LoadResult": "loading", "generate": "generation", "GenerationResult": "generation"}


def show_source(obj) -> None:
    """Print the source of a memlab function or class, so a lab shows code without copying it."""
    print(_inspect.getsource(obj))


def __getattr__(name):
    if name in TOPICS:
        return _importlib.import_module(f"memlab.{name}")
    if name in CORE:
        return _importlib.import_module(f"memlab.core.{name}")
    if name in COURSE:
        return _importlib.import_module(f"memlab.course.{name}")
    if name in _NAMES:
        return getattr(_importlib.import_module(f"memlab.core.{_NAMES[name]}"), name)
    raise AttributeError(f"module 'memlab' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(CORE) | set(COURSE) | set(TOPICS) | set(_NAMES))
