"""README.md's configuration reference is the one scripts/config_reference.py generates from Settings,
so a setting added, renamed or re-described in config.py cannot be missing from the docs."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("config_reference", ROOT / "scripts" / "config_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    return load_generator()


def test_readme_configuration_reference_is_current(generator: ModuleType) -> None:
    readme = generator.README.read_text(encoding="utf-8")
    if generator.render(readme) != readme:
        pytest.fail(f"README.md's configuration reference differs from Settings: {generator.FIX}")


def test_every_setting_has_a_row_with_its_environment_variable(generator: ModuleType) -> None:
    from dynamo.nemo_switchyard.config import ENV_PREFIX, Settings

    table = generator.table()
    for name in Settings.model_fields:
        assert f"`--{name.replace('_', '-')}" in table and f"`{ENV_PREFIX}{name.upper()}`" in table, name


def test_secret_defaults_are_never_shown(generator: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import Field, SecretStr
    from pydantic.fields import FieldInfo

    field: FieldInfo = Field(SecretStr("hunter2"), description="A key.")  # type: ignore[assignment]
    field.annotation = SecretStr | None  # what the model would have set
    assert generator._default(field) == "none"


def test_check_mode_prints_a_diff_and_fails_when_stale(generator: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    stale = tmp_path / "README.md"
    stale.write_text(f"# x\n{generator.START}\n| old table |\n{generator.END}\nafter\n", encoding="utf-8")
    monkeypatch.setattr(generator, "README", stale)
    assert generator.main(["--check"]) == 1
    captured = capsys.readouterr()
    assert "-| old table |" in captured.out and generator.FIX in captured.err
    assert generator.main([]) == 0  # rewrites only the region
    text = stale.read_text(encoding="utf-8")
    assert text.startswith("# x\n") and text.endswith(f"{generator.END}\nafter\n") and "| old table |" not in text
    assert generator.main(["--check"]) == 0


def test_script_runs_on_its_own() -> None:
    import subprocess

    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "config_reference.py"), "--check"], capture_output=True, text=True, timeout=60)
    assert result.returncode in (0, 1), result.stderr  # 1 is the staleness test's business
