"""Client connections: HTTP/1.1 parsed with httptools, one handler task per request.

A general-purpose framework spends most of a proxy's CPU on objects it does not
need (measured: aiohttp's server and client together cost about 480 µs per request
here, a raw uvloop byte pipe 30 µs). This protocol keeps what a proxy needs:
keep-alive and pipelining, body limits, Expect: 100-continue, back-pressure in both
directions, and cancelling the handler (and so the backend request) the moment the
client goes away.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Final
from urllib.parse import unquote

import httptools

from .errors import error_body
from .logs import REQUEST_ID_HEADER, new_request_id
from .wire import CHUNK, LAST_CHUNK, Headers, Request, response_head, with_header

log = logging.getLogger("switchyard.protocol")

Handler = Callable[[Request, "Responder"], Awaitable[None]]

_MAX_HEADERS: Final = 100  # Final: compiled, a constant instead of a lookup per header
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_MAX_HEADER_BYTES: Final = 64 * 1024


class Responder:
    """Writes one response to the client: whole, or as a stream with the right framing."""

    __slots__ = (
        "_chunked",
        "_head_only",
        "_http_11",
        "_keep_alive",
        "_protocol",
        "_transport",
        "finished",
        "head_sent",
        "request_id",
        "status",
    )

    def __init__(self, protocol: HttpProtocol, keep_alive: bool, http_11: bool, head_only: bool = False) -> None:
        self._protocol = protocol
        self._transport = protocol.transport
        self._keep_alive = keep_alive
        self._http_11 = http_11
        self._head_only = head_only  # the answer to a HEAD request: headers only, never a body
        self.head_sent = False
        self.finished = False
        self.status = 0
        self._chunked = False
        self.request_id = b""  # set by the application: sent as x-request-id on the response

    @property
    def client_gone(self) -> bool:
        return self._protocol.closed

    def send(self, status: int, headers: Headers, body: bytes, reason: bytes | None = None, length: int | None = None) -> None:
        """A complete response in one write (``length`` overrides the body's, for HEAD)."""
        self.status = status
        self.head_sent = self.finished = True
        if self.request_id:
            headers = with_header(headers, REQUEST_ID_HEADER, self.request_id)  # the backend's own, if any, replaced
        head = response_head(status, reason, headers, b"Content-Length: %d" % (len(body) if length is None else length), self._keep_alive)
        if not self._protocol.closed:
            self._transport.write(head if self._head_only else head + body)
        self._protocol.response_done(self._keep_alive)

    def start(self, status: int, headers: Headers, content_length: int | None, reason: bytes | None = None) -> None:
        """Send the head of a streamed response; the body follows with :meth:`write`."""
        self.status = status
        self.head_sent = True
        if self.request_id:
            headers = with_header(headers, REQUEST_ID_HEADER, self.request_id)  # the backend's own, if any, replaced
        if content_length is not None:
            framing: bytes | None = b"Content-Length: %d" % content_length
        elif self._http_11:
            framing, self._chunked = b"Transfer-Encoding: chunked", True
        else:  # an HTTP/1.0 client: the end of the connection ends the body
            framing, self._keep_alive = None, False
        if not self._protocol.closed:
            self._transport.write(response_head(status, reason, headers, framing, self._keep_alive))

    def write(self, data: bytes) -> None:
        if data and not self._protocol.closed and not self._head_only:
            self._protocol.write_soon(CHUNK % (len(data), data) if self._chunked else data)

    def end(self) -> None:
        """The body is complete."""
        if self.finished:
            return
        self.finished = True
        if self._chunked and not self._protocol.closed and not self._head_only:
            self._protocol.write_soon(LAST_CHUNK)
        self._protocol.flush()
        self._protocol.response_done(self._keep_alive)

    def abort(self) -> None:
        """End the connection without finishing the body, so the client sees it is truncated."""
        self.finished = True
        self._protocol.flush()  # what was relayed before the failure still reaches the client
        self._protocol.abort()

    def bind_reader(self, transport: asyncio.Transport | None) -> None:
        """Back-pressure: while the client cannot take more, stop reading from ``transport``."""
        self._protocol.upstream_reader = transport
        if transport is not None and self._protocol.write_paused:
            transport.pause_reading()


class HttpProtocol(asyncio.Protocol):
    """One client connection."""

    def __init__(
        self, handler: Handler, *, max_body_size: int, connections: set[HttpProtocol], on_reject: Callable[[int], None] | None = None,
        writes: Writes | None = None,
    ) -> None:
        self.handler = handler
        self.max_body_size = max_body_size
        self.connections = connections
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.parser = httptools.HttpRequestParser(self)
        self.closed = False
        self.write_paused = False
        self.upstream_reader: asyncio.Transport | None = None
        self.on_reject = on_reject
        self._task: asyncio.Task[None] | None = None
        self._queue: deque[Request] = deque()
        self._url = b""
        self._headers: Headers = []
        self._header_bytes = 0
        self._body: list[bytes] = []
        self._body_size = 0
        self._rejected = False
        self._rejection: bytes | None = None  # an error to send once earlier pipelined answers are out
        self._continue_pending = False
        self._writes = writes
        self._soon: list[bytes] = []  # body bytes for the end of this turn of the event loop

    def write_soon(self, data: bytes) -> None:
        """Write body bytes at the end of this turn of the event loop (at once without ``writes``)."""
        if self._writes is None:
            self.transport.write(data)
            return
        if not self._soon:
            self._writes.add(self)
        self._soon.append(data)

    def flush(self) -> None:
        """Write what :meth:`write_soon` holds, now.

        A transport can be closed before :meth:`connection_lost` tells us (uvloop closes it at
        once on a socket error and reports the loss a turn later): what it holds is dropped then,
        as the client is gone."""
        soon = self._soon
        if soon:
            self._soon = []
            transport = self.transport
            if not self.closed and not transport.is_closing():
                transport.write(soon[0] if len(soon) == 1 else b"".join(soon))

    @property
    def idle(self) -> bool:
        return self._task is None and not self._queue

    # -- asyncio.Protocol ---------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.connections.add(self)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        if self._rejected:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._reject(501, "protocol upgrades (WebSocket, h2c) are not supported", "upgrade_not_supported")
        except httptools.HttpParserError as exc:
            if not self._rejected:
                self._reject(400, f"malformed HTTP request: {exc}", "bad_http")

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._soon = []
        self.connections.discard(self)
        if self._task is not None:
            self._task.cancel()  # the handler closes its backend request
        self._queue.clear()

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.upstream_reader is not None:
            self.upstream_reader.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.upstream_reader is not None and not self.upstream_reader.is_closing():
            self.upstream_reader.resume_reading()

    # -- httptools callbacks -------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._header_bytes = 0
        self._body = []
        self._body_size = 0

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > _MAX_HEADER_BYTES:
            self._reject(414, "request target too long", "uri_too_long")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))
        self._header_bytes += len(name) + len(value)
        if len(self._headers) > _MAX_HEADERS or self._header_bytes > _MAX_HEADER_BYTES:
            self._reject(431, f"request headers too large (at most {_MAX_HEADERS} headers, {_MAX_HEADER_BYTES} bytes)", "headers_too_large")

    def on_headers_complete(self) -> None:
        if self._rejected:
            return
        if self.parser.should_upgrade():
            self._reject(501, "protocol upgrades (WebSocket, h2c) are not supported", "upgrade_not_supported")
            return
        length = None
        expect = False
        for name, value in self._headers:
            lower = name.lower()
            if lower == b"content-length":
                length = int(value) if value.strip().isdigit() else None
            elif lower == b"expect" and value.lower() == b"100-continue":
                expect = True
        if length is not None and length > self.max_body_size:
            self._reject(413, f"request body is larger than {self.max_body_size} bytes (raise --max-body-size)", "body_too_large")
        elif expect:
            if self.idle:
                self.transport.write(_CONTINUE)
            else:  # a response is in progress on this connection: the 100 must not land inside it
                self._continue_pending = True

    def on_body(self, body: bytes) -> None:
        if self._rejected:
            return
        self._body_size += len(body)
        if self._body_size > self.max_body_size:
            self._reject(413, f"request body is larger than {self.max_body_size} bytes (raise --max-body-size)", "body_too_large")
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._rejected:
            return
        parser = self.parser
        target = self._url
        path = target.split(b"?", 1)[0]
        request = Request(
            method=parser.get_method().decode("ascii", "replace"),
            target=target,
            # find, not in: bytes-in-bytes raises and clears a TypeError first on Python 3.11
            path=unquote(path.decode("latin-1")) if path.find(b"%") >= 0 else path.decode("latin-1"),
            headers=self._headers,
            body=b"".join(self._body) if len(self._body) != 1 else self._body[0],
            http_version=parser.get_http_version(),
            keep_alive=parser.should_keep_alive(),
        )
        if self._task is None:
            self._run(request)
        else:  # pipelined: answer in order
            self._queue.append(request)
            self.transport.pause_reading()

    # -- requests -------------------------------------------------------------

    def _run(self, request: Request) -> None:
        responder = Responder(self, request.keep_alive, request.http_version == "1.1", request.method == "HEAD")
        self._task = self.loop.create_task(self._handle(request, responder))

    async def _handle(self, request: Request, responder: Responder) -> None:
        try:
            await self.handler(request, responder)
        except asyncio.CancelledError:
            return
        except Exception:
            log.exception("unhandled error serving %s %s", request.method, request.path)
            if not responder.head_sent:
                responder.send(500, [(b"Content-Type", b"application/json")], error_body(500, "internal error in switchyard", "internal_error"))
            else:
                responder.abort()
        finally:
            if not responder.finished and not self.closed:
                responder.abort()  # a handler that returned without finishing its response

    def response_done(self, keep_alive: bool) -> None:
        """Called by the responder when its response is complete."""
        self._task = None
        if self.closed:
            return
        if not keep_alive:
            self.transport.close()
            self.closed = True
            return
        if self._queue:
            self._run(self._queue.popleft())
            if not self._queue:
                self.transport.resume_reading()
        elif self._rejection is not None:
            self._close_with(self._rejection)
        elif self._continue_pending:
            self._continue_pending = False
            self.transport.write(_CONTINUE)

    def _reject(self, status: int, message: str, code: str) -> None:
        """Answer a request that cannot be read, then close the connection."""
        self._rejected = True
        if self.closed:
            return
        if self.on_reject is not None:
            self.on_reject(status)
        request_id = new_request_id()
        log.info("rejected a request: %s", message, extra={"request_id": request_id})
        body = error_body(status, message, code)
        headers = [(b"Content-Type", b"application/json"), (b"x-switchyard-error-source", b"switchyard"), (REQUEST_ID_HEADER, request_id.encode())]
        response = response_head(status, None, headers, b"Content-Length: %d" % len(body), False) + body
        if self.idle:
            self._close_with(response)
        else:  # answers to earlier pipelined requests go first
            self._rejection = response
            self.transport.pause_reading()

    def _close_with(self, response: bytes) -> None:
        self.transport.write(response)
        self.transport.close()
        self.closed = True

    def abort(self) -> None:
        self.closed = True
        self.transport.abort()

    def close_when_idle(self) -> bool:
        """For shutdown: close now if no request is in progress; return whether it closed."""
        if self.idle and not self.closed:
            self.transport.close()
            self.closed = True
        return self.closed


class Writes:
    """The streamed answers' chunks of one turn of the event loop, written at its end, every
    connection's back to back. A chunk relayed from the backend waits microseconds, and a client
    that reads many streams (or a co-located one) is woken once for several of them instead of
    once per chunk: on the loopback benchmark waking the client was ~14 % of the proxy's CPU."""

    __slots__ = ("_loop", "_pending")

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None  # the server's, on first use
        self._pending: list[HttpProtocol] = []

    def add(self, protocol: HttpProtocol) -> None:
        if not self._pending:
            if self._loop is None:
                self._loop = asyncio.get_running_loop()
            self._loop.call_soon(self.flush)
        self._pending.append(protocol)

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        for protocol in pending:
            try:
                protocol.flush()
            except Exception:  # one failure must not strand the others' bytes (they are never re-added)
                log.exception("writing a streamed answer failed; closing that connection")
                protocol.abort()


def protocol_factory(
    handler: Handler, *, max_body_size: int, connections: set[HttpProtocol], on_reject: Callable[[int], None] | None = None
) -> Callable[[], Any]:
    writes = Writes()
    return lambda: HttpProtocol(handler, max_body_size=max_body_size, connections=connections, on_reject=on_reject, writes=writes)
