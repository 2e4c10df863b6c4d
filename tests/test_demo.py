"""`make demo` runs examples/lecture.py; here it runs fast, as a real subprocess."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).parent.parent / "examples" / "lecture.py"


def test_demo_prints_the_comparison_writes_the_chart_and_loses_no_update(tmp_path: Path) -> None:
    chart = tmp_path / "lecture.png"
    out = subprocess.run(
        [sys.executable, str(DEMO), "--scale", "0.04", "--chart", str(chart)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    assert out.splitlines()[2].startswith("manyhands.bench: slow on 20 items")
    for label in [
        "loop (for item in items)",
        "a thread per item (start, join)",
        "ThreadPoolExecutor(max_workers=10)",
        "multiprocessing.Pool()",
        "manyhands auto",
        "manyhands threads x2",  # the first width; wider ones run while they pay (timing)
        "manyhands processes x2",
    ]:
        # a wall time (or "> budget" for one stopped) and a speedup on each strategy's row
        assert re.search(re.escape(label) + r"\s+>? ?\d+(\.\d+)? m?s\s+<? ?\d+\.\d+x", out), label
    assert "auto chose thread (workers: adaptive)" in out
    assert f"The chart is in {chart}" in out
    assert chart.read_bytes()[:4] == b"\x89PNG"
    assert re.search(r"manyhands, no lock:\s+5000 of 5000 \(0 lost\)", out), out
    assert re.search(r"open \S*examples/lecture\.ipynb in Jupyter", out), out
