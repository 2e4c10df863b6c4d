"""The chart of a ``Comparison``: wall time per strategy (one bar each, the speedup over the
loop written beside it), and the thread-width sweep. Drawn on a ``matplotlib.figure.Figure``
of its own, never through pyplot: no global backend is chosen or changed, so it works the
same in a script, a server and a notebook."""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING, Any

from ._errors import MissingDependency

if TYPE_CHECKING:
    from ._bench_report import Comparison

__all__ = ["INSTALL", "inline_png", "plot"]

INSTALL = "pip install 'manyhands[plot]'"

#: Colours by family (matplotlib's default cycle, so that they read as its usual palette).
COLOURS = {
    "loop": "#7f7f7f",
    "auto": "#d62728",
    "threads": "#1f77b4",
    "processes": "#2ca02c",
    "asyncio": "#9467bd",
    "lecture": "#ff7f0e",
}


def _figure_class() -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise MissingDependency(
            f"Comparison.plot() draws with matplotlib, which is not installed here: {INSTALL}"
        ) from exc
    return Figure


def plot(comparison: Comparison, path: Any = None) -> Any:
    figure_class = _figure_class()
    timings = list(comparison.timings)
    sweep = [t for t in timings if t.family == "threads" and t.measured]
    panels = 2 if len(sweep) >= 2 else 1
    height = max(2.5, 0.42 * len(timings) + 1.3)
    figure = figure_class(figsize=(6.5 * panels, height), layout="constrained")
    bars = figure.add_subplot(1, panels, 1)
    walls = [0.0 if t.error is not None else (t.wall or 0.0) for t in timings]
    drawn = bars.barh(
        range(len(timings)),
        walls,
        color=[COLOURS.get(t.family, "#8c564b") for t in timings],
        hatch=None,
    )
    for bar, timing in zip(drawn, timings, strict=True):
        if timing.over_budget:
            bar.set_hatch("//")
            bar.set_alpha(0.6)
    bars.set_yticks(range(len(timings)), [t.label for t in timings])
    bars.invert_yaxis()  # the table's order, top to bottom
    stopped = " (hatched: stopped past the budget)" if any(t.over_budget for t in timings) else ""
    bars.set_xlabel(f"wall time, seconds (median run){stopped}")
    bars.set_title(f"{comparison.function} on {comparison.sample} items, {comparison.cpus} CPUs")
    top = max(walls) if walls else 1.0
    for row, (timing, wall) in enumerate(zip(timings, walls, strict=True)):
        bars.text(wall + top * 0.01, row, _mark(comparison, timing), va="center", fontsize=8)
    bars.set_xlim(0, top * 1.25 or 1.0)
    if panels == 2:
        _sweep(figure.add_subplot(1, 2, 2), comparison, sweep)
    if path is not None:
        figure.savefig(path, dpi=110)
    return figure


def _mark(comparison: Comparison, timing: Any) -> str:
    if timing.error is not None:
        return "failed"
    speedup = comparison.speedup(timing)
    if speedup is None:
        return ""
    text = f"{speedup:.1f}x" if speedup >= 10 else f"{speedup:.2f}x"
    return f"> {timing.wall:.2g} s (< {text})" if timing.over_budget else text


def _sweep(axes: Any, comparison: Comparison, sweep: list[Any]) -> None:
    widths = [t.workers for t in sweep]
    axes.plot(
        widths, [t.wall for t in sweep], marker="o", color=COLOURS["threads"], label="threads"
    )
    processes = [t for t in comparison.timings if t.family == "processes" and t.measured]
    if processes:
        axes.plot(
            [t.workers for t in processes],
            [t.wall for t in processes],
            marker="s",
            color=COLOURS["processes"],
            label="processes",
        )
    stopped = [t for t in comparison.timings if t.family == "threads" and t.over_budget]
    if stopped:  # what the budget cut short: a lower bound, drawn as such
        axes.plot(
            [t.workers for t in stopped],
            [t.wall for t in stopped],
            linestyle="none",
            marker="^",
            markerfacecolor="none",
            color=COLOURS["threads"],
            label="threads, stopped (more than)",
        )
    loop = comparison.baseline.wall
    if loop:
        axes.axhline(loop, color=COLOURS["loop"], linestyle="--", label="loop")
    axes.set_xscale("log", base=2)
    ticks = sorted({*widths, *(t.workers for t in processes), *(t.workers for t in stopped)})
    axes.set_xticks(ticks, [str(width) for width in ticks])
    axes.minorticks_off()
    axes.set_xlabel("workers")
    axes.set_ylabel("wall time, seconds")
    axes.set_ylim(bottom=0)
    axes.set_title("wider: where it stops paying")
    axes.legend()


def inline_png(comparison: Comparison) -> tuple[str, str]:
    """The chart as base64 PNG for a notebook, or ("", why not)."""
    try:
        figure = plot(comparison)
    except MissingDependency as exc:
        return "", str(exc)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return base64.b64encode(buffer.getvalue()).decode("ascii"), ""
