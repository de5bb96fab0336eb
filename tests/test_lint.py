"""The code passes ruff with pyproject's ``[tool.ruff]`` rules: no unused or undefined names, no
unsorted imports, no syntax that only some Python versions accept."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_finds_nothing() -> None:
    assert importlib.util.find_spec("ruff") is not None, "ruff is missing: it is in the test extra (pip install -e '.[test]')"
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "src", "tests", "bench", "scripts"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, f"ruff found problems (ruff check --fix mends the import order):\n{result.stdout}{result.stderr}"
