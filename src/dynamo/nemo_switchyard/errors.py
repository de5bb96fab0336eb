"""Errors in OpenAI's shape, so SDKs show the message instead of a parse failure."""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from aiohttp import web

ERROR_SOURCE = "x-switchyard-error-source"

_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error", 413: "invalid_request_error", 415: "invalid_request_error"}


def error_body(status: int, message: str, code: str) -> bytes:
    kind = _TYPES.get(status, "server_error" if status < 502 else "upstream_error")
    return orjson.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}})


def error_response(status: int, message: str, code: str, headers: Mapping[str, str] | None = None) -> web.Response:
    """A JSON error from switchyard itself (``x-switchyard-error-source: switchyard``)."""
    response = web.Response(status=status, body=error_body(status, message, code), content_type="application/json")
    if headers:
        response.headers.update(headers)
    response.headers[ERROR_SOURCE] = "switchyard"
    return response
