"""The ``switchyard`` command and ``python -m dynamo.nemo_switchyard``.

Flags are generated from ``Settings`` so flags, environment variables and config
file keys always match. Only flags the user typed are passed on, which is what
lets environment and file values show through (flag > env > file > default).
"""

from __future__ import annotations

import argparse
import os
import sys
import types
import typing
from collections.abc import Sequence
from typing import Any

import orjson
from pydantic import SecretStr

from . import __version__, build
from .config import ENV_PREFIX, ConfigError, Settings, load_settings
from .routers.base import RouterError
from .tools.jsonl import ToolError

PROG = "switchyard"


def _field_type(annotation: Any) -> tuple[Any, list[str] | None]:
    """argparse type and choices for a settings field's annotation."""
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        annotation = next(arg for arg in args if arg is not type(None))
        return _field_type(annotation)
    if origin is typing.Literal:
        return str.lower, [str(arg) for arg in args]  # case-insensitive, like the environment
    if origin is dict or annotation is dict:
        return _json_object, None
    if origin is list:  # a repeatable flag
        return list, None
    if annotation is SecretStr:
        return str, None
    return annotation, None


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def add_settings_arguments(parser: argparse.ArgumentParser, only: Sequence[str] | None = None) -> None:
    """One flag per setting (or per setting in ``only``), documented with its environment variable and default."""
    parser.add_argument(
        "--config", metavar="FILE", default=os.environ.get(ENV_PREFIX + "CONFIG"),
        help=f"YAML or TOML file with settings (keys as flag names); env {ENV_PREFIX}CONFIG.",
    )
    for name, field in Settings.model_fields.items():
        if only is not None and name not in only:
            continue
        kind, choices = _field_type(field.annotation)
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if field.is_required() or "required" in extra:
            default = str(extra.get("required", "required"))
        else:
            default = f"default: {field.get_default(call_default_factory=True)!r}"
        if kind is bool:  # --flag / --no-flag
            how: dict[str, Any] = {"action": argparse.BooleanOptionalAction}
        elif kind is list:  # --flag A --flag B
            how = {"action": "append", "type": str, "metavar": name.upper()}
        else:
            how = {"type": kind, "choices": choices, "metavar": name.upper() if choices is None else None}
        parser.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            default=argparse.SUPPRESS,
            help=f"{field.description} [{default}; env {ENV_PREFIX}{name.upper()}]",
            **how,
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="LLM routing proxy: sends each prompt to a strong or a weak model.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__} ({build()})")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    serve = commands.add_parser("serve", help="Run the routing proxy.", description="Run the routing proxy.")
    add_settings_arguments(serve)
    serve.set_defaults(handler=_serve)
    _add_tools(commands)
    return parser


def _add_tools(commands: Any) -> None:
    """``score``, ``calibrate``, ``eval``, ``train``: offline tools (``tools/``), with the server's router flags."""
    from .tools import calibrate, common, evaluate, score, train

    settings_of = {
        score: common.ROUTER_FIELDS + common.PROMPT_FIELDS,
        calibrate: common.ROUTER_FIELDS + common.PROMPT_FIELDS,
        evaluate: common.ROUTER_FIELDS + common.PROMPT_FIELDS,
        train: common.PROMPT_FIELDS,
    }
    for tool, fields in settings_of.items():
        parser = commands.add_parser(
            tool.NAME, help=tool.HELP, description=tool.DESCRIPTION, epilog=getattr(tool, "EPILOG", None),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        tool.add_arguments(parser)
        add_settings_arguments(parser, fields)
        parser.set_defaults(handler=tool.run)


def settings_from_args(args: argparse.Namespace) -> Settings:
    values = {name: getattr(args, name) for name in Settings.model_fields if hasattr(args, name)}
    return load_settings(values, args.config)


def _serve(args: argparse.Namespace) -> int:
    from . import logs
    from .server import run

    settings = settings_from_args(args)
    logs.configure(settings.log_level, settings.log_format)  # before the server's own default set-up
    return run(settings)


def main(argv: Sequence[str] | None = None) -> int:
    """``switchyard COMMAND [flags]``."""
    args = build_parser().parse_args(argv)
    return _run(args.handler, args)


def serve_main(argv: Sequence[str] | None = None) -> int:
    """``python -m dynamo.nemo_switchyard [flags]``: the server, without a subcommand."""
    parser = argparse.ArgumentParser(prog="python -m dynamo.nemo_switchyard", description="Run the Switchyard routing proxy.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__} ({build()})")
    add_settings_arguments(parser)
    return _run(_serve, parser.parse_args(argv))


def _run(handler: Any, args: argparse.Namespace) -> int:
    try:
        return handler(args)
    except (ConfigError, RouterError, ToolError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `switchyard score ... --output - | head`: the reader left, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
