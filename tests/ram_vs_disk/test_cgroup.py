"""A memory cgroup below the working set: anonymous memory past the limit is killed and reported in one
line, file pages past it are reclaimed (the page cache is charged), and without a cgroup it is refused."""

from __future__ import annotations

import os
import sys

import pytest

from memlab.core import pagecache
from memlab.core.errors import MemlabError
from memlab.ram_vs_disk import cgroup


def _usable() -> str:
    try:
        cgroup.where()
        return ""
    except MemlabError as e:
        return str(e)


needs_cgroup = pytest.mark.skipif(bool(_usable()), reason=_usable() or "memory cgroups are usable here")
LIMIT = 128 * 2**20


@needs_cgroup
def test_anonymous_memory_past_the_limit_is_killed_and_said_in_one_line():
    grab = "b = bytearray(256 * 2**20); b[::4096] = b'x' * len(b[::4096]); print('survived')"
    r = cgroup.run_limited([sys.executable, "-c", grab], LIMIT, timeout_s=120)
    assert r.is_oom_killed and r.returncode < 0 and "survived" not in r.stdout
    assert "killed by the memory cgroup's limit of 128.0 MiB" in r.summary and "\n" not in r.summary
    refuse = "import sys; sys.exit('memlab: error: it will not fit')"
    refused = cgroup.run_limited([sys.executable, "-c", refuse], LIMIT)
    assert not refused.is_oom_killed and refused.returncode == 1
    assert refused.summary.endswith(": memlab: error: it will not fit")  # the child's one line, passed on
    ok = cgroup.run_limited([sys.executable, "-c", "b = bytearray(16 * 2**20); print('fine')"], LIMIT, timeout_s=120)
    assert not ok.is_oom_killed and ok.returncode == 0 and ok.stdout == "fine\n"
    assert 16 * 2**20 <= ok.peak_bytes <= LIMIT


@needs_cgroup
@pytest.mark.skipif(not pagecache.supports_eviction(), reason="cannot evict here")
def test_the_page_cache_is_charged_so_a_file_past_the_limit_is_not_kept(tmp_path):
    path = tmp_path / "big.bin"
    with open(path, "wb") as f:
        for _ in range(3 * LIMIT // 2**24):
            f.write(os.urandom(2**24))
    pagecache.evict(path)  # pages cached by this process would be charged to this process's cgroup
    read = (f"import mmap, sys\nfrom memlab.core import pagecache\nf = open({str(path)!r}, 'rb')\n"
            "m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)\n"
            "total = sum(m[i] for i in range(0, len(m), 4096))\ndel m\nprint(pagecache.resident_fraction(f.name))\n")
    r = cgroup.run_limited([sys.executable, "-c", read], LIMIT, timeout_s=300)
    assert r.returncode == 0, r.summary
    # every page was read once; at most the limit's worth can still be cached (3x the limit was read)
    assert float(r.stdout.strip()) < 0.5, f"{float(r.stdout):.0%} of a file 3x the limit stayed cached"
    assert r.peak_bytes <= LIMIT + 2**20


def test_no_root_no_cgroup_refused_in_one_line(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(MemlabError, match="needs root") as e:
        cgroup.run_limited(["true"], LIMIT)
    assert "\n" not in str(e.value)


@needs_cgroup
def test_the_memory_guard_inside_reads_the_limit_not_the_machine():
    code = "from memlab.core import guard\nprint(guard.available_bytes())\n"
    # the guard imports torch: 128 MiB is too few
    r = cgroup.run_limited([sys.executable, "-c", code], 2**30, timeout_s=120)
    assert r.returncode == 0 and 0 < int(r.stdout) <= 2**30, r.summary


@needs_cgroup
def test_memlab_limited_runs_generate_inside_and_reports(tiny_dir, capsys):
    import json

    from memlab.cli import main
    assert main(["limited", "--limit-gib", "1", "--model", str(tiny_dir), "--strategy", "mmap",
                 "--max-new-tokens", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["limit_bytes"] == 2**30 and out["returncode"] == 0 and not out["is_oom_killed"]
    assert out["generation"]["new_tokens"] >= 1 and out["generation"]["weights_origin"] == "trained"


def test_memlab_limited_without_a_cgroup_says_so_in_one_line(monkeypatch, capsys):
    from memlab.cli import main
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert main(["limited", "--limit-gib", "1", "--model", "tiny"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("memlab: error:") and "needs root" in err and "\n" not in err
