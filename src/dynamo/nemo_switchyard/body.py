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
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[{}\[\]]', re.DOTALL)
_COLON = re.compile(rb"\s*:\s*")
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


def replace_model(raw: bytes, model: str) -> bytes:
    """Return ``raw`` with every top-level ``model`` string value replaced by ``model``.

    ``raw`` must be a valid JSON object whose top-level ``model`` is a string.
    """
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
                colon = _COLON.match(raw, match.end())
                if colon is not None:
                    expect_value_at = colon.end()
        elif first == 0x7B or first == 0x5B:  # { [
            depth += 1
        else:  # } ]
            depth -= 1
    return spans


def _is_model_key(token: bytes) -> bool:
    if token == _MODEL_KEY:
        return True
    return b"\\" in token and orjson.loads(token) == "model"
