"""Logging: text or JSON lines, the request id on every line about a request, and the access log.

The request id lives in a context variable, set by the application for the task that
serves the request, so any log line written while serving it (routing fallbacks,
backend errors) carries it without being passed around. Prompts and completions are
never logged, except the prompt in the access log with ``--log-prompts``.
"""

from __future__ import annotations

import contextvars
import logging
import random
import re
import sys
import time
from typing import Final

import orjson

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("switchyard_request_id", default=None)

access_log = logging.getLogger("switchyard.access")
_ACCESS = access_log.name

REQUEST_ID_HEADER: Final = b"x-request-id"
MAX_REQUEST_ID = 128  # longest client-sent id that is kept (printable ASCII, no spaces)
PROMPT_LOG_LIMIT = 4096  # characters of a prompt written to the access log with --log-prompts

_random_bits = random.getrandbits
_VALID_ID = re.compile(rb"[\x21-\x7e]{1,%d}" % MAX_REQUEST_ID).fullmatch
_IN_ACCESS_MESSAGE = frozenset({"method", "path", "status"})  # the access line's message: "POST /v1/chat/completions 200"
_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Attributes every LogRecord has; anything else on a record came in through ``extra=``.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime", "taskName", "request_id"}
_LEN_WITH_FIELDS = len(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) + 1  # a record whose only extra is ``fields``


def new_request_id() -> str:
    """16 random hex characters. From ``random`` (reseeded in each forked worker), not ``os.urandom``:
    an id needs to be unique, not secret, and a system call per request showed in profiles."""
    return _random_bits(64).to_bytes(8).hex()


def valid_request_id(value: bytes) -> bool:
    """A client-sent id is kept when it is 1..128 printable ASCII characters without spaces."""
    return _VALID_ID(value) is not None


def _request_id(record: logging.LogRecord) -> str | None:
    rid = getattr(record, "request_id", None)
    return rid if rid is not None else REQUEST_ID.get()


class _SecondCache:
    """The formatted second of a timestamp, computed once per second (strftime costs microseconds)."""

    __slots__ = ("_convert", "_format", "_second", "_text")

    def __init__(self, fmt: str, convert) -> None:  # type: ignore[no-untyped-def]
        self._format = fmt
        self._convert = convert
        self._second = -1
        self._text = ""

    def __call__(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._second, self._text = second, time.strftime(self._format, self._convert(second))
        return self._text


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message``, plus the extra fields as ``key=value`` and ``request_id=...`` when
    the line is about a request. Values that are not plain tokens are quoted, so none can forge a line."""

    def __init__(self) -> None:
        super().__init__(_TEXT_FORMAT)
        self._second = _SecondCache("%Y-%m-%d %H:%M:%S", time.localtime)

    def format(self, record: logging.LogRecord) -> str:
        created = record.created
        line = f"{self._second(created)},{int((created % 1) * 1000):03d} {record.levelname} {record.name}: {record.getMessage()}"
        extras = _extras(record)
        if extras:
            shown = _IN_ACCESS_MESSAGE if record.name == _ACCESS else ()
            parts = [f"{key}={_token(value)}" for key, value in extras if value is not None and key not in shown]
            if parts:
                line = f"{line} {' '.join(parts)}"
        rid = _request_id(record)
        if rid is not None:
            line = f"{line} request_id={rid}"
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line = f"{line}\n{record.exc_text}"
        if record.stack_info:
            line = f"{line}\n{self.formatStack(record.stack_info)}"
        return line


def _token(value: object) -> str:
    if type(value) in (int, float, bool):
        return str(value)
    text = str(value)
    return text if text and text.isprintable() and " " not in text and '"' not in text else orjson.dumps(text).decode()


def _extras(record: logging.LogRecord) -> list[tuple[str, object]]:
    """A line's structured fields: ``extra={"fields": {...}}`` (one attribute, the cheap way, as the access
    log does) and any other ``extra=`` attributes."""
    attributes = record.__dict__
    if attributes.keys() <= _STANDARD:
        return []
    fields = attributes.get("fields")
    extras = list(fields.items()) if isinstance(fields, dict) else []
    if len(attributes) > _LEN_WITH_FIELDS or fields is None:
        extras += [(key, value) for key, value in attributes.items() if key not in _STANDARD and not key.startswith("_") and key != "fields"]
    return extras


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, then the extra fields."""

    def __init__(self) -> None:
        super().__init__()
        self._second = _SecondCache("%Y-%m-%dT%H:%M:%S", time.gmtime)

    def format(self, record: logging.LogRecord) -> str:
        created = record.created
        entry: dict[str, object] = {
            "time": f"{self._second(created)}.{int((created % 1) * 1000):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = _request_id(record)
        if rid is not None:
            entry["request_id"] = rid
        entry.update(_extras(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(entry, default=str).decode()


def configure(level: str, log_format: str = "text") -> None:
    """Log to stderr at ``level`` in ``log_format``; like ``logging.basicConfig``, a no-op when the
    root logger already has handlers (an embedding application, pytest)."""
    root = logging.getLogger()
    if root.handlers:
        return
    # What no format here shows, and each costs microseconds per line (the access log writes one per request).
    logging._srcfile = None  # type: ignore[attr-defined]  # no caller lookup (file, line, function)
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(level.upper())
