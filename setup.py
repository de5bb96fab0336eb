"""Compile the request path with mypyc when building a wheel or a regular install.

The modules below are plain, type-annotated Python; mypyc turns them into C extensions that
run the same code with ~30 % fewer instructions per proxied request (`bench/instructions.py`).
Everything else (configuration, tools, the other routers) stays interpreted.

The source stays the truth: editable installs (`pip install -e .`) are never compiled, so an
edit takes effect at once; `SWITCHYARD_PURE_PYTHON=1` builds a pure-Python wheel; and without a
C compiler the build warns and falls back to pure Python.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from pathlib import Path

from setuptools import setup

# The per-request path: HTTP in and out, prompt, decision, metrics, and the lexical router (the cheap one).
COMPILED = [
    "wire", "body", "usage", "cost", "errors", "prompt", "auth", "logs", "metrics",
    "decision", "upstream", "protocol", "app", "routers/lexical",
]
BUILDS = {"bdist_wheel", "build", "build_ext", "install"}  # not metadata, sdist or editable_wheel


def _compiler() -> str | None:
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    return shutil.which(cc.split()[0])


def ext_modules(argv: list[str]) -> list:
    """The C extensions to build for this setup.py command line (none: a pure-Python build)."""
    if not BUILDS & set(argv[1:]) or "editable_wheel" in argv:
        return []
    if os.environ.get("SWITCHYARD_PURE_PYTHON", "") not in ("", "0"):
        print("switchyard: SWITCHYARD_PURE_PYTHON is set, building pure Python", file=sys.stderr)
        return []
    if sys.implementation.name != "cpython" or _compiler() is None:
        print("switchyard: WARNING no C compiler (or not CPython): building pure Python, ~1.3x slower per request;"
              " install gcc to compile the request path", file=sys.stderr)
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:  # e.g. pip install --no-build-isolation without mypy: the build-system requires it
        print("switchyard: WARNING mypy (mypyc) is not installed: building pure Python, ~1.3x slower per request;"
              " pip install mypy==2.4.1 to compile the request path", file=sys.stderr)
        return []
    os.environ["MYPYPATH"] = "src"  # module names from src/: dynamo.nemo_switchyard.*
    compiled = [f"src/dynamo/nemo_switchyard/{name}.py" for name in COMPILED]
    # Every module of the package is read from this tree, the interpreted ones too: left to the
    # import search, mypy would type-check the compiled modules against an older switchyard already
    # installed in the environment (a PEP 561 package: it ships py.typed), and fail the upgrade.
    package = sorted(str(path) for path in Path("src/dynamo/nemo_switchyard").rglob("*.py"))
    options = ["--ignore-missing-imports", "--explicit-package-bases"]
    return mypycify(options + package, only_compile_paths=compiled, opt_level="3", group_name="dynamo_nemo_switchyard")


if __name__ == "__main__":  # as setuptools runs it; tests/test_setup.py imports it
    setup(ext_modules=ext_modules(sys.argv))
