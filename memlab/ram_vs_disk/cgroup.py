"""Bigger than RAM for real: a command run in a memory cgroup whose limit is below the model (lab 02).

A memory cgroup charges its processes' anonymous memory *and* the page cache they fill, and reclaims
cached file pages when the charge reaches the limit. So with a limit below a model's size, an mmap'd
or paged model is read from disk again every token, as on a machine whose RAM is smaller than the model,
and a resident load (anonymous memory that cannot be reclaimed without swap) is killed by the kernel.
  1. `where`        the memory cgroup this process is in, v1 (`/sys/fs/cgroup/memory`) or v2 (unified),
                    or why none can be made here (not Linux, not root, no memory controller)
  2. `run_limited`  a child cgroup with the limit, the command started inside it, its fate read back:
                    exit code, whether the limit's OOM killer ended it, the peak charge; then removed
  3. `generate_limited`  `memlab generate ... --json` run that way: the record, or None and the one line why
Elsewhere the lab falls back on evicting pages after each layer (`bigger_than_ram=True`), and says so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from memlab.core.errors import MemlabError
from memlab.core.units import fmt_bytes

V1_ROOT = Path("/sys/fs/cgroup/memory")
V2_ROOTS = (Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup"))
# per version: (limit file, peak file, file whose "oom_kill N" line counts the limit's kills)
FILES = {"v1": ("memory.limit_in_bytes", "memory.max_usage_in_bytes", "memory.oom_control"),
         "v2": ("memory.max", "memory.peak", "memory.events")}


@dataclass(frozen=True, slots=True)
class LimitedRun:
    """A command run under a memory limit (page cache included)."""

    cgroup_version: str        # "v1" or "v2"
    limit_bytes: int
    returncode: int            # negative: killed by that signal
    is_oom_killed: bool        # the kernel's OOM killer ended it at the cgroup's limit
    peak_bytes: int            # the highest charge, page cache included (0 where the kernel keeps none)
    wall_s: float
    stdout: str
    summary: str               # one line: what happened


def _own_path(controller_line: str) -> str:
    """This process's cgroup path in one hierarchy of /proc/self/cgroup ("4:memory:/a/b" -> "/a/b")."""
    return controller_line.split(":", 2)[2].strip()


def where() -> tuple[str, Path]:
    """(version, folder) of the memory cgroup this process is in; MemlabError saying why there is none."""
    if not Path("/proc/self/cgroup").is_file():
        raise MemlabError("memory cgroups are Linux's: here memlab can only emulate a model bigger than RAM by "
                          "evicting its pages (bigger_than_ram=True)")
    if os.geteuid() != 0:
        raise MemlabError("a memory cgroup needs root (this process is not): run as root, or use the eviction "
                          "emulation (bigger_than_ram=True)")
    lines = Path("/proc/self/cgroup").read_text().splitlines()
    v1 = [line for line in lines if line.split(":")[1:2] and "memory" in line.split(":")[1].split(",")]
    if v1 and V1_ROOT.is_dir():
        return "v1", V1_ROOT / _own_path(v1[0]).lstrip("/")
    unified = [line for line in lines if line.startswith("0::")]
    for root in V2_ROOTS:
        folder = root / _own_path(unified[0]).lstrip("/") if unified else root
        controllers = folder / "cgroup.controllers"
        if controllers.is_file() and "memory" in controllers.read_text().split():
            return "v2", folder
    raise MemlabError("this Linux has no memory cgroup controller mounted (neither v1 at /sys/fs/cgroup/memory nor "
                      "v2 with 'memory' in cgroup.controllers): use the eviction emulation (bigger_than_ram=True)")


def _oom_kills(path: Path) -> int:
    for line in path.read_text().splitlines() if path.is_file() else []:
        if line.startswith("oom_kill "):
            return int(line.split()[1])
    return 0


def run_limited(argv: list[str], limit_bytes: int, timeout_s: float = 600.0) -> LimitedRun:
    """Run `argv` in a new memory cgroup limited to `limit_bytes` (page cache included), and report."""
    version, parent = where()
    limit_file, peak_file, events_file = FILES[version]
    if version == "v2":  # a child can limit memory only if the parent hands the controller down
        try:
            (parent / "cgroup.subtree_control").write_text("+memory")
        except OSError as e:
            raise MemlabError(f"cannot enable the memory controller under {parent} ({e.strerror}): v2 allows it only "
                              "in a cgroup with no processes of its own; use the eviction emulation") from e
    folder = parent / f"memlab-{os.getpid()}-{time.monotonic_ns()}"
    try:
        folder.mkdir()
        (folder / limit_file).write_text(str(int(limit_bytes)))
    except OSError as e:
        raise MemlabError(f"cannot make a memory cgroup under {parent} ({e.strerror}): a container may forbid it; "
                          "use the eviction emulation (bigger_than_ram=True)") from e
    procs = folder / "cgroup.procs"
    try:
        start = time.perf_counter()
        # the child joins the cgroup before it runs a line of `argv`: everything it maps is charged
        child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 preexec_fn=lambda: procs.write_text(str(os.getpid())))
        try:
            out, err = child.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            child.kill()
            out, err = child.communicate()
        wall_s = time.perf_counter() - start
        killed = _oom_kills(folder / events_file) > 0 and child.returncode < 0
        peak = int((folder / peak_file).read_text()) if (folder / peak_file).is_file() else 0
    finally:
        for _ in range(50):  # the exited child's charge is moved up; rmdir can race its last exit steps
            try:
                folder.rmdir()
                break
            except OSError:
                time.sleep(0.1)
    last_error = next((line for line in reversed(err.splitlines()) if line.strip()), "")
    summary = (f"killed by the memory cgroup's limit of {fmt_bytes(limit_bytes)} (page cache included; {version}): "
               "what it holds does not fit" if killed else
               f"exit {child.returncode} under a {fmt_bytes(limit_bytes)} memory cgroup ({version}), peak charge "
               f"{fmt_bytes(peak)}, {wall_s:.1f} s" + (f": {last_error}" if child.returncode and last_error else ""))
    return LimitedRun(version, int(limit_bytes), child.returncode, killed, peak, wall_s, out, summary)


def generate_limited(model: str, strategy: str, limit_bytes: int, max_new_tokens: int = 4, prompt: str = "hi",
                     dtype: str = "fp32", force: bool = False,
                     timeout_s: float = 600.0) -> tuple[LimitedRun, dict | None]:
    """`memlab generate PROMPT --model M --strategy S --json` in a memory cgroup of `limit_bytes`: the run, and
    the generation's fields (None when the guard refused it, the limit killed it, or it failed: see `summary`)."""
    argv = [sys.executable, "-c", "from memlab.cli import main; raise SystemExit(main())", "generate", prompt,
            "--model", model, "--strategy", strategy, "--dtype", dtype, "--max-new-tokens", str(max_new_tokens),
            "--json", "--cold"] + (["--force"] if force else [])  # cold: pages cached before, by another
    # cgroup, stay charged to it and would be read for free; evicted, every page read is charged here
    run = run_limited(argv, limit_bytes, timeout_s)
    return run, json.loads(run.stdout) if run.returncode == 0 and run.stdout.strip() else None
