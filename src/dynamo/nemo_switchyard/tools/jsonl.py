"""JSON Lines in and out: ``-`` is stdin / stdout, ``.gz`` is gzip, bad lines name their number.

Errors read ``prompts.jsonl:17: missing "prompt" or "messages"`` so a user can go straight
to the line. Blank lines are skipped (they still count in the numbering).
"""

from __future__ import annotations

import contextlib
import gzip
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import IO, Any

import orjson


class ToolError(Exception):
    """A tool cannot do its work; the message says why and what to do (printed as one line, exit status 2)."""


class InputError(ToolError, ValueError):
    """Bad input; the message names the file and, for a bad line, the line number."""


def display_name(path: str) -> str:
    return "<stdin>" if path == "-" else path


@contextlib.contextmanager
def _open_binary(path: str) -> Iterator[IO[bytes]]:
    if path == "-":
        yield sys.stdin.buffer
        return
    try:
        raw = open(path, "rb")  # noqa: SIM115 - closed by the with below; open errors become InputError
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    with raw:
        if path.endswith(".gz"):
            with gzip.GzipFile(fileobj=raw) as unzipped:
                yield unzipped  # type: ignore[misc]
        else:
            yield raw


def read_objects(path: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line number, object)`` for every non-blank line; raise InputError on the first bad one."""
    name = display_name(path)
    with _open_binary(path) as f:
        lineno = 0
        try:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    value = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    raise InputError(f"{name}:{lineno}: not valid JSON ({exc.msg} at column {exc.colno})") from None
                if not isinstance(value, dict):
                    raise InputError(f"{name}:{lineno}: expected a JSON object, got {_kind(value)}")
                yield lineno, value
        except (OSError, EOFError) as exc:  # e.g. a truncated or not-really-gzip file
            raise InputError(f"{name}:{lineno + 1}: cannot read: {exc}") from None


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


@contextlib.contextmanager
def open_output(path: str) -> Iterator[IO[bytes]]:
    """A binary stream for ``path`` (``-`` = stdout); ``.gz`` paths are gzipped.

    The file is written next to its final name and renamed at the end, so a failed run
    never leaves a half-written output behind.
    """
    if path == "-":
        out = sys.stdout.buffer
        yield out
        out.flush()
        return
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".switchyard-", dir=directory)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror}") from None
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # as open() would have made it, not mkstemp's 0600
        with os.fdopen(fd, "wb") as raw:
            if path.endswith(".gz"):
                with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as zipped:
                    yield zipped  # type: ignore[misc]
            else:
                yield raw
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def dumps(value: Any) -> bytes:
    """One JSON line (with the newline)."""
    return orjson.dumps(value, option=orjson.OPT_APPEND_NEWLINE)
