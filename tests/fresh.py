"""Code run in a fresh interpreter, as a user's script: what a first call imports and prints."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).parent


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` with ``python -c`` (the tests' modules importable); fail if it fails."""
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path])},
    )
