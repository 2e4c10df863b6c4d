"""The adaptive concurrency controller on a fake clock, against model workloads.

A model says, for a concurrency limit, how long an item takes when nothing else limits it and
how much CPU it needs; the simulation adds the GIL (one core for every item's CPU: beyond
``1 / cpu`` items a second, latency stretches) and ticks the controller every 5 ms of fake
time with the counters a real run would show (the running items' CPU rate among them).
"""

from __future__ import annotations

from collections.abc import Callable

from manyhands._core._concurrency import ConcurrencyController, littles_law_width

Model = Callable[[int, float], tuple[float, float]]  # (limit, now) -> (seconds, CPU) per item


def simulate(
    model: Model,
    *,
    ticks: int = 400,
    backlog: bool = True,
    start: int = 8,
    cap: int = 256,
    items: float | None = None,
) -> tuple[list[int], float, float]:
    """The limits ticked, the items completed and the fake seconds elapsed."""
    controller = ConcurrencyController(start=start, cap=cap, interval=0.005)
    now, completed, cpu = 0.0, 0.0, 0.0
    limits = []
    for _ in range(ticks):
        latency, cpu_per_item = model(controller.limit, now)
        throughput = controller.limit / latency
        if cpu_per_item > 0 and throughput > 1 / cpu_per_item:  # the GIL is the limit
            throughput = 1 / cpu_per_item
            latency = controller.limit * cpu_per_item
        now += controller.interval
        finished = throughput * controller.interval
        completed += finished
        cpu += finished * cpu_per_item
        pending = items is None or completed < items
        limits.append(
            controller.tick(
                now=now,
                completed=int(completed),
                work_cpu=cpu,
                latency=latency if finished > 0 else None,
                backlog=backlog and pending,
                # What the running items' threads use together, as AutoPlan reads it.
                running_rate=throughput * cpu_per_item,
            )
        )
        if items is not None and completed >= items:
            break
    return limits, completed, now


def waiting(seconds: float, cpu: float) -> Model:
    return lambda limit, now: (seconds, cpu)


def test_pure_waiting_grows_to_the_cap_quickly() -> None:
    limits, _, _ = simulate(waiting(0.05, 20e-6))
    assert limits[-1] == 256
    assert limits.index(256) <= 6  # 8 -> 256 is five doublings


def test_the_stall_at_sixteen_threads_is_gone() -> None:
    # 1,000 x sleep(0.05) stalled at 16 threads (2.9 s): the old rule read the CPU spent
    # starting the job and its threads as the GIL being busy. Only the items' own CPU counts
    # now, and growth starts where Little's law puts it.
    start = littles_law_width(0.05, 20e-6, cap=1024)
    assert start == 1024
    limits, completed, elapsed = simulate(
        waiting(0.05, 20e-6), start=8, cap=1024, items=1000, ticks=1000
    )
    assert completed >= 1000
    assert elapsed < 0.3
    assert max(limits) >= 512


def test_http_like_work_reaches_the_width_where_the_gil_saturates() -> None:
    # 50 ms of waiting and 0.5 ms of CPU a request: one GIL serves 2,000 a second, which
    # takes 100 in flight (Little's law); the stalled controller held 16 (320 a second).
    assert littles_law_width(0.05, 0.0005, cap=1024) == 100
    limits, completed, elapsed = simulate(waiting(0.05, 0.0005), start=100, cap=1024)
    assert completed / elapsed > 0.9 * 2000
    assert 64 <= limits[-1] <= 400  # past the saturation point it does not keep growing


def test_a_saturated_server_makes_it_back_off() -> None:
    capacity = 20  # beyond 20 concurrent calls, each call waits in the server's queue

    def server(limit: int, now: float) -> tuple[float, float]:
        return 0.05 * max(1.0, limit / capacity), 0.0001

    limits, _, _ = simulate(server)
    assert limits[-1] <= 2 * capacity
    assert max(limits) < 256


def test_cpu_bound_work_does_not_grow() -> None:
    limits, _, _ = simulate(waiting(0.03, 0.03))
    assert max(limits) <= 32
    assert limits[-1] <= 16


def test_no_backlog_no_growth() -> None:
    limits, _, _ = simulate(waiting(0.05, 0.0001), backlog=False)
    assert set(limits) == {8}


def test_growth_that_buys_no_throughput_is_undone() -> None:
    # Throughput is capped at 400 items/s whatever the limit, with latency unchanged: e.g.
    # a rate-limited API that answers quickly but only so often.
    def rate_limited(limit: int, now: float) -> tuple[float, float]:
        return max(0.05, limit / 400), 0.0001

    limits, _, _ = simulate(rate_limited)
    assert limits[-1] < 256


def test_a_backlog_that_persists_grows_again_once_the_far_end_has_room() -> None:
    # The server takes 20 at a time for the first second, then scales out.
    def scaling_server(limit: int, now: float) -> tuple[float, float]:
        capacity = 20 if now < 1.0 else 10_000
        return 0.05 * max(1.0, limit / capacity), 0.0001

    limits, _, _ = simulate(scaling_server, ticks=1200)
    assert max(limits[:190]) <= 64  # held back while the server was the limit
    assert limits[-1] >= 128  # and grown again after it scaled out


def test_littles_law_from_finished_items_raises_a_cold_start() -> None:
    # A cold first request (imports, a first connection) said 8; finished items say 100.
    controller = ConcurrencyController(start=8, cap=1024)
    assert controller.at_least(littles_law_width(0.05, 0.0005, cap=1024)) == 100
    assert controller.at_least(50) == 100  # never lowers it
    controller.saturated = True
    assert controller.at_least(400) == 100  # not while the GIL is the limit


def test_growth_waits_for_the_gil_to_be_judged() -> None:
    # Items that have just started have used no CPU, whatever they are about to do: growth
    # waits until the GIL has been judged, from a window of ticks or the running items' rate.
    controller = ConcurrencyController(start=64, cap=1024, interval=0.005)
    assert controller.tick(now=0.005, completed=0, work_cpu=0.0, latency=None, backlog=True) == 64
    grown = controller.tick(
        now=0.010, completed=0, work_cpu=0.0, latency=None, backlog=True, running_rate=0.01
    )
    assert grown == 128


def test_running_items_that_keep_the_gil_busy_stop_growth_at_once() -> None:
    # Sixty-four items of 30 ms of Python started together finish two seconds later: the
    # rate of the running ones, not the finished ones, says the GIL is the limit.
    controller = ConcurrencyController(start=64, cap=1024, interval=0.005)
    for tick in range(1, 20):
        limit = controller.tick(
            now=0.005 * tick,
            completed=0,
            work_cpu=0.0,
            latency=None,
            backlog=True,
            running_rate=0.97,
        )
        assert limit == 64
    assert controller.saturated


def test_latency_stretched_by_a_busy_gil_is_not_shed() -> None:
    # HTTP at 0.5 ms of CPU a request: the items' CPU hovered around 85% of a core, latency
    # rose with it, and each tick below 85% cut a quarter: 1,024 to 4 in 0.8 s, held there.
    controller = ConcurrencyController(start=1024, cap=1024, interval=0.005)
    controller.tick(now=0.0, completed=0, work_cpu=0.0, latency=0.054, backlog=True)
    for tick in range(1, 40):
        controller.tick(
            now=0.005 * tick,
            completed=10 * tick,
            work_cpu=0.7 * 0.005 * tick,
            latency=0.09,
            backlog=True,
            running_rate=0.7,
        )
    assert controller.limit == 1024


def test_a_saturated_far_end_is_cut_once_per_two_latencies() -> None:
    controller = ConcurrencyController(start=256, cap=1024, interval=0.005)
    controller.tick(now=0.0, completed=0, work_cpu=0.0, latency=0.05, backlog=True)
    limits = [
        controller.tick(
            now=0.005 * tick,
            completed=10 * tick,
            work_cpu=0.0,
            latency=0.2,
            backlog=True,
            running_rate=0.01,
        )
        for tick in range(1, 41)  # 0.2 s: the cuts come 0.1 s apart
    ]
    assert limits[0] == 192
    assert limits[-1] == 144
    assert set(limits) == {192, 144}


def test_once_the_gil_has_been_the_limit_one_low_reading_does_not_grow() -> None:
    # On one CPU, HTTP at 0.4 ms of CPU a request: the sampled rate swung between 0.6 and
    # 1.2 of a core from tick to tick, and each low tick between busy ones doubled the
    # limit, 256 to 1,024. Growth then needs two judgements in a row under the line.
    controller = ConcurrencyController(start=256, cap=1024, interval=0.005)
    readings = [0.95] + [0.7, 0.95] * 4

    def tick(number: int, rate: float) -> int:
        return controller.tick(
            now=0.005 * number,
            completed=0,
            work_cpu=0.0,
            latency=None,
            backlog=True,
            running_rate=rate,
        )

    limits = [tick(number, rate) for number, rate in enumerate(readings, 1)]
    assert limits == [256] * len(readings)
    assert tick(len(readings) + 1, 0.7) == 256  # one low reading
    assert tick(len(readings) + 2, 0.7) == 512  # two in a row
