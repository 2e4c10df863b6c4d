"""The adaptive concurrency controller on a fake clock, against model workloads.

A model says, for a concurrency limit, how long an item takes and how much CPU the process
uses; the simulation ticks the controller every 5 ms of fake time with the counters a real
run would show.
"""

from __future__ import annotations

from collections.abc import Callable

from manyhands._core._concurrency import ConcurrencyController

Model = Callable[[int], tuple[float, float]]  # limit -> (seconds per item, CPU share)


def simulate(model: Model, *, ticks: int = 400, backlog: bool = True) -> list[int]:
    controller = ConcurrencyController(start=8, cap=256, interval=0.005)
    now, completed, cpu = 0.0, 0.0, 0.0
    limits = []
    for _ in range(ticks):
        latency, cpu_share = model(controller.limit)
        rate = controller.limit / latency  # items finished per second at this limit
        now += controller.interval
        finished = rate * controller.interval
        completed += finished
        cpu += cpu_share * controller.interval
        limits.append(
            controller.tick(
                now=now,
                completed=int(completed),
                cpu_seconds=cpu,
                latency=latency if finished >= 1 else None,
                backlog=backlog,
            )
        )
    return limits


def test_pure_waiting_grows_to_the_cap_quickly() -> None:
    limits = simulate(lambda limit: (0.05, 0.01))
    assert limits[-1] == 256
    assert limits.index(256) <= 6  # 8 -> 256 is five doublings


def test_a_saturated_server_makes_it_back_off() -> None:
    capacity = 20  # beyond 20 concurrent calls, each call waits in the server's queue

    def server(limit: int) -> tuple[float, float]:
        return 0.05 * max(1.0, limit / capacity), 0.01

    limits = simulate(server)
    assert limits[-1] <= 2 * capacity
    assert max(limits) < 256


def test_cpu_bound_work_does_not_grow() -> None:
    limits = simulate(lambda limit: (0.05, 0.95))
    assert max(limits) <= 16  # one doubling may happen before two busy ticks are seen


def test_no_backlog_no_growth() -> None:
    assert set(simulate(lambda limit: (0.05, 0.01), backlog=False)) == {8}


def test_growth_that_buys_no_throughput_is_undone() -> None:
    # Throughput is capped at 400 items/s whatever the limit, with latency unchanged: e.g.
    # a rate-limited API that answers quickly but only so often.
    def rate_limited(limit: int) -> tuple[float, float]:
        return max(0.05, limit / 400), 0.01

    limits = simulate(rate_limited)
    assert limits[-1] < 256
