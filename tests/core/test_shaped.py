"""core.shaped: a loopback the kernel rate-shapes in a namespace of memlab's own, and its refusals."""

import subprocess
import sys

import pytest

from memlab.core import errors, launch, shaped
from tests.core import launch_workers

REASON = shaped.why_cannot_shape()
needs_shaping = pytest.mark.skipif(REASON is not None, reason=f"cannot shape a link here: {REASON}")
PROBE_BYTES = 8 * 2**20  # 32x the bucket, so the burst that leaves at memory speed is ~3 % of the bytes


@needs_shaping
def test_shaped_link_sends_at_the_rates_asked_and_unshaped_is_faster():
    """8 MiB at 0.2 and then 1 Gbit/s (rank 0 re-shapes between), within 20 %; the same probe over the
    unshaped loopback runs far faster than the slow rate, so the shaping is what makes it slow."""
    rates = (0.2, 1.0)
    with shaped.shaped_link(5.0) as link:
        assert link.namespace in shaped.namespaces()
        seconds = launch.run_workers(launch_workers.timed_send, 2, args=(PROBE_BYTES, link, rates), timeout_s=120,
                                     link=link)[0]
    assert link.namespace not in shaped.namespaces()
    for gbps, s in zip(rates, seconds):
        measured = shaped.measured_gbps(PROBE_BYTES, s)
        assert measured == pytest.approx(gbps, rel=0.2), f"asked {gbps} Gbit/s, measured {measured:.3f}"
    (free,) = launch.run_workers(launch_workers.timed_send, 2, args=(PROBE_BYTES,), timeout_s=120)[0]
    assert seconds[0] > 5 * free, f"shaped at 0.2 Gbit/s {seconds[0]:.3f} s vs unshaped {free:.3f} s"


@needs_shaping
def test_namespace_is_removed_when_the_block_raises():
    with pytest.raises(RuntimeError, match="inside"):
        with shaped.shaped_link(1.0) as link:
            raise RuntimeError("inside")
    assert link.namespace not in shaped.namespaces()


@needs_shaping
def test_namespace_is_removed_when_the_process_exits_inside_the_block():
    code = ("import os, sys; from memlab.core import shaped\n"
            "with shaped.shaped_link(1.0) as link:\n"
            "    print(link.namespace, flush=True); sys.exit(3)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    name = done.stdout.strip()
    assert done.returncode == 3 and name.startswith(shaped.PREFIX), done.stderr
    assert name not in shaped.namespaces()


@pytest.mark.parametrize("platform, euid, tools, words", [
    ("darwin", 0, ("ip", "tc"), "needs Linux"),
    ("linux", 1000, ("ip", "tc"), "needs root"),
    ("linux", 0, ("ip",), "needs tc"),
    ("linux", 0, (), "needs ip and tc"),
])
def test_refused_in_one_line_saying_why(monkeypatch, platform, euid, tools, words):
    monkeypatch.setattr(shaped.sys, "platform", platform)
    monkeypatch.setattr(shaped.os, "geteuid", lambda: euid)
    monkeypatch.setattr(shaped.shutil, "which", lambda tool: f"/usr/sbin/{tool}" if tool in tools else None)
    with pytest.raises(errors.CannotShapeError, match=words) as e:
        shaped.check(1.0)
    assert "\n" not in str(e.value)
    with pytest.raises(errors.CannotShapeError, match=words), shaped.shaped_link(1.0):
        pass


@pytest.mark.parametrize("gbps", [0.0, -1.0, 1000.0])
def test_rate_out_of_range_is_refused(gbps):
    with pytest.raises(errors.InvalidArgumentError, match="link rate must be"):
        shaped.check(gbps)


def test_a_shaped_link_is_refused_under_torchrun(monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29999")
    with pytest.raises(errors.MemlabError, match="local ranks only"):
        launch.run_workers(launch_workers.allreduce_rank, 2, link=shaped.Link("memlab-none", 1.0))


@needs_shaping
def test_a_killed_runs_namespace_is_removed_by_the_next_run():
    code = ("import os, signal; from memlab.core import shaped\n"
            "with shaped.shaped_link(1.0) as link:\n"
            "    print(link.namespace, flush=True); os.kill(os.getpid(), signal.SIGKILL)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    name = done.stdout.strip()
    assert done.returncode == -9 and name in shaped.namespaces(), (done.returncode, name)  # no cleanup ran
    with shaped.shaped_link(1.0):
        assert name not in shaped.namespaces()


@needs_shaping
def test_a_kernel_that_refuses_the_qdisc_is_a_reason_not_a_failure(monkeypatch):
    """Root in a container may be refused a namespace or a qdisc: why_cannot_shape says so (and the probe's
    namespace is gone), so the shaped tests and lab 07's section skip with that line instead of failing."""
    monkeypatch.setattr(shaped, "tbf_command", lambda ns, gbps: ("tc", "-n", ns, "qdisc", "replace", "dev", "lo",
                                                                 "root", "no-such-qdisc"))
    shaped._refused_by_kernel.cache_clear()
    try:
        reason = shaped.why_cannot_shape()
    finally:
        shaped._refused_by_kernel.cache_clear()
    assert reason is not None and "refused" in reason and "no-such-qdisc" in reason
    assert not [n for n in shaped.namespaces() if "probe" in n]
