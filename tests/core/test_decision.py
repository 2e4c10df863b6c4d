"""The auto decision: each rule of ``decide`` on evidence built by hand."""

from __future__ import annotations

from typing import Any

import pytest

from manyhands._core._decision import CONTENDED_EXTRA, Decision, Evidence, decide

BASE = Evidence(
    coroutine=False,
    seconds_per_item=0.05,
    cpu_per_item=0.0005,
    item_bytes=20,
    result_bytes=20,
    function_picklable=True,
    items=1000,
    cpus=4,
    gil_enabled=True,
)


def evidence(**changes: Any) -> Evidence:
    return BASE._replace(**changes)


def test_coroutines_go_to_asyncio() -> None:
    decision = decide(evidence(coroutine=True))
    assert decision.backend == "asyncio"
    assert "coroutine" in decision.reasons[0]


def test_tiny_items_stay_in_the_callers_thread() -> None:
    tiny = evidence(seconds_per_item=1e-6, cpu_per_item=1e-6, items=200_000, handoff=50e-6)
    decision = decide(tiny)
    assert decision.backend == "serial"
    assert "1.0 us" in decision.reasons[0]
    assert "50.0 us" in decision.reasons[0]  # the measured hand-off, not a constant
    assert decision.chunksize == 8192


def test_tiny_items_measured_over_many_go_to_processes_when_they_pay() -> None:
    # One cold item of a few microseconds says little; the mean of thousands, in a loop, does.
    many = evidence(
        seconds_per_item=20e-6, cpu_per_item=20e-6, items=10**6, handoff=50e-6, samples=5000
    )
    assert decide(many).backend == "process"
    assert decide(many._replace(items=1000)).backend == "serial"


def test_a_short_waiting_item_is_not_worth_a_thread() -> None:
    decision = decide(evidence(seconds_per_item=30e-6, cpu_per_item=1e-6, handoff=50e-6))
    assert decision.backend == "serial"


def test_threads_say_what_a_loaded_native_library_gets() -> None:
    gil_free = evidence(cpu_per_item=0.05, threads_scale=True)
    assert not any("BLAS" in reason for reason in decide(gil_free).reasons)  # none loaded
    limited = decide(gil_free._replace(native_threads=True))
    assert limited.reasons[-1].startswith("BLAS and OpenMP get 1 thread while the job's")
    assert "4 x 1 <= 4 CPUs" in limited.reasons[-1]
    unlimited = decide(gil_free._replace(native_threads=False))
    assert "install manyhands[blas]" in unlimited.reasons[-1]
    assert limited.evidence["native_threads"] is True


def test_c_code_that_releases_the_gil_goes_to_threads() -> None:
    decision = decide(evidence(cpu_per_item=0.05, threads_scale=True))
    assert (decision.backend, decision.workers) == ("thread", 4)
    assert "releases the GIL" in decision.reasons[-1]
    assert decide(evidence(cpu_per_item=0.05, threads_scale=False)).backend == "process"


def test_c_code_beside_busy_processes_gets_more_threads_than_cpus() -> None:
    # Two threads of sha256 beside a process spinning on one of two CPUs: the scheduler gave
    # them 1.33 cores; six threads got more (0.72x the time).
    crowded = decide(evidence(cpu_per_item=0.05, threads_scale=True, others_running=1))
    assert (crowded.backend, crowded.workers) == ("thread", 4 + CONTENDED_EXTRA)
    assert "1 of their threads running or ready" in crowded.reasons[-1]
    assert crowded.evidence["others_running"] == 1
    for alone in (0, None):
        decision = decide(evidence(cpu_per_item=0.05, threads_scale=True, others_running=alone))
        assert decision.workers == 4
    asked = decide(evidence(cpu_per_item=0.05, threads_scale=True, others_running=1), workers=3)
    assert asked.workers == 3
    wide = decide(evidence(cpu_per_item=0.05, threads_scale=True, others_running=1, cpus=64))
    assert wide.workers == 32  # as ThreadPoolExecutor's default width, at most 32


def test_the_measured_start_up_decides_whether_processes_pay() -> None:
    # 20 x 10 ms of CPU: worth processes where they start in 20 ms, not where they take 0.5 s.
    work = evidence(seconds_per_item=0.01, cpu_per_item=0.01, items=20)
    assert decide(work._replace(process_start=0.02)).backend == "process"
    slow = decide(work._replace(process_start=0.5))
    assert slow.backend == "serial"
    assert "start-up 500.0 ms, measured" in slow.reasons[-1]
    unmeasured = decide(work)  # until measured, a fresh interpreter's usual start-up
    assert unmeasured.evidence["process_start_seconds"] is None
    assert unmeasured.backend == "process"


def test_waiting_work_goes_to_adaptive_threads() -> None:
    decision = decide(evidence())
    assert decision.backend == "thread"
    assert decision.workers is None  # adaptive
    assert "waits 99%" in decision.reasons[0]


def test_explicit_workers_win() -> None:
    assert decide(evidence(), workers=7).workers == 7
    cpu_bound = evidence(cpu_per_item=0.05)
    assert decide(cpu_bound, workers=3) == decide(cpu_bound, workers=3)  # a value: compares
    assert decide(cpu_bound, workers=3).workers == 3


def test_cpu_bound_work_goes_to_processes() -> None:
    decision = decide(evidence(cpu_per_item=0.049))
    assert decision.backend == "process"
    assert decision.workers == 4
    assert any("CPU-bound" in reason for reason in decision.reasons)
    assert decision.reasons[-2].startswith("4 processes: about ")
    assert decision.reasons[-1].startswith("BLAS and OpenMP get 1 thread in each process")
    assert decide(evidence(cpu_per_item=0.049), workers=3).workers == 3


def test_never_more_processes_than_items() -> None:
    assert decide(evidence(cpu_per_item=0.25, seconds_per_item=0.25, items=3)).workers == 3


def test_too_little_cpu_work_stays_serial() -> None:
    decision = decide(evidence(cpu_per_item=0.001, seconds_per_item=0.001, items=20))
    assert decision.backend == "serial"
    assert "processes would take" in decision.reasons[-1]


def test_shipping_large_items_costs_more_than_it_saves() -> None:
    decision = decide(
        evidence(seconds_per_item=1e-4, cpu_per_item=1e-4, item_bytes=1 << 20, items=200)
    )
    assert decision.backend == "serial"


def test_a_function_closing_over_big_data_costs_each_worker_its_size() -> None:
    # 32 items of 60 ms on 2 CPUs pay for processes, unless each must first receive the
    # 400 MB array the function closes over (at 1 GB/s: 0.84 s for two).
    work = evidence(
        seconds_per_item=0.06, cpu_per_item=0.06, items=32, cpus=2, process_start=0.15,
        transfer_rate=1e9,
    )  # fmt: skip
    assert decide(work).backend == "process"
    heavy = decide(work._replace(function_bytes=400 * 2**20))
    assert heavy.backend == "serial"
    assert "sending the function, 400 MB" in heavy.reasons[-1]
    assert heavy.evidence["function_bytes"] == 400 * 2**20
    # Shared with the workers (a numpy array, mapped by each), it is written once: 0.42 s
    shared = decide(work._replace(shared_bytes=400 * 2**20))
    assert shared.backend == "process"


def test_a_process_decision_says_what_blas_and_openmp_get_in_each() -> None:
    decision = decide(evidence(seconds_per_item=0.06, cpu_per_item=0.06, cpus=8))
    assert decision.backend == "process"
    assert "BLAS and OpenMP get 1 thread in each process (8 x 1 <= 8 CPUs)" in decision.reasons[-1]
    two = decide(evidence(seconds_per_item=0.06, cpu_per_item=0.06, cpus=8), workers=4)
    assert "get 2 threads in each process (4 x 2 <= 8 CPUs)" in two.reasons[-1]


def test_free_threaded_python_uses_threads_for_cpu_work() -> None:
    decision = decide(evidence(cpu_per_item=0.05, gil_enabled=False))
    assert decision.backend == "thread"
    assert decision.workers == 4
    assert "GIL disabled" in decision.reasons[-1]


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"function_picklable": False}, "the function cannot be pickled"),
        ({"item_bytes": None}, "the items cannot be pickled"),
        ({"cpus": 1}, "one CPU"),
    ],
)
def test_when_processes_are_out_cpu_work_stays_serial(changes: dict[str, Any], words: str) -> None:
    decision = decide(evidence(cpu_per_item=0.05, **changes))
    assert decision.backend == "serial"
    assert words in decision.reasons[-1]


def test_a_long_running_cpu_probe_bets_on_processes() -> None:
    still_running = evidence(seconds_per_item=0.01, cpu_per_item=0.01, items=8, complete=False)
    assert decide(still_running).backend == "process"
    assert decide(still_running._replace(items=2)).backend == "serial"


def test_decision_is_a_frozen_readable_record() -> None:
    decision = decide(evidence(cpu_per_item=0.049))
    assert isinstance(decision, Decision)
    with pytest.raises(AttributeError):
        decision.backend = "thread"  # type: ignore[misc]
    assert decision.evidence["cpu_ratio"] == pytest.approx(0.98)
    with pytest.raises(TypeError):
        decision.evidence["cpus"] = 2  # type: ignore[index]
    assert str(decision).startswith("process (workers: 4")


def test_short_items_that_two_threads_ran_at_once_go_to_threads() -> None:
    # crc32 of 1 MiB: 0.3 ms an item, under two hand-offs; but the items travel in chunks,
    # and the scaling test measured that two threads run the C code at once.
    short = evidence(seconds_per_item=0.0003, cpu_per_item=0.0003, handoff=0.0002)
    assert decide(short).backend == "serial"
    decision = decide(short._replace(threads_scale=True))
    assert (decision.backend, decision.workers) == ("thread", short.cpus)  # one per CPU


def test_waiting_work_that_keeps_one_gil_busy_goes_to_processes_that_run_threads() -> None:
    # HTTP through urllib: 50 ms a request, 0.5 ms of CPU; on 128 threads the GIL was busy.
    saturated = evidence(gil_saturated=True, thread_width=128, process_start=0.1)
    decision = decide(saturated)
    assert (decision.backend, decision.workers, decision.threads) == ("process", 4, 128)
    assert "kept this process's GIL busy with 128 threads" in decision.reasons[0]
    assert str(decision).startswith("process (workers: 4, threads: 128 each")
    assert decision.evidence["gil_saturated"] is True


@pytest.mark.parametrize(
    "changes",
    [
        {"items": 100},  # 50 ms of CPU left: starting processes costs more than it saves
        {"cpus": 1},
        {"gil_enabled": False},
        {"function_picklable": False},
        {"item_bytes": None},
        {"gil_saturated": False},
    ],
)
def test_waiting_work_stays_on_threads_where_processes_cannot_share_the_cpu_out(
    changes: dict[str, Any],
) -> None:
    facts = {"gil_saturated": True, "thread_width": 128, "process_start": 0.1, **changes}
    decision = decide(evidence(**facts))
    assert decision.backend == "thread"
    assert decision.threads == 1


def test_a_width_given_keeps_gil_saturated_waiting_work_on_its_threads() -> None:
    saturated = evidence(gil_saturated=True, thread_width=128, process_start=0.1)
    assert decide(saturated, workers=64)[:2] == ("thread", 64)
