"""memlab: where an LLM's weights and context live, and what that costs, measured live.

`import memlab as ml` gives the core modules every lab needs (`ml.hardware`, `ml.loading`,
`ml.footprint`, ...), `ml.load`, `ml.generate` and `ml.show_source`. Each lab's own package is
`ml.<topic>` (`ml.memory_wall`, `ml.ram_vs_disk`, ..., see the README's layout table), imported
on first use so that `import memlab` stays light. Nothing is measured or loaded at import time.
"""

import importlib as _importlib
import inspect as _inspect

from memlab.core import quiet as _quiet

_quiet.install()  # two harmless third-party log lines on every model load (see core/quiet.py)
from memlab.core import (ceilings, checkpoint, devices, dtypes, errors, footprint, generation, guard, hardware, loading,  # noqa: E402
                         measure, models, pagecache, paging, paths, results, roofline, tensors, text, units)
from memlab.core.errors import MemlabError  # noqa: E402
from memlab.core.generation import GenerationResult, generate  # noqa: E402
from memlab.core.loading import LoadResult, load  # noqa: E402

__version__ = "0.1.0"

TOPICS = ("memory_wall", "ram_vs_disk", "ttft", "quantization", "sharding", "rag", "disaggregation",
          "memory_processing")


def show_source(obj) -> None:
    """Print the source of a memlab function or class, so a lab shows code without copying it."""
    print(_inspect.getsource(obj))


def __getattr__(name):  # topics (and figures, launch) pull in matplotlib, simpy, ...: import on first use
    if name in TOPICS:
        return _importlib.import_module(f"memlab.{name}")
    if name in ("figures", "launch"):
        return _importlib.import_module(f"memlab.core.{name}")
    raise AttributeError(f"module 'memlab' has no attribute {name!r}")
