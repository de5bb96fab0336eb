#!/usr/bin/env python3
"""Write README.md's configuration reference from ``Settings.model_fields``.

The table (flag, environment variable, config-file key, default, description) is generated from the
same fields ``cli.py`` turns into ``--help``, so the README cannot drift from the code. It replaces
the README text between ``<!-- config-reference:start -->`` and ``<!-- config-reference:end -->``.

Usage:
    .venv/bin/python scripts/config_reference.py           # rewrite the README region
    .venv/bin/python scripts/config_reference.py --check   # exit 1 with a diff when it is stale
    .venv/bin/python scripts/config_reference.py --print   # the table on stdout
"""

from __future__ import annotations

import argparse
import difflib
import sys
import types
import typing
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
START = "<!-- config-reference:start -->"
END = "<!-- config-reference:end -->"
FIX = "run .venv/bin/python scripts/config_reference.py"

try:  # the installed package, or the source tree when run with another python
    from dynamo.nemo_switchyard import config
except ImportError:  # pragma: no cover - depends on how it is run
    sys.path.insert(0, str(ROOT / "src"))
    from dynamo.nemo_switchyard import config

from pydantic import SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import NoDecode


def _unwrap(annotation: Any) -> Any:
    """The annotation without ``| None`` (``X | None`` -> ``X``)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _kind(field: FieldInfo) -> str:
    """bool, list, dict, choice or value: what decides how the setting is written in each place."""
    annotation = _unwrap(field.annotation)
    origin = typing.get_origin(annotation)
    if annotation is bool:
        return "bool"
    if origin is list or annotation is list:
        return "list"
    if origin is dict or annotation is dict:
        return "dict"
    if origin is typing.Literal:
        return "choice"
    return "value"


def _is_secret(field: FieldInfo) -> bool:
    annotation = _unwrap(field.annotation)
    return annotation is SecretStr or SecretStr in typing.get_args(annotation)


def _code(text: object) -> str:
    return f"`{text}`"


def _default(field: FieldInfo) -> str:
    """The default as a reader would type it; secrets' defaults are never shown."""
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    if field.is_required() or "required" in extra:
        return str(extra.get("required", "required"))
    if _is_secret(field):
        return "none"
    value = field.get_default(call_default_factory=True)
    if value is None or value == []:
        return "none"
    if isinstance(value, bool):
        return _code(str(value).lower())
    if isinstance(value, list):
        return _code(",".join(str(item) for item in value))
    if isinstance(value, dict):
        return _code("{}") if not value else _code(value)
    return _code(value)


def _flag(name: str, kind: str) -> str:
    flag = "--" + name.replace("_", "-")
    if kind == "bool":
        return f"{_code(flag)}, {_code('--no-' + flag[2:])}"
    if kind == "dict":
        return _code(flag + " JSON")
    if kind == "list":
        return f"{_code(flag)} (repeatable)"
    return _code(flag)


def _environment(name: str, field: FieldInfo, kind: str) -> str:
    variable = _code(config.ENV_PREFIX + name.upper())
    if kind == "dict":
        return f"{variable} (JSON object)"
    if kind == "list":  # NoDecode: the field's own validator splits the string (comma-separated or JSON)
        return f"{variable} ({'comma-separated or JSON list' if NoDecode in field.metadata else 'JSON list'})"
    if kind == "bool":
        return f"{variable} (`true`/`false`)"
    return variable


def _file_key(name: str, kind: str) -> str:
    key = _code(name.replace("_", "-"))
    return {"dict": f"{key} (mapping)", "list": f"{key} (list)"}.get(kind, key)


def _description(field: FieldInfo, kind: str) -> str:
    text = " ".join((field.description or "").split())
    if kind == "choice":
        choices = ", ".join(_code(choice) for choice in typing.get_args(_unwrap(field.annotation)))
        text = f"{text} One of {choices}.".strip()
    return text


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def table() -> str:
    """The generated region's Markdown (without the markers), one row per setting in field order."""
    rows = [
        "<!-- generated from Settings by scripts/config_reference.py: edit the field descriptions in config.py, then rerun it -->",
        "",
        "| flag | environment variable | config-file key | default | description |",
        "|---|---|---|---|---|",
        f"| `--config` | `{config.ENV_PREFIX}CONFIG` | | none | YAML or TOML file with the settings below (keys as in the config-file column; underscores work too). |",
    ]
    for name, field in config.Settings.model_fields.items():
        kind = _kind(field)
        cells = (_flag(name, kind), _environment(name, field, kind), _file_key(name, kind), _default(field), _description(field, kind))
        rows.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    return "\n".join(rows) + "\n"


def render(readme: str) -> str:
    """README text with the region between the markers replaced by the current table."""
    if readme.count(START) != 1 or readme.count(END) != 1 or readme.index(START) > readme.index(END):
        raise SystemExit(f"{README}: needs exactly one {START} ... {END} region, in that order")
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{table()}{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 and print a diff when the README is stale")
    mode.add_argument("--print", action="store_true", help="print the table instead of writing the README")
    args = parser.parse_args(argv)
    if args.print:
        sys.stdout.write(table())
        return 0
    current = README.read_text(encoding="utf-8")
    wanted = render(current)
    if args.check:
        if current == wanted:
            return 0
        diff = difflib.unified_diff(current.splitlines(True), wanted.splitlines(True), "README.md", "README.md (generated)")
        sys.stdout.writelines(diff)
        print(f"\nREADME.md's configuration reference is stale: {FIX}", file=sys.stderr)
        return 1
    if current != wanted:
        README.write_text(wanted, encoding="utf-8")
        print("README.md: configuration reference updated")
    else:
        print("README.md: configuration reference up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
