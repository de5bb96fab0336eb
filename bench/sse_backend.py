"""A cheap paced-SSE backend: one uvloop process, raw asyncio protocol, chunked HTTP/1.1.

POST (any path)  -> 200 text/event-stream: N content chunks, one every INTERVAL seconds
                    (the first right away), then a usage chunk and ``data: [DONE]`` one
                    INTERVAL after the last content chunk, then the chunked terminator.
GET /v1/models   -> a JSON model list (the proxy checks it at start-up).

Keep-alive is supported (the proxy pools connections). Chunk frames are precomputed;
each tick is one loop.call_at + one transport.write, so it costs a few microseconds.

    python bench/sse_backend.py --port 9000 --chunks 50 --interval 0.02
"""

from __future__ import annotations

import argparse
import asyncio
import signal

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None

MODELS = b'{"object":"list","data":[{"id":"strong-model","object":"model","created":0,"owned_by":"bench"},{"id":"weak-model","object":"model","created":0,"owned_by":"bench"}]}'


def frame(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


def build_frames(chunks: int) -> tuple[list[bytes], bytes]:
    content = []
    for i in range(chunks):
        ev = (
            b'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":0,"model":"weak-model",'
            b'"choices":[{"index":0,"delta":{"content":"tok%d "},"finish_reason":null}]}\n\n' % i
        )
        content.append(frame(ev))
    usage = (
        b'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":0,"model":"weak-model",'
        b'"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":%d,"total_tokens":%d}}\n\n' % (chunks, chunks + 12)
    )
    tail = frame(usage) + frame(b"data: [DONE]\n\n") + b"0\r\n\r\n"
    return content, tail


STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)


def simple(status: bytes, body: bytes) -> bytes:
    return b"HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (status, len(body), body)


class Backend(asyncio.Protocol):
    frames: list[bytes]
    tail: bytes
    interval: float

    def __init__(self) -> None:
        self.buf = b""
        self.busy = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.loop = asyncio.get_running_loop()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self.process()

    def process(self) -> None:
        while not self.busy and self.transport is not None:
            buf = self.buf
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = buf[:end].decode("latin-1")
            lines = head.split("\r\n")
            method, path = lines[0].split(" ")[:2]
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                lname = name.strip().lower()
                if lname == "content-length":
                    length = int(value)
                elif lname == "transfer-encoding":
                    self.transport.write(simple(b"400 Bad Request", b'{"error":"chunked request bodies not supported"}'))
                    self.transport.close()
                    return
            if len(buf) < end + 4 + length:
                return
            self.buf = buf[end + 4 + length:]
            if method == "GET" and path.startswith("/v1/models"):
                self.transport.write(simple(b"200 OK", MODELS))
            elif method == "GET":
                self.transport.write(simple(b"200 OK", b'{"ok":true}'))
            else:
                self.start_stream()

    def start_stream(self) -> None:
        self.busy = True
        self.transport.write(STREAM_HEAD + self.frames[0])
        self.t0 = self.loop.time()
        self.index = 1
        self.schedule()

    def schedule(self) -> None:
        self.loop.call_at(self.t0 + self.index * self.interval, self.tick)

    def tick(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self.index < len(self.frames):
            transport.write(self.frames[self.index])
            self.index += 1
            self.schedule()
            return
        transport.write(self.tail)
        self.busy = False
        if self.buf:
            self.process()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--chunks", type=int, default=50)
    ap.add_argument("--interval", type=float, default=0.02)
    args = ap.parse_args()
    Backend.frames, Backend.tail = build_frames(args.chunks)
    Backend.interval = args.interval
    if uvloop is not None:
        uvloop.install()

    async def run() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Backend, args.host, args.port, backlog=4096, reuse_address=True)
        stop = loop.create_future()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
        print(f"sse backend on {args.host}:{args.port}", flush=True)
        await stop
        server.close()

    asyncio.run(run())


if __name__ == "__main__":
    main()
