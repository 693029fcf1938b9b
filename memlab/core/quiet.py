"""Drop two known, harmless log lines that third-party imports print on every model load.

Both appear when transformers imports torchao (the `quant` extra) with the CPU build of torch:
  1. torchao: "Failed to load .../torchao/_C_mxfp8...so" - CUDA-only kernel libraries that a CPU
     install cannot load; torchao's CPU paths do not use them.
  2. torch.utils._pytree: "<enum ...> is an Enum subclass ... register_constant() ... deprecated" -
     a deprecation aimed at torchao's maintainers, not at a learner.
Only these exact messages are filtered (a `logging.Filter` per logger); everything else those
loggers say still shows.
"""

from __future__ import annotations

import logging


class _Drop(logging.Filter):
    def __init__(self, *fragments: str):
        super().__init__()
        self.fragments = fragments

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        return not all(f in message for f in self.fragments)


def install() -> None:
    """Attach the filters once (idempotent)."""
    for name, fragments in (("torchao", ("Failed to load", "_C_")),
                            ("torch.utils._pytree", ("Enum subclass", "register_constant"))):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _Drop) for f in logger.filters):
            logger.addFilter(_Drop(*fragments))
