"""Peak memory of a command and every process it starts (a lab under nbval: its kernel, the kernel's
workers), sampled from /proc while it runs.

    python tests/tools/peak_memory.py [--interval 0.1] [--out FILE.json] -- pytest --nbval-lax labs/05_sharding.ipynb

Per sample it sums, over the command's descendants (the root itself left out: under nbval it is
pytest, standing in for the Jupyter server), each process's PSS (proportional set size: a shared
page counts 1/n in each of the n processes sharing it; RSS where PSS is not available). The peak is
the largest such sum, what a memory limit such as Binder's 2 GiB is up against. Sampling misses
spikes shorter than the interval, so the peak is a lower bound.

The sampler must not slow what it watches: reading a process's PSS walks its page tables (13 ms for a
0.5 GB lab kernel here, and in proportion for a 13 GB one), and on two cores a lab's two-thread kernels
wait for whichever thread the sampler displaces (every 0.1 s it took a quarter of a core; lab 01's 1B
decode ran at 0.41-0.43 of its bound under it, 0.88 after this change and a kernel choice measured
afresh on a quiet machine, the two not separated). So it waits at least 19 times as long as its last
sample took: at most 5 % of a core.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import psutil


def tree_bytes(root: psutil.Process) -> tuple[int, int, list]:
    """(sum of PSS, sum of RSS, [(PSS, pid, command)] per process) over root's descendants, in bytes."""
    pss = rss = 0
    each = []
    try:
        kids = root.children(recursive=True)
    except psutil.Error:
        return 0, 0, []
    for p in kids:
        try:
            info = p.memory_full_info()
            rss += info.rss
            pss += getattr(info, "pss", info.rss)
            each.append((getattr(info, "pss", info.rss), p.pid, " ".join(p.cmdline())[-80:]))
        except psutil.Error:
            continue  # it ended between listing and reading
    return pss, rss, each


def run(argv: list[str], interval_s: float = 0.1, env: dict | None = None) -> dict:
    """Run argv to the end; return its exit code, wall time and peak tree memory."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env=env)
    root = psutil.Process(proc.pid)
    peak_pss = peak_rss = 0
    at_peak: list = []
    while proc.poll() is None:
        t = time.perf_counter()
        pss, rss, each = tree_bytes(root)
        cost_s = time.perf_counter() - t
        if pss > peak_pss:
            peak_pss, at_peak = pss, sorted(each, reverse=True)
        peak_rss = max(peak_rss, rss)
        time.sleep(max(interval_s, 19 * cost_s))  # at most 5 % of a core (module docstring)
    return {"argv": argv, "rc": proc.returncode, "wall_s": time.perf_counter() - t0,
            "peak_pss_bytes": peak_pss, "peak_rss_bytes": peak_rss, "interval_s": interval_s,
            "processes_at_peak": at_peak}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--interval", type=float, default=0.1)
    ap.add_argument("--out")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not cmd:
        ap.error("give a command after --")
    result = run(cmd, args.interval)
    print(f"peak {result['peak_pss_bytes'] / 2**20:.0f} MiB PSS ({result['peak_rss_bytes'] / 2**20:.0f} MiB RSS), "
          f"{result['wall_s']:.0f} s, exit {result['rc']}", file=sys.stderr)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    return result["rc"]


if __name__ == "__main__":
    sys.exit(main())
