"""memlab: where an LLM's weights and context live, and what that costs, measured live.

`import memlab as ml` gives the modules a lab needs; nothing is measured or loaded at import time.
"""

import inspect as _inspect

from . import _quiet

_quiet.install()  # two harmless third-party log lines on every model load (see _quiet.py)
from . import errors, footprint, generation, hardware, loading, measure, models, pagecache, results, units
from .errors import MemlabError
from .generation import GenerationResult, generate
from .loading import LoadResult, load
from . import ceilings, fastpath, roofline  # issue 3
from . import guard, latency, paging  # issue 4: memory guard, TTFT anatomy, layer streaming
from . import quality, quantize  # issue 5
from .quantcompare import QuantResult  # issue 5
from . import comm_model, pipeline, sharding, tensor_parallel, workers  # issue 6: lab 05
from . import calibration, disagg, simstats, simulator, widgets  # issue 7: lab 07
from . import rag  # lab 06

__version__ = "0.1.0"


def show_source(obj) -> None:
    """Print the source of a memlab function or class, so a lab shows code without copying it."""
    print(_inspect.getsource(obj))


def __getattr__(name):  # plots pulls in matplotlib: import it only when a lab asks
    if name in ("plots", "launch"):
        import importlib
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'memlab' has no attribute {name!r}")
