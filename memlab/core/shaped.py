"""A link of known speed: ranks in a network namespace whose loopback the kernel rate-shapes (labs 05, 07).

On one machine two ranks talk over the loopback at memory speed, so a model of a slow link
(latency + bytes / rate) is never tested against one. Here the link is real: memlab makes a
network namespace of its own (`memlab-<pid>-<n>`), brings up its loopback, and puts the kernel's
token-bucket filter on it:

    tc qdisc replace dev lo root tbf rate <G>gbit burst BURST_BYTES limit LIMIT_BYTES

so every byte the ranks send each other leaves at G Gbit/s after the first BURST_BYTES (the
bucket starts full). The spawned ranks enter the namespace (`enter`, setns(2)) before they open a
socket, so only their traffic is shaped; the namespace is removed when the block ends, or at exit.
This kernel has `tbf` but no `netem`: a rate, not a delay. It needs Linux, root, `ip` and `tc`;
anywhere else `check` refuses in one line that says which is missing.

The records report the rate the transfers achieved (`measured_gbps`: bytes x 8 / seconds) beside
the rate asked for, so a learner sees the shaping hold (or not) on their own machine.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Iterator

from memlab.core.errors import CannotShapeError, InvalidArgumentError

# The bucket must hold one loopback packet (MTU 64 KiB; a smaller bucket drops every packet) and be
# small beside a KV cache (MBs), since its first fill leaves at memory speed. 12 MB through a
# 256 KiB bucket measured 0.204, 1.01 and 4.45 Gbit/s at 0.2, 1 and 5 Gbit/s (under load).
BURST_BYTES = 256 * 1024
LIMIT_BYTES = 4 * 2**20    # bytes queued in front of the bucket before the kernel drops (TCP then backs off)
MIN_GBPS, MAX_GBPS = 0.01, 20.0  # below: a KV cache takes minutes; above: the unshaped loopback itself (~10-15 Gbit/s)
CLONE_NEWNET = 0x40000000  # setns(2): join a network namespace
PREFIX = "memlab-"


@dataclass(frozen=True, slots=True)
class Link:
    """A shaped loopback: where it is and the rate it was asked for."""
    namespace: str         # `ip netns` name; /run/netns/<namespace>
    gbps: float            # the tbf rate asked for, Gbit/s (1e9 bit/s)


def why_cannot_shape() -> str | None:
    """The reason this machine cannot shape a link, or None when it can."""
    if not sys.platform.startswith("linux"):
        return f"shaping a link needs Linux's network namespaces and tc; this is {sys.platform}"
    if os.geteuid() != 0:
        return "shaping a link needs root (a network namespace and a tc qdisc); run as root, or drop --link-gbps"
    missing = [tool for tool in ("ip", "tc") if shutil.which(tool) is None]
    if missing:
        return f"shaping a link needs {' and '.join(missing)} (iproute2: apt-get install iproute2)"
    return _refused_by_kernel()


@functools.cache
def _refused_by_kernel() -> str | None:
    """Root in a container may still be refused a namespace or a qdisc: try both once, on a throwaway namespace."""
    name = f"{PREFIX}probe-{os.getpid()}"
    try:
        for cmd in (("ip", "netns", "add", name), ("ip", "-n", name, "link", "set", "lo", "up"), tbf_command(name, 1.0)):
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                return f"this machine refused `{' '.join(cmd)}`: {(done.stderr or done.stdout).strip()}"
        return None
    finally:
        remove(name)


def check(gbps: float) -> None:
    """Raise one readable error if `gbps` is out of range or this machine cannot shape a link."""
    if not MIN_GBPS <= gbps <= MAX_GBPS:
        raise InvalidArgumentError(f"link rate must be {MIN_GBPS}..{MAX_GBPS} Gbit/s, got {gbps}")
    reason = why_cannot_shape()
    if reason:
        raise CannotShapeError(f"cannot shape a {gbps:g} Gbit/s link here: {reason}")


def _run(*cmd: str) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise CannotShapeError(f"`{' '.join(cmd)}` failed: {(done.stderr or done.stdout).strip() or done.returncode}")


def tbf_command(namespace: str, gbps: float) -> tuple[str, ...]:
    """The tc command that puts (or replaces) the token bucket on the namespace's loopback."""
    return ("tc", "-n", namespace, "qdisc", "replace", "dev", "lo", "root", "tbf", "rate", f"{round(gbps * 1e9)}bit",
            "burst", str(BURST_BYTES), "limit", str(LIMIT_BYTES))


def set_rate(link: Link, gbps: float) -> Link:
    """Shape the link's loopback to `gbps`, or change its rate (from any process: the namespace has a name)."""
    check(gbps)
    _run(*tbf_command(link.namespace, gbps))
    return Link(link.namespace, gbps)


def remove(namespace: str) -> None:
    """Delete a namespace memlab made (and its qdisc with it); nothing if it is already gone."""
    subprocess.run(("ip", "netns", "del", namespace), capture_output=True)


def namespaces() -> list[str]:
    """memlab's network namespaces that exist right now (none once every shaped run has ended)."""
    done = subprocess.run(("ip", "netns", "list"), capture_output=True, text=True)
    return [line.split()[0] for line in done.stdout.splitlines() if line.startswith(PREFIX)]


def remove_orphans() -> list[str]:
    """Delete memlab's namespaces whose process is gone (killed before its cleanup ran); their names."""
    gone = []
    for name in namespaces():
        try:
            os.kill(int(name[len(PREFIX):].split("-")[0]), 0)
        except ProcessLookupError:
            remove(name)
            gone.append(name)
        except (ValueError, PermissionError):  # not a name memlab made, or another user's live process
            pass
    return gone


@contextlib.contextmanager
def shaped_link(gbps: float) -> Iterator[Link]:
    """A namespace whose loopback sends at `gbps` Gbit/s, removed when the block ends (or at exit; a
    process killed before either is cleaned up after by the next shaped_link)."""
    check(gbps)
    remove_orphans()
    name = f"{PREFIX}{os.getpid()}-{time.monotonic_ns() % 10**9}"
    cleanup = lambda: remove(name)  # noqa: E731  (one object, so atexit.unregister finds it)
    atexit.register(cleanup)
    try:
        _run("ip", "netns", "add", name)
        _run("ip", "-n", name, "link", "set", "lo", "up")
        yield set_rate(Link(name, gbps), gbps)
    finally:
        remove(name)
        atexit.unregister(cleanup)


def enter(namespace: str) -> None:
    """Move this process into the namespace (setns(2)); call before opening any socket."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise CannotShapeError(f"could not enter network namespace {namespace}: {os.strerror(err)}")
    finally:
        os.close(fd)


def measured_gbps(num_bytes: float, seconds: float) -> float:
    """The rate a transfer achieved, Gbit/s: bytes x 8 / seconds / 1e9."""
    return num_bytes * 8 / seconds / 1e9 if seconds > 0 else float("nan")
