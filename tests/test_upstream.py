"""The backend client (upstream.Upstream) against raw asyncio servers that send exactly the bytes a test wants."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable

import pytest

from dynamo.nemo_switchyard import upstream as upstream_module
from dynamo.nemo_switchyard.upstream import Upstream, UpstreamError

from processes import free_port

Behaviour = Callable[["Backend", asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


def run(coroutine: Awaitable[object], limit: float = 10.0) -> object:
    """Run one test body in a fresh event loop, never longer than ``limit`` (a hang fails, it does not block)."""

    async def bounded() -> object:
        return await asyncio.wait_for(coroutine, limit)

    return asyncio.run(bounded())


class Backend:
    """A raw HTTP server: ``behave(backend, reader, writer, index)`` runs for each accepted connection."""

    def __init__(self, behave: Behaviour) -> None:
        self.behave = behave
        self.accepted = 0
        self.requests: list[bytes] = []  # every request as received, byte for byte
        self.eof = asyncio.Event()  # set when a connection saw the client's end (EOF or reset)
        self._writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> "Backend":
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        for writer in self._writers:
            writer.transport.abort()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = self.accepted
        self.accepted += 1
        self._writers.append(writer)
        try:
            await self.behave(self, reader, writer, index)
        except (ConnectionError, asyncio.IncompleteReadError):
            self.eof.set()
        finally:
            writer.transport.abort() if writer.transport.is_closing() else writer.close()

    async def read_request(self, reader: asyncio.StreamReader) -> bytes | None:
        """One request (head and Content-Length body), or None at EOF."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            self.eof.set()
            return None
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        raw = head + await reader.readexactly(length)
        self.requests.append(raw)
        return raw

    async def wait_eof(self, reader: asyncio.StreamReader) -> None:
        try:
            while await reader.read(65536):
                pass
        except ConnectionError:
            pass
        self.eof.set()


def answering(*responses: bytes) -> Behaviour:
    """Answer each request on a connection with the next response (the last one repeats)."""

    async def behave(backend: Backend, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> None:
        count = 0
        while await backend.read_request(reader) is not None:
            writer.write(responses[min(count, len(responses) - 1)])
            await writer.drain()
            count += 1

    return behave


def upstream(url: str, *, connect: float = 2.0, first_byte: float = 5.0, idle: float = 5.0) -> Upstream:
    return Upstream(url, connect_timeout=connect, first_byte_timeout=first_byte, idle_timeout=idle)


class Sink:
    """A BodySink that records what it gets."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.readers: list[object] = []
        self.got_data = asyncio.Event()

    def write(self, data: bytes) -> None:
        self.chunks.append(data)
        self.got_data.set()

    def bind_reader(self, transport: object) -> None:
        self.readers.append(transport)

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)


OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"


def chunked(*pieces: bytes) -> bytes:
    return b"".join(b"%x\r\n%b\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"


def request_line(raw: bytes) -> bytes:
    return raw.split(b"\r\n", 1)[0]


def header_values(raw: bytes, name: bytes) -> list[bytes]:
    head = raw.split(b"\r\n\r\n", 1)[0]
    return [line.partition(b":")[2].strip() for line in head.split(b"\r\n")[1:] if line.partition(b":")[0].lower() == name]


# ---------------------------------------------------------------- keep-alive and bodies


def test_keep_alive_two_sequential_requests_share_one_connection():
    async def body() -> None:
        async with Backend(answering(OK)) as backend:
            up = upstream(backend.url)
            for _ in range(3):
                exchange = await up.open("GET", b"/a", [], None)
                assert (exchange.status, exchange.reason, exchange.content_length) == (200, b"OK", 2)
                assert await exchange.read() == b"ok"
            assert backend.accepted == 1
            assert len(backend.requests) == 3
            assert up.open_connections == 1
            await up.aclose()

    run(body())


def test_response_headers_stay_raw_pairs_in_order():
    response = b"HTTP/1.1 201 Created Here\r\nX-A: 1\r\nset-cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n"

    async def body() -> None:
        async with Backend(answering(response)) as backend:
            up = upstream(backend.url)
            exchange = await up.open("GET", b"/", [], None)
            assert exchange.status == 201 and exchange.reason == b"Created Here"
            assert exchange.headers == [(b"X-A", b"1"), (b"set-cookie", b"a=1"), (b"Set-Cookie", b"b=2"), (b"Content-Length", b"0")]
            assert await exchange.read() == b""
            await up.aclose()

    run(body())


def test_chunked_body_is_delivered_decoded_and_whole_by_read():
    pieces = [b"hello ", b"chunked \xe2\x98", b"\x83 world", b"x" * 5000]

    async def behave(backend: Backend, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> None:
        while await backend.read_request(reader) is not None:
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            await writer.drain()
            for piece in pieces:
                writer.write(b"%x\r\n%b\r\n" % (len(piece), piece))
                await writer.drain()
                await asyncio.sleep(0)
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    async def body() -> None:
        async with Backend(behave) as backend:
            up = upstream(backend.url)
            exchange = await up.open("GET", b"/stream", [], None)
            assert exchange.content_length is None
            assert await exchange.read() == b"".join(pieces)
            # The connection went back to the pool once the last chunk came: it is reused.
            assert await (await up.open("GET", b"/again", [], None)).read() == b"".join(pieces)
            assert backend.accepted == 1
            await up.aclose()

    run(body())


def test_relay_collects_exactly_the_body_across_many_small_writes():
    pieces = [f"data: {i} \u2603\n\n".encode()[: 3 + i % 11] for i in range(300)]

    async def behave(backend: Backend, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> None:
        await backend.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        await writer.drain()
        for piece in pieces:
            writer.write(b"%x\r\n%b\r\n" % (len(piece), piece))
            await writer.drain()
            await asyncio.sleep(0)
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        await backend.wait_eof(reader)

    async def body() -> None:
        async with Backend(behave) as backend:
            up = upstream(backend.url)
            exchange = await up.open("POST", b"/v1/chat/completions", [], b"{}")
            sink = Sink()
            await exchange.relay(sink)
            assert sink.body == b"".join(pieces)
            assert len(sink.chunks) > 1  # relayed as it came, not gathered
            # Back-pressure hook: bound to the backend connection during the body, unbound at the end.
            assert sink.readers[0] is not None and sink.readers[-1] is None
            await up.aclose()

    run(body())


def test_content_length_body_by_read_and_by_relay():
    payload = bytes(range(256)) * 40

    async def behave(backend: Backend, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> None:
        while await backend.read_request(reader) is not None:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(payload))
            for start in range(0, len(payload), 1000):
                writer.write(payload[start : start + 1000])
                await writer.drain()
                await asyncio.sleep(0)

    async def body() -> None:
        async with Backend(behave) as backend:
            up = upstream(backend.url)
            exchange = await up.open("GET", b"/file", [], None)
            assert exchange.content_length == len(payload)
            assert await exchange.read() == payload
            exchange = await up.open("GET", b"/file", [], None)
            sink = Sink()
            await exchange.relay(sink)
            assert sink.body == payload
            assert backend.accepted == 1
            await up.aclose()

    run(body())


def test_head_response_with_content_length_and_no_body_completes():
    async def body() -> None:
        async with Backend(answering(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nContent-Type: text/plain\r\n\r\n")) as backend:
            up = upstream(backend.url)
            exchange = await up.open("HEAD", b"/file", [], None)
            assert exchange.status == 200 and exchange.content_length == 1000
            assert await exchange.read() == b""
            sink = Sink()
            exchange = await up.open("HEAD", b"/file", [], None)
            await exchange.relay(sink)
            assert sink.body == b""
            assert [request_line(raw) for raw in backend.requests] == [b"HEAD /file HTTP/1.1"] * 2
            await up.aclose()

    run(body())


def test_no_content_response_completes_and_keeps_the_connection():
    async def body() -> None:
        async with Backend(answering(b"HTTP/1.1 204 No Content\r\n\r\n")) as backend:
            up = upstream(backend.url)
            for _ in range(2):
                exchange = await up.open("DELETE", b"/x", [], None)
                assert exchange.status == 204 and await exchange.read() == b""
            assert backend.accepted == 1
            await up.aclose()

    run(body())


def test_connection_close_response_is_not_reused():
    response = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"

    async def body() -> None:
        async with Backend(answering(response)) as backend:
            up = upstream(backend.url)
            for _ in range(2):
                assert await (await up.open("GET", b"/", [], None)).read() == b"ok"
            assert backend.accepted == 2
            await up.aclose()

    run(body())


# ---------------------------------------------------------------- stale keep-alive connections


def test_stale_pooled_connection_closed_by_the_backend_after_answering():
    async def behave(backend: Backend, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> None:
        await backend.read_request(reader)
        writer.write(OK)
        await writer.drain()
        writer.close()  # an idle keep-alive connection the backend drops

    async def body() -> None:
        async with Backend(behave) as backend:
            up = upstream(backend.url)
            assert await (await up.open("GET", b"/1", [], None)).read() == b"ok"
            assert await (await up.open("GET", b"/2", [], None)).read() == b"ok"
            assert backend.accepted == 2
            await up.aclose()

    run(body())


def test_reused_connection_closed_before_answering_is_retried_once_on_a_new_one():
    async def behave(backend: Backend, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> None:
        await backend.read_request(reader)
        writer.write(OK)
        await writer.drain()
        if index == 0:
            # The race: the client reuses the connection just as the backend closes it.
            await backend.read_request(reader)
            writer.transport.abort()
            return
        while await backend.read_request(reader) is not None:
            writer.write(OK)
            await writer.drain()

    async def body() -> None:
        async with Backend(behave) as backend:
            up = upstream(backend.url)
            assert await (await up.open("GET", b"/1", [], None)).read() == b"ok"
            assert await (await up.open("POST", b"/2", [], b'{"x": 1}')).read() == b"ok"
            assert backend.accepted == 2
            second = [raw for raw in backend.requests if request_line(raw) == b"POST /2 HTTP/1.1"]
            assert len(second) == 2 and second[0] == second[1]  # the same bytes, sent again
            await up.aclose()

    run(body())


def test_sent_runs_once_the_request_is_written_before_the_head_arrives():
    """The caller's bookkeeping overlaps the backend's work: ``sent`` runs after the write, not after the answer."""
    answer = asyncio.Event()

    async def behave(backend: Backend, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> None:
        await backend.read_request(reader)
        await answer.wait()
        writer.write(OK)
        await writer.drain()

    async def body() -> None:
        async with Backend(behave) as backend:
            up = upstream(backend.url)
            calls: list[int] = []
            opening = asyncio.ensure_future(up.open("POST", b"/x", [], b"{}", lambda: calls.append(len(backend.requests))))
            while not backend.requests:
                await asyncio.sleep(0.001)
            assert calls == [0] and not opening.done()  # ran when written, before the backend even read it
            answer.set()
            assert await (await opening).read() == b"ok"
            assert calls == [0]
            await up.aclose()

    run(body())


def test_stale_retry_happens_only_once():
    async def behave(backend: Backend, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> None:
        if index == 0:
            await backend.read_request(reader)
            writer.write(OK)
            await writer.drain()
        await backend.read_request(reader)
        writer.transport.abort()

    async def body() -> None:
        async with Backend(behave) as backend:
            up = upstream(backend.url)
            assert await (await up.open("GET", b"/1", [], None)).read() == b"ok"
            with pytest.raises(UpstreamError) as caught:
                await up.open("GET", b"/2", [], None)
            assert (caught.value.kind, caught.value.status) == ("disconnected", 502)
            assert backend.accepted == 2
            await up.aclose()

    run(body())


def test_new_connection_closed_before_answering_is_not_retried():
    async def behave(backend: Backend, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> None:
        await backend.read_request(reader)
        writer.transport.abort()

    async def body() -> None:
        async with Backend(behave) as backend:
            up = upstream(backend.url)
            with pytest.raises(UpstreamError) as caught:
                await up.open("POST", b"/v1/chat/completions", [], b"{}")
            assert (caught.value.kind, caught.value.status) == ("disconnected", 502)
            assert backend.accepted == 1 and len(backend.requests) == 1
            await up.aclose()

    run(body())


# ---------------------------------------------------------------- failures


def test_connection_refused_is_502_connect():
    async def body() -> None:
        up = upstream(f"http://127.0.0.1:{free_port()}")
        with pytest.raises(UpstreamError) as caught:
            await up.open("GET", b"/", [], None)
        assert (caught.value.kind, caught.value.status) == ("connect", 502)
        assert up.open_connections == 0

    run(body())


def test_backend_that_never_answers_is_504_timeout_and_the_connection_is_closed():
    async def behave(backend: Backend, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> None:
        await backend.read_request(reader)
        await backend.wait_eof(reader)

    async def body() -> None:
        async with Backend(behave) as backend:
            up = upstream(backend.url, first_byte=0.2)
            with pytest.raises(UpstreamError) as caught:
                await up.open("POST", b"/v1/chat/completions", [], b"{}")
            assert (caught.value.kind, caught.value.status) == ("timeout", 504)
            await asyncio.wait_for(backend.eof.wait(), 5)  # the backend learns the request was abandoned
            assert up.open_connections == 0
            await up.aclose()

    run(body())


def test_head_then_stall_fails_the_relay_with_idle_timeout():
    async def behave(backend: Backend, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> None:
        await backend.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await writer.drain()
        await backend.wait_eof(reader)

    async def body() -> None:
        async with Backend(behave) as backend:
            up = upstream(backend.url, idle=0.2)
            exchange = await up.open("GET", b"/stream", [], None)
            sink = Sink()
            with pytest.raises(UpstreamError) as caught:
                await exchange.relay(sink)
            assert (caught.value.kind, caught.value.status) == ("idle_timeout", 504)
            assert sink.body == b"first"
            await asyncio.wait_for(backend.eof.wait(), 5)
            await up.aclose()

    run(body())


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_reset_mid_body(framing: str):
    async def behave(backend: Backend, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> None:
        await backend.read_request(reader)
        if framing == "chunked":
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nhello")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.transport.abort()

    async def body() -> None:
        async with Backend(behave) as backend:
            up = upstream(backend.url)
            exchange = await up.open("GET", b"/", [], None)
            sink = Sink()
            with pytest.raises(UpstreamError) as caught:
                await exchange.relay(sink)
            assert (caught.value.kind, caught.value.status) == ("reset_mid_body", 502)
            assert sink.body == b"hello"
            assert sink.readers[-1] is None
            await up.aclose()

    run(body())


@pytest.mark.parametrize(
    "response",
    [b"garbage\r\n\r\n", b"HTTP/1.1 abc OK\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n"],
    ids=["status-line", "status-code", "content-length"],
)
def test_invalid_http_from_the_backend_is_502_protocol(response: bytes):
    async def body() -> None:
        async with Backend(answering(response)) as backend:
            up = upstream(backend.url)
            with pytest.raises(UpstreamError) as caught:
                await up.open("GET", b"/", [], None)
            assert (caught.value.kind, caught.value.status) == ("protocol", 502)
            await up.aclose()

    run(body())


def test_invalid_chunk_framing_mid_body_is_protocol():
    async def body() -> None:
        response = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n"
        async with Backend(answering(response)) as backend:
            up = upstream(backend.url)
            exchange = await up.open("GET", b"/", [], None)
            with pytest.raises(UpstreamError) as caught:
                await exchange.read()
            assert (caught.value.kind, caught.value.status) == ("protocol", 502)
            await up.aclose()

    run(body())


def test_close_during_a_stream_closes_the_backend_connection():
    async def behave(backend: Backend, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> None:
        await backend.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        await writer.drain()
        writer.write(b"5\r\nfirst\r\n")
        await writer.drain()
        await backend.wait_eof(reader)  # streams "forever" until the client leaves

    async def body() -> None:
        async with Backend(behave) as backend:
            up = upstream(backend.url)
            exchange = await up.open("POST", b"/v1/chat/completions", [], b"{}")
            sink = Sink()
            exchange.relay(sink)
            await sink.got_data.wait()
            assert not backend.eof.is_set()
            exchange.close()
            await asyncio.wait_for(backend.eof.wait(), 5)
            assert up.open_connections == 0
            await up.aclose()

    run(body())


def test_cancelling_open_while_waiting_for_the_head_closes_the_connection():
    async def behave(backend: Backend, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> None:
        await backend.read_request(reader)
        await backend.wait_eof(reader)

    async def body() -> None:
        async with Backend(behave) as backend:
            up = upstream(backend.url)
            task = asyncio.ensure_future(up.open("GET", b"/slow", [], None))
            while not backend.requests:
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.wait_for(backend.eof.wait(), 5)
            await up.aclose()

    run(body())


# ---------------------------------------------------------------- models()


def _json_response(status: int, payload: bytes) -> bytes:
    reason = b"OK" if status == 200 else b"Internal Server Error"
    return b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%b" % (status, reason, len(payload), payload)


def test_models_returns_the_ids_entries():
    payload = json.dumps({"object": "list", "data": [{"id": "a", "owned_by": "x"}, {"id": "b"}, {"no": "id"}, 5]}).encode()

    async def body() -> None:
        async with Backend(answering(_json_response(200, payload))) as backend:
            up = upstream(backend.url)
            assert await up.models() == [{"id": "a", "owned_by": "x"}, {"id": "b"}]
            assert request_line(backend.requests[0]) == b"GET /v1/models HTTP/1.1"
            await up.aclose()

    run(body())


@pytest.mark.parametrize(
    "response",
    [
        _json_response(500, b'{"data": [{"id": "a"}]}'),
        _json_response(200, b"not json at all"),
        _json_response(200, b'{"object": "list"}'),
        _json_response(200, b'{"data": "a"}'),
        _json_response(200, b"[1, 2]"),
        b"complete garbage\r\n\r\n",
    ],
    ids=["500", "not-json", "no-data", "data-not-list", "list", "not-http"],
)
def test_models_is_none_when_the_answer_is_wrong(response: bytes):
    async def body() -> None:
        async with Backend(answering(response)) as backend:
            up = upstream(backend.url)
            assert await up.models() is None
            await up.aclose()

    run(body())


def test_models_is_none_without_a_server_or_an_answer():
    async def silent(backend: Backend, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> None:
        await backend.wait_eof(reader)

    async def body() -> None:
        assert await upstream(f"http://127.0.0.1:{free_port()}").models() is None
        async with Backend(silent) as backend:
            up = upstream(backend.url)
            assert await up.models(timeout=0.2) is None
            await asyncio.wait_for(backend.eof.wait(), 5)
            await up.aclose()

    run(body())


# ---------------------------------------------------------------- request bytes


def test_request_bytes_have_backend_host_path_prefix_and_content_length():
    async def body() -> None:
        async with Backend(answering(OK)) as backend:
            up = upstream(backend.url + "/prefix/")
            payload = b'{"model": "m", "x": "\xc3\xa9"}'
            headers = [(b"Authorization", b"Bearer t"), (b"X-Multi", b"1"), (b"x-multi", b"2")]
            await (await up.open("POST", b"/v1/chat/completions?a=%2F&b=c%20d", headers, payload)).read()
            assert backend.requests == [
                b"POST /prefix/v1/chat/completions?a=%2F&b=c%20d HTTP/1.1\r\n"
                + b"Host: 127.0.0.1:%d\r\n" % backend.port
                + b"Authorization: Bearer t\r\nX-Multi: 1\r\nx-multi: 2\r\n"
                + b"Content-Length: %d\r\n\r\n" % len(payload)
                + payload
            ]
            await up.aclose()

    run(body())


def test_post_with_an_empty_body_sends_content_length_zero_and_get_sends_none():
    async def body() -> None:
        async with Backend(answering(OK)) as backend:
            up = upstream(backend.url)
            for method, payload in (("POST", None), ("POST", b""), ("PUT", None), ("GET", None), ("DELETE", None)):
                await (await up.open(method, b"/x", [], payload)).read()
            lengths = [header_values(raw, b"content-length") for raw in backend.requests]
            assert lengths == [[b"0"], [b"0"], [b"0"], [], []]
            await up.aclose()

    run(body())


def test_large_request_body_arrives_whole():
    payload = bytes(range(256)) * 1024  # 256 KiB, sent apart from the head

    async def body() -> None:
        async with Backend(answering(OK)) as backend:
            up = upstream(backend.url)
            await (await up.open("POST", b"/upload", [], payload)).read()
            assert backend.requests[0].endswith(b"\r\n\r\n" + payload)
            assert header_values(backend.requests[0], b"content-length") == [str(len(payload)).encode()]
            await up.aclose()

    run(body())


# ---------------------------------------------------------------- regressions (found while writing these tests, fixed in upstream.py)


def test_close_delimited_response_body_is_complete_at_eof():
    """No Content-Length, not chunked: the body ends with the connection (httptools is never told about the EOF)."""
    async def behave(backend: Backend, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> None:
        await backend.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nall of ")
        await writer.drain()
        writer.write(b"the body")
        await writer.drain()
        writer.close()

    async def body() -> None:
        async with Backend(behave) as backend:
            up = upstream(backend.url)
            exchange = await up.open("GET", b"/", [], None)
            assert await exchange.read() == b"all of the body"
            await up.aclose()

    run(body())


def test_connection_paused_by_back_pressure_is_not_pooled_paused():
    """A body that ends inside the data_received call that paused the connection for a slow client: the
    connection goes back to the pool reading again, or the next request on it never reads its answer."""
    rest_may_come = asyncio.Event()

    async def behave(backend: Backend, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> None:
        await backend.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%b\r\n" % (1000, b"a" * 1000))
        await writer.drain()
        await rest_may_come.wait()
        writer.write(b"%x\r\n%b\r\n0\r\n\r\n" % (1000, b"b" * 1000))  # the rest of the body in one packet
        await writer.drain()
        while await backend.read_request(reader) is not None:
            writer.write(OK)
            await writer.drain()

    class PausingSink(Sink):
        """Like the client connection when its socket buffer fills while relaying the last piece."""

        def write(self, data: bytes) -> None:
            super().write(data)
            if data.startswith(b"b") and self.readers[-1] is not None:
                self.readers[-1].pause_reading()  # what HttpProtocol.pause_writing does

    async def body() -> None:
        async with Backend(behave) as backend:
            up = upstream(backend.url, first_byte=1.0)
            exchange = await up.open("GET", b"/1", [], None)
            sink = PausingSink()
            done = exchange.relay(sink)
            await sink.got_data.wait()
            rest_may_come.set()
            await done
            assert sink.body == b"a" * 1000 + b"b" * 1000
            assert sink.readers[-1] is None  # unbound: the client can no longer resume it
            assert up.open_connections == 1  # back in the pool
            assert await (await up.open("GET", b"/2", [], None)).read() == b"ok"
            await up.aclose()

    run(body())


def test_relay_after_the_body_completed_leaves_no_reader_bound():
    """relay() after a small answer arrived whole (head and body in one packet): the connection is already
    back in the pool, so the client must not pause and resume it for its own back-pressure."""
    response = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(b"whole")

    async def body() -> None:
        async with Backend(answering(response)) as backend:
            up = upstream(backend.url)
            exchange = await up.open("GET", b"/", [], None)
            sink = Sink()
            await exchange.relay(sink)
            assert sink.body == b"whole"
            assert up.open_connections == 1  # pooled, free for any other request
            assert not sink.readers or sink.readers[-1] is None  # ... so the client must not hold its reader
            await up.aclose()

    run(body())


def test_idle_timeout_does_not_count_time_paused_by_back_pressure():
    """Time the proxy itself paused reading (slow client) is not backend silence."""
    async def behave(backend: Backend, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> None:
        await backend.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"5\r\nfirst\r\n")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"4\r\nlast\r\n0\r\n\r\n")  # all sent: the backend is done, only the proxy is not reading
        await writer.drain()
        await backend.wait_eof(reader)

    async def body() -> None:
        async with Backend(behave) as backend:
            up = upstream(backend.url, idle=0.3)
            exchange = await up.open("GET", b"/", [], None)
            sink = Sink()
            done = exchange.relay(sink)
            await sink.got_data.wait()
            transport = sink.readers[0]
            transport.pause_reading()  # what the client connection does while its socket buffer is full
            await asyncio.sleep(0.6)
            transport.resume_reading()
            await done
            assert sink.body == b"firstlast"
            await up.aclose()

    run(body())


# ---------------------------------------------------------------- the backend's address


class Lookups:
    """Replaces the running loop's getaddrinfo: counts the lookups, answers with ``addresses``
    (or raises ``error``)."""

    def __init__(self, port: int, addresses: list[str]) -> None:
        self.port = port
        self.addresses = addresses
        self.error: OSError | None = None
        self.calls = 0
        loop = asyncio.get_running_loop()
        loop.getaddrinfo = self  # type: ignore[method-assign]

    async def __call__(self, host: str, port: int, **kwargs: object) -> list[tuple]:
        self.calls += 1
        await asyncio.sleep(0.01)  # a lookup takes a while: concurrent connections wait for the same one
        if self.error is not None:
            raise self.error
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)) for address in self.addresses]


def test_a_host_name_is_looked_up_once_for_many_new_connections():
    async def body() -> None:
        async with Backend(answering(OK)) as backend:
            lookups = Lookups(backend.port, ["127.0.0.1"])
            up = upstream(f"http://backend.example:{backend.port}")
            exchanges = await asyncio.gather(*(up.open("GET", b"/", [], None) for _ in range(5)))
            assert [await e.read() for e in exchanges] == [b"ok"] * 5
            assert backend.accepted == 5 and lookups.calls == 1
            await up.aclose()

    run(body())


def test_an_expired_lookup_is_renewed_in_the_background_and_a_failed_renewal_keeps_the_address(monkeypatch):
    monkeypatch.setattr(upstream_module, "DNS_TTL", 0.0)

    async def body() -> None:
        async with Backend(answering(OK)) as backend:
            lookups = Lookups(backend.port, ["127.0.0.1"])
            up = upstream(f"http://backend.example:{backend.port}")
            assert await (await up.open("GET", b"/", [], None)).read() == b"ok"
            await up.aclose()  # the next request needs a new connection
            lookups.error = socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
            assert await (await up.open("GET", b"/", [], None)).read() == b"ok"  # the old address, not a wait
            await asyncio.sleep(0.05)
            assert lookups.calls == 2
            await up.aclose()
            assert await (await up.open("GET", b"/", [], None)).read() == b"ok"  # still the old address
            await up.aclose()

    run(body())


def test_an_address_that_refuses_is_skipped_and_a_backend_that_moved_is_looked_up_again():
    async def body() -> None:
        async with Backend(answering(OK)) as backend:
            lookups = Lookups(backend.port, ["127.0.0.2", "127.0.0.1"])  # nothing listens on the first
            loop = asyncio.get_running_loop()
            connect, tried = loop.create_connection, []

            async def recording(factory, host, port, **kwargs):  # type: ignore[no-untyped-def]
                tried.append(host)
                return await connect(factory, host, port, **kwargs)

            loop.create_connection = recording  # type: ignore[method-assign]
            up = upstream(f"http://backend.example:{backend.port}")
            assert await (await up.open("GET", b"/", [], None)).read() == b"ok"
            await up.aclose()
            lookups.addresses = ["127.0.0.3"]  # the backend moves; the cached addresses still work
            assert await (await up.open("GET", b"/", [], None)).read() == b"ok"
            assert lookups.calls == 1
            assert tried == ["127.0.0.2", "127.0.0.1", "127.0.0.1"]  # the one that accepted goes first
            await up.aclose()
            backend.server.close()
            await backend.server.wait_closed()
            with pytest.raises(UpstreamError) as failed:  # every address refuses: forgotten
                await up.open("GET", b"/", [], None)
            assert failed.value.kind == "connect"
            with pytest.raises(UpstreamError):
                await up.open("GET", b"/", [], None)
            assert lookups.calls == 2  # looked up again (127.0.0.3: refused too)

    run(body())


def test_an_ip_address_is_never_looked_up():
    async def body() -> None:
        async with Backend(answering(OK)) as backend:
            lookups = Lookups(backend.port, [])
            up = upstream(backend.url)
            assert await (await up.open("GET", b"/", [], None)).read() == b"ok"
            assert lookups.calls == 0
            await up.aclose()

    run(body())
