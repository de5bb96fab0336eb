"""setup.py: which installs compile the request path with mypyc, and that the compiled one is what runs."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

import dynamo.nemo_switchyard as package

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def setup_py(monkeypatch: pytest.MonkeyPatch):
    """setup.py as a module (its setup() call only runs as __main__, as setuptools runs it)."""
    monkeypatch.delenv("SWITCHYARD_PURE_PYTHON", raising=False)
    spec = importlib.util.spec_from_file_location("switchyard_setup", ROOT / "setup.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_compiled_modules_exist(setup_py) -> None:
    for name in setup_py.COMPILED:
        assert (ROOT / "src" / "dynamo" / "nemo_switchyard" / f"{name}.py").is_file(), name


@pytest.mark.parametrize(
    "argv",
    [
        ["setup.py", "egg_info"],  # metadata: nothing to build
        ["setup.py", "dist_info", "--output-dir", "x"],
        ["setup.py", "sdist"],
        ["setup.py", "editable_wheel", "--dist-dir", "x"],  # pip install -e: edits must take effect
    ],
)
def test_no_compilation_outside_builds(setup_py, argv: list[str]) -> None:
    assert setup_py.ext_modules(argv) == []


def test_pure_python_on_request(setup_py, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SWITCHYARD_PURE_PYTHON", "1")
    assert setup_py.ext_modules(["setup.py", "bdist_wheel"]) == []
    assert "SWITCHYARD_PURE_PYTHON" in capsys.readouterr().err


def test_pure_python_without_a_compiler(setup_py, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CC", "no-such-compiler-here")
    assert setup_py.ext_modules(["setup.py", "bdist_wheel"]) == []
    assert "no C compiler" in capsys.readouterr().err


def test_pure_python_without_mypyc(setup_py, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "mypyc.build", None)  # import fails, as without mypy installed
    monkeypatch.setattr(setup_py, "_compiler", lambda: "/usr/bin/cc")
    assert setup_py.ext_modules(["setup.py", "bdist_wheel"]) == []
    assert "mypyc" in capsys.readouterr().err


def test_mypyc_reads_the_whole_package_from_this_tree(setup_py, monkeypatch: pytest.MonkeyPatch) -> None:
    """Upgrading over an installed switchyard must not type-check the new modules against the old ones."""
    seen: dict[str, object] = {}

    def mypycify(paths, **kwargs):
        seen.update(paths=paths, **kwargs)
        return ["extension"]

    build = type(sys)("mypyc.build")
    build.mypycify = mypycify  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "mypyc.build", build)
    monkeypatch.setattr(setup_py, "_compiler", lambda: "/usr/bin/cc")
    monkeypatch.chdir(ROOT)
    assert setup_py.ext_modules(["setup.py", "bdist_wheel"]) == ["extension"]
    sources = {path for path in seen["paths"] if path.endswith(".py")}  # type: ignore[attr-defined]
    assert sources == {str(path.relative_to(ROOT)) for path in (ROOT / "src" / "dynamo" / "nemo_switchyard").rglob("*.py")}
    assert seen["only_compile_paths"] == [f"src/dynamo/nemo_switchyard/{name}.py" for name in setup_py.COMPILED]


def test_build_names_what_runs() -> None:
    compiled = importlib.util.find_spec("dynamo.nemo_switchyard.app").origin.endswith(".so")
    assert package.build() == ("compiled" if compiled else "pure Python")


@pytest.mark.skipif(os.environ.get("SWITCHYARD_EXPECT_COMPILED") != "1", reason="not the compiled test run (scripts/test.sh sets it)")
def test_the_compiled_run_runs_compiled_code(setup_py) -> None:
    """The second pass of scripts/test.sh must test the C extensions, not a pure install by mistake."""
    for name in setup_py.COMPILED:
        module = "dynamo.nemo_switchyard." + name.replace("/", ".")
        origin = importlib.util.find_spec(module).origin
        assert origin is not None and origin.endswith(".so"), f"{module} runs from {origin}"
    assert package.build() == "compiled"
