"""Functions and classes from a script's __main__ reach process workers by value, and the
script itself is never re-run by them, so it needs no `if __name__ == "__main__":` guard."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import manyhands as mh

    # A side effect at import: counts how often this script's top level runs.
    with open(sys.argv[1], "a") as log:
        log.write("ran\\n")

    class Point:
        def __init__(self, x, y):
            self.x, self.y = x, y

    def norm2(point):
        return Point(point.x * point.x, point.y * point.y)

    scale = 3
    results = mh.map(lambda p: norm2(Point(p.x * scale, p.y)), [Point(i, 1) for i in range(20)],
                     backend="process", workers=2)
    assert all(type(r) is Point for r in results), [type(r) for r in results]
    print(sum(r.x for r in results))
    """
)


def test_script_without_main_guard_runs_once(tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    log = tmp_path / "runs.log"
    out = subprocess.run(
        [sys.executable, str(script), str(log)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(sum((3 * i) ** 2 for i in range(20)))
    assert log.read_text() == "ran\n"  # the workers never re-ran the script
