"""CPU counting: affinity and cgroup quotas, read from files laid out as the kernel does."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest

import manyhands as mh
from manyhands._system import cgroup_cpu_limit, gil_enabled, others_running

from fresh import run_python


def make_v2(tmp_path: Path, levels: dict[str, str]) -> tuple[Path, Path]:
    root = tmp_path / "cgroup"
    for group, cpu_max in levels.items():
        directory = root / group.lstrip("/")
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "cpu.max").write_text(cpu_max + "\n")
    proc = tmp_path / "proc"
    proc.mkdir()
    deepest = max(levels, key=len)
    (proc / "cgroup").write_text(f"0::{deepest}\n")
    return root, proc


def test_cgroup_v2_quota(tmp_path: Path) -> None:
    root, proc = make_v2(tmp_path, {"/": "max 100000", "/job": "150000 100000"})
    assert cgroup_cpu_limit(root, proc) == 1.5


def test_cgroup_v2_smallest_ancestor_wins(tmp_path: Path) -> None:
    root, proc = make_v2(
        tmp_path, {"/": "max 100000", "/a": "100000 100000", "/a/b": "400000 100000"}
    )
    assert cgroup_cpu_limit(root, proc) == 1.0


def test_cgroup_v2_unlimited(tmp_path: Path) -> None:
    root, proc = make_v2(tmp_path, {"/": "max 100000", "/job": "max 100000"})
    assert cgroup_cpu_limit(root, proc) is None


def test_cgroup_v1_quota(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    group = root / "cpu,cpuacct" / "docker" / "abc"
    group.mkdir(parents=True)
    (group / "cpu.cfs_quota_us").write_text("250000\n")
    (group / "cpu.cfs_period_us").write_text("100000\n")
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "cgroup").write_text("4:cpu,cpuacct:/docker/abc\n3:memory:/docker/abc\n")
    assert cgroup_cpu_limit(root, proc) == 2.5


def test_no_cgroup_files_means_no_limit(tmp_path: Path) -> None:
    assert cgroup_cpu_limit(tmp_path / "none", tmp_path / "none") is None


def test_available_cpus_respects_affinity() -> None:
    count = mh.available_cpus()
    assert 1 <= count <= (os.cpu_count() or 1)
    if hasattr(os, "sched_getaffinity"):
        assert count <= len(os.sched_getaffinity(0))


def test_gil_detection_matches_the_build() -> None:
    import sys

    expected = getattr(sys, "_is_gil_enabled", lambda: True)()
    assert gil_enabled() is expected


def test_runnable_seconds_sums_each_threads_cpu_and_run_queue_wait(tmp_path: Path) -> None:
    from manyhands._system import runnable_seconds

    for tid, line in (("101", "1000000000 500000000 7\n"), ("102", "2000000000 0 3\n")):
        (tmp_path / tid).mkdir()
        (tmp_path / tid / "schedstat").write_text(line)
    (tmp_path / "103").mkdir()  # a thread that ended while the folder was read
    assert runnable_seconds(str(tmp_path)) == pytest.approx(3.5)
    assert runnable_seconds(str(tmp_path / "missing")) is None


def test_a_module_is_found_as_importlib_finds_it_without_importing_it(tmp_path: Path) -> None:
    (tmp_path / "findable_here.py").write_text("raise RuntimeError('imported')\n")
    code = (
        "import sys, importlib.util\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "from manyhands._system import _findable\n"
        "for name in ('findable_here', 'json', 'no_such_module_anywhere'):\n"
        "    assert _findable(name) == (importlib.util.find_spec(name) is not None), name\n"
        "assert 'findable_here' not in sys.modules\n"
        "print(_findable('findable_here'), _findable('no_such_module_anywhere'))\n"
    )
    assert run_python(code).stdout.split() == ["True", "False"]


def test_other_processes_running_threads_are_the_systems_less_this_processs(
    tmp_path: Path,
) -> None:
    loadavg = tmp_path / "loadavg"
    loadavg.write_text("1.14 1.96 1.66 5/81 1803\n")
    tasks = tmp_path / "task"
    for tid, state in (("10", "R"), ("11", "S"), ("12", "R")):
        (tasks / tid).mkdir(parents=True)
        (tasks / tid / "stat").write_text(f"{tid} (a (b) c) {state} 1 2 3\n")  # ")" in names
    assert others_running(str(loadavg), str(tasks)) == 3
    assert others_running(str(tmp_path / "missing"), str(tasks)) is None


@pytest.mark.skipif(not Path("/proc/loadavg").exists(), reason="Linux's /proc")
def test_this_processs_own_running_threads_are_not_counted_as_others() -> None:
    # Three threads of ours hash (C code, the GIL released: running or ready throughout).
    # Counted as others, no reading could be under 3.
    stop = threading.Event()
    data = bytes(1 << 20)

    def hashes() -> None:
        while not stop.is_set():
            hashlib.sha256(data).digest()

    threads = [threading.Thread(target=hashes) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        readings = [others_running() for _ in range(20)]
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert all(isinstance(reading, int) for reading in readings)
    assert min(readings) < 3, readings  # type: ignore[type-var]
