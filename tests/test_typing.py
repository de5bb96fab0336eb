"""The package type-checks with mypy (pyproject's ``[tool.mypy]``), so "type hints throughout" stays true.

mypyc checks the compiled modules when it builds them; this covers every module (the tools, training,
configuration, RouteLLM's adapter) in the base install. Not run where torch is installed (RouteLLM's
environment): mypy would then check torch's own sources too, which takes minutes.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(importlib.util.find_spec("torch") is not None, reason="torch is installed: mypy would check its sources too")
def test_the_package_type_checks(tmp_path: Path) -> None:
    assert importlib.util.find_spec("mypy") is not None, "mypy is missing: it is in the test extra (pip install -e '.[test]')"
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "mypy-cache"), "src/dynamo/nemo_switchyard"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, f"mypy found type errors:\n{result.stdout}{result.stderr}"
