"""Client connections (protocol.HttpProtocol) spoken to in raw HTTP: in-process with tiny handlers, and end to end."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest

from dynamo.nemo_switchyard.protocol import HttpProtocol, Responder, Writes, protocol_factory
from dynamo.nemo_switchyard.upstream import Upstream
from dynamo.nemo_switchyard.wire import Request

from fake_backend import stream_bytes
from processes import backend_log


def run(coroutine: Awaitable[object], limit: float = 20.0) -> object:
    """Run one test body in a fresh event loop, never longer than ``limit``."""

    async def bounded() -> object:
        return await asyncio.wait_for(coroutine, limit)

    return asyncio.run(bounded())


# ---------------------------------------------------------------- a raw HTTP client


@dataclass
class Response:
    status: int
    headers: list[tuple[bytes, bytes]]  # names lower-cased
    body: bytes
    head: bytes

    def header(self, name: bytes) -> bytes | None:
        return next((value for key, value in self.headers if key == name), None)


async def read_response(reader: asyncio.StreamReader, limit: float = 10.0) -> Response:
    """One response: Content-Length, chunked (decoded) or close-delimited body; a 1xx has no body."""

    async def read() -> Response:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head[:-4].split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        headers = [(name.strip().lower(), value.strip()) for name, _, value in (line.partition(b":") for line in lines[1:])]
        fields = dict(headers)
        if 100 <= status < 200 or status in (204, 304):
            body = b""
        elif b"content-length" in fields:
            body = await reader.readexactly(int(fields[b"content-length"]))
        elif fields.get(b"transfer-encoding") == b"chunked":
            pieces = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                pieces.append(await reader.readexactly(size))
                assert await reader.readexactly(2) == b"\r\n", "bad chunk framing"
                if size == 0:
                    break
            body = b"".join(pieces)
        else:
            body = await reader.read()  # until the connection closes
        return Response(status, headers, body, head)

    return await asyncio.wait_for(read(), limit)


async def at_eof(reader: asyncio.StreamReader, limit: float = 5.0) -> bool:
    """Whether the server closes the connection (with nothing more sent)."""
    try:
        return await asyncio.wait_for(reader.read(), limit) == b""
    except ConnectionResetError:
        return True


async def connect(port: int, rcvbuf: int | None = None) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    if rcvbuf is None:
        return await asyncio.open_connection("127.0.0.1", port)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return await asyncio.open_connection(sock=sock)


def post(path: str, body: bytes, *headers: str, version: str = "1.1") -> bytes:
    extra = "".join(f"{header}\r\n" for header in headers)
    return f"POST {path} HTTP/{version}\r\nHost: t\r\nContent-Type: application/json\r\n{extra}Content-Length: {len(body)}\r\n\r\n".encode() + body


def get(path: str, *headers: str) -> bytes:
    extra = "".join(f"{header}\r\n" for header in headers)
    return f"GET {path} HTTP/1.1\r\nHost: t\r\n{extra}\r\n".encode()


def json_error(response: Response) -> dict:
    assert response.header(b"content-type") == b"application/json"
    return json.loads(response.body)["error"]


# ---------------------------------------------------------------- an in-process server


Handler = Callable[[Request, Responder], Awaitable[None]]


class InProcess:
    """HttpProtocol on 127.0.0.1 with a tiny handler, in the test's event loop."""

    def __init__(self, handler: Handler, max_body_size: int = 1 << 20) -> None:
        self.handler = handler
        self.max_body_size = max_body_size
        self.connections: set[HttpProtocol] = set()
        self.rejects: list[int] = []

    async def __aenter__(self) -> "InProcess":
        factory = protocol_factory(self.handler, max_body_size=self.max_body_size, connections=self.connections, on_reject=self.rejects.append)
        self.server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        for connection in list(self.connections):
            connection.abort()


class Echo:
    """Answers ``METHOD target len(body)`` plus the body; ``/slow/N`` waits N ms first. Records what it served."""

    def __init__(self) -> None:
        self.served: list[Request] = []

    async def __call__(self, request: Request, responder: Responder) -> None:
        self.served.append(request)
        if request.path.startswith("/slow/"):
            await asyncio.sleep(int(request.path.rsplit("/", 1)[1]) / 1000)
        head = f"{request.method} {request.target.decode()} {len(request.body)}\n".encode()
        responder.send(200, [(b"Content-Type", b"text/plain")], head + request.body)


# ---------------------------------------------------------------- keep-alive and pipelining (in process)


def test_two_pipelined_requests_in_one_write_get_two_responses_in_order():
    async def body() -> None:
        echo = Echo()
        async with InProcess(echo) as server:
            reader, writer = await connect(server.port)
            writer.write(get("/slow/100") + post("/fast", b'{"a": 1}'))  # the second would be ready first
            first, second = await read_response(reader), await read_response(reader)
            assert (first.status, first.body) == (200, b"GET /slow/100 0\n")
            assert (second.status, second.body) == (200, b'POST /fast 8\n{"a": 1}')
            assert [request.target for request in echo.served] == [b"/slow/100", b"/fast"]
            writer.close()

    run(body())


def test_keep_alive_three_requests_on_one_connection():
    async def body() -> None:
        echo = Echo()
        async with InProcess(echo) as server:
            reader, writer = await connect(server.port)
            for index in range(3):
                writer.write(post(f"/r{index}", b"x" * index))
                response = await read_response(reader)
                assert response.status == 200 and response.body == f"POST /r{index} {index}\n".encode() + b"x" * index
                assert response.header(b"connection") is None
            assert len(server.connections) == 1
            writer.write(get("/last", "Connection: close"))
            response = await read_response(reader)
            assert response.header(b"connection") == b"close"
            assert await at_eof(reader)

    run(body())


def test_expect_100_continue_gets_100_before_the_final_response():
    async def body() -> None:
        echo = Echo()
        async with InProcess(echo) as server:
            reader, writer = await connect(server.port)
            payload = b'{"model": "m"}'
            head = post("/v1/chat/completions", payload, "Expect: 100-continue")[: -len(payload)]
            writer.write(head)  # the body waits for the 100
            interim = await read_response(reader)
            assert interim.head == b"HTTP/1.1 100 Continue\r\n\r\n"
            assert echo.served == []
            writer.write(payload)
            final = await read_response(reader)
            assert final.status == 200 and final.body.endswith(payload)
            writer.close()

    run(body())


def test_chunked_request_body_is_decoded_for_the_handler():
    async def body() -> None:
        echo = Echo()
        async with InProcess(echo) as server:
            reader, writer = await connect(server.port)
            writer.write(b"POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\n\r\n")
            response = await read_response(reader)
            assert response.body == b"POST /up 11\nhello world"
            writer.close()

    run(body())


def test_request_target_is_kept_byte_for_byte_and_path_decoded():
    async def body() -> None:
        echo = Echo()
        async with InProcess(echo) as server:
            reader, writer = await connect(server.port)
            writer.write(get("/v1/a%2Fb?x=%20y&z"))
            await read_response(reader)
            assert echo.served[0].target == b"/v1/a%2Fb?x=%20y&z"
            assert echo.served[0].path == "/v1/a/b"
            writer.close()

    run(body())


# ---------------------------------------------------------------- rejected requests (in process)


@pytest.mark.parametrize("expect", [False, True], ids=["plain", "expect-100"])
def test_content_length_over_the_limit_is_413_before_the_body_and_closes(expect: bool):
    async def body() -> None:
        echo = Echo()
        async with InProcess(echo, max_body_size=1024) as server:
            reader, writer = await connect(server.port)
            extra = ["Expect: 100-continue"] if expect else []
            writer.write(f"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\n{''.join(h + chr(13) + chr(10) for h in extra)}Content-Length: 5000\r\n\r\n".encode())
            response = await read_response(reader)  # no 100 Continue, no body sent
            assert response.status == 413
            assert json_error(response)["code"] == "body_too_large"
            assert response.header(b"connection") == b"close"
            assert await at_eof(reader)
            assert echo.served == [] and server.rejects == [413]

    run(body())


def test_chunked_body_over_the_limit_is_413():
    async def body() -> None:
        echo = Echo()
        async with InProcess(echo, max_body_size=1024) as server:
            reader, writer = await connect(server.port)
            writer.write(b"POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
            for _ in range(3):
                writer.write(b"200\r\n" + b"x" * 512 + b"\r\n")
            response = await read_response(reader)
            assert response.status == 413 and json_error(response)["code"] == "body_too_large"
            assert echo.served == [] and server.rejects == [413]

    run(body())


@pytest.mark.parametrize("shape", ["count", "bytes"])
def test_too_many_or_too_large_headers_are_431(shape: str):
    async def body() -> None:
        echo = Echo()
        async with InProcess(echo) as server:
            reader, writer = await connect(server.port)
            if shape == "count":
                headers = [f"X-H{index}: {index}" for index in range(101)]
            else:
                headers = [f"X-Big{index}: {'v' * 8000}" for index in range(9)]
            writer.write(get("/", *headers))
            response = await read_response(reader)
            assert response.status == 431 and json_error(response)["code"] == "headers_too_large"
            assert await at_eof(reader)
            assert echo.served == [] and server.rejects == [431]

    run(body())


def test_one_hundred_headers_are_fine():
    async def body() -> None:
        async with InProcess(Echo()) as server:
            reader, writer = await connect(server.port)
            writer.write(get("/", *[f"X-H{index}: {index}" for index in range(99)]))  # plus Host: 100
            assert (await read_response(reader)).status == 200
            writer.close()

    run(body())


@pytest.mark.parametrize("garbage", [b"BLAH\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"], ids=["word", "version", "tls"])
def test_garbage_request_is_400_and_closes(garbage: bytes):
    async def body() -> None:
        echo = Echo()
        async with InProcess(echo) as server:
            reader, writer = await connect(server.port)
            writer.write(garbage)
            response = await read_response(reader)
            assert response.status == 400 and json_error(response)["code"] == "bad_http"
            assert response.header(b"x-switchyard-error-source") == b"switchyard"
            assert await at_eof(reader)
            assert echo.served == [] and server.rejects == [400]

    run(body())


def test_websocket_upgrade_is_501():
    async def body() -> None:
        async with InProcess(Echo()) as server:
            reader, writer = await connect(server.port)
            writer.write(get("/ws", "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="))
            response = await read_response(reader)
            assert response.status == 501 and json_error(response)["code"] == "upgrade_not_supported"
            assert await at_eof(reader)
            assert server.rejects == [501]

    run(body())


# ---------------------------------------------------------------- responses (in process)


class Streamer:
    """Streams ``pieces`` with Responder.start/write/end; ``length`` sets a Content-Length."""

    def __init__(self, pieces: list[bytes], length: int | None = None) -> None:
        self.pieces = pieces
        self.length = length

    async def __call__(self, request: Request, responder: Responder) -> None:
        responder.start(200, [(b"Content-Type", b"text/event-stream")], self.length)
        for piece in self.pieces:
            responder.write(piece)
            await asyncio.sleep(0)
        responder.end()


def test_http_11_stream_is_chunked_with_exact_framing():
    async def body() -> None:
        async with InProcess(Streamer([b"data: 1\n\n", b"", b"data: 2\n\n"])) as server:
            reader, writer = await connect(server.port)
            writer.write(get("/s"))
            head = await reader.readuntil(b"\r\n\r\n")
            assert head == b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
            expected = b"9\r\ndata: 1\n\n\r\n9\r\ndata: 2\n\n\r\n0\r\n\r\n"  # an empty write sends nothing, not a last chunk
            assert await asyncio.wait_for(reader.readexactly(len(expected)), 5) == expected
            writer.write(get("/s"))  # and the connection is kept
            assert (await read_response(reader)).body == b"data: 1\n\ndata: 2\n\n"
            writer.close()

    run(body())


class RecordingTransport:
    """Only what HttpProtocol.flush touches: the writes it makes."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closing = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closing

    def abort(self) -> None:
        self.aborted = self.closing = True


class FailingTransport(RecordingTransport):
    """A transport whose write raises: any unexpected failure of one connection."""

    def write(self, data: bytes) -> None:
        raise RuntimeError("the handler is closed")


async def _unused_handler(request: Request, responder: Responder) -> None:  # pragma: no cover
    raise AssertionError("not called")


def test_body_bytes_of_one_loop_turn_are_written_at_its_end_every_connections_back_to_back():
    async def body() -> None:
        writes = Writes()
        protocols = [HttpProtocol(_unused_handler, max_body_size=1, connections=set(), writes=writes) for _ in range(2)]
        for protocol in protocols:
            protocol.transport = RecordingTransport()  # type: ignore[assignment]
        protocols[0].write_soon(b"a")
        protocols[1].write_soon(b"x")
        protocols[0].write_soon(b"b")
        assert [p.transport.writes for p in protocols] == [[], []]  # nothing yet: the turn is not over
        await asyncio.sleep(0)
        assert [p.transport.writes for p in protocols] == [[b"ab"], [b"x"]]  # one write each, in order
        protocols[0].write_soon(b"c")
        protocols[0].flush()  # the end of a response writes at once (what follows must come after it)
        assert protocols[0].transport.writes == [b"ab", b"c"]
        protocols[1].write_soon(b"lost")
        protocols[1].connection_lost(None)  # the client left: nothing is written to the closed transport
        await asyncio.sleep(0)
        assert protocols[1].transport.writes == [b"x"]

    run(body())


def test_a_transport_closed_before_connection_lost_is_skipped_and_a_failing_one_holds_back_no_other():
    """uvloop closes a transport at once on a socket error and calls connection_lost a turn
    later: its bytes are dropped. A write that raises must cost only that connection: the others
    of the same turn are written, and so is everything they relay afterwards (a connection whose
    held bytes were not written is never scheduled again)."""

    async def body() -> None:
        writes = Writes()
        protocols = [HttpProtocol(_unused_handler, max_body_size=1, connections=set(), writes=writes) for _ in range(4)]
        transports = [RecordingTransport(), FailingTransport(), RecordingTransport(), RecordingTransport()]
        for protocol, transport in zip(protocols, transports):
            protocol.transport = transport  # type: ignore[assignment]
        transports[2].closing = True  # closed, connection_lost not yet called
        for protocol in protocols:
            protocol.write_soon(b"1")
        await asyncio.sleep(0)
        assert [t.writes for t in transports] == [[b"1"], [], [], [b"1"]]
        assert transports[1].aborted and protocols[1].closed and not transports[3].aborted
        for protocol in (protocols[0], protocols[3]):  # the next turn's bytes are not stuck behind it
            protocol.write_soon(b"2")
        await asyncio.sleep(0)
        assert [t.writes for t in transports] == [[b"1", b"2"], [], [], [b"1", b"2"]]

    run(body())


def test_without_batching_body_bytes_are_written_at_once():
    async def body() -> None:
        protocol = HttpProtocol(_unused_handler, max_body_size=1, connections=set())
        protocol.transport = RecordingTransport()  # type: ignore[assignment]
        protocol.write_soon(b"a")
        assert protocol.transport.writes == [b"a"]

    run(body())


def test_stream_with_content_length_is_not_chunked():
    async def body() -> None:
        async with InProcess(Streamer([b"abc", b"def"], length=6)) as server:
            reader, writer = await connect(server.port)
            writer.write(get("/s"))
            response = await read_response(reader)
            assert response.header(b"content-length") == b"6" and response.header(b"transfer-encoding") is None
            assert response.body == b"abcdef"
            writer.close()

    run(body())


def test_http_10_client_gets_a_close_delimited_stream():
    pieces = [b"data: %d\n\n" % index for index in range(20)]

    async def body() -> None:
        async with InProcess(Streamer(pieces)) as server:
            reader, writer = await connect(server.port)
            writer.write(b"GET /s HTTP/1.0\r\n\r\n")
            response = await read_response(reader)  # read to EOF
            assert response.head.startswith(b"HTTP/1.1 200 OK\r\n")
            assert response.header(b"transfer-encoding") is None and response.header(b"content-length") is None
            assert response.header(b"connection") == b"close"
            assert response.body == b"".join(pieces)

    run(body())


def test_handler_error_is_500_json_and_the_connection_stays_usable():
    async def handler(request: Request, responder: Responder) -> None:
        if request.path == "/boom":
            raise RuntimeError("boom")
        responder.send(200, [], b"fine")

    async def body() -> None:
        async with InProcess(handler) as server:
            reader, writer = await connect(server.port)
            writer.write(get("/boom"))
            response = await read_response(reader)
            assert response.status == 500 and json_error(response)["code"] == "internal_error"
            writer.write(get("/ok"))
            assert (await read_response(reader)).body == b"fine"
            writer.close()

    run(body())


def test_handler_that_fails_mid_stream_truncates_the_response():
    async def handler(request: Request, responder: Responder) -> None:
        responder.start(200, [], None)
        responder.write(b"partial")
        raise RuntimeError("broke")

    async def body() -> None:
        async with InProcess(handler) as server:
            reader, writer = await connect(server.port)
            writer.write(get("/s"))
            await reader.readuntil(b"\r\n\r\n")
            assert await asyncio.wait_for(reader.read(), 5) == b"7\r\npartial\r\n"  # no last chunk: visibly cut

    run(body())


def test_client_disconnect_cancels_the_handler():
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def handler(request: Request, responder: Responder) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def body() -> None:
        async with InProcess(handler) as server:
            reader, writer = await connect(server.port)
            writer.write(get("/forever"))
            await asyncio.wait_for(started.wait(), 5)
            writer.close()
            await asyncio.wait_for(cancelled.wait(), 5)
            while server.connections:
                await asyncio.sleep(0.01)

    run(body())


def test_slow_client_back_pressure_reaches_the_backend():
    """A client that stops reading stops the backend (its writes block) instead of filling the proxy's memory."""
    piece = bytes(range(256)) * 1024  # 256 KiB
    pieces = 256  # 64 MiB: more than every socket buffer on the way can hold
    sent = {"bytes": 0, "finished": False}

    async def backend(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        try:
            for _ in range(pieces):
                writer.write(b"%x\r\n%b\r\n" % (len(piece), piece))
                await writer.drain()
                sent["bytes"] += len(piece)
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            sent["finished"] = True
            await reader.read()
        except ConnectionError:
            pass

    async def body() -> None:
        backend_server = await asyncio.start_server(backend, "127.0.0.1", 0)
        up = Upstream(f"http://127.0.0.1:{backend_server.sockets[0].getsockname()[1]}", connect_timeout=2, first_byte_timeout=5, idle_timeout=60)

        async def relay(request: Request, responder: Responder) -> None:  # what App._relay does for a stream
            exchange = await up.open(request.method, request.target, [], None)
            try:
                responder.start(exchange.status, [], exchange.content_length)
                await exchange.relay(responder)
                responder.end()
            finally:
                exchange.close()

        async with InProcess(relay) as server:
            reader, writer = await connect(server.port, rcvbuf=4096)
            writer.write(get("/big"))
            await reader.readuntil(b"\r\n\r\n")
            # Do not read. Wait until the backend makes no progress any more (or finishes: the failure).
            buffered, last, still = 0, -1, 0
            while still < 8 and not sent["finished"]:
                await asyncio.sleep(0.05)
                for connection in server.connections:
                    buffered = max(buffered, connection.transport.get_write_buffer_size())
                still = still + 1 if sent["bytes"] == last else 0
                last = sent["bytes"]
            assert not sent["finished"], "the backend sent everything to a client that read nothing"
            assert buffered < 1 << 20, f"the proxy buffered {buffered} bytes for a stalled client"
            # Now read it all: the stream resumes and arrives intact.
            total = 0
            while True:
                size = int((await asyncio.wait_for(reader.readuntil(b"\r\n"), 10)).split(b";")[0], 16)
                data = await reader.readexactly(size + 2)
                if size == 0:
                    break
                assert data[:size] == (piece * 2)[total % len(piece) : total % len(piece) + size]
                total += size
            assert total == len(piece) * pieces and sent["finished"]
            writer.close()
        backend_server.close()
        await up.aclose()

    run(body(), limit=30)


# ---------------------------------------------------------------- bugs found while writing these tests


def test_malformed_request_pipelined_behind_a_slow_one_is_answered_after_it():
    async def body() -> None:
        echo = Echo()
        async with InProcess(echo) as server:
            reader, writer = await connect(server.port)
            writer.write(get("/slow/50") + b"BLAH\r\n\r\n")
            first = await read_response(reader)
            assert (first.status, first.body) == (200, b"GET /slow/50 0\n")
            assert (await read_response(reader)).status == 400

    run(body())


def test_expect_100_of_a_pipelined_request_does_not_corrupt_the_stream_in_progress():
    one_sent, release = asyncio.Event(), asyncio.Event()

    async def handler(request: Request, responder: Responder) -> None:
        if request.path == "/stream":
            responder.start(200, [], None)
            responder.write(b"one")
            one_sent.set()
            await release.wait()
            responder.write(b"two")
            responder.end()
        else:
            responder.send(200, [], request.body)

    async def body() -> None:
        async with InProcess(handler) as server:
            reader, writer = await connect(server.port)
            writer.write(get("/stream"))
            first = asyncio.ensure_future(read_response(reader))
            await asyncio.wait_for(one_sent.wait(), 5)
            writer.write(post("/next", b"xy", "Expect: 100-continue")[:-2])  # pipelined; its body waits for a 100
            await asyncio.sleep(0.05)  # let the server parse that head while the stream is still open
            release.set()
            response = await first
            assert response.status == 200 and response.body == b"onetwo"
            assert (await read_response(reader)).head == b"HTTP/1.1 100 Continue\r\n\r\n"
            writer.write(b"xy")
            assert (await read_response(reader)).body == b"xy"
            writer.close()

    run(body())


def test_rejected_upgrade_request_is_not_handled():
    async def body() -> None:
        echo = Echo()
        async with InProcess(echo) as server:
            reader, writer = await connect(server.port)
            writer.write(get("/ws", "Upgrade: websocket", "Connection: Upgrade"))
            assert (await read_response(reader)).status == 501
            await asyncio.sleep(0.05)
            assert echo.served == []

    run(body())


def test_streamed_answer_to_head_sends_no_body():
    async def body() -> None:
        async with InProcess(Streamer([])) as server:
            reader, writer = await connect(server.port)
            writer.write(b"HEAD /s HTTP/1.1\r\nHost: t\r\n\r\n" + get("/s"))
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200 OK\r\n")
            assert (await read_response(reader)).status == 200  # the GET's response comes right after the HEAD's head
            writer.close()

    run(body())


# ---------------------------------------------------------------- end to end: the real server process


def _port(server) -> int:
    return urllib.parse.urlsplit(server.url).port


def _fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


CHAT_STREAM = json.dumps({"model": "weak-model", "stream": True, "messages": [{"role": "user", "content": "hi"}]}).encode()


def test_e2e_pipelined_and_keep_alive_through_the_proxy(proxy, reset_backend):
    async def body() -> None:
        reader, writer = await connect(_port(proxy))
        chat = json.dumps({"model": "weak-model", "messages": [{"role": "user", "content": "hi"}]}).encode()
        writer.write(post("/v1/chat/completions", chat, "x-fake-delay: 0.1") + get("/health") + post("/v1/chat/completions", CHAT_STREAM))
        first, second, third = [await read_response(reader) for _ in range(3)]
        assert first.status == 200 and json.loads(first.body)["object"] == "chat.completion"
        assert second.status == 200 and json.loads(second.body)["status"] == "ok"
        assert third.status == 200 and third.body == b"".join(stream_bytes("weak-model", 20))
        for _ in range(3):  # and the connection stays usable
            writer.write(get("/v1/models"))
            assert (await read_response(reader)).status == 200
        writer.close()

    run(body())


def test_e2e_chunked_request_body_is_forwarded_with_the_same_bytes(proxy, reset_backend):
    raw = b'{"model":"weak-model", "messages":[{"role":"user","content":"h\xc3\xa9llo"}],  "max_tokens": 3}'

    async def body() -> None:
        reader, writer = await connect(_port(proxy))
        cuts = [raw[:7], raw[7:8], raw[8:40], raw[40:]]
        framed = b"".join(b"%x\r\n%b\r\n" % (len(cut), cut) for cut in cuts) + b"0\r\n\r\n"
        writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" + framed)
        response = await read_response(reader)
        assert response.status == 200
        writer.close()

    run(body())
    forwarded = backend_log(reset_backend)["requests"][-1]
    assert base64.b64decode(forwarded["body_b64"]) == raw
    headers = {name.lower(): value for name, value in forwarded["headers"]}
    assert headers["content-length"] == str(len(raw)) and "transfer-encoding" not in headers


def test_e2e_expect_100_continue(proxy, reset_backend):
    chat = json.dumps({"model": "weak-model", "messages": [{"role": "user", "content": "hi"}]}).encode()

    async def body() -> None:
        reader, writer = await connect(_port(proxy))
        writer.write(post("/v1/chat/completions", chat, "Expect: 100-continue")[: -len(chat)])
        assert (await read_response(reader)).head == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(chat)
        assert (await read_response(reader)).status == 200
        writer.close()

    run(body())
    forwarded = backend_log(reset_backend)["requests"][-1]
    assert base64.b64decode(forwarded["body_b64"]) == chat
    assert "expect" not in {name.lower() for name, _ in forwarded["headers"]}


@pytest.mark.parametrize(
    "raw, status, code",
    [
        (b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Length: 40000000\r\n\r\n", 413, "body_too_large"),
        (get("/v1/models", *[f"X-H{index}: {index}" for index in range(101)]), 431, "headers_too_large"),
        (b"NOT HTTP AT ALL\r\n\r\n", 400, "bad_http"),
    ],
    ids=["413", "431", "400"],
)
def test_e2e_rejections_close_and_reach_no_backend(proxy, reset_backend, raw: bytes, status: int, code: str):
    async def body() -> None:
        reader, writer = await connect(_port(proxy))
        writer.write(raw)  # for the 413: the body is never sent
        response = await read_response(reader)
        assert response.status == status and json_error(response)["code"] == code
        assert response.header(b"connection") == b"close"
        assert await at_eof(reader)

    run(body())
    assert backend_log(reset_backend)["requests"] == []


def test_e2e_http_10_stream_is_close_delimited_and_byte_identical(proxy, reset_backend):
    async def body() -> None:
        reader, writer = await connect(_port(proxy))
        writer.write(post("/v1/chat/completions", CHAT_STREAM, version="1.0"))
        response = await read_response(reader)
        assert response.status == 200
        assert response.header(b"transfer-encoding") is None and response.header(b"content-length") is None
        assert response.header(b"connection") == b"close"
        assert response.body == b"".join(stream_bytes("weak-model", 20))

    run(body())


def test_e2e_slow_reader_gets_a_big_stream_intact_without_the_proxy_buffering_it(proxy, reset_backend):
    chunks = 4000
    expected = b"".join(stream_bytes("weak-model", chunks))
    pid = proxy.process.pid

    async def body() -> None:
        before = _rss_kib(pid)
        reader, writer = await connect(_port(proxy), rcvbuf=4096)
        writer.write(post("/v1/chat/completions", CHAT_STREAM, "x-fake-chunks: %d" % chunks, "x-fake-interval: 0"))
        await reader.readuntil(b"\r\n\r\n")
        for _ in range(10):  # not reading for a while
            await asyncio.sleep(0.05)
            assert _rss_kib(pid) - before < 64 * 1024
        pieces = []
        while True:
            size = int((await asyncio.wait_for(reader.readuntil(b"\r\n"), 10)), 16)
            pieces.append((await reader.readexactly(size + 2))[:size])
            if size == 0:
                break
        assert b"".join(pieces) == expected
        writer.close()

    run(body())


def test_e2e_client_disconnects_mid_stream_leak_no_file_descriptors(proxy, reset_backend):
    pid = proxy.process.pid
    rounds, parallel = 200, 20

    async def one() -> None:
        reader, writer = await connect(_port(proxy))
        writer.write(post("/v1/chat/completions", CHAT_STREAM, "x-fake-forever: 1", "x-fake-interval: 0.01"))
        await asyncio.wait_for(reader.readuntil(b"data:"), 10)
        writer.transport.abort()

    async def body() -> None:
        reader, writer = await connect(_port(proxy))  # warm: the pool holds a backend connection
        writer.write(get("/v1/models"))
        await read_response(reader)
        writer.close()
        await asyncio.sleep(0.1)
        baseline = _fd_count(pid)
        for _ in range(rounds // parallel):
            await asyncio.gather(*(one() for _ in range(parallel)))
        for _ in range(200):  # the proxy closes each backend stream as its client leaves
            if _fd_count(pid) <= baseline + 4:
                break
            await asyncio.sleep(0.05)
        assert _fd_count(pid) <= baseline + 4, f"{_fd_count(pid)} open fds, {baseline} before"
        for _ in range(200):
            gone = [event for event in backend_log(reset_backend)["events"] if event["event"] == "client_gone"]
            if len(gone) >= rounds:
                break
            await asyncio.sleep(0.05)
        assert len(gone) == rounds

    run(body(), limit=40)


def test_e2e_head_keeps_the_backends_content_length(proxy, reset_backend):
    async def head_length(port: int) -> bytes | None:
        reader, writer = await connect(port)
        writer.write(b"HEAD /v1/models HTTP/1.1\r\nHost: t\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        writer.close()
        lines = [line.partition(b":") for line in head.split(b"\r\n")[1:]]
        return next((value.strip() for name, _, value in lines if name.lower() == b"content-length"), None)

    async def body() -> None:
        direct = await head_length(urllib.parse.urlsplit(reset_backend).port)
        assert direct is not None and int(direct) > 0
        assert await head_length(_port(proxy)) == direct

    run(body())
