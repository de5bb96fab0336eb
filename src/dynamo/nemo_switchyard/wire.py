"""HTTP/1.1 on the wire: requests as received, header filtering, response heads, chunk framing.

Headers stay raw ``(name, value)`` byte pairs from parser to socket: a proxy that
decodes and re-encodes them spends its time there and risks changing them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

Headers = list[tuple[bytes, bytes]]

# RFC 9110 section 7.6.1, plus the non-standard ones still seen in the wild.
HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"proxy-connection", b"te", b"trailer",
     b"trailers", b"transfer-encoding", b"upgrade"}
)
NOT_FORWARDED = HOP_BY_HOP | {b"host", b"content-length", b"expect"}
NOT_RETURNED = HOP_BY_HOP | {b"content-length"}

_REASONS = {status.value: status.phrase.encode() for status in HTTPStatus}


@dataclass(slots=True)
class Request:
    """A complete request as the client sent it (the body already read)."""

    method: str
    target: bytes  # the request-target, byte for byte (path and query, still percent-encoded)
    path: str  # the decoded path, for dispatch
    headers: Headers
    body: bytes
    http_version: str = "1.1"
    keep_alive: bool = True
    request_id: str = ""
    decision: Any = None  # the application's routing decision, once made (for the access log)
    span: Any = None  # the server span, with --tracing

    def header(self, name: bytes) -> bytes | None:
        """The first value of header ``name`` (lower-case), or None."""
        for key, value in self.headers:
            if is_named(key, name):
                return value
        return None


def is_named(key: bytes, name: bytes) -> bool:
    """Whether header name ``key`` is ``name`` (lower-case), in any case. Most names differ in length,
    so most checks end before ``lower()`` makes a new bytes object: the proxy looks headers up a dozen
    times per request."""
    return len(key) == len(name) and key.lower() == name


def filtered(headers: Iterable[tuple[bytes, bytes]], drop: frozenset[bytes]) -> Headers:
    """``headers`` without those in ``drop`` and those named in a Connection header.
    Each name is lower-cased once: this runs twice per request."""
    kept: list[tuple[bytes, tuple[bytes, bytes]]] = []
    named: set[bytes] | None = None
    for header in headers:
        lower = header[0].lower()
        if lower == b"connection":
            named = named or set()
            named.update(token.strip().lower() for token in header[1].split(b","))
        if lower not in drop:
            kept.append((lower, header))
    if named:
        return [header for lower, header in kept if lower not in named]
    return [header for _, header in kept]


def request_head(method: str, target: bytes, host: bytes, headers: Headers, body_length: int | None) -> bytes:
    """The head of a request to the backend: the client's headers, a Host for the backend."""
    lines = [method.encode("ascii"), b" ", target, b" HTTP/1.1\r\nHost: ", host, b"\r\n"]
    _add_lines(lines, headers)
    if body_length is not None:
        lines += (b"Content-Length: ", str(body_length).encode("ascii"), b"\r\n")
    lines.append(b"\r\n")
    return b"".join(lines)


def response_head(status: int, reason: bytes | None, headers: Headers, framing: bytes | None, keep_alive: bool) -> bytes:
    """A response head; ``framing`` is the Content-Length or Transfer-Encoding line (without CRLF)."""
    lines = [b"HTTP/1.1 ", str(status).encode("ascii"), b" ", reason or _REASONS.get(status, b"Unknown"), b"\r\n"]
    _add_lines(lines, headers)
    if framing is not None:
        lines += (framing, b"\r\n")
    if not keep_alive:
        lines.append(b"Connection: close\r\n")
    lines.append(b"\r\n")
    return b"".join(lines)


def _add_lines(lines: list[bytes], headers: Headers) -> None:
    """The header lines of a head, as pieces for ``b"".join``. Four appends: compiled, cheaper than a
    tuple per header to extend the list by."""
    for name, value in headers:
        lines.append(name)
        lines.append(b": ")
        lines.append(value)
        lines.append(b"\r\n")


CHUNK = b"%x\r\n%b\r\n"  # one chunk of a chunked body: CHUNK % (len(data), data), formatted inline per chunk of a stream


LAST_CHUNK = b"0\r\n\r\n"
