"""`make demo` runs examples/lecture.py; here it runs fast, as a real subprocess."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).parent.parent / "examples" / "lecture.py"


def test_demo_prints_the_table_and_loses_no_update_through_manyhands() -> None:
    out = subprocess.run(
        [sys.executable, str(DEMO), "--scale", "0.04"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    for label in [
        "sequential loop",
        "one thread per task",
        "ThreadPoolExecutor(max_workers=10)",
        "multiprocessing.Pool()",
        "manyhands.map(slow, items)",
    ]:
        assert re.search(re.escape(label) + r".*\d+\.\d\d s\s+\d+\.\dx", out), label
    assert re.search(r"manyhands, no lock:\s+5000 of 5000 \(0 lost\)", out), out
    assert "chose: thread (workers: adaptive" in out
