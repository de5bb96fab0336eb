"""Request bodies: parse once, and rewrite ``model`` without touching another byte.

Re-serialising JSON changes number formats, escapes, key spacing and big integers;
a transparent proxy must not. So the new model name is spliced into the raw bytes
at the exact span of the top-level ``"model"`` value.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

# JSON strings and brackets: enough to track nesting depth and find top-level keys.
_TOKENS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[{}\[\]]', re.DOTALL)  # unrolled: no per-character alternation
_MODEL_KEY = b'"model"'


class BodyError(ValueError):
    """The body is not a JSON object; the message says what is wrong."""


def parse(raw: bytes) -> dict[str, Any]:
    """Parse a request body that must be a JSON object."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BodyError(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BodyError(f"request body must be a JSON object, not {type(body).__name__}")
    return body


def replace_model(raw: bytes, model: str, parsed: dict[str, Any] | None = None) -> bytes:
    """Return ``raw`` with every top-level ``model`` string value replaced by ``model``.

    ``parsed`` is ``raw`` already parsed (it is parsed here otherwise).
    """
    if parsed is None:
        parsed = parse(raw)
    if not isinstance(parsed.get("model"), str):
        raise BodyError("request body has no top-level 'model' string")
    spans = _model_value_spans(raw)
    if not spans:
        raise BodyError("request body has no top-level 'model' string")
    encoded = orjson.dumps(model)
    pieces = []
    start = 0
    for value_start, value_end in spans:
        pieces.append(raw[start:value_start])
        pieces.append(encoded)
        start = value_end
    pieces.append(raw[start:])
    return b"".join(pieces)


def _model_value_spans(raw: bytes) -> list[tuple[int, int]]:
    return _only_model_key_span(raw) or _scan_model_value_spans(raw)


def _only_model_key_span(raw: bytes) -> list[tuple[int, int]] | None:
    """Fast path: a body with exactly one ``"model"`` key, spelled without escapes.

    An unescaped quote cannot occur inside a JSON string, so each ``"model"`` whose
    opening quote is not escaped is a real string token. If exactly one of them is a
    key and no key can be spelled with a ``\\u`` escape, it is the top-level key
    (the caller has checked that a top-level ``model`` exists).
    """
    if raw.find(b"\\u") >= 0:  # find, not in: bytes-in-bytes raises and clears a TypeError first on Python 3.11
        return None
    found = -1
    start = raw.find(_MODEL_KEY)
    while start != -1:
        end = start + len(_MODEL_KEY)
        if not _escaped(raw, start):
            value = value_start(raw, end)
            if value >= 0:
                if found >= 0:
                    return None  # several "model" keys: find the top-level ones by scanning
                found = value
        start = raw.find(_MODEL_KEY, end)
    if found < 0 or found >= len(raw) or raw[found] != 0x22:  # no key, or its value is not a string
        return None
    close = raw.find(b'"', found + 1)
    while close >= 0 and _escaped(raw, close):
        close = raw.find(b'"', close + 1)
    return [(found, close + 1)] if close >= 0 else None


def value_start(raw: bytes, end: int) -> int:
    """Where the value starts if a colon follows a key ending at ``end`` (JSON's whitespace around
    it), else -1. By hand, not a regular expression: the fast path runs it on every routed request
    (and usage.py on every answer), and a match object cost more than the rest of the splice."""
    end = _skip_space(raw, end)
    if end >= len(raw) or raw[end] != 0x3A:  # :
        return -1
    return _skip_space(raw, end + 1)


def _skip_space(raw: bytes, i: int) -> int:
    """The index of the first byte from ``i`` on that is not JSON whitespace (space, tab, LF, CR)."""
    n = len(raw)
    while i < n:
        c = raw[i]
        if c != 0x20 and c != 0x0A and c != 0x0D and c != 0x09:
            break
        i += 1
    return i


def _escaped(raw: bytes, quote: int) -> bool:
    backslashes = 0
    while quote - backslashes - 1 >= 0 and raw[quote - backslashes - 1] == 0x5C:
        backslashes += 1
    return backslashes % 2 == 1


def _scan_model_value_spans(raw: bytes) -> list[tuple[int, int]]:
    spans = []
    depth = 0
    expect_value_at = -1  # where the value of a top-level "model" key starts
    for match in _TOKENS.finditer(raw):
        start = match.start()
        first = raw[start]
        if first == 0x22:  # a string
            if start == expect_value_at:
                spans.append(match.span())
            elif depth == 1 and _is_model_key(match.group()):
                value = value_start(raw, match.end())
                if value >= 0:
                    expect_value_at = value
        elif first == 0x7B or first == 0x5B:  # { [
            depth += 1
        else:  # } ]
            depth -= 1
    return spans


def _is_model_key(token: bytes) -> bool:
    if token == _MODEL_KEY:
        return True
    return b"\\" in token and orjson.loads(token) == "model"
