"""The machine's measured costs: observations, their median, and the cache across processes."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import manyhands as mh
from manyhands._core._machine import Machine


def test_figures_are_unknown_until_measured(tmp_path: Path) -> None:
    machine = Machine(cache_path=str(tmp_path / "machine.txt"))
    assert machine.handoff is None
    assert machine.process_start is None
    figures = machine.figures()
    assert figures["cpus"] == mh.available_cpus()
    assert figures["process_start_seconds"] is None


def test_the_estimate_is_the_median_of_recent_observations(tmp_path: Path) -> None:
    machine = Machine(cache_path=str(tmp_path / "machine.txt"))
    for seconds in (0.05, 0.3, 0.06, 0.07, 5.0):  # one cold start and one stall among them
        machine.observe_process_start(seconds)
    assert machine.process_start == 0.07
    for seconds in (2e-4, 1e-4, 0.03):  # a probe seen late on a loaded machine among them
        machine.observe_handoff(seconds)
    assert machine.handoff == 1e-4


def test_process_start_is_kept_for_the_next_process(tmp_path: Path) -> None:
    path = tmp_path / "cache" / "machine.txt"
    first = Machine(cache_path=str(path))
    first.observe_process_start(0.08)
    first.observe_process_start(0.1)
    second = Machine(cache_path=str(path))  # a new process, in effect
    assert second.process_start == 0.09
    lines = path.read_text().splitlines()
    assert lines[0] == "manyhands machine cache 1"
    assert [line.split("\t")[1] for line in lines[1:]] == ["0.08 0.1"]
    # One interpreter reached by two spellings of its path is one entry.
    assert lines[1].split("\t")[0].startswith(os.path.normpath(sys.executable) + "|")


def test_a_broken_or_missing_cache_is_only_a_missing_figure(tmp_path: Path) -> None:
    path = tmp_path / "machine.txt"
    key = Machine(cache_path="")._cache_key
    for broken in ("{not json", f"manyhands machine cache 1\n{key}\t0.1 not-a-number\n"):
        path.write_text(broken)
        assert Machine(cache_path=str(path)).process_start is None
    machine = Machine(cache_path=str(path))
    machine.observe_process_start(0.2)  # and writing over it works
    assert Machine(cache_path=str(path)).process_start == 0.2
    unwritable = Machine(cache_path=str(tmp_path / "file" / "machine.txt"))
    (tmp_path / "file").write_text("a file where a folder should be")
    unwritable.observe_process_start(0.1)
    assert unwritable.process_start == 0.1
    disabled = Machine(cache_path="")
    disabled.observe_process_start(0.1)
    assert disabled.process_start == 0.1


def test_transfer_rate_is_measured_here() -> None:
    rate = Machine(cache_path="").transfer_rate
    assert 1e6 < rate < 1e12  # bytes per second through pickle: a plausible range


def test_a_process_backend_measures_its_start_up() -> None:
    from manyhands._core._machine import machine

    mh.map(abs, range(4), backend="process")
    assert machine().process_start is not None
    assert machine().process_start > 0
