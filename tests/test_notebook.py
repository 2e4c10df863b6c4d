"""In a real Jupyter kernel: notebook-defined functions run on processes; progress is a widget."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

jupyter_client = pytest.importorskip("jupyter_client")


@pytest.fixture
def kernel() -> Iterator[Any]:
    manager, client = jupyter_client.manager.start_new_kernel(kernel_name="python3")
    try:
        yield client
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def run_cell(client: Any, code: str) -> tuple[str, list[dict[str, Any]]]:
    """Execute ``code``; return what it printed and every display message it sent."""
    printed: list[str] = []
    displays: list[dict[str, Any]] = []

    def hook(message: dict[str, Any]) -> None:
        kind = message["msg_type"]
        if kind == "stream":
            printed.append(message["content"]["text"])
        elif kind in ("display_data", "update_display_data"):
            displays.append(message["content"])
        elif kind == "error":
            printed.append("\n".join(message["content"]["traceback"]))

    reply = client.execute_interactive(code, output_hook=hook, timeout=120)
    assert reply["content"]["status"] == "ok", "".join(printed)
    return "".join(printed), displays


def test_function_defined_in_a_notebook_runs_in_processes(kernel: Any) -> None:
    printed, _ = run_cell(
        kernel,
        "import manyhands as mh\n"
        "offset = 10\n"
        "def shift(x):\n"
        "    return x + offset\n"
        "print(mh.map(shift, range(5), backend='process', workers=2))\n",
    )
    assert "[10, 11, 12, 13, 14]" in printed


def test_progress_is_a_widget_in_a_notebook(kernel: Any) -> None:
    _, displays = run_cell(
        kernel,
        "import manyhands as mh\n"
        "result = mh.map(abs, range(-20, 0), backend='thread', progress=True)\n",
    )
    widget_views = [d for d in displays if "application/vnd.jupyter.widget-view+json" in d["data"]]
    assert widget_views, displays


def test_worker_prints_and_logs_appear_in_the_cell(kernel: Any) -> None:
    printed, _ = run_cell(
        kernel,
        "import logging, sys\n"
        "import manyhands as mh\n"
        "form = '%(levelname)s %(name)s item=%(manyhands_item)s: %(message)s'\n"
        "logging.basicConfig(level=logging.INFO, stream=sys.stdout, force=True, format=form)\n"
        "def chatty(x):\n"
        "    print('hello from item', x)\n"
        "    logging.getLogger('nb').info('info from item %d', x)\n"
        "    return x\n"
        "for backend in ('process', 'thread'):\n"
        "    print(backend, mh.map(chatty, range(3), backend=backend, workers=2))\n",
    )
    for backend in ("process", "thread"):
        assert f"{backend} [0, 1, 2]" in printed
    lines = printed.splitlines()
    for x in range(3):
        assert lines.count(f"hello from item {x}") == 2  # once per backend, whole
        assert lines.count(f"INFO nb item={x}: info from item {x}") == 2


def test_a_comparison_shows_its_table_and_chart_in_the_notebook(kernel: Any) -> None:
    pytest.importorskip("matplotlib")
    _, displays = run_cell(
        kernel,
        "import time\n"
        "import manyhands as mh\n"
        "def nap(x):\n"
        "    time.sleep(0.01)\n"
        "    return x\n"
        "comparison = mh.bench(nap, range(8), repeats=1, strategies=['auto', 'threads:4'])\n"
        "display(comparison)\n",
    )
    shown = [d["data"] for d in displays if "text/html" in d["data"]]
    assert any("<table>" in d["text/html"] for d in shown), displays
    html = next(d["text/html"] for d in shown if "<table>" in d["text/html"])
    assert "manyhands threads x4" in html
    assert "fastest: " in html
    assert 'src="data:image/png;base64,' in html  # the chart, inline
    assert shown[-1]["text/plain"].startswith("manyhands.bench: nap on 8 items")
    # progress=True (the default) is a widget here, as map's bar is
    assert any("application/vnd.jupyter.widget-view+json" in d["data"] for d in displays)


LECTURE = Path(__file__).parent.parent / "examples" / "lecture.ipynb"


def test_the_lecture_notebook_runs_top_to_bottom_and_shows_its_lessons(kernel: Any) -> None:
    notebook = json.loads(LECTURE.read_text(encoding="utf-8"))
    cells = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    # committed without outputs: what it shows comes from the run
    assert all(cell["outputs"] == [] and cell["execution_count"] is None for cell in cells)
    printed = ""
    shown: list[dict[str, Any]] = []
    for cell in cells:
        text, displays = run_cell(kernel, "".join(cell["source"]))  # each must end "ok"
        printed += text
        shown += displays
    lost = re.search(r"no lock: total (\d+) of 5000, (\d+) updates lost", printed)
    assert lost is not None, printed
    assert int(lost.group(2)) > 0  # the race loses updates
    assert "with a lock: total 5000 of 5000, 0 updates lost" in printed
    assert "manyhands, no lock: total 5000 of 5000, 0 updates lost" in printed
    assert "the GIL is " in printed
    assert "manyhands processes: " in printed  # a function defined in a cell, on processes
    tables = [d["data"]["text/html"] for d in shown if "<table>" in d["data"].get("text/html", "")]
    assert len(tables) == 2  # the two comparisons, each with its chart inline
    assert all('src="data:image/png;base64,' in table for table in tables)
    assert "fetch_like on 40 items" in tables[0]
    assert "crunch on 12 items" in tables[1]
