"""Chunk sizes: single items until measured, then aimed at the target, within the caps."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from manyhands._core._chunking import Chunker


def test_single_items_until_something_is_measured() -> None:
    chunker = Chunker(workers=2, target=0.02)
    assert [chunker.next_size(None) for _ in range(5)] == [1, 1, 1, 1, 1]
    assert chunker.expected_seconds(10) is None


def test_growth_is_at_most_doubling() -> None:
    chunker = Chunker(workers=2, target=0.02)
    chunker.next_size(None)
    chunker.observe(1, 1e-7)  # tiny tasks: the target alone would allow 200,000
    sizes = [chunker.next_size(None) for _ in range(6)]
    assert sizes == [2, 4, 8, 16, 32, 64]


def test_aims_at_the_target_duration() -> None:
    chunker = Chunker(workers=2, target=0.02)
    chunker.next_size(None)
    chunker.observe(10, 0.001)  # 100 us per item: 200 items make 20 ms
    sizes = [chunker.next_size(None) for _ in range(12)]
    assert sizes[-1] == 200
    assert chunker.expected_seconds(200) == 0.02


def test_long_tasks_stay_single() -> None:
    chunker = Chunker(workers=2, target=0.02)
    chunker.observe(1, 0.25)
    assert chunker.next_size(8) == 1


def test_balance_cap_keeps_every_worker_busy_at_the_end() -> None:
    chunker = Chunker(workers=4, target=1.0)
    chunker.observe(1, 1e-3)  # 1,000 items make the target
    for _ in range(20):
        chunker.next_size(None)
    assert chunker.next_size(1600) == 200  # 1,600 left / (2 * 4 workers)
    assert chunker.next_size(3) == 125  # but no chunk under 1/8 of the target's worth


def test_long_items_are_split_down_to_single_items_at_the_end() -> None:
    chunker = Chunker(workers=4, target=1.0)
    chunker.observe(1, 0.1)  # 10 items make the target: the floor is one item
    for _ in range(20):
        chunker.next_size(None)
    assert chunker.next_size(16) == 2
    assert chunker.next_size(3) == 1


def test_bytes_cap_limits_chunks_of_large_items() -> None:
    chunker = Chunker(workers=2, target=10.0, max_bytes=8 << 20)
    chunker.observe(1, 1e-6)
    chunker.observe_bytes(4, 4 << 20)  # 1 MiB items
    for _ in range(20):
        size = chunker.next_size(None)
    assert size == 8


def test_fixed_chunksize_wins() -> None:
    chunker = Chunker(workers=2, target=0.02, fixed=37)
    chunker.observe(1, 5.0)
    assert chunker.next_size(10) == 37


@given(
    workers=st.integers(1, 64),
    per_item=st.floats(0, 10, allow_nan=False),
    remaining=st.one_of(st.none(), st.integers(0, 10**7)),
    rounds=st.integers(1, 30),
)
def test_sizes_are_always_within_bounds(
    workers: int, per_item: float, remaining: int | None, rounds: int
) -> None:
    chunker = Chunker(workers=workers, target=0.02)
    chunker.observe(3, per_item * 3)
    for _ in range(rounds):
        size = chunker.next_size(remaining)
        assert 1 <= size <= 8192
