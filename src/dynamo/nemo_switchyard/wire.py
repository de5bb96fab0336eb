"""HTTP/1.1 on the wire: requests as received, header filtering, response heads, chunk framing.

Headers stay raw ``(name, value)`` byte pairs from parser to socket: a proxy that
decodes and re-encodes them spends its time there and risks changing them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Final

Headers = list[tuple[bytes, bytes]]

# RFC 9110 section 7.6.1, plus the non-standard ones still seen in the wild.
HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"proxy-connection", b"te", b"trailer",
     b"trailers", b"transfer-encoding", b"upgrade"}
)
NOT_FORWARDED = HOP_BY_HOP | {b"host", b"content-length", b"expect"}
NOT_RETURNED = HOP_BY_HOP | {b"content-length"}

_REASONS = {status.value: status.phrase.encode() for status in HTTPStatus}


@dataclass(slots=True, init=False)  # __init__ by hand: compiled, a dataclass's own is Python (~2,500 instructions)
class Request:
    """A complete request as the client sent it (the body already read)."""

    method: str
    target: bytes  # the request-target, byte for byte (path and query, still percent-encoded)
    path: str  # the decoded path, for dispatch
    headers: Headers
    body: bytes
    http_version: str
    keep_alive: bool
    request_id: str
    decision: Any  # the application's routing decision, once made (for the access log)
    span: Any  # the server span, with --tracing

    def __init__(self, method: str, target: bytes, path: str, headers: Headers, body: bytes, http_version: str = "1.1",
                 keep_alive: bool = True, request_id: str = "", decision: Any = None, span: Any = None) -> None:
        self.method = method
        self.target = target
        self.path = path
        self.headers = headers
        self.body = body
        self.http_version = http_version
        self.keep_alive = keep_alive
        self.request_id = request_id
        self.decision = decision
        self.span = span

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


def _lengths(names: Iterable[bytes]) -> int:
    """The lengths of ``names`` (and of "connection"), as bits."""
    return sum(1 << n for n in {len(name) for name in names} | {len(b"connection")})


# A name of another length than those dropped is kept without being lower-cased (most are:
# content-type, authorization, accept-encoding, x-request-id, ...).
_KNOWN_LENGTHS: Final = _lengths(NOT_FORWARDED | NOT_RETURNED)


def filtered(headers: Iterable[tuple[bytes, bytes]], drop: frozenset[bytes]) -> Headers:
    """``headers`` without those in ``drop`` (lower-case names) and those named in a Connection header.

    This runs twice per request, over a dozen names: only a name as long as one in ``drop`` (or
    as "connection") is lower-cased, and the kept headers are the caller's own tuples."""
    lengths = _KNOWN_LENGTHS if drop is NOT_FORWARDED or drop is NOT_RETURNED else _lengths(drop)
    kept: Headers = []
    named: set[bytes] | None = None
    for header in headers:
        name = header[0]
        if lengths >> len(name) & 1:
            lower = name.lower()
            if lower == b"connection":
                named = named or set()
                named.update(token.strip().lower() for token in header[1].split(b","))
            if lower in drop:
                continue
        kept.append(header)
    if named:
        named -= drop  # keep-alive, close: nothing more to drop
        if named:
            return [header for header in kept if header[0].lower() not in named]
    return kept


def with_header(headers: Headers, name: bytes, value: bytes) -> Headers:
    """A copy of ``headers`` with ``name`` (lower-case) set to ``value`` alone: any it had, in any case, dropped."""
    kept = [header for header in headers if not is_named(header[0], name)]
    kept.append((name, value))
    return kept


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
