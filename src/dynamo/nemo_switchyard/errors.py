"""Errors in OpenAI's shape, so SDKs show the message instead of a parse failure."""

from __future__ import annotations

import orjson

ERROR_SOURCE = "x-switchyard-error-source"

_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error", 413: "invalid_request_error",
    414: "invalid_request_error", 415: "invalid_request_error", 431: "invalid_request_error",
}


def error_body(status: int, message: str, code: str) -> bytes:
    """``{"error": {"message", "type", "param", "code"}}`` as bytes."""
    kind = _TYPES.get(status, "server_error" if status < 502 else "upstream_error")
    return orjson.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}})
