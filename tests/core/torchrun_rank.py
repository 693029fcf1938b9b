"""One torchrun rank of test_launch_torchrun: several `memlab` commands in one process, so the
two nodes import torch once, not once per command. Usage: torchrun ... torchrun_rank.py OUT_DIR COMMANDS_JSON.

Writes OUT_DIR/rank<RANK>.json: for each command, its exit code and what it printed on stdout.
"""

import contextlib
import io
import json
import os
import sys
from pathlib import Path

from memlab import cli

out = {}
for name, argv in json.loads(sys.argv[2]).items():
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = cli.main(argv)
    out[name] = {"rc": rc, "stdout": buf.getvalue()}
Path(sys.argv[1], f"rank{os.environ['RANK']}.json").write_text(json.dumps(out))
