"""What ``manyhands.bench`` found: a ``Timing`` per strategy and the ``Comparison`` of them,
with the verdict and its reasons in plain words, as a table, a dict, or (``_bench_chart``) a
chart."""

from __future__ import annotations

import html
import statistics
from dataclasses import dataclass
from typing import Any

from ._core._decision import Decision

__all__ = ["Comparison", "Timing", "seconds"]

#: auto agrees with the fastest strategy when it takes at most this much longer (the
#: planner's own promise: 1.1x the best explicit backend, plus 10 ms).
AGREES_FACTOR = 1.1
AGREES_SLACK = 0.01
#: Runs that differ by more than this fraction of their median are reported as spread.
WIDE_SPREAD = 0.1
#: A speedup below this is "did not help".
HELPS = 1.15


@dataclass(frozen=True)
class Timing:
    """One strategy's runs over the sample. A stopped run's time is its budget: a lower
    bound. ``cpu`` is CPU seconds of the whole process tree per run (the plain loop's: its
    own thread's, so that other threads of the process do not count as its computing);
    ``memory`` the tree's peak memory above what it held when the run started, in bytes,
    per run."""

    strategy: str
    label: str
    family: str
    workers: int | None
    runs: tuple[float, ...] = ()
    stopped: tuple[bool, ...] = ()
    cpu: tuple[float, ...] = ()
    memory: tuple[int, ...] = ()
    #: Why it could not run (its exception, in one line), or None.
    error: str | None = None

    @property
    def wall(self) -> float | None:
        """The median run's seconds (a stopped run counts as longer than any finished one);
        None when it never ran."""
        if not self.runs:
            return None
        return self._median()[0]

    @property
    def over_budget(self) -> bool:
        """Whether ``wall`` is only a lower bound: the median run was stopped."""
        return bool(self.runs) and self._median()[1]

    @property
    def measured(self) -> bool:
        """Ran to the end (in its median run), without an error."""
        return self.error is None and bool(self.runs) and not self.over_budget

    @property
    def spread(self) -> float:
        """(slowest - fastest) / median over the finished runs; 0 for fewer than two."""
        done = [run for run, stopped in zip(self.runs, self.stopped, strict=True) if not stopped]
        if len(done) < 2:
            return 0.0
        middle = statistics.median(done)
        return (max(done) - min(done)) / middle if middle > 0 else 0.0

    @property
    def cpus_busy(self) -> float | None:
        """CPU seconds over wall seconds, the median over finished runs (1.0: one CPU busy)."""
        ratios = [
            cpu / run
            for run, stopped, cpu in zip(self.runs, self.stopped, self.cpu, strict=True)
            if not stopped and run > 0
        ]
        return statistics.median(ratios) if ratios else None

    @property
    def peak_memory(self) -> int | None:
        return max(self.memory) if self.memory else None

    def _median(self) -> tuple[float, bool]:
        # Stopped runs sort after every finished one: the true time was longer still.
        ordered = sorted(
            zip(self.runs, self.stopped, strict=True), key=lambda run: (run[1], run[0])
        )
        run, stopped = ordered[(len(ordered) - 1) // 2]
        return run, stopped


@dataclass(frozen=True)
class Comparison:
    """What ``manyhands.bench(fn, items)`` measured: ``print()`` it for the table,
    ``to_dict()`` for the numbers, ``plot(path)`` for the chart; in Jupyter it shows the
    table and the chart."""

    function: str
    #: Items in the sample every strategy ran.
    sample: int
    #: Runs of each strategy (interleaved: every strategy once per round).
    repeats: int
    #: CPUs this process may use.
    cpus: int
    timings: tuple[Timing, ...]
    #: What auto decided in its runs, in order (a revision follows what it revises).
    decisions: tuple[Decision, ...] = ()
    coroutine: bool = False
    gil_enabled: bool = True
    #: Seconds a strategy's run could take before it was stopped; None: a few times the best
    #: run so far (see ``bench``).
    budget: float | None = None
    #: What auto chose in each of its runs ("thread xadaptive", "process x2"...).
    auto_choices: tuple[str, ...] = ()

    # -- the findings --------------------------------------------------------------------

    def timing(self, strategy: str) -> Timing:
        """The timing of the strategy named (``"loop"``, ``"threads:8"``...)."""
        for timing in self.timings:
            if timing.strategy == strategy:
                return timing
        known = ", ".join(t.strategy for t in self.timings)
        raise KeyError(f"no strategy {strategy!r} was run; these were: {known}")

    @property
    def baseline(self) -> Timing:
        """The loop: what every speedup is measured against."""
        return self.timing("loop")

    @property
    def fastest(self) -> Timing:
        """The strategy with the shortest median run among those that finished."""
        finished = [t for t in self.timings if t.measured]
        return min(finished, key=lambda t: t.wall or 0.0)

    def speedup(self, timing: Timing) -> float | None:
        """The loop's time over this strategy's (for a stopped one, an upper bound)."""
        loop, wall = self.baseline.wall, timing.wall
        if timing.error is not None or loop is None or not wall:
            return None
        return loop / wall

    @property
    def decision(self) -> Decision | None:
        """auto's last decision (after its revisions), or None when auto did not run."""
        return self.decisions[-1] if self.decisions else None

    @property
    def auto_agrees(self) -> bool | None:
        """Whether auto took at most 1.1x the fastest strategy's time plus 10 ms; None
        when auto was not run."""
        auto = next((t for t in self.timings if t.strategy == "auto"), None)
        if auto is None:
            return None
        fastest = self.fastest.wall or 0.0
        return auto.measured and (auto.wall or 0.0) <= AGREES_FACTOR * fastest + AGREES_SLACK

    @property
    def verdict(self) -> str:
        """The fastest strategy, what auto chose, and whether they agree, in one sentence."""
        fastest = self.fastest
        text = f"fastest: {fastest.label}, {_wall(fastest)}"
        if fastest.strategy != "loop":
            text += f" ({_times(self.speedup(fastest))} the loop)"
        auto = next((t for t in self.timings if t.strategy == "auto"), None)
        if auto is None:
            return text + "; auto was not run"
        chose = _chose(self.decision)
        if not auto.measured:
            return text + f"; auto ({chose}) {_wall(auto)}: they disagree"
        ratio = (auto.wall or 0.0) / (fastest.wall or 1.0)
        agree = "they agree" if self.auto_agrees else "they disagree"
        if auto is fastest:
            return text + f"; auto chose {chose}: it is the fastest"
        return text + f"; auto chose {chose} and took {_wall(auto)}, {ratio:.2f}x: {agree}"

    @property
    def reasons(self) -> tuple[str, ...]:
        """Why, in plain words: how much of an item is waiting, whether the GIL is the limit,
        what processes cost here."""
        from ._bench_reasons import reasons

        return reasons(self)

    @property
    def notes(self) -> tuple[str, ...]:
        """What to keep in mind: side effects, strategies stopped or failed."""
        runs = sum(len(t.runs) for t in self.timings)
        notes = [
            f"fn ran up to {runs} times on each of the {self.sample} sampled items (once per "
            "run of each strategy): mind its side effects"
        ]
        stopped = [t.label for t in self.timings if t.over_budget]
        if stopped:
            limit = f"{self.budget:g} s" if self.budget else "a few times the best run so far"
            notes.append(f"stopped past the budget ({limit}): {', '.join(stopped)}")
        notes.extend(f"{t.label} failed: {t.error}" for t in self.timings if t.error)
        if len(set(self.auto_choices)) > 1:
            notes.append("auto chose differently between its runs: " + ", ".join(self.auto_choices))
        wide = [t.label for t in self.timings if t.spread > WIDE_SPREAD and t.measured]
        if wide:
            notes.append(
                "runs differed by more than 10% for: " + ", ".join(wide) + " (the machine is "
                "busy or the function's time varies; the median is shown)"
            )
        return tuple(notes)

    # -- as text, data, chart ------------------------------------------------------------

    def rows(self) -> list[tuple[str, ...]]:
        """The table's rows (strings), the header first."""
        rows: list[tuple[str, ...]] = [
            ("strategy", "wall", "speedup", "CPUs busy", "memory", "per item", "spread")
        ]
        for timing in self.timings:
            if timing.error is not None:
                rows.append((timing.label, "failed", "", "", "", "", ""))
                continue
            busy = timing.cpus_busy
            memory = timing.peak_memory
            speedup = self.speedup(timing)
            per_item = (timing.wall or 0.0) / self.sample
            rows.append(
                (
                    timing.label,
                    _wall(timing),
                    ("< " if timing.over_budget else "") + _times(speedup),
                    "" if busy is None else f"{busy:.2f}",
                    "" if memory is None else f"+{memory / 2**20:.0f} MB",
                    ("> " if timing.over_budget else "") + seconds(per_item),
                    f"{timing.spread:.0%}" if timing.spread > WIDE_SPREAD else "",
                )
            )
        return rows

    def __str__(self) -> str:
        head = (
            f"manyhands.bench: {self.function} on {self.sample} items, {self.repeats} "
            f"run{'s' if self.repeats != 1 else ''} of each strategy, {self.cpus} "
            f"CPU{'s' if self.cpus != 1 else ''}"
        )
        rows = self.rows()
        widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
        lines = [head, ""]
        for row in rows:
            cells = [row[0].ljust(widths[0])]
            cells += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
            lines.append("  ".join(cells).rstrip())
        lines += ["", self.verdict]
        lines += ["why:", *(f"  - {reason}" for reason in self.reasons)]
        lines += ["notes:", *(f"  - {note}" for note in self.notes)]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Comparison of {self.function} on {self.sample} items: {self.verdict}>"

    def to_dict(self) -> dict[str, Any]:
        """The numbers, as plain data (JSON-ready): seconds, bytes, ratios."""
        decision = self.decision
        return {
            "function": self.function,
            "sample": self.sample,
            "repeats": self.repeats,
            "cpus": self.cpus,
            "gil_enabled": self.gil_enabled,
            "budget": self.budget,
            "strategies": [
                {
                    "name": t.strategy,
                    "label": t.label,
                    "family": t.family,
                    "workers": t.workers,
                    "wall": t.wall,
                    "over_budget": t.over_budget,
                    "runs": list(t.runs),
                    "stopped": list(t.stopped),
                    "speedup": self.speedup(t),
                    "cpus_busy": t.cpus_busy,
                    "cpu_seconds": list(t.cpu),
                    "peak_memory": t.peak_memory,
                    "per_item": None if t.wall is None else t.wall / self.sample,
                    "spread": t.spread,
                    "error": t.error,
                }
                for t in self.timings
            ],
            "fastest": self.fastest.strategy,
            "auto": None
            if decision is None
            else {
                "backend": decision.backend,
                "workers": decision.workers,
                "chunksize": decision.chunksize,
                "reasons": list(decision.reasons),
                "revisions": len(self.decisions) - 1,
                "agrees": self.auto_agrees,
            },
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "notes": list(self.notes),
        }

    def plot(self, path: Any = None) -> Any:
        """The chart: wall time per strategy with the speedups marked, and the thread-width
        sweep; saved to ``path`` (PNG, SVG, PDF: by its suffix) when given. Returns the
        matplotlib ``Figure``. Needs matplotlib: ``pip install 'manyhands[plot]'``."""
        from ._bench_chart import plot

        return plot(self, path)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        """Jupyter: the table and, with matplotlib, the chart inline."""
        from ._bench_chart import inline_png

        rows = self.rows()
        cells = "".join(
            "<tr>" + "".join(f"<{tag}>{html.escape(cell)}</{tag}>" for cell in row) + "</tr>"
            for tag, row in (("th" if i == 0 else "td", row) for i, row in enumerate(rows))
        )
        reasons = "".join(f"<li>{html.escape(reason)}</li>" for reason in self.reasons)
        notes = "".join(f"<li>{html.escape(note)}</li>" for note in self.notes)
        png, missing = inline_png(self)
        chart = (
            f'<img alt="manyhands.bench chart" src="data:image/png;base64,{png}"/>'
            if png
            else f"<p><em>{html.escape(missing)}</em></p>"
        )
        body = (
            f"<p><b>manyhands.bench</b>: {html.escape(self.function)} on {self.sample} items, "
            f"{self.repeats} runs of each strategy, {self.cpus} CPUs</p>"
            f"<table>{cells}</table><p>{html.escape(self.verdict)}</p>"
            f"<p>why:</p><ul>{reasons}</ul><p>notes:</p><ul>{notes}</ul>{chart}"
        )
        return {"text/plain": str(self), "text/html": f"<div>{body}</div>"}


def seconds(value: float) -> str:
    """``1.23 s``, ``12.3 ms``, ``45 µs``, ``120 ns``."""
    if value >= 1:
        return f"{value:.2f} s"
    if value >= 1e-3:
        return f"{value * 1e3:.3g} ms"
    if value >= 1e-6:
        return f"{value * 1e6:.3g} µs"
    return f"{value * 1e9:.3g} ns"


def _wall(timing: Timing) -> str:
    if timing.error is not None:
        return "failed"
    if timing.wall is None:
        return "not run"
    return ("> " if timing.over_budget else "") + seconds(timing.wall)


def _times(ratio: float | None) -> str:
    if ratio is None:
        return ""
    return f"{ratio:.2f}x" if ratio < 10 else f"{ratio:.1f}x"


def _chose(decision: Decision | None) -> str:
    if decision is None:
        return "(no decision recorded)"
    workers = "adaptive" if decision.workers is None else str(decision.workers)
    return f"{decision.backend} (workers: {workers})"
